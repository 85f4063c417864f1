import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Synchronization

@testable import WarrenHTTP

/// A response parsed from the bytes a connection wrote.
struct WireResponse: Equatable, CustomStringConvertible {
    var version: String
    var status: Int
    /// Names lower-cased, in order.
    var headers: [(name: String, value: String)]
    var body: String

    func header(_ name: String) -> String? {
        self.headers.first { $0.name == name.lowercased() }?.value
    }

    /// `"200 hello"`: status and body, for comparing sequences of responses.
    var summary: String { "\(self.status) \(self.body)" }

    var description: String { "\(self.version) \(self.status) \(self.headers) \(self.body.debugDescription)" }

    static func == (lhs: WireResponse, rhs: WireResponse) -> Bool {
        lhs.description == rhs.description
    }
}

enum WireError: Error {
    case malformed(String)
}

/// Splits what a connection wrote into responses; `heads` are the indices of responses to `HEAD`
/// requests, which carry `Content-Length` but no body. Stops at an incomplete response.
func parseResponses(_ bytes: [UInt8], heads: Set<Int> = []) throws -> [WireResponse] {
    var responses: [WireResponse] = []
    var rest = bytes[...]
    let separator: [UInt8] = Array("\r\n\r\n".utf8)
    while !rest.isEmpty {
        guard let end = rest.firstRange(of: separator) else { break }
        let lines = String(decoding: rest[..<end.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        let statusLine = lines[0].split(separator: " ", maxSplits: 2)
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else {
            throw WireError.malformed(lines[0])
        }
        let headers = lines.dropFirst().map { line -> (name: String, value: String) in
            let colon = line.firstIndex(of: ":") ?? line.endIndex
            return (
                line[..<colon].lowercased(),
                line[colon...].dropFirst().trimmingCharacters(in: .whitespaces)
            )
        }
        let length = headers.first { $0.name == "content-length" }.flatMap { Int($0.value) } ?? 0
        let bodyLength = heads.contains(responses.count) ? 0 : length
        let bodyStart = end.upperBound
        guard rest.distance(from: bodyStart, to: rest.endIndex) >= bodyLength else { break }
        let bodyEnd = rest.index(bodyStart, offsetBy: bodyLength)
        responses.append(
            WireResponse(
                version: String(statusLine[0]),
                status: status,
                headers: headers,
                body: String(decoding: rest[bodyStart..<bodyEnd], as: UTF8.self)
            )
        )
        rest = rest[bodyEnd...]
    }
    return responses
}

extension HTTPServerConfiguration {
    /// Small limits and round timeouts for the connection tests.
    static func connectionTest(
        idleTimeout: TimeAmount = .seconds(30),
        readTimeout: TimeAmount = .seconds(5)
    ) -> HTTPServerConfiguration {
        HTTPServerConfiguration(
            host: "127.0.0.1",
            port: 0,
            maxRequestLineBytes: 64,
            maxHeaderBytes: 128,
            idleTimeout: idleTimeout,
            readTimeout: readTimeout
        )
    }
}

private let peer = try! SocketAddress(ipAddress: "127.0.0.1", port: 40_000)

/// One connection's production pipeline (``HTTPConnectionPipeline``) on an `EmbeddedChannel`:
/// everything runs on the test's thread, time moves only with `advanceTime`. Async handlers
/// cannot come back to an `EmbeddedEventLoop` (it is not thread-safe): see ``AsyncTestingConnection``.
final class EmbeddedConnection {
    let channel = EmbeddedChannel()
    private var written: [UInt8] = []

    init(configuration: HTTPServerConfiguration = .connectionTest(), router: HTTPRouter = .test()) throws {
        try HTTPConnectionPipeline.configure(
            self.channel.pipeline.syncOperations,
            configuration: configuration,
            router: router,
            gate: EventLoopGate(),
            logger: testLogger
        )
        try self.channel.connect(to: peer).wait()
    }

    deinit {
        _ = try? self.channel.finish(acceptAlreadyClosed: true)
    }

    var isOpen: Bool { self.channel.isActive }

    func send(_ text: String) throws {
        try self.channel.writeInbound(ByteBuffer(string: text))
    }

    func fire(_ event: any Sendable) {
        self.channel.pipeline.syncOperations.fireUserInboundEventTriggered(event)
    }

    func advanceTime(by amount: TimeAmount) {
        self.channel.embeddedEventLoop.advanceTime(by: amount)
    }

    /// Every response written so far (since the connection opened).
    func responses(heads: Set<Int> = []) throws -> [WireResponse] {
        while let data = try self.channel.readOutbound(as: IOData.self) {
            guard case .byteBuffer(let buffer) = data else { throw WireError.malformed("file region") }
            self.written += buffer.readableBytesView
        }
        return try parseResponses(self.written, heads: heads)
    }
}

/// One connection's production pipeline on a `NIOAsyncTestingChannel`, whose loop accepts work
/// from other threads: async handlers run on the cooperative pool and their responses come back
/// through the ``EventLoopGate`` exactly as in the server.
final class AsyncTestingConnection: Sendable {
    let channel: NIOAsyncTestingChannel
    private let written = Mutex<[UInt8]>([])

    init(configuration: HTTPServerConfiguration = .connectionTest(), router: HTTPRouter) async throws {
        let channel = NIOAsyncTestingChannel()
        self.channel = channel
        try await channel.testingEventLoop.executeInContext {
            try HTTPConnectionPipeline.configure(
                channel.pipeline.syncOperations,
                configuration: configuration,
                router: router,
                gate: EventLoopGate(),
                logger: testLogger
            )
        }
        try await channel.connect(to: peer).get()
    }

    var isOpen: Bool { self.channel.isActive }

    func send(_ text: String) async throws {
        try await self.channel.writeInbound(ByteBuffer(string: text))
    }

    func fire(_ event: any Sendable) async {
        self.channel.pipeline.fireUserInboundEventTriggered(event)
        await self.channel.testingEventLoop.run()
    }

    func advanceTime(by amount: TimeAmount) async {
        await self.channel.testingEventLoop.advanceTime(by: amount)
    }

    /// The responses written so far.
    func responses(heads: Set<Int> = []) async throws -> [WireResponse] {
        await self.channel.testingEventLoop.run()
        while let data = try await self.channel.readOutbound(as: IOData.self) {
            guard case .byteBuffer(let buffer) = data else { throw WireError.malformed("file region") }
            self.written.withLock { $0 += buffer.readableBytesView }
        }
        return try parseResponses(self.written.withLock { $0 }, heads: heads)
    }

    /// Waits (up to `timeout`) until `count` responses have been written, and returns them all.
    func responses(count: Int, heads: Set<Int> = [], timeout: Duration = .seconds(5)) async throws -> [WireResponse] {
        let deadline = ContinuousClock.now + timeout
        while true {
            let responses = try await self.responses(heads: heads)
            if responses.count >= count || ContinuousClock.now >= deadline {
                return responses
            }
            try await Task.sleep(for: .milliseconds(1))
        }
    }

    /// Waits (up to `timeout`) until the channel is closed.
    func waitForClose(timeout: Duration = .seconds(5)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while self.isOpen, ContinuousClock.now < deadline {
            await self.channel.testingEventLoop.run()
            try? await Task.sleep(for: .milliseconds(1))
        }
        return !self.isOpen
    }

    func finish() async {
        _ = try? await self.channel.finish(acceptAlreadyClosed: true)
    }
}

/// Holds async handlers until the test opens it.
final class Latch: Sendable {
    private struct State {
        var isOpen = false
        var waiters: [CheckedContinuation<Void, Never>] = []
        var waiting = 0
    }

    private let state = Mutex(State())

    /// How many callers are waiting (or have waited) so far.
    var arrivals: Int { self.state.withLock { $0.waiting } }

    func wait() async {
        await withCheckedContinuation { continuation in
            let resumeNow = self.state.withLock { state -> Bool in
                state.waiting += 1
                if state.isOpen { return true }
                state.waiters.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    func open() {
        let waiters = self.state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.isOpen = true
            defer { state.waiters = [] }
            return state.waiters
        }
        waiters.forEach { $0.resume() }
    }
}

extension HTTPRouter {
    /// ``test(slowDelay:)`` plus `/held`, an async route that answers once `latch` opens.
    static func held(by latch: Latch) -> HTTPRouter {
        var router = HTTPRouter.test()
        router.get("/held", .async { _ in
            await latch.wait()
            return .text("held done")
        })
        return router
    }
}
