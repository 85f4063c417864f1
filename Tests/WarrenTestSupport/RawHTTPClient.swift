import Foundation
import Glibc
import Synchronization

// Foundation re-exports names that clash with these; the package builds on Linux only.
private let systemConnect = Glibc.connect
private let systemSend = Glibc.send
private let systemClose = Glibc.close
private let streamSocket = Int32(SOCK_STREAM.rawValue)

/// Errors of the raw test client.
public enum RawClientError: Error, Equatable {
    case socket(Int32)
    case connect(Int32)
    case send(Int32)
    case timeout
    case closedBeforeResponse
    case malformed(String)
}

/// A response as read off the wire.
public struct RawResponse: Sendable {
    public var status: Int
    public var reason: String
    public var version: String
    /// Header names lower-cased, values in order.
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public func header(_ name: String) -> String? {
        self.headers.first { $0.name == name.lowercased() }?.value
    }

    public var bodyText: String { String(decoding: self.body, as: UTF8.self) }
}

/// Runs blocking work on a thread of its own, started at once, so that neither the blocking
/// socket calls nor their timing depend on Swift's cooperative pool.
public final class BackgroundThread<T: Sendable>: Sendable {
    private struct State {
        var result: Result<T, any Error>?
        var waiter: CheckedContinuation<T, any Error>?
    }

    private let state = Mutex(State())

    public init(_ body: @escaping @Sendable () throws -> T) {
        let thread = Thread { [self] in
            let result = Result { try body() }
            let waiter = self.state.withLock { state -> CheckedContinuation<T, any Error>? in
                state.result = result
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume(with: result)
        }
        thread.start()
    }

    /// The thread's result, awaited without blocking the pool.
    public func value() async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let ready = self.state.withLock { state -> Result<T, any Error>? in
                if let result = state.result { return result }
                state.waiter = continuation
                return nil
            }
            if let ready { continuation.resume(with: ready) }
        }
    }
}

/// Runs `body` on a new thread and awaits its result.
public func onThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await BackgroundThread(body).value()
}

/// Seconds on a monotonic clock.
public func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// A blocking TCP client over a POSIX socket, with timeouts; for use on a dedicated thread only.
public final class RawConnection: @unchecked Sendable {
    let fd: Int32
    private var pending: [UInt8] = []
    private var isClosed = false

    private init(fd: Int32) {
        self.fd = fd
    }

    deinit {
        self.close()
    }

    /// Connects to 127.0.0.1:`port`. Throws ``RawClientError/connect(_:)`` with errno (e.g. ECONNREFUSED).
    public static func connect(port: Int) throws -> RawConnection {
        let fd = socket(AF_INET, streamSocket, 0)
        guard fd >= 0 else { throw RawClientError.socket(errno) }
        var one: Int32 = 1
        _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                systemConnect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            let error = errno
            _ = systemClose(fd)
            throw RawClientError.connect(error)
        }
        return RawConnection(fd: fd)
    }

    public func send(_ text: String) throws {
        try self.send(Array(text.utf8))
    }

    public func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { buffer in
                systemSend(self.fd, buffer.baseAddress, buffer.count, Int32(MSG_NOSIGNAL))
            }
            guard sent > 0 else { throw RawClientError.send(errno) }
            offset += sent
        }
    }

    /// Waits up to `timeout` for bytes; returns nil on EOF or reset.
    private func receive(timeout: Double) throws -> [UInt8]? {
        var descriptor = pollfd(fd: self.fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&descriptor, 1, Int32(max(0, timeout * 1000)))
        guard ready > 0 else { throw RawClientError.timeout }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let count = buffer.withUnsafeMutableBytes { recv(self.fd, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return nil }
        return Array(buffer[0..<count])
    }

    /// Reads one response. `isHead`: the response to a HEAD request (no body whatever Content-Length says).
    public func readResponse(timeout: Double = 3, isHead: Bool = false) throws -> RawResponse {
        let deadline = monotonicSeconds() + timeout
        let terminator: [UInt8] = Array("\r\n\r\n".utf8)
        var headEnd: Int?
        while true {
            if let range = self.pending.firstRange(of: terminator) {
                headEnd = range.upperBound
                break
            }
            guard let bytes = try self.receive(timeout: deadline - monotonicSeconds()) else {
                throw RawClientError.closedBeforeResponse
            }
            self.pending += bytes
        }
        let headText = String(decoding: self.pending[0..<headEnd!], as: UTF8.self)
        var lines = headText.components(separatedBy: "\r\n").filter { !$0.isEmpty }
        guard !lines.isEmpty else { throw RawClientError.malformed(headText) }
        let statusLine = lines.removeFirst().split(separator: " ", maxSplits: 2).map(String.init)
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { throw RawClientError.malformed(headText) }
        let headers = try lines.map { line -> (name: String, value: String) in
            guard let colon = line.firstIndex(of: ":") else { throw RawClientError.malformed(line) }
            return (
                line[..<colon].lowercased(),
                line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            )
        }
        self.pending.removeFirst(headEnd!)
        var response = RawResponse(
            status: status,
            reason: statusLine.count > 2 ? statusLine[2] : "",
            version: statusLine[0],
            headers: headers,
            body: []
        )
        let length = isHead ? 0 : Int(response.header("content-length") ?? "0") ?? 0
        while self.pending.count < length {
            guard let bytes = try self.receive(timeout: deadline - monotonicSeconds()) else {
                throw RawClientError.closedBeforeResponse
            }
            self.pending += bytes
        }
        response.body = Array(self.pending[0..<length])
        self.pending.removeFirst(length)
        return response
    }

    /// Whether the server closes the connection (EOF or reset) within `timeout`; data is discarded.
    public func waitForClose(timeout: Double) -> Bool {
        let deadline = monotonicSeconds() + timeout
        while true {
            do {
                guard try self.receive(timeout: deadline - monotonicSeconds()) != nil else { return true }
            } catch {
                return false
            }
        }
    }

    /// Whether the connection is still open right now (no EOF pending).
    public func isOpenNow() -> Bool {
        var descriptor = pollfd(fd: self.fd, events: Int16(POLLIN), revents: 0)
        let ready = poll(&descriptor, 1, 0)
        if ready == 0 { return true }
        var byte: UInt8 = 0
        let count = recv(self.fd, &byte, 1, Int32(MSG_PEEK))
        return count > 0
    }

    /// Half-closes: sends FIN but keeps reading.
    public func shutdownWrite() {
        _ = shutdown(self.fd, Int32(SHUT_WR))
    }

    public func close() {
        guard !self.isClosed else { return }
        self.isClosed = true
        _ = systemClose(self.fd)
    }
}

extension RawConnection {
    /// One request on a fresh connection: connect, send, read the response, close.
    public static func exchange(port: Int, _ request: String, isHead: Bool = false, timeout: Double = 3) throws -> RawResponse {
        let connection = try RawConnection.connect(port: port)
        defer { connection.close() }
        try connection.send(request)
        return try connection.readResponse(timeout: timeout, isHead: isHead)
    }
}

/// `GET path` with HTTP/1.1 and a Host header.
public func get(_ path: String, method: String = "GET", headers: String = "") -> String {
    "\(method) \(path) HTTP/1.1\r\nHost: localhost\r\n\(headers)\r\n"
}
