import CHiredis
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The single hiredis connection of a ``RedisClient``.
///
/// Thread-confined: every method but ``isShutDown`` runs on the client's owner thread (its
/// one-thread `NIOThreadPool`), one job at a time, which is what makes the `@unchecked Sendable`
/// sound. The `redisContext` is created lazily, reused while healthy, and freed after any I/O error
/// or timeout so that the next command reconnects.
final class RedisConnection: @unchecked Sendable {
    /// Set by ``RedisClient/shutdown()``; read from any thread.
    let isShutDown = Atomic<Bool>(false)

    private let configuration: RedisConfiguration
    private var context: UnsafeMutablePointer<redisContext>?
    /// The last timeout: commands queued before it are failed without waiting out another timeout.
    private var lastTimeout: (at: ContinuousClock.Instant, error: RedisError)?
    private var confinement = ThreadConfinement()
    /// Successful connects so far (a test hook: a healthy connection is reused, not redone).
    private(set) var connectCount = 0

    init(configuration: RedisConfiguration) {
        self.configuration = configuration
    }

    deinit {
        // Only reached once no job can run any more (the last reference is gone).
        if let context { redisFree(context) }
    }

    /// Sends one command, connecting first if needed, and returns the reply.
    ///
    /// - Parameter submittedAt: when the caller queued the command. A command queued before the
    ///   last timeout fails at once with that timeout: when Redis hangs, a queue of callers then
    ///   waits about one timeout, not one each.
    func run(_ arguments: [[UInt8]], name: String, submittedAt: ContinuousClock.Instant) throws(RedisError) -> RedisValue {
        confinement.check()
        if isShutDown.load(ordering: .acquiring) {
            throw RedisError(.clientShutDown, "the Redis client was shut down; create a new one")
        }
        if let lastTimeout, submittedAt < lastTimeout.at {
            throw RedisError(lastTimeout.error.code,
                             "\(lastTimeout.error.message) (\(name) was queued behind it and not sent)")
        }
        do throws(RedisError) {
            let context = try connectIfNeeded()
            let reply = try send(arguments, name: name, on: context)
            if case .error(let message) = reply {
                throw RedisError(.commandFailed, "Redis rejected \(name): \(message)")
            }
            return reply
        } catch {
            if error.droppedConnection { close() }
            if error.code == .timeout { lastTimeout = (ContinuousClock.now, error) }
            throw error
        }
    }

    /// Frees the connection, if any. The next command reconnects.
    func close() {
        confinement.check()
        if let context {
            redisFree(context)
            self.context = nil
        }
    }

    // MARK: - Connect

    private func connectIfNeeded() throws(RedisError) -> UnsafeMutablePointer<redisContext> {
        if let context { return context }
        blockSIGPIPEOnCurrentThread()
        let endpoint = configuration.endpoint
        let started = ContinuousClock.now
        guard let context = redisConnectWithTimeout(configuration.host, Int32(clamping: configuration.port),
                                                    configuration.connectTimeout.timevalValue)
        else {
            throw RedisError(.connectFailed, "could not allocate a hiredis context for Redis at \(endpoint)")
        }
        if context.pointee.err != 0 {
            let reason = Self.errorText(context)
            redisFree(context)
            if ContinuousClock.now - started >= configuration.connectTimeout || reason.contains("timed out") {
                throw RedisError(.timeout, "could not connect to Redis at \(endpoint) within \(configuration.connectTimeout.secondsText) (\(reason)); check that it is up and reachable")
            }
            throw RedisError(.connectFailed, "could not connect to Redis at \(endpoint): \(reason); check that it is running and reachable")
        }
        guard redisSetTimeout(context, configuration.commandTimeout.timevalValue) == REDIS_OK else {
            let reason = Self.errorText(context)
            redisFree(context)
            throw RedisError(.connectFailed, "could not set the command timeout on the Redis connection: \(reason)")
        }
        do throws(RedisError) {
            try handshake(on: context)
        } catch {
            redisFree(context)
            throw error
        }
        self.context = context
        connectCount += 1
        return context
    }

