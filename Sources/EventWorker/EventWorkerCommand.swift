import ArgumentParser
import Glibc

/// `event-worker`: ingests JSON events from RabbitMQ into Postgres, with Redis as a dedupe cache.
@main
struct EventWorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        // Every command names itself: ArgumentParser otherwise derives the name from the type's,
        // through String(describing:) and protocol-conformance scans (~3 ms of start-up CPU).
        commandName: "event-worker",
        abstract: "A RabbitMQ worker that ingests JSON events into Postgres, with honest Kubernetes probes.",
        subcommands: [Run.self, Healthcheck.self, Publish.self, Redrive.self],
        defaultSubcommand: Run.self
    )

    /// Parses and runs; a usage error or a bad setting exits with code 2 and one line.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var async = command as? AsyncParsableCommand {
                try await async.run()
            } else {
                try command.run()
            }
        } catch let error as SettingError {
            fail("event-worker: \(error)", code: 2)
        } catch let error as ExitCode {
            Glibc.exit(error.rawValue)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                // --help, -h, help SUBCOMMAND, --version: ArgumentParser reports them as a clean
                // exit whose message is the text to print (on stdout, like every CLI's help).
                let text = fullMessage(for: error)
                if !text.isEmpty { print(text) }
                Glibc.exit(0)
            }
            if code == .validationFailure {
                fail("event-worker: \(message(for: error).split(separator: "\n").first ?? "invalid usage")", code: 2)
            }
            fail("event-worker: \(error)", code: 1)
        }
    }

    static func fail(_ line: String, code: Int32) -> Never {
        let text = line + "\n"
        _ = text.withCString { write(2, $0, strlen($0)) }
        Glibc.exit(code)
    }
}

/// Flags for every setting; each has an environment variable, and a flag wins over it.
struct SettingOptions: ParsableArguments {
    @Option(name: .customLong("amqp-url"), help: "AMQP_URL") var amqpURL: String?
    @Option(name: .customLong("redis-url"), help: "REDIS_URL") var redisURL: String?
    @Option(name: .customLong("database-url"), help: "DATABASE_URL") var databaseURL: String?
    @Option(help: "QUEUE") var queue: String?
    @Option(name: .customLong("queue-type"), help: "QUEUE_TYPE: classic or quorum") var queueType: String?
    @Option(help: "PREFETCH") var prefetch: String?
    @Option(help: "CONCURRENCY") var concurrency: String?
    @Option(help: "HANDLER: ingest or noop") var handler: String?
    @Option(name: .customLong("handler-thread"), help: "HANDLER_THREAD: pool or connection (the AMQP I/O thread)") var handlerThread: String?
    @Option(name: .customLong("health-host"), help: "HEALTH_HOST") var healthHost: String?
    @Option(name: .customLong("health-port"), help: "HEALTH_PORT") var healthPort: String?
    @Option(name: .customLong("log-level"), help: "LOG_LEVEL") var logLevel: String?
    @Option(name: .customLong("log-format"), help: "LOG_FORMAT: json or text") var logFormat: String?
    @Option(name: .customLong("drain-timeout"), help: "DRAIN_TIMEOUT in seconds (1-29)") var drainTimeout: String?
    @Option(name: .customLong("max-attempts"), help: "MAX_ATTEMPTS: handler attempts before a message is dead-lettered") var maxAttempts: String?
    @Option(name: .customLong("retry-delay"), help: "RETRY_DELAY in seconds: the first retry's delay, doubling") var retryDelay: String?
    @Option(name: .customLong("retry-delay-max"), help: "RETRY_DELAY_MAX in seconds: the longest retry delay") var retryDelayMax: String?
    @Option(name: .customLong("handler-timeout"), help: "HANDLER_TIMEOUT in seconds: a handler past it is cancelled and retried") var handlerTimeout: String?

    var flags: [String: String] {
        let pairs: [(String, String?)] = [
            ("AMQP_URL", amqpURL), ("REDIS_URL", redisURL), ("DATABASE_URL", databaseURL), ("QUEUE", queue),
            ("QUEUE_TYPE", queueType), ("PREFETCH", prefetch), ("CONCURRENCY", concurrency), ("HANDLER", handler),
            ("HANDLER_THREAD", handlerThread),
            ("HEALTH_HOST", healthHost), ("HEALTH_PORT", healthPort), ("LOG_LEVEL", logLevel),
            ("LOG_FORMAT", logFormat), ("DRAIN_TIMEOUT", drainTimeout), ("MAX_ATTEMPTS", maxAttempts),
            ("RETRY_DELAY", retryDelay), ("RETRY_DELAY_MAX", retryDelayMax), ("HANDLER_TIMEOUT", handlerTimeout),
        ]
        return Dictionary(uniqueKeysWithValues: pairs.compactMap { name, value in value.map { (name, $0) } })
    }

    func resolve() throws(SettingError) -> Settings {
        try Settings.resolve(flags: flags, environment: currentEnvironment())
    }
}

func currentEnvironment() -> [String: String] {
    var result: [String: String] = [:]
    var pointer = environ
    while let entry = pointer.pointee {
        let text = String(cString: entry)
        if let equals = text.firstIndex(of: "=") {
            result[String(text[..<equals])] = String(text[text.index(after: equals)...])
        }
        pointer += 1
    }
    return result
}
