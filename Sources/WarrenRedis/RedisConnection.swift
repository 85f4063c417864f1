import CHiredis
import WarrenOwnedConnection
import WarrenSystem

import Glibc

/// The I/O side of a ``RedisClient``'s ``OwnedConnection``: connecting, commands, failures.
///
/// Every method runs on the client's owner thread. hiredis only encodes commands and parses
/// replies; the bytes go through a ``RedisTransport`` (plain TCP, or TLS for `rediss://`) whose
/// waits are bounded: `connectTimeout` for the TCP connect, `commandTimeout` for the TLS handshake
/// and for each command's round trip.
struct RedisConnection: ConnectionDriver {
    let configuration: RedisConfiguration

    /// Sends one command, connecting first if needed, and returns the reply. An error reply throws
    /// ``RedisError/Code/commandFailed`` and keeps the connection.
    func run(_ arguments: [[UInt8]], name: String, in session: OwnedConnection<Self>.Session) throws(RedisError) -> RedisValue {
        let link = try session.connection()
        let reply = try send(arguments, name: name, on: link)
        if case .error(let message) = reply {
            throw RedisError(.commandFailed, "Redis rejected \(name): \(message)")
        }
        return reply
    }

    // MARK: - ConnectionDriver

    func disconnect(_ link: RedisLink) { link.close() }
    func dropsConnection(_ failure: RedisError) -> Bool { failure.droppedConnection }
    func isTimeout(_ failure: RedisError) -> Bool { failure.code == .timeout }

    func failure(_ call: String, queuedBehind timeout: RedisError) -> RedisError {
        RedisError(timeout.code, "\(timeout.message) (\(call) was queued behind it and not sent)")
    }

    var shutDownFailure: RedisError { RedisError(.clientShutDown, "the Redis client was shut down; create a new one") }

    // MARK: - Connect

    func connect() throws(RedisError) -> RedisLink {
        // OpenSSL writes with plain write(2): a reset connection must fail with EPIPE, not kill us.
        blockSIGPIPEOnCurrentThread()
        let socket = try RedisTransport.connectTCP(configuration)
        let transport: RedisTransport
        if let tls = configuration.tls {
            let session: RedisTLSSession
            do throws(RedisError) {
                session = try RedisTLSSession(socket: socket, configuration: configuration, tls: tls)
            } catch {
                _ = Glibc.close(socket)
                throw error
            }
            transport = RedisTransport(socket: socket, security: .tls(session))
            do throws(RedisIOFailure) {
                try session.handshake(on: transport, deadline: MonotonicClock.now + configuration.connectTimeout)
            } catch {
                let failure = session.handshakeError(error, configuration, tls)
                transport.close()
                throw failure
            }
        } else {
            transport = RedisTransport(socket: socket, security: .plain)
        }
        let link = RedisLink(transport: transport)
        do throws(RedisError) {
            try handshake(on: link)
        } catch {
            link.close()
            throw error
        }
        return link
    }

    /// `AUTH` and `SELECT`, as configured.
    private func handshake(on link: RedisLink) throws(RedisError) {
        if let password = configuration.password {
            var arguments = [Array("AUTH".utf8)]
            if let username = configuration.username { arguments.append(Array(username.utf8)) }
            arguments.append(Array(password.utf8))
            if case .error(let message) = try send(arguments, name: "AUTH", on: link) {
                let safe = password.isEmpty ? message : message.replacing(password, with: "***")
                throw RedisError(.authenticationFailed, "Redis at \(configuration.endpoint) refused AUTH: \(safe); check the user name and password in the Redis URL")
            }
        }
        if configuration.database != 0 {
            let arguments = [Array("SELECT".utf8), Array(String(configuration.database).utf8)]
            if case .error(let message) = try send(arguments, name: "SELECT", on: link) {
                throw RedisError(.connectFailed, "Redis at \(configuration.endpoint) refused SELECT \(configuration.database): \(message); check the database number in the Redis URL")
            }
        }
    }

    // MARK: - Commands

    /// One round trip within `commandTimeout`: the command encoded by hiredis (binary-safe), then
    /// the reply parsed by hiredis's reader. Error replies come back as `.error`; I/O failures
    /// throw (the caller drops the connection).
    private func send(_ arguments: [[UInt8]], name: String, on link: RedisLink) throws(RedisError) -> RedisValue {
        var command: UnsafeMutablePointer<CChar>?
        let length = Self.withArgv(arguments) { argc, argv, lengths in
            redisFormatCommandArgv(&command, argc, argv, lengths)
        }
        guard length >= 0, let command else {
            throw RedisError(.commandFailed, "\(name) could not be encoded (out of memory?)")
        }
        defer { redisFreeCommand(command) }
        let deadline = MonotonicClock.now + configuration.commandTimeout
        do throws(RedisIOFailure) {
            try link.transport.write(UnsafeRawBufferPointer(start: command, count: Int(length)), deadline: deadline)
            let reply = try link.readReply(deadline: deadline)
            defer { freeReplyObject(reply) }
            return Self.value(of: reply.assumingMemoryBound(to: redisReply.self))
        } catch {
            throw ioError(error, name: name, on: link)
        }
    }

    private func ioError(_ failure: RedisIOFailure, name: String, on link: RedisLink) -> RedisError {
        let endpoint = configuration.endpoint
        if link.replies == 0 {
            // The connection's first command: a failure here may say what the port really speaks.
            if case .tls(let session) = link.transport.security, let tls = configuration.tls,
               let error = session.firstReplyError(failure, configuration, tls) {
                return error
            }
            if !link.transport.isTLS, let error = plainToTLSPortError(failure, name: name) { return error }
        }
        switch failure {
        case .timeout:
            return RedisError(.timeout, "Redis at \(endpoint) did not answer \(name) within \(configuration.commandTimeout.secondsText); the connection was dropped and the next command reconnects")
        case .closed:
            return RedisError(.connectionLost, "Redis at \(endpoint) closed the connection during \(name) (restarted or stopped?); the next command reconnects")
        case .notRedisProtocol(let reason, _):
            return RedisError(.connectionLost, "Redis at \(endpoint) answered \(name) with bytes that are not the Redis protocol (\(reason)); the connection was dropped and the next command reconnects")
        case .system, .tls:
            return RedisError(.connectionLost, "\(name) to Redis at \(endpoint) failed: \(RedisTLSSession.describe(failure)); the connection was dropped and the next command reconnects")
        }
    }

    /// A plain connection to a Redis TLS port: Redis resets it at the first command (its TLS
    /// handshake failed on our RESP bytes); other TLS servers may answer with a TLS alert record.
    private func plainToTLSPortError(_ failure: RedisIOFailure, name: String) -> RedisError? {
        let endpoint = configuration.endpoint
        switch failure {
        case .notRedisProtocol(_, let first?) where first == 0x15 || first == 0x16:
            return RedisError(.connectFailed, "Redis at \(endpoint) answered \(name) with a TLS record: the port speaks TLS; use rediss://")
        case .closed, .system(ECONNRESET), .system(EPIPE):
            return RedisError(.connectFailed, "Redis at \(endpoint) dropped the new connection at its first command (\(name): \(RedisTLSSession.describe(failure))): most likely the port speaks TLS; use rediss:// (if it is a plain port, Redis was stopping; the next command reconnects)")
        default:
            return nil
        }
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
}
