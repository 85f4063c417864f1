import Foundation

/// The real RabbitMQ, Redis and PostgreSQL that `scripts/services` runs for the tests, and the
/// means to break them for fault tests (stop, start, SIGSTOP, SIGKILL).
public enum Servers {
    public enum Name: String, Sendable { case rabbitmq, redis, postgres }

    /// Repository root, found from this file's location.
    public static let root: URL = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    public static var amqpURL: String {
        ProcessInfo.processInfo.environment["AMQP_URL"] ?? "amqp://guest:guest@127.0.0.1:5672/%2F"
    }
    /// The three nodes of `scripts/services cluster up`, comma-separated, in node order (1, 2, 3);
    /// `nil` when the cluster is not part of this run (the failover test then skips itself).
    public static var amqpClusterURL: String? {
        ProcessInfo.processInfo.environment["AMQP_CLUSTER_URL"].flatMap { $0.isEmpty ? nil : $0 }
    }
    public static var redisURL: String {
        ProcessInfo.processInfo.environment["REDIS_URL"] ?? "redis://127.0.0.1:6379/0"
    }
    /// Redis's TLS port with the test CA and the client certificate (`scripts/services env`).
    public static var redissURL: String {
        ProcessInfo.processInfo.environment["REDISS_URL"]
            ?? "rediss://127.0.0.1:7379/0?ssl_ca_certs=\(tlsDirectory)/ca.pem&ssl_certfile=\(tlsDirectory)/client.pem&ssl_keyfile=\(tlsDirectory)/client.key"
    }
    public static var databaseURL: String {
        ProcessInfo.processInfo.environment["DATABASE_URL"] ?? "postgresql://postgres@127.0.0.1:5432/postgres"
    }

    /// The throw-away CA and certificates `scripts/services` makes (its header lists them).
    public static var tlsDirectory: String {
        ProcessInfo.processInfo.environment["WARREN_TLS_DIR"]
            ?? "\(ProcessInfo.processInfo.environment["WARREN_STATE_DIR"] ?? "/tmp/warren-services")/tls"
    }

    /// A copy of `client.key` that libpq accepts (mode 0600, owned by `owner`, default this
    /// process's user): libpq refuses a key others can read. The caller removes it.
    public static func privateKeyCopyForLibpq(owner: uid_t? = nil) throws -> String {
        let path = NSTemporaryDirectory() + "warren-pg-client-\(UUID().uuidString).key"
        let key = try Data(contentsOf: URL(fileURLWithPath: "\(tlsDirectory)/client.key"))
        guard FileManager.default.createFile(atPath: path, contents: key, attributes: [.posixPermissions: 0o600]) else {
            throw CocoaError(.fileWriteUnknown)
        }
        if let owner, chown(path, owner, owner) != 0 { throw CocoaError(.fileWriteNoPermission) }
        return path
    }

    /// Stops one server; returns once it is down and its port is free.
    public static func stop(_ name: Name) async throws { _ = try await services("stop", name.rawValue) }

    /// Starts one server; returns once it answers.
    public static func start(_ name: Name) async throws { _ = try await services("start", name.rawValue) }

    /// The OS pid of the server process (for RabbitMQ, the Erlang VM).
    public static func pid(_ name: Name) async throws -> pid_t {
        let out = try await services("pid", name.rawValue).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let pid = pid_t(out) else { throw Failure("scripts/services pid \(name): got '\(out)'") }
        return pid
    }

    /// Sends a signal to the server process (SIGSTOP, SIGCONT, SIGKILL).
    public static func signal(_ name: Name, _ signal: Int32) async throws {
        let pid = try await pid(name)
        guard kill(pid, signal) == 0 else { throw Failure("kill(\(pid), \(signal)) failed: errno \(errno)") }
    }

    /// Runs `scripts/services ARGS...` off the cooperative pool and returns its standard output.
    @discardableResult
    public static func services(_ arguments: String...) async throws -> String {
        try await run(root.appendingPathComponent("scripts/services").path, arguments)
    }

    /// Runs a program, waiting on its exit through the termination handler (no blocking wait).
    /// Output goes to temp files, not pipes: a server the program starts in the background may keep
    /// an inherited pipe open forever.
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) async throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        let directory = FileManager.default.temporaryDirectory
        let outURL = directory.appendingPathComponent("warren-run-\(UUID().uuidString).out")
        let errURL = directory.appendingPathComponent("warren-run-\(UUID().uuidString).err")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer {
            try? FileManager.default.removeItem(at: outURL)
            try? FileManager.default.removeItem(at: errURL)
        }
        let out = try FileHandle(forWritingTo: outURL)
        let err = try FileHandle(forWritingTo: errURL)
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        let status: Int32 = try await withCheckedThrowingContinuation { continuation in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do { try withDefaultSignalMask { try process.run() } } catch { continuation.resume(throwing: error) }
        }
        try? out.close()
        try? err.close()
        let output = (try? String(contentsOf: outURL, encoding: .utf8)) ?? ""
        guard status == 0 else {
            let errors = (try? String(contentsOf: errURL, encoding: .utf8)) ?? ""
            throw Failure("\(executable) \(arguments.joined(separator: " ")) exited \(status): \(errors.suffix(2000))")
        }
        return output
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        public init(_ description: String) { self.description = description }
    }
}

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
public func eventually(timeout: Duration, every interval: Duration = .milliseconds(20),
                       _ condition: () async throws -> Bool) async rethrows -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if try await condition() { return true }
        try? await Task.sleep(for: interval)
    }
    return try await condition()
}

/// A name unique to this test run, for queues and exchanges.
public func uniqueName(_ prefix: String) -> String {
    "\(prefix)-\(UInt32.random(in: 0...UInt32.max))"
}

/// The name of the OS thread the caller runs on (the AMQP I/O thread is `warren-amqp`).
public func currentThreadName() -> String {
    ((try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? "").trimmingCharacters(in: .newlines)
}