    /// `AUTH` and `SELECT`, as configured.
    private func handshake(on context: UnsafeMutablePointer<redisContext>) throws(RedisError) {
        if let password = configuration.password {
            var arguments = [Array("AUTH".utf8)]
            if let username = configuration.username { arguments.append(Array(username.utf8)) }
            arguments.append(Array(password.utf8))
            if case .error(let message) = try send(arguments, name: "AUTH", on: context) {
                let safe = password.isEmpty ? message : message.replacing(password, with: "***")
                throw RedisError(.authenticationFailed, "Redis at \(configuration.endpoint) refused AUTH: \(safe); check the user name and password in the Redis URL")
            }
        }
        if configuration.database != 0 {
            let arguments = [Array("SELECT".utf8), Array(String(configuration.database).utf8)]
            if case .error(let message) = try send(arguments, name: "SELECT", on: context) {
                throw RedisError(.connectFailed, "Redis at \(configuration.endpoint) refused SELECT \(configuration.database): \(message); check the database number in the Redis URL")
            }
        }
    }

    // MARK: - Commands

    /// One round trip with `redisCommandArgv` (binary-safe). Error replies come back as `.error`;
    /// I/O failures throw (the caller drops the connection).
    private func send(_ arguments: [[UInt8]], name: String,
                      on context: UnsafeMutablePointer<redisContext>) throws(RedisError) -> RedisValue {
        let raw = Self.withArgv(arguments) { argc, argv, lengths in
            errno = 0
            return redisCommandArgv(context, argc, argv, lengths)
        }
        guard let raw else { throw ioError(context, errno: errno, name: name) }
        let reply = raw.assumingMemoryBound(to: redisReply.self)
        defer { freeReplyObject(raw) }
        return Self.value(of: reply)
    }

    private func ioError(_ context: UnsafeMutablePointer<redisContext>, errno code: Int32, name: String) -> RedisError {
        let reason = Self.errorText(context)
        let endpoint = configuration.endpoint
        if context.pointee.err == REDIS_ERR_IO && (code == EAGAIN || code == EWOULDBLOCK || code == ETIMEDOUT) {
            return RedisError(.timeout, "Redis at \(endpoint) did not answer \(name) within \(configuration.commandTimeout.secondsText); the connection was dropped and the next command reconnects")
        }
        if context.pointee.err == REDIS_ERR_EOF {
            return RedisError(.connectionLost, "Redis at \(endpoint) closed the connection during \(name) (restarted or stopped?); the next command reconnects")
        }
        return RedisError(.connectionLost, "\(name) to Redis at \(endpoint) failed: \(reason); the connection was dropped and the next command reconnects")
    }

    /// Lays the arguments out as C `argv`/`argvlen` arrays for the duration of `body`.
    private static func withArgv<R>(
        _ arguments: [[UInt8]],
        _ body: (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>, UnsafePointer<Int>) -> R
    ) -> R {
        let lengths = arguments.map(\.count)
        let storage = UnsafeMutablePointer<CChar>.allocate(capacity: max(1, lengths.reduce(0, +)))
        defer { storage.deallocate() }
        var pointers: [UnsafePointer<CChar>?] = []
        pointers.reserveCapacity(arguments.count)
        var offset = 0
        for argument in arguments {
            argument.withUnsafeBytes { bytes in
                UnsafeMutableRawPointer(storage + offset).copyMemory(from: bytes.baseAddress ?? UnsafeRawPointer(storage), byteCount: bytes.count)
            }
            pointers.append(UnsafePointer(storage + offset))
            offset += argument.count
        }
        return pointers.withUnsafeMutableBufferPointer { argv in
            lengths.withUnsafeBufferPointer { argvlen in
                body(Int32(arguments.count), argv.baseAddress!, argvlen.baseAddress!)
            }
        }
    }

    private static func value(of reply: UnsafeMutablePointer<redisReply>) -> RedisValue {
        let r = reply.pointee
        switch r.type {
        case REDIS_REPLY_STRING: return .bulkString(bytes(r.str, r.len))
        case REDIS_REPLY_STATUS: return .status(String(decoding: bytes(r.str, r.len), as: UTF8.self))
        case REDIS_REPLY_ERROR: return .error(String(decoding: bytes(r.str, r.len), as: UTF8.self))
        case REDIS_REPLY_INTEGER: return .integer(Int(r.integer))
        case REDIS_REPLY_NIL: return .null
        case REDIS_REPLY_ARRAY:
            return .array((0..<r.elements).map { index in
                r.element[index].map(value(of:)) ?? .null
            })
        default: return .error("unknown hiredis reply type \(r.type)")
        }
    }

    private static func bytes(_ pointer: UnsafeMutablePointer<CChar>?, _ length: Int) -> [UInt8] {
        guard let pointer, length > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: length))
    }

    private static func errorText(_ context: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafeBytes(of: context.pointee.errstr) { raw in
            let text = String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            return text.isEmpty ? "unknown error" : text
        }
    }
}
