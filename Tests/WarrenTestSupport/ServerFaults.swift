import Foundation

extension Servers {
    /// Sends `signal` to the server process and to all its descendants.
    ///
    /// Needed to freeze PostgreSQL: each connection is served by a child process of the postmaster,
    /// so SIGSTOP on the postmaster alone leaves open connections answering.
    public static func signalTree(_ name: Name, _ signal: Int32) async throws {
        let root = try await pid(name)
        var pending = [root]
        var all: [pid_t] = []
        while let next = pending.popLast() {
            all.append(next)
            pending += childPIDs(of: next)
        }
        for pid in all { _ = kill(pid, signal) }
    }

    /// Runs `body` with the server stopped (`scripts/services stop`), and starts it again
    /// afterwards, also when `body` throws.
    public static func whileStopped<T>(_ name: Name, _ body: () async throws -> T) async throws -> T {
        try await stop(name)
        let result: Result<T, any Error>
        do { result = .success(try await body()) } catch { result = .failure(error) }
        try await start(name)
        return try result.get()
    }

    /// Runs `body` with the server frozen (SIGSTOP on it and its descendants), and resumes it
    /// (SIGCONT) afterwards, also when `body` throws.
    public static func whileFrozen<T>(_ name: Name, _ body: () async throws -> T) async throws -> T {
        try await signalTree(name, SIGSTOP)
        let result: Result<T, any Error>
        do { result = .success(try await body()) } catch { result = .failure(error) }
        try await signalTree(name, SIGCONT)
        return try result.get()
    }

    /// Direct children of `parent`, from `/proc/*/stat`.
    static func childPIDs(of parent: pid_t) -> [pid_t] {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return entries.compactMap { entry -> pid_t? in
            guard let pid = pid_t(entry),
                  let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")")
            else { return nil }
            // After "pid (comm) ": state, then the parent pid.
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 1, pid_t(fields[1]) == parent else { return nil }
            return pid
        }
    }
}

/// Runs `body` and returns its error (or `nil`) and how long it took.
public func timed(_ body: () async throws -> Void) async -> (error: (any Error)?, elapsed: Duration) {
    let clock = ContinuousClock()
    let start = clock.now
    do {
        try await body()
        return (nil, clock.now - start)
    } catch {
        return (error, clock.now - start)
    }
}

/// Runs `body` (which spawns a process) with no signal blocked on the calling thread.
///
/// A spawned program inherits the spawning thread's signal mask, and Swift concurrency's threads
/// (libdispatch workers) block SIGTERM, SIGINT, SIGHUP and more. A server that does not reset its
/// mask (redis-server) would then ignore `scripts/services stop` (SIGTERM) until the script
/// escalates to SIGKILL after 15 s.
public func withDefaultSignalMask<T>(_ body: () throws -> T) rethrows -> T {
    var empty = sigset_t()
    var saved = sigset_t()
    sigemptyset(&empty)
    pthread_sigmask(SIG_SETMASK, &empty, &saved)
    defer { pthread_sigmask(SIG_SETMASK, &saved, nil) }
    return try body()
}
