import ArgumentParser

/// `event-worker healthcheck`: exit 0 when a probe answers 200, else 1 — for Docker HEALTHCHECK in
/// images without curl.
struct Healthcheck: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "healthcheck", abstract: "Probe the running worker's side port (exit 0 healthy, 1 not).")

    enum Probe: String, ExpressibleByArgument, CaseIterable {
        case alive, ready, started
        var path: String { "/internal/\(rawValue)" }
    }

    @Option(help: "Which probe: alive, ready or started.") var probe: Probe = .ready
    @Option(name: .customLong("health-port"), help: "HEALTH_PORT") var healthPort: String?

    func run() throws {
        let text = healthPort ?? currentEnvironment()["HEALTH_PORT"] ?? "8080"
        guard let port = Int(text), (1...65535).contains(port) else {
            throw SettingError(setting: "HEALTH_PORT", problem: "'\(text.prefix(32))' is not a port in 1...65535")
        }
        do {
            let status = try ProbeClient.status(host: "127.0.0.1", port: port, path: probe.path)
            print("\(probe.path): \(status)")
            throw ExitCode(status == 200 ? 0 : 1)
        } catch let error as ProbeClient.Failure {
            print("\(probe.path): \(error)")
            throw ExitCode(1)
        }
    }
}
