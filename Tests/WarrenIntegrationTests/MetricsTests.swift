import CoreMetrics
import Foundation
import Logging
import Prometheus
import Testing
import Warren
import WarrenAMQP
import WarrenTestSupport

/// A Prometheus text exposition, parsed: `# TYPE` lines and samples.
struct Exposition {
    struct Sample {
        var name: String
        var labels: [String: String]
        var value: Double
    }

    var types: [String: String] = [:]
    var samples: [Sample] = []

    init(_ text: String) {
        for line in text.split(separator: "\n") {
            if line.hasPrefix("# TYPE ") {
                let parts = line.split(separator: " ")
                if parts.count == 4 { types[String(parts[2])] = String(parts[3]) }
                continue
            }
            if line.hasPrefix("#") { continue }
            if let sample = Self.parse(line) { samples.append(sample) }
        }
    }

    /// `name{a="x",b="y"} value` or `name value`.
    private static func parse(_ line: Substring) -> Sample? {
        guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { return nil }
        let series = line[..<space]
        guard let brace = series.firstIndex(of: "{") else {
            return Sample(name: String(series), labels: [:], value: value)
        }
        var labels: [String: String] = [:]
        var rest = series[series.index(after: brace)...].dropLast()  // without the closing brace
        while let equals = rest.firstIndex(of: "=") {
            let key = rest[..<equals].trimmingCharacters(in: CharacterSet(charactersIn: ", "))
            var cursor = rest.index(after: rest.index(after: equals))  // past `="`
            var text = ""
            while cursor < rest.endIndex, rest[cursor] != "\"" {
                if rest[cursor] == "\\", rest.index(after: cursor) < rest.endIndex { cursor = rest.index(after: cursor) }
                text.append(rest[cursor])
                cursor = rest.index(after: cursor)
            }
            labels[key] = text
            rest = cursor < rest.endIndex ? rest[rest.index(after: cursor)...] : ""
        }
        return Sample(name: String(series[..<brace]), labels: labels, value: value)
    }

    /// Samples of `name` whose labels include `labels`.
    func samples(_ name: String, _ labels: [String: String] = [:]) -> [Sample] {
        samples.filter { sample in sample.name == name && labels.allSatisfy { sample.labels[$0.key] == $0.value } }
    }

    /// The sum of every sample of `name` with (at least) `labels`; nil when there is none.
    func sum(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        let found = samples(name, labels)
        return found.isEmpty ? nil : found.reduce(0) { $0 + $1.value }
    }

    /// The one sample of `name` with (at least) `labels`; nil when there is none or more than one.
    func value(_ name: String, _ labels: [String: String] = [:]) -> Double? {
        let found = samples(name, labels)
        return found.count == 1 ? found[0].value : nil
    }
}

extension WorkerProcess {
    /// `GET /metrics`, parsed; nil when the worker does not answer.
    func scrape() async -> (response: RawResponse, metrics: Exposition)? {
        guard let response = await probe("/metrics"), response.status == 200 else { return nil }
        return (response, Exposition(response.bodyText))
    }

    /// Scrapes until `condition` holds; the last scrape, or nil after `timeout` seconds.
    func scrape(until timeout: Double, _ condition: (Exposition) -> Bool) async -> Exposition? {
        let start = monotonicSeconds()
        repeat {
            if let metrics = await scrape()?.metrics, condition(metrics) { return metrics }
            try? await Task.sleep(for: .milliseconds(50))
        } while monotonicSeconds() - start < timeout
        return nil
    }

    /// The JSON log lines (as dictionaries of strings) whose message is `message`, with `metadata` among their fields.
    func logLines(_ message: String, _ metadata: [String: String] = [:]) -> [[String: String]] {
        output.split(separator: "\n").compactMap { line in
            guard let data = line.data(using: .utf8),
                  let object = try? JSONSerialization.jsonObject(with: data) as? [String: String],
                  object["message"] == message, metadata.allSatisfy({ object[$0.key] == $0.value }) else { return nil }
            return object
        }
    }
}

