import Foundation
import Testing
@testable import Warren
import Yams

/// deploy/observability must not drift from what the worker exports: every metric a rule or a
/// dashboard query names is in ``WarrenMetrics/catalog`` (or is a recording rule of the rules file,
/// or one of ``ObservabilityContract/externalMetrics``), its label matchers use labels the metric
/// has, every alert says how bad it is and what to do and is unit-tested, the PrometheusRule is
/// the rules file, and the PodMonitor and the scrape annotations point at the side port's
/// `/metrics` of the Deployment's pods.
@Suite("Observability files match the worker's metrics")
struct ObservabilityDriftTests {
    let files = DeployFiles()
    let healthPort = WorkerConfiguration().healthPort!

    // MARK: - Metric names

    @Test("every metric a rule names is exported by the worker, recorded by a rule, or a listed external one")
    func ruleMetricsExist() throws {
        let rules = try ObservabilityFiles(files).rules()
        let known = ObservabilityContract.knownMetrics(recordingRules: Set(rules.compactMap(\.record)))
        try #require(!rules.isEmpty, "warren-rules.yaml has no rules")
        for rule in rules {
            let selectors = try PromQLScan.selectors(in: rule.expr)
            #expect(!selectors.isEmpty, "\(rule.name): no metric in \(rule.expr)")
            for selector in selectors {
                checkSelector(selector, known: known, source: "warren-rules.yaml \(rule.name)")
            }
        }
    }

    @Test("every metric a dashboard query names is exported by the worker or a listed external one")
    func dashboardMetricsExist() throws {
        let dashboard = try ObservabilityFiles(files).dashboard()
        // The dashboard must work without the recording rules: it may not use them.
        let known = ObservabilityContract.knownMetrics(recordingRules: [])
        let queries = dashboard.queries
        try #require(queries.count >= 10, "the dashboard has only \(queries.count) queries")
        for query in queries {
            let selectors = try PromQLScan.selectors(in: query.expr)
            #expect(!selectors.isEmpty, "\(query.source): no metric in \(query.expr)")
            for selector in selectors {
                checkSelector(selector, known: known, source: query.source)
            }
        }
        // The panels an on-call engineer looks at first must be there.
        let used = Set(queries.flatMap { (try? PromQLScan.selectors(in: $0.expr)) ?? [] }.map(\.metric))
        for metric in ObservabilityContract.dashboardMustShow {
            #expect(used.contains(metric), "the dashboard shows no \(metric)")
        }
    }

