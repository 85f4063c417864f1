import Foundation

/// The built `event-worker` executable, run as a child process against the test servers.
public final class WorkerProcess: @unchecked Sendable {
    /// The executable `name` (default `event-worker`) next to the test bundle (swift test builds every
    /// product into one folder).
    public static func builtExecutable(_ name: String = "event-worker") -> String {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: exe).deletingLastPathComponent().appendingPathComponent(name).path
    }

    /// The uid and gid the image runs as (deploy/Dockerfile `USER 10001:10001`, the Deployment's
    /// `runAsUser`).
    public static let deployedUser = 10001

    /// How the worker is started: as deployed. When the tests run as root (CI), the worker runs as
    /// uid/gid 10001 with no supplementary groups, every capability dropped (effective, permitted,
    /// inheritable, ambient and the bounding set) and no_new_privs — what deploy/k8s asks for — so
    /// a privileged socket option or a write the image cannot do fails here, not in production.
    /// (Issue found this way: SO_DEBUG instead of TCP_NODELAY reset every probe connection.)
    /// As a non-root developer the worker runs as that user, which is unprivileged already.
    public static func launch(_ name: String = "event-worker") -> (executable: String, prefix: [String]) {
        let built = builtExecutable(name)
        guard getuid() == 0 else { return (built, []) }
        return ("/usr/bin/setpriv", [
            "--reuid=\(deployedUser)", "--regid=\(deployedUser)", "--clear-groups",
            "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all", "--no-new-privs",
            "--", deployedCopy(of: built),
        ])
    }

    /// Copies staged so far, by build path (one copy per executable and test process).
    private static let staged = NSLock()
    nonisolated(unsafe) private static var stagedCopies: [String: String] = [:]

    /// uid 10001 may not be able to reach the build folder (a clone under a 0700 home), so the
    /// worker runs from a world-readable copy, as it does from /usr/local/bin in the image.
    private static func deployedCopy(of built: String) -> String {
        staged.lock()
        defer { staged.unlock() }
        if let copy = stagedCopies[built] { return copy }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("warren-worker-\(getpid())")
        let copy = dir.appendingPathComponent(URL(fileURLWithPath: built).lastPathComponent)
        do {
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o755])
            try? FileManager.default.removeItem(at: copy)
            try FileManager.default.copyItem(atPath: built, toPath: copy.path)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: copy.path)
        } catch {
            fatalError("cannot stage \(built) for uid \(deployedUser) in \(dir.path): \(error)")
        }
        stagedCopies[built] = copy.path
        return copy.path
    }

    public let healthPort: Int
    public let logURL: URL
    private let process = Process()
    private let exited = DispatchSemaphore(value: 0)

    /// Starts `event-worker ARGS` with the servers' URLs plus `environment`; output goes to a log file.
    /// - Parameter executable: another executable of the package to run the same way (a test fixture).
    public init(_ arguments: [String] = ["run"], environment extra: [String: String] = [:], healthPort: Int? = nil,
                executable: String = "event-worker") throws {
        self.healthPort = healthPort ?? Int.random(in: 20_000...29_999)
        logURL = FileManager.default.temporaryDirectory.appendingPathComponent("event-worker-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        var environment = ProcessInfo.processInfo.environment
        environment["AMQP_URL"] = Servers.amqpURL
        environment["REDIS_URL"] = Servers.redisURL
        environment["DATABASE_URL"] = Servers.databaseURL
        // What a container runtime gives uid 10001, which has no passwd entry in the image: HOME=/.
        // The test runner's HOME (/root) is unreadable to the worker, and libpq looks there for a
        // default client certificate (~/.postgresql) whenever it negotiates TLS.
        environment["HOME"] = "/"
        environment["HEALTH_HOST"] = "127.0.0.1"
        environment["HEALTH_PORT"] = String(self.healthPort)
        environment["LOG_FORMAT"] = "json"
        for (key, value) in extra { environment[key] = value }
        let launch = Self.launch(executable)
        process.executableURL = URL(fileURLWithPath: launch.executable)
        process.arguments = launch.prefix + arguments
        process.environment = environment
        let log = try FileHandle(forWritingTo: logURL)
        process.standardOutput = log
        process.standardError = log
        process.standardInput = FileHandle.nullDevice
        let exited = self.exited
        process.terminationHandler = { _ in exited.signal() }
        try withDefaultSignalMask { try process.run() }
    }

    public var pid: pid_t { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }

    /// Everything the worker printed so far.
    public var output: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    public func signal(_ signal: Int32) { kill(process.processIdentifier, signal) }

    /// Waits for the process to exit; returns its status, or nil after `timeout` seconds.
    public func waitForExit(timeout: Double) async -> Int32? {
        let exited = self.exited
        let done: Bool = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(returning: exited.wait(timeout: .now() + timeout) == .success)
            }
        }
        if done { exited.signal() }
        return done ? process.terminationStatus : nil
    }

    /// Kills the process if it is still running.
    public func terminate() async {
        if process.isRunning {
            signal(SIGKILL)
            _ = await waitForExit(timeout: 5)
        }
    }

    /// GET on the worker's side port; nil when nothing answers.
    public func probe(_ path: String) async -> RawResponse? {
        let port = healthPort
        return try? await onThread { try RawConnection.exchange(port: port, get(path), timeout: 2) }
    }

    /// Polls `path` until it answers `status`; returns the seconds it took, or nil after `timeout`.
    public func waitForStatus(_ path: String, _ status: Int, timeout: Double) async -> Double? {
        let start = monotonicSeconds()
        while monotonicSeconds() - start < timeout {
            if await probe(path)?.status == status { return monotonicSeconds() - start }
            try? await Task.sleep(for: .milliseconds(25))
        }
        return nil
    }

    /// Runs `event-worker ARGS` to completion; returns exit status and output.
    public static func runToEnd(_ arguments: [String], environment: [String: String] = [:], timeout: Double = 30) async throws -> (status: Int32, output: String) {
        let worker = try WorkerProcess(arguments, environment: environment)
        guard let status = await worker.waitForExit(timeout: timeout) else {
            await worker.terminate()
            throw Servers.Failure("event-worker \(arguments) did not finish in \(timeout) s")
        }
        return (status, worker.output)
    }
}