extension Integration {
    @Suite("metrics and logs")
    struct MetricsTests {
        /// The names, types and labels Warren emits through a Prometheus backend are the catalog's, and
        /// follow Prometheus' conventions; the README lists every one.
        @Test func metricNamesFollowPrometheusConventions() throws {
            let prometheus = PrometheusCollectorRegistry()
            var factory = PrometheusMetricsFactory(registry: prometheus)
            factory.durationHistogramBuckets = [WarrenMetrics.handlerDuration: WarrenMetrics.handlerDurationBuckets]
            let worker = Worker(configuration: WorkerConfiguration(),
                                subscription: Subscription("naming") { _ in .ack },
                                logger: Logger(label: "naming"), metricsFactory: factory)
            worker.sampleMetrics()
            let exposition = Exposition(prometheus.emitToString())
            let catalog = Dictionary(uniqueKeysWithValues: WarrenMetrics.catalog.map { ($0.name, $0) })

            #expect(Set(exposition.types.keys) == Set(catalog.keys), "emitted families are the catalog's")
            let snakeCase = /[a-z][a-z0-9]*(_[a-z0-9]+)*/
            for descriptor in WarrenMetrics.catalog {
                let name = descriptor.name
                #expect(name.wholeMatch(of: snakeCase) != nil, "\(name): snake_case")
                #expect(name.hasPrefix("warren_") || name == "process_start_time_seconds", "\(name): prefix")
                #expect((descriptor.kind == .counter) == name.hasSuffix("_total"), "\(name): counters and only counters end in _total")
                let words = name.split(separator: "_")
                let isTime = ["duration", "lag", "time", "latency"].contains { words.contains(Substring($0)) }
                #expect(!isTime || name.hasSuffix("_seconds"), "\(name): durations and times in seconds")
                #expect(descriptor.kind != .histogram || name.hasSuffix("_seconds"), "\(name): the histogram times something")
                #expect(exposition.types[name] == descriptor.kind.rawValue, "\(name): emitted as \(descriptor.kind)")
                for label in descriptor.labels {
                    #expect(label.wholeMatch(of: snakeCase) != nil, "\(name): label \(label) snake_case")
                }
            }
            for sample in exposition.samples {
                let family = catalog.keys.first { sample.name == $0 || sample.name.hasPrefix($0 + "_") }
                guard let family, let descriptor = catalog[family] else {
                    Issue.record("\(sample.name) is not in the catalog")
                    continue
                }
                var labels = Set(sample.labels.keys)
                if sample.name.hasSuffix("_bucket") { labels.remove("le") }
                #expect(labels == Set(descriptor.labels), "\(sample.name): labels \(labels.sorted())")
            }
            let buckets = exposition.samples("\(WarrenMetrics.handlerDuration)_bucket").compactMap { Double($0.labels["le"] ?? "") }
            #expect(buckets.min() == 0.001 && buckets.filter(\.isFinite).max() == 10, "buckets from 1 ms to 10 s: \(buckets)")

            let readme = try String(contentsOf: Servers.root.appendingPathComponent("README.md"), encoding: .utf8)
            for name in catalog.keys {
                #expect(readme.contains("`\(name)`"), "README lists \(name)")
            }
        }

