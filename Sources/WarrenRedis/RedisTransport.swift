import CHiredis
import Glibc
import WarrenSystem

/// How one I/O step on a ``RedisTransport`` failed. ``RedisConnection`` turns it into a
/// ``RedisError`` that names the command and says what the failure most likely means.
enum RedisIOFailure: Error {
    /// The deadline passed first.
    case timeout
    /// The server closed the connection (EOF; with TLS also close_notify or an EOF without it).
    case closed
    /// The socket failed with this `errno` (ECONNRESET, EPIPE, ...).
    case system(Int32)
    /// OpenSSL failed; this thread's OpenSSL errors, oldest first (possibly none).
    case tls([OpenSSLError])
    /// The server's bytes are not the Redis protocol (hiredis's reader refused them); `firstByte`
    /// is the connection's first byte when nothing had been parsed before.
    case notRedisProtocol(String, firstByte: UInt8?)
}

/// One entry of OpenSSL's error queue.
struct OpenSSLError {
    var lib: Int32
    var reason: Int32
    var text: String
}

/// One connection's byte stream: a TCP socket, with TLS over it for `rediss://`. Plain and TLS go
/// through the same read and write loops; only the call that moves the bytes differs.
///
/// Used only on the client's owner thread. The socket is non-blocking and every wait is a
/// `poll(2)` bounded by the caller's deadline, so a frozen server costs at most that deadline.
final class RedisTransport {
    /// What carries the bytes.
    enum Security {
        case plain
        case tls(RedisTLSSession)
    }

    let socket: Int32
    private(set) var security: Security

    init(socket: Int32, security: Security) {
        self.socket = socket
        self.security = security
    }

    var isTLS: Bool {
        if case .tls = security { return true }
        return false
    }

    /// Frees the TLS session and closes the socket, without blocking (no close_notify: the server
    /// may be frozen, and Redis needs none).
    func close() {
        if case .tls(let session) = security { session.free() }
        security = .plain
        _ = Glibc.close(socket)
    }

    /// Writes all of `bytes` by `deadline`.
    func write(_ bytes: UnsafeRawBufferPointer, deadline: MonotonicClock.Instant) throws(RedisIOFailure) {
        var offset = 0
        while offset < bytes.count {
            let rest = UnsafeRawBufferPointer(rebasing: bytes[offset...])
            switch security {
            case .plain:
                // MSG_NOSIGNAL: a reset connection fails with EPIPE instead of raising SIGPIPE.
                let written = Glibc.send(socket, rest.baseAddress, rest.count, Int32(MSG_NOSIGNAL))
                if written > 0 {
                    offset += written
                    continue
                }
                let code = errno
                if code == EINTR { continue }
                guard code == EAGAIN || code == EWOULDBLOCK else { throw .system(code) }
                try wait(for: Int16(POLLOUT), until: deadline)
            case .tls(let session):
                ERR_clear_error()
                let written = SSL_write(session.ssl, rest.baseAddress, Int32(clamping: rest.count))
                if written > 0 {
                    offset += Int(written)
                    continue
                }
                try wait(for: try session.retryEvents(after: written), until: deadline)
            }
        }
    }

    /// Reads what is available (at least one byte) into `buffer` by `deadline`; returns the count.
    func read(into buffer: UnsafeMutableRawBufferPointer, deadline: MonotonicClock.Instant) throws(RedisIOFailure) -> Int {
        while true {
            switch security {
            case .plain:
                let count = Glibc.recv(socket, buffer.baseAddress, buffer.count, 0)
                if count > 0 { return count }
                if count == 0 { throw .closed }
                let code = errno
                if code == EINTR { continue }
                guard code == EAGAIN || code == EWOULDBLOCK else { throw .system(code) }
                try wait(for: Int16(POLLIN), until: deadline)
            case .tls(let session):
                // OpenSSL may hold decrypted bytes already: read first, poll only when it asks.
                ERR_clear_error()
                let count = SSL_read(session.ssl, buffer.baseAddress, Int32(clamping: buffer.count))
                if count > 0 { return Int(count) }
                try wait(for: try session.retryEvents(after: count), until: deadline)
            }
        }
    }

    /// Waits until the socket is ready for `events` (or has failed: the next call reports it).
    func wait(for events: Int16, until deadline: MonotonicClock.Instant) throws(RedisIOFailure) {
        while true {
            let remaining = deadline - MonotonicClock.now
            guard remaining > .zero else { throw .timeout }
            var entry = pollfd(fd: socket, events: events, revents: 0)
            let ready = poll(&entry, 1, remaining.pollMilliseconds)
            if ready > 0 { return }
            // 0: the wait ran out; the deadline check above ends the loop (pollMilliseconds rounds
            // up, so it has passed).
            if ready < 0 && errno != EINTR { throw .system(errno) }
        }
    }

    // MARK: - TCP connect

    /// A non-blocking TCP socket connected to the configured host and port within
    /// `connectTimeout` (each resolved address in turn, all within that one deadline).
    static func connectTCP(_ configuration: RedisConfiguration) throws(RedisError) -> Int32 {
        let endpoint = configuration.endpoint
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV
        var list: UnsafeMutablePointer<addrinfo>?
        let resolved = getaddrinfo(configuration.host, String(configuration.port), &hints, &list)
        guard resolved == 0, let list else {
            let reason = String(cString: gai_strerror(resolved))
            throw RedisError(.connectFailed, "could not resolve the Redis host \(configuration.host): \(reason); check the host in the Redis URL")
        }
        defer { freeaddrinfo(list) }
        let deadline = MonotonicClock.now + configuration.connectTimeout
        var lastError = ECONNREFUSED
        var next: UnsafeMutablePointer<addrinfo>? = list
        while let info = next?.pointee {
            next = info.ai_next
            let flags = Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
            let fd = Glibc.socket(info.ai_family, info.ai_socktype | flags, info.ai_protocol)
            guard fd >= 0 else {
                lastError = errno
                continue
            }
            switch connect(fd, info, deadline: deadline) {
            case 0:
                var one: Int32 = 1
                _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                return fd
            case ETIMEDOUT:
                _ = Glibc.close(fd)
                throw RedisError(.timeout, "could not connect to Redis at \(endpoint) within \(configuration.connectTimeout.secondsText) (no answer to the TCP connect); check that it is up and reachable")
            case let code:
                _ = Glibc.close(fd)
                lastError = code
            }
        }
        throw RedisError(.connectFailed, "could not connect to Redis at \(endpoint): \(String(cString: strerror(lastError))); check that it is running and reachable")
    }

    /// Connects `fd` to `info`'s address by `deadline`: 0, ETIMEDOUT, or the connect's errno.
    private static func connect(_ fd: Int32, _ info: addrinfo, deadline: MonotonicClock.Instant) -> Int32 {
        if Glibc.connect(fd, info.ai_addr, info.ai_addrlen) == 0 { return 0 }
        guard errno == EINPROGRESS else { return errno }
        while true {
            let remaining = deadline - MonotonicClock.now
            guard remaining > .zero else { return ETIMEDOUT }
            var entry = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let ready = poll(&entry, 1, remaining.pollMilliseconds)
            if ready < 0 && errno != EINTR { return errno }
            if ready > 0 { break }
        }
        var failure: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ERROR, &failure, &length) == 0 else { return errno }
        return failure
    }
}