    private func checkSelector(_ selector: PromQLScan.Selector, known: [String: Set<String>?], source: String) {
        guard let entry = known[selector.metric] else {
            Issue.record("\(source) names \(selector.metric), which the worker does not export (WarrenMetrics.catalog), no recording rule records, and ObservabilityContract.externalMetrics does not list")
            return
        }
        guard let labels = entry else { return }  // a recording rule or an external metric: labels not checked
        for label in selector.labels {
            #expect(labels.contains(label) || ObservabilityContract.targetLabels.contains(label),
                    "\(source): \(selector.metric) has no label \(label) (it has \(labels.sorted()), plus target labels)")
        }
        for (label, value) in selector.equalities where label == "state" && selector.metric == WarrenMetrics.consumerState {
            #expect(ConsumerState(rawValue: value) != nil, "\(source): \(selector.metric){state=\"\(value)\"} is no consumer state")
        }
    }

    // MARK: - Alerts

    @Test("every alert has a severity, a summary and a description")
    func alertsSayWhatToDo() throws {
        let alerts = try ObservabilityFiles(files).rules().filter { $0.alert != nil }
        try #require(alerts.count >= 8, "warren-rules.yaml has only \(alerts.count) alerts")
        var names = Set<String>()
        for alert in alerts {
            let name = alert.name
            #expect(names.insert(name).inserted, "alert \(name) is defined twice")
            #expect(["critical", "warning", "info"].contains(alert.labels["severity"] ?? ""),
                    "\(name): severity label is \(alert.labels["severity"] ?? "missing"), expected critical, warning or info")
            #expect(!(alert.annotations["summary"] ?? "").isEmpty, "\(name) has no summary annotation")
            #expect((alert.annotations["description"] ?? "").count >= 80,
                    "\(name): the description should say what it means and what to do")
            #expect(name.hasPrefix("Warren"), "\(name): alerts are named Warren…")
        }
        // The issue's list.
        for required in ["WarrenConsumptionPaused", "WarrenDisconnected", "WarrenDeadLettersGrowing", "WarrenRetryRateHigh",
                         "WarrenHandlerTimeouts", "WarrenReadinessFlapping", "WarrenEventLoopStalled",
                         "WarrenReconnectStorm", "WarrenBacklogNotDraining", "WarrenWorkerDown"] {
            #expect(names.contains(required), "no alert \(required)")
        }
    }

    @Test("every alert and recording rule is unit-tested in warren-rules.test.yaml")
    func everyRuleIsTested() throws {
        let observability = ObservabilityFiles(files)
        let rules = try observability.rules()
        let tests = try #require(try files.yaml("\(ObservabilityFiles.directory)/warren-rules.test.yaml").first)
        #expect(tests["rule_files"].array.compactMap(\.string) == ["warren-rules.yaml"],
                "warren-rules.test.yaml should load warren-rules.yaml")
        var firing = Set<String>(), quiet = Set<String>(), queried = Set<String>()
        for test in tests["tests"].array {
            for alertTest in test["alert_rule_test"].array {
                guard let name = alertTest["alertname"].string else { continue }
                if alertTest["exp_alerts"].array.isEmpty { quiet.insert(name) } else { firing.insert(name) }
            }
            for exprTest in test["promql_expr_test"].array {
                queried.formUnion((try? PromQLScan.selectors(in: exprTest["expr"].string ?? ""))?.map(\.metric) ?? [])
            }
        }
        for rule in rules {
            if let alert = rule.alert {
                #expect(firing.contains(alert), "warren-rules.test.yaml never makes \(alert) fire")
                #expect(quiet.contains(alert), "warren-rules.test.yaml never checks that \(alert) stays quiet")
            } else if let record = rule.record {
                #expect(queried.contains(record), "warren-rules.test.yaml never queries the recording rule \(record)")
            }
        }
    }

    @Test("prometheusrule.yaml holds exactly the groups of warren-rules.yaml")
    func prometheusRuleMatchesRulesFile() throws {
        let plain = try #require(try files.yaml("\(ObservabilityFiles.directory)/warren-rules.yaml").first)
        let wrapped = try #require(try files.yaml("\(ObservabilityFiles.directory)/prometheusrule.yaml").first)
        #expect(wrapped["apiVersion"].string == "monitoring.coreos.com/v1")
        #expect(wrapped["kind"].string == "PrometheusRule")
        #expect(ObservabilityFiles.canonical(wrapped["spec"].raw) == ObservabilityFiles.canonical(plain.raw),
                "prometheusrule.yaml's spec differs from warren-rules.yaml: regenerate it (see the command in its header)")
    }

    // MARK: - Scraping

    @Test("the PodMonitor scrapes /metrics on the Deployment's health port, with the job the alerts select")
    func podMonitorScrapesTheWorker() throws {
        let monitor = try #require(try files.yaml("\(ObservabilityFiles.directory)/podmonitor.yaml").first)
        #expect(monitor["kind"].string == "PodMonitor")
        let deployment = try #require(try files.manifest(kind: "Deployment", name: "event-worker"))
        let template = deployment["spec"]["template"]
        let podLabels = Dictionary(template["metadata"]["labels"].mapping.compactMap { key, value in value.string.map { (key, $0) } },
                                   uniquingKeysWith: { $1 })
        let selector = monitor["spec"]["selector"]["matchLabels"].mapping
        try #require(!selector.isEmpty, "podmonitor.yaml: no selector.matchLabels")
        for (key, value) in selector {
            #expect(podLabels[key] == value.string, "podmonitor.yaml selects \(key)=\(value.string ?? "?"), the pods have \(podLabels[key] ?? "no such label")")
        }
        let endpoints = monitor["spec"]["podMetricsEndpoints"].array
        try #require(!endpoints.isEmpty, "podmonitor.yaml: no podMetricsEndpoints")
        let ports = template["spec"]["containers"].array.flatMap { $0["ports"].array }
        for endpoint in endpoints {
            let port = ports.first { $0["name"].string == endpoint["port"].string }
            #expect(port?["containerPort"].int == healthPort,
                    "podmonitor.yaml: port \(endpoint["port"].string ?? "?") is not the container's health port \(healthPort)")
            #expect(endpoint["path"].string == HealthPaths.metrics, "podmonitor.yaml: path \(endpoint["path"].string ?? "?")")
        }
        // The job label: the alerts select up{job="…"}; the PodMonitor takes the job from a pod label.
        let jobs = Set(try ObservabilityFiles(files).rules().flatMap { rule in
            try PromQLScan.selectors(in: rule.expr).filter { $0.metric == "up" }.compactMap { $0.equalities["job"] }
        })
        try #require(!jobs.isEmpty, "no alert watches up{job=…}")
        let jobLabel = try #require(monitor["spec"]["jobLabel"].string, "podmonitor.yaml: no jobLabel")
        #expect(jobs == [podLabels[jobLabel] ?? "?"],
                "the alerts select job \(jobs.sorted()), the PodMonitor's jobLabel \(jobLabel) gives \(podLabels[jobLabel] ?? "nothing")")
        let example = try #require(try files.yaml("\(ObservabilityFiles.directory)/prometheus.example.yaml").first)
        #expect(example["scrape_configs"].array.map { $0["job_name"].string ?? "" } == jobs.sorted(),
                "prometheus.example.yaml's scrape job should be \(jobs.sorted())")
    }

    @Test("the pod template's prometheus.io annotations name the health port and /metrics")
    func scrapeAnnotations() throws {
        let deployment = try #require(try files.manifest(kind: "Deployment", name: "event-worker"))
        let annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        #expect(annotations["prometheus.io/scrape"].string == "true", "deployment.yaml: prometheus.io/scrape is not \"true\"")
        #expect(annotations["prometheus.io/port"].int == healthPort,
                "deployment.yaml: prometheus.io/port is \(annotations["prometheus.io/port"].string ?? "missing"), not \(healthPort)")
        #expect(annotations["prometheus.io/path"].string == HealthPaths.metrics,
                "deployment.yaml: prometheus.io/path is \(annotations["prometheus.io/path"].string ?? "missing")")
        // The memory panel reads the kubelet's container metric by container name.
        let containers = Set(deployment["spec"]["template"]["spec"]["containers"].array.compactMap { $0["name"].string })
        for query in try ObservabilityFiles(files).dashboard().queries {
            for selector in try PromQLScan.selectors(in: query.expr) where selector.metric == "container_memory_working_set_bytes" {
                let container = selector.equalities["container"]
                #expect(container.map(containers.contains) ?? false,
                        "\(query.source): container=\(container ?? "(none)") is not a container of the Deployment (\(containers.sorted()))")
            }
        }
    }

    // MARK: - Dashboard shape

    @Test("the dashboard is a Grafana dashboard whose panels all query the selected Prometheus")
    func dashboardShape() throws {
        let dashboard = try ObservabilityFiles(files).dashboard()
        #expect(!(dashboard.json["uid"] as? String ?? "").isEmpty, "the dashboard has no uid")
        #expect(!(dashboard.json["title"] as? String ?? "").isEmpty, "the dashboard has no title")
        let variables = (dashboard.json["templating"] as? [String: Any])?["list"] as? [[String: Any]] ?? []
        #expect(variables.contains { $0["name"] as? String == "datasource" && $0["type"] as? String == "datasource" },
                "the dashboard has no datasource variable")
        var ids = Set<Int>()
        for panel in dashboard.panels {
            let title = panel["title"] as? String ?? "?"
            if let id = panel["id"] as? Int { #expect(ids.insert(id).inserted, "panel id \(id) is used twice") }
            guard panel["type"] as? String != "row" else { continue }
            let targets = panel["targets"] as? [[String: Any]] ?? []
            #expect(!targets.isEmpty, "panel \(title) has no query")
            for target in [panel] + targets {
                let uid = (target["datasource"] as? [String: Any])?["uid"] as? String
                #expect(uid == "${datasource}", "panel \(title): datasource \(uid ?? "none"), expected ${datasource}")
            }
        }
    }

    // MARK: - The scanner itself

    @Test("the PromQL scan finds metric names and label matchers, and nothing else")
    func scanner() throws {
        let expr = #"""
        histogram_quantile(0.99, sum by (queue, le) (rate(warren_handler_duration_seconds_bucket{job="$job", queue=~"a|b"}[$__rate_interval])))
          / ignoring (state) max without (pod) (up offset 5m) > bool 1e-3 and on (x) absent(foo:bar:rate5m{state!="by"}) # comment warren_nothing
        or label_replace(vector(1), "dst", "$1", "src", "(.*)") unless count_values("v", ${var}) @ start()
        """#
        let found = try PromQLScan.selectors(in: expr)
        #expect(found.map(\.metric) == ["warren_handler_duration_seconds_bucket", "up", "foo:bar:rate5m"])
        #expect(found.first?.labels == ["job", "queue"])
        #expect(found.last?.equalities == [:])
        #expect(found.first?.equalities == ["job": "$job"])
        #expect(throws: PromQLScan.ScanError.self) { try PromQLScan.selectors(in: #"{__name__=~"warren_.*"}"#) }
        // A metric the worker does not export is caught.
        let known = ObservabilityContract.knownMetrics(recordingRules: [])
        #expect(known["warren_messages_received_total"] != nil)
        #expect(known["warren_handler_duration_seconds_bucket"] != nil)
        #expect(known["warren_handler_duration_seconds"] == nil, "a histogram is queried through _bucket/_sum/_count")
        #expect(known["process_resident_memory_bytes"] == nil, "swift-prometheus exports no process_resident_memory_bytes")
    }
}

// MARK: - The contract

/// What the observability files may name besides the worker's own metrics.
enum ObservabilityContract {
    /// Metrics the worker does not export that the rules or the dashboard may use, with where they
    /// come from. Keep it short: each entry is a dependency on something outside Warren.
    static let externalMetrics: [String: String] = [
        // Prometheus' own: 1 when the target's last scrape succeeded (WarrenWorkerDown, WarrenWorkersAbsent).
        "up": "Prometheus, per scrape target",
        // The kubelet's cAdvisor: swift-prometheus exports no process_resident_memory_bytes, and the
        // working set is what the container's memory limit and OOM kills are measured against.
        "container_memory_working_set_bytes": "kubelet / cAdvisor",
    ]

    /// Labels Prometheus attaches to every series of a target (scrape job, PodMonitor, or the
    /// relabelling of prometheus.example.yaml), which a matcher may use on any metric.
    static let targetLabels: Set<String> = ["job", "instance", "namespace", "pod", "container", "endpoint", "service"]

    /// Metrics the dashboard must show: the panels an on-call engineer looks at first.
    static let dashboardMustShow: [String] = [
        WarrenMetrics.messagesReceived, WarrenMetrics.messagesAcked, WarrenMetrics.messagesRetried,
        WarrenMetrics.messagesDeadLettered, WarrenMetrics.handlerDuration + "_bucket", WarrenMetrics.consumerState,
        WarrenMetrics.checkUp, WarrenMetrics.eventLoopLag, WarrenMetrics.queueMessages,
        "container_memory_working_set_bytes",
    ]

    /// Every name a query may use -> the labels it has (nil: not checked, for recording rules and
    /// external metrics). Histograms are queried as `_bucket` (with `le`), `_sum` and `_count`.
    static func knownMetrics(recordingRules: Set<String>) -> [String: Set<String>?] {
        var known: [String: Set<String>?] = [:]
        for descriptor in WarrenMetrics.catalog {
            let labels = Set(descriptor.labels)
            if descriptor.kind == .histogram {
                known[descriptor.name + "_bucket"] = labels.union(["le"])
                known[descriptor.name + "_sum"] = labels
                known[descriptor.name + "_count"] = labels
            } else {
                known[descriptor.name] = labels
            }
        }
        for name in recordingRules { known[name] = .some(nil) }
        for name in externalMetrics.keys { known[name] = .some(nil) }
        return known
    }
}

// MARK: - Files

/// deploy/observability, parsed.
struct ObservabilityFiles {
    static let directory = "deploy/observability"
    let files: DeployFiles

    init(_ files: DeployFiles) { self.files = files }

    struct Rule {
        var record: String?
        var alert: String?
        var expr: String
        var labels: [String: String]
        var annotations: [String: String]
        var name: String { alert ?? record ?? "?" }
    }

    func rules() throws -> [Rule] {
        let document = try #require(try files.yaml("\(Self.directory)/warren-rules.yaml").first, "warren-rules.yaml is empty")
        return document["groups"].array.flatMap { group in
            group["rules"].array.map { rule in
                func strings(_ node: YAMLValue) -> [String: String] {
                    Dictionary(node.mapping.compactMap { key, value in value.string.map { (key, $0) } }, uniquingKeysWith: { $1 })
                }
                return Rule(record: rule["record"].string, alert: rule["alert"].string, expr: rule["expr"].string ?? "",
                            labels: strings(rule["labels"]), annotations: strings(rule["annotations"]))
            }
        }
    }

    struct Dashboard {
        var json: [String: Any]
        /// Every panel, rows' nested panels included.
        var panels: [[String: Any]]
        /// Every PromQL query: panel targets and query variables (`label_values(EXPR, label)` -> EXPR).
        var queries: [(source: String, expr: String)]
    }

    func dashboard() throws -> Dashboard {
        let text = try files.text("\(Self.directory)/warren-dashboard.json")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
                                "warren-dashboard.json is not a JSON object")
        func flatten(_ panels: [[String: Any]]) -> [[String: Any]] {
            panels.flatMap { [$0] + flatten($0["panels"] as? [[String: Any]] ?? []) }
        }
        let panels = flatten(json["panels"] as? [[String: Any]] ?? [])
        var queries: [(String, String)] = []
        for panel in panels {
            for target in panel["targets"] as? [[String: Any]] ?? [] {
                let expr = try #require(target["expr"] as? String, "panel \(panel["title"] ?? "?") has a target without expr")
                queries.append(("dashboard panel \"\(panel["title"] as? String ?? "?")\" \(target["refId"] as? String ?? "")", expr))
            }
        }
        for variable in (json["templating"] as? [String: Any])?["list"] as? [[String: Any]] ?? []
        where variable["type"] as? String == "query" {
            let query = (variable["query"] as? String) ?? ((variable["query"] as? [String: Any])?["query"] as? String) ?? ""
            let source = "dashboard variable $\(variable["name"] as? String ?? "?")"
            if query.hasPrefix("label_values("), let comma = query.lastIndex(of: ",") {
                queries.append((source, String(query[query.index(query.startIndex, offsetBy: "label_values(".count)..<comma])))
            } else {
                queries.append((source, query))
            }
        }
        return Dashboard(json: json, panels: panels, queries: queries)
    }
}

extension ObservabilityFiles {
    /// A canonical text of a parsed YAML/JSON tree (mappings with sorted keys), to compare two trees.
    static func canonical(_ node: Any?) -> String {
        switch node {
        case let mapping as [AnyHashable: Any]:
            let entries = mapping.map { ("\($0.key)", canonical($0.value)) }.sorted { $0.0 < $1.0 }
            return "{" + entries.map { "\($0.0.debugDescription):\($0.1)" }.joined(separator: ",") + "}"
        case let list as [Any]:
            return "[" + list.map(canonical).joined(separator: ",") + "]"
        case let string as String:
            return string.debugDescription
        case nil:
            return "null"
        case let value?:
            return "\(type(of: value))(\(value))"
        }
    }
}

// MARK: - PromQL

/// Just enough of PromQL to find the metric names an expression selects and the label matchers
/// written on them: it skips strings, comments, range and subquery brackets, numbers and
/// durations, Grafana variables (`$x`, `${x}`), keywords, function and aggregation names, and
/// the label lists of `by`, `without`, `on`, `ignoring`, `group_left` and `group_right`.
enum PromQLScan {
    struct Selector: Equatable {
        var metric: String
        /// Label names of the matchers in `{…}` after the name, in order.
        var labels: [String] = []
        /// `label="value"` matchers (exact equality only).
        var equalities: [String: String] = [:]
    }

    enum ScanError: Error, CustomStringConvertible {
        case unterminated(String, in: String)
        case nameMatcher(String)
        var description: String {
            switch self {
            case let .unterminated(what, expr): "unterminated \(what) in \(expr)"
            case let .nameMatcher(expr): "a selector without a metric name ({__name__…}) cannot be checked: \(expr)"
            }
        }
    }

    static let keywords: Set<String> = ["and", "or", "unless", "bool", "offset", "inf", "nan", "by", "without", "on",
                                        "ignoring", "group_left", "group_right"]
    static let aggregations: Set<String> = ["sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
                                            "bottomk", "topk", "quantile", "limitk", "limit_ratio"]
    static let labelLists: Set<String> = ["by", "without", "on", "ignoring", "group_left", "group_right"]

    static func selectors(in expr: String) throws -> [Selector] {
        let c = Array(expr.unicodeScalars)
        var i = 0
        var found: [Selector] = []

        func isIdentStart(_ s: Unicode.Scalar) -> Bool { s == "_" || s == ":" || ("a"..."z").contains(s) || ("A"..."Z").contains(s) }
        func isIdent(_ s: Unicode.Scalar) -> Bool { isIdentStart(s) || ("0"..."9").contains(s) }
        func skipSpaces() { while i < c.count, c[i].properties.isWhitespace { i += 1 } }
        func readString() throws -> String {
            let quote = c[i]
            var value = ""
            i += 1
            while i < c.count, c[i] != quote {
                if c[i] == "\\", quote != "`", i + 1 < c.count { i += 1 }
                value.unicodeScalars.append(c[i])
                i += 1
            }
            guard i < c.count else { throw ScanError.unterminated("string", in: expr) }
            i += 1
            return value
        }
        func skipBalanced(_ open: Unicode.Scalar, _ close: Unicode.Scalar) throws {
            var depth = 0
            while i < c.count {
                if c[i] == "\"" || c[i] == "'" || c[i] == "`" { _ = try readString(); continue }
                if c[i] == open { depth += 1 }
                if c[i] == close { depth -= 1; if depth == 0 { i += 1; return } }
                i += 1
            }
            throw ScanError.unterminated("\(open)…\(close)", in: expr)
        }
        func readIdentifier() -> String {
            var name = ""
            while i < c.count, isIdent(c[i]) { name.unicodeScalars.append(c[i]); i += 1 }
            return name
        }
        func readMatchers(into selector: inout Selector) throws {
            i += 1  // {
            while true {
                skipSpaces()
                guard i < c.count else { throw ScanError.unterminated("{…}", in: expr) }
                if c[i] == "}" { i += 1; return }
                if c[i] == "," { i += 1; continue }
                let label = readIdentifier()
                guard !label.isEmpty else { throw ScanError.unterminated("label matcher", in: expr) }
                if label == "__name__" { throw ScanError.nameMatcher(expr) }
                skipSpaces()
                var op = ""
                while i < c.count, "=!~".unicodeScalars.contains(c[i]) { op.unicodeScalars.append(c[i]); i += 1 }
                skipSpaces()
                guard i < c.count, c[i] == "\"" || c[i] == "'" || c[i] == "`" else { throw ScanError.unterminated("label value", in: expr) }
                let value = try readString()
                selector.labels.append(label)
                if op == "=" { selector.equalities[label] = value }
            }
        }

        while i < c.count {
            let s = c[i]
            if s.properties.isWhitespace { i += 1; continue }
            if s == "#" { while i < c.count, c[i] != "\n" { i += 1 }; continue }
            if s == "\"" || s == "'" || s == "`" { _ = try readString(); continue }
            if s == "[" { try skipBalanced("[", "]"); continue }
            if s == "$" {
                i += 1
                if i < c.count, c[i] == "{" { try skipBalanced("{", "}") } else { _ = readIdentifier() }
                continue
            }
            if s == "{" {
                var anonymous = Selector(metric: "")
                try readMatchers(into: &anonymous)
                continue
            }
            if ("0"..."9").contains(s) || (s == "." && i + 1 < c.count && ("0"..."9").contains(c[i + 1])) {
                while i < c.count, isIdent(c[i]) || c[i] == "." ||
                    ((c[i] == "-" || c[i] == "+") && (c[i - 1] == "e" || c[i - 1] == "E")) { i += 1 }
                continue
            }
            if isIdentStart(s) {
                let name = readIdentifier()
                skipSpaces()
                let next: Unicode.Scalar? = i < c.count ? c[i] : nil
                if labelLists.contains(name), next == "(" { try skipBalanced("(", ")"); continue }
                if next == "(" || keywords.contains(name) || aggregations.contains(name) { continue }
                var selector = Selector(metric: name)
                if next == "{" { try readMatchers(into: &selector) }
                found.append(selector)
                continue
            }
            i += 1
        }
        return found
    }
}