        /// 100 events and 1 malformed message: the counters move by exactly 101/100/1, the histogram
        /// times every handler run (so its count is 101), `warren_check_up{check="redis"}` follows Redis,
        /// and reconnects are counted and logged once per attempt.
        @Test func countsMessagesAndFollowsDependencies() async throws {
            let f = try await IngestFixture.make()
            let worker = try WorkerProcess(environment: f.environment)
            let q = ["queue": f.queue]
            let name = WarrenMetrics.self
            let ready = await worker.waitForStatus("/internal/ready", 200, timeout: 15)
            let baseline = await worker.scrape(until: 5) { $0.value(name.consumerState, q.merging(["state": "consuming"]) { a, _ in a }) == 1 }
            #expect(ready != nil && baseline != nil, "ready and consuming: \(worker.output.suffix(2000))")
            guard let baseline else {
                await worker.terminate()
                return await f.cleanUp()
            }
            let scraped = await worker.scrape()
            #expect(scraped?.response.header("content-type") == "text/plain; version=0.0.4; charset=utf-8")

            try await f.publishEvents(100)
            try await f.publish([Array("this is not json".utf8)])
            let drained = try await f.until(60) { try await f.state(rows: 100, dead: 1) }
            let summary = await f.describe()
            #expect(drained, "\(summary)")
            func delta(_ metric: String, _ a: Exposition, _ b: Exposition) -> Double? {
                guard let before = a.sum(metric, q), let after = b.sum(metric, q) else { return nil }
                return after - before
            }
            // Settled messages are counted right after the ack is queued; give the scrape a moment.
            let after = await worker.scrape(until: 5) { delta(name.messagesReceived, baseline, $0) == 101 && delta(name.messagesAcked, baseline, $0) == 100 }
            #expect(after != nil)
            if let after {
                #expect(delta(name.messagesReceived, baseline, after) == 101)
                #expect(delta(name.messagesAcked, baseline, after) == 100)
                #expect(delta(name.messagesDeadLettered, baseline, after) == 1)
                #expect(delta(name.messagesRequeued, baseline, after) == 0)
                #expect(delta(name.messagesRetried, baseline, after) == 0)
                #expect(after.value(name.messagesInFlight, q) == 0)
                // The backlog, from the readiness round trip: empty, with this worker as the consumer.
                let backlog = await worker.scrape(until: 5) { $0.value(name.queueMessages, q) == 0 && $0.value(name.queueConsumers, q) == 1 }
                #expect(backlog != nil, "warren_queue_messages 0 and warren_queue_consumers 1")
                let buckets = after.samples("\(name.handlerDuration)_bucket", q)
                #expect(buckets.count == WarrenMetrics.handlerDurationBuckets.count + 1, "one line per bucket and +Inf")
                #expect(buckets.allSatisfy { $0.labels["le"] != nil })
                // event-worker's ingest handler is a batch handler: one observation per handler call (a
                // chunk of deliveries), every call timed whatever its outcomes.
                let calls = delta("\(name.handlerDuration)_count", baseline, after) ?? 0
                #expect((1...101).contains(calls), "between one call for all 101 deliveries and one each: \(calls)")
                #expect(after.value("\(name.handlerDuration)_bucket", q.merging(["le": "+Inf"]) { a, _ in a }) == after.value("\(name.handlerDuration)_count", q))
                #expect((after.value("\(name.handlerDuration)_sum", q) ?? -1) > 0)
                for check in ["rabbitmq", "redis", "postgres"] {
                    #expect(after.value(name.checkUp, ["check": check]) == 1, "\(check) up")
                    #expect((after.value(name.checkDuration, ["check": check]) ?? -1) >= 0)
                }
                #expect(after.value(name.eventLoopLag, ["component": "swift-concurrency"]) != nil)
                #expect(after.value(name.eventLoopLag, ["component": "amqp-io"]) != nil)
                let start = after.value(name.processStartTime) ?? 0
                let now = Date().timeIntervalSince1970
                #expect(start > now - 120 && start <= now + 1, "process start \(start), now \(now)")
                #expect(after.value(name.buildInfo, ["version": WarrenBuild.version]) == 1)
            }
            let deadLines = worker.logLines("dead-lettered a message", ["warren.queue": f.queue])
            #expect(deadLines.count == 1 && deadLines.first?["warren.reason"]?.isEmpty == false, "\(deadLines)")

            // Redis: down, then back.
            try await Servers.stop(.redis)
            let down = await worker.scrape(until: 5) { $0.value(name.checkUp, ["check": "redis"]) == 0 }
            try await Servers.start(.redis)
            let up = await worker.scrape(until: 15) { $0.value(name.checkUp, ["check": "redis"]) == 1 }
            #expect(down != nil, "warren_check_up{check=\"redis\"} 0 while Redis is down")
            #expect(up != nil, "and 1 again once it is back")
            #expect(worker.logLines("check failing", ["warren.check": "redis"]).count == 1, "one line when it fails")
            #expect(worker.logLines("check passing again", ["warren.check": "redis"]).count == 1, "one line when it passes again")
            #expect(worker.logLines("check failing", ["warren.check": "redis"]).first?["warren.reason"]?.isEmpty == false)

            // The broker: reconnects counted, one log line per attempt, the consumer state follows.
            let reconnectsBefore = (await worker.scrape())?.metrics.value(name.reconnects, q) ?? -1
            try await Servers.stop(.rabbitmq)
            let disconnected = await worker.scrape(until: 5) { $0.value(name.consumerState, q.merging(["state": "disconnected"]) { a, _ in a }) == 1 }
            try await Task.sleep(for: .milliseconds(1500))  // a few failed attempts
            try await Servers.start(.rabbitmq)
            let consuming = await worker.scrape(until: 20) { $0.value(name.consumerState, q.merging(["state": "consuming"]) { a, _ in a }) == 1 }
            #expect(disconnected != nil, "consumer_state disconnected while the broker is down")
            #expect(consuming != nil, "consuming again after the broker is back")
            if let consuming {
                let reconnects = (consuming.value(name.reconnects, q) ?? 0) - reconnectsBefore
                let attemptLines = worker.output.split(separator: "\n").filter { $0.contains("\"warren.reconnect.attempt\"") }
                #expect(reconnects >= 2, "several attempts while the broker was down: \(reconnects)")
                #expect(Double(attemptLines.count) == reconnects, "one log line per attempt: \(attemptLines.count) lines, \(reconnects) counted")
                #expect(consuming.value(name.consumerState, q.merging(["state": "paused"]) { a, _ in a }) == 0)
                #expect(consuming.value(name.consumerState, q.merging(["state": "disconnected"]) { a, _ in a }) == 0)
            }
            worker.signal(SIGTERM)
            #expect(await worker.waitForExit(timeout: 25) == 0)
            await (try f.reconnected()).cleanUp()
        }

