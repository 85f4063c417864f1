import CHiredis
import WarrenOwnedConnection
import WarrenSystem

import Glibc

/// The hiredis side of a ``RedisClient``'s ``OwnedConnection``: connecting, commands, failures.
///
/// Every method runs on the client's owner thread. The `redisContext` connects with
/// `connectTimeout` and has `commandTimeout` set on its socket, so every wait is bounded.
struct RedisConnection: ConnectionDriver {
    let configuration: RedisConfiguration

    /// Sends one command, connecting first if needed, and returns the reply. An error reply throws
    /// ``RedisError/Code/commandFailed`` and keeps the connection.
    func run(_ arguments: [[UInt8]], name: String, in session: OwnedConnection<Self>.Session) throws(RedisError) -> RedisValue {
        let context = try session.connection()
        let reply = try send(arguments, name: name, on: context)
        if case .error(let message) = reply {
            throw RedisError(.commandFailed, "Redis rejected \(name): \(message)")
        }
        return reply
    }

    // MARK: - ConnectionDriver

    func disconnect(_ context: UnsafeMutablePointer<redisContext>) { redisFree(context) }
    func dropsConnection(_ failure: RedisError) -> Bool { failure.droppedConnection }
    func isTimeout(_ failure: RedisError) -> Bool { failure.code == .timeout }

    func failure(_ call: String, queuedBehind timeout: RedisError) -> RedisError {
        RedisError(timeout.code, "\(timeout.message) (\(call) was queued behind it and not sent)")
    }

    var shutDownFailure: RedisError { RedisError(.clientShutDown, "the Redis client was shut down; create a new one") }

    // MARK: - Connect

    func connect() throws(RedisError) -> UnsafeMutablePointer<redisContext> {
        blockSIGPIPEOnCurrentThread()
        let endpoint = configuration.endpoint
        let started = MonotonicClock.now
        guard let context = redisConnectWithTimeout(configuration.host, Int32(clamping: configuration.port),
                                                    configuration.connectTimeout.timevalValue)
        else {
            throw RedisError(.connectFailed, "could not allocate a hiredis context for Redis at \(endpoint)")
        }
        if context.pointee.err != 0 {
            let reason = Self.errorText(context)
            redisFree(context)
            if MonotonicClock.now - started >= configuration.connectTimeout || reason.contains("timed out") {
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
