import Foundation
import Testing
import Warren
import WarrenTestSupport
import Yams

/// The deploy files of the repository, parsed: `deploy/k8s/*.yaml`, `docker-compose.yml`,
/// `deploy/Dockerfile`.
///
/// `DEPLOY_TESTS_ROOT` points the tests at another tree with the same layout (a copy with a
/// deliberate change, to see them fail); by default they read the repository itself.
struct DeployFiles {
    let root: URL

    init() {
        if let override = ProcessInfo.processInfo.environment["DEPLOY_TESTS_ROOT"], !override.isEmpty {
            root = URL(fileURLWithPath: override)
        } else {
            root = Servers.root
        }
    }

    func text(_ relativePath: String) throws -> String {
        try String(contentsOf: root.appendingPathComponent(relativePath), encoding: .utf8)
    }

    /// Every YAML document of a file, as `[AnyHashable: Any]` / `[Any]` / scalars.
    func yaml(_ relativePath: String) throws -> [YAMLValue] {
        try Yams.load_all(yaml: text(relativePath)).map(YAMLValue.init)
    }

    /// The Kubernetes manifests: every document of every `deploy/k8s/*.yaml`, with its file name.
    func manifests() throws -> [(file: String, document: YAMLValue)] {
        let directory = root.appendingPathComponent("deploy/k8s")
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
            .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }
            .sorted()
        return try names.flatMap { name in
            try yaml("deploy/k8s/\(name)").map { (file: "deploy/k8s/\(name)", document: $0) }
        }
    }

    /// The manifest of `kind` named `name` (the first, if several).
    func manifest(kind: String, name: String? = nil) throws -> YAMLValue? {
        try manifests().first { entry in
            entry.document["kind"].string == kind && (name == nil || entry.document["metadata"]["name"].string == name)
        }?.document
    }

    /// The Dockerfile's instructions, continuation lines joined and comments dropped:
    /// `("HEALTHCHECK", "--interval=10s ... CMD [...]")`.
    func dockerfileInstructions() throws -> [(keyword: String, arguments: String)] {
        var instructions: [(String, String)] = []
        var pending = ""
        for rawLine in try text("deploy/Dockerfile").split(separator: "\n", omittingEmptySubsequences: false) {
            let line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("#") { continue }
            if line.hasSuffix("\\") {
                pending += line.dropLast() + " "
                continue
            }
            let full = (pending + line).trimmingCharacters(in: .whitespaces)
            pending = ""
            guard !full.isEmpty else { continue }
            let keyword = full.prefix { !$0.isWhitespace }
            let arguments = full.dropFirst(keyword.count).trimmingCharacters(in: .whitespaces)
            instructions.append((keyword.uppercased(), arguments))
        }
        return instructions
    }
}

/// A parsed YAML node with forgiving accessors: a missing key or a wrong type gives `.missing`,
/// so tests read like the manifest's own paths (`pod["spec"]["containers"]`).
struct YAMLValue {
    let raw: Any?

    init(_ raw: Any?) { self.raw = raw }

    static var missing: YAMLValue { YAMLValue(nil) }

    subscript(key: String) -> YAMLValue {
        guard let mapping = raw as? [AnyHashable: Any], let value = mapping[key] else { return .missing }
        return YAMLValue(value)
    }

    var isMissing: Bool { raw == nil }
    var array: [YAMLValue] { (raw as? [Any])?.map(YAMLValue.init) ?? [] }
    var mapping: [(key: String, value: YAMLValue)] {
        ((raw as? [AnyHashable: Any]) ?? [:]).compactMap { key, value in
            (key as? String).map { (key: $0, value: YAMLValue(value)) }
        }.sorted { $0.key < $1.key }
    }
    var string: String? {
        switch raw {
        case let value as String: value
        case let value as Int: String(value)
        default: nil
        }
    }
    /// An integer, written as a YAML number or as a string of digits (`"8080"` in a ConfigMap).
    var int: Int? {
        switch raw {
        case let value as Int: value
        case let value as String: Int(value)
        default: nil
        }
    }
}

/// Where the health contract lives in code: the server's probe paths by probe role, and the
/// `event-worker healthcheck --probe NAME` names that stand for them.
enum ProbeContract {
    /// Kubernetes probe field -> the path that probe must ask.
    static let pathForKubernetesProbe: [String: String] = [
        "startupProbe": HealthPaths.started,
        "livenessProbe": HealthPaths.alive,
        "readinessProbe": HealthPaths.ready,
    ]

    /// `event-worker healthcheck --probe NAME` -> the path it asks (see DESIGN.md: alive|ready|started).
    static let pathForHealthcheckProbe: [String: String] = [
        "alive": HealthPaths.alive,
        "ready": HealthPaths.ready,
        "started": HealthPaths.started,
    ]

    /// The value after `--probe` in a healthcheck command line (`--probe ready` or `--probe=ready`);
    /// `ready` when the command names none (the subcommand's default).
    static func healthcheckProbe(in command: [String]) -> String? {
        guard let index = command.firstIndex(of: "healthcheck") else { return nil }
        let rest = command[command.index(after: index)...]
        if let flag = rest.firstIndex(of: "--probe") {
            return rest.index(after: flag) < rest.endIndex ? rest[rest.index(after: flag)] : ""
        }
        if let joined = rest.first(where: { $0.hasPrefix("--probe=") }) {
            return String(joined.dropFirst("--probe=".count))
        }
        return "ready"
    }
}

/// Every string in a YAML tree that names a probe path on the side port: `httpGet.path` values and
/// any scalar that starts with `/internal/`, with where it was found.
func sidePortPaths(in node: YAMLValue, at location: String = "") -> [(location: String, path: String)] {
    if let list = node.raw as? [Any] {
        return list.enumerated().flatMap { index, item in sidePortPaths(in: YAMLValue(item), at: "\(location)[\(index)]") }
    }
    if node.raw is [AnyHashable: Any] {
        return node.mapping.flatMap { key, value in sidePortPaths(in: value, at: location.isEmpty ? key : "\(location).\(key)") }
    }
    guard let text = node.raw as? String else { return [] }
    let isHTTPGetPath = location.hasSuffix("httpGet.path")
    let trimmed = text.trimmingCharacters(in: .whitespaces)
    if isHTTPGetPath || trimmed.hasPrefix("/internal/") {
        return [(location, trimmed)]
    }
    return []
}