        /// A password in a URL appears in neither `/metrics`, the probes, nor any log line, even at
        /// debug level and with a dependency failing on it.
        @Test func passwordsStayOutOfMetricsAndLogs() async throws {
            let secret = "s3cretpw"
            let f = try await IngestFixture.make()
            var environment = f.environment
            // Redis has no password set, so AUTH fails and the redis check fails (and logs why);
            // Postgres trusts loopback, so the password is sent and ignored.
            environment["REDIS_URL"] = Servers.redisURL.replacingOccurrences(of: "redis://", with: "redis://:\(secret)@")
            environment["DATABASE_URL"] = Servers.databaseURL.replacingOccurrences(of: "@", with: ":\(secret)@")
            environment["LOG_LEVEL"] = "debug"
            let worker = try WorkerProcess(environment: environment)
            #expect(await worker.waitForStatus("/internal/started", 200, timeout: 15) != nil, "\(worker.output.suffix(2000))")
            try await f.publishEvents(10)
            try await f.publish([Array("not json".utf8)])
            let drained = try await f.until(30) { try await f.state(rows: 10, dead: 1) }
            let summary = await f.describe()
            #expect(drained, "\(summary)")
            let redisDown = await worker.scrape(until: 5) { $0.value(WarrenMetrics.checkUp, ["check": "redis"]) == 0 }
            let metrics = await worker.probe("/metrics")
            let ready = await worker.probe("/internal/ready")
            let redisProbe = await worker.probe("/internal/ready/redis")
            worker.signal(SIGTERM)
            let status = await worker.waitForExit(timeout: 25)
            let output = worker.output

            #expect(redisDown != nil, "redis fails with a password the server does not take")
            let bodies = [("metrics", metrics), ("ready", ready), ("ready/redis", redisProbe)]
            for (what, text) in bodies.map({ ($0, $1?.bodyText ?? "") }) {
                #expect(!text.isEmpty && !text.contains(secret), "\(what): \(text)")
            }
            #expect(!output.contains(secret), "no password in any log line")
            let startup = worker.logLines("starting event-worker").first
            #expect(startup?["warren.redis.url"]?.contains(":***@") == true, "\(startup ?? [:])")
            #expect(startup?["warren.postgres.url"]?.contains(":***@") == true, "\(startup ?? [:])")
            #expect(worker.logLines("check failing", ["warren.check": "redis"]).count == 1)
            #expect(status == 0)
            await f.cleanUp()
        }
    }
}
