import WarrenTestSupport
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import WarrenHTTP

/// ``HTTPConnectionHandler`` with `.async` handlers, on a `NIOAsyncTestingChannel`: the handler
/// runs on the cooperative pool and its response comes back to the loop through the gate, while
/// NIO's `HTTPServerPipelineHandler` holds what was pipelined behind it. `/held` answers when the
/// test opens its latch.
@Suite struct ConnectionHandlerAsyncTests {
    /// Sends `requests` and waits until the `/held` handler has started.
    private func connection(
        sending requests: String,
        latch: Latch,
        configuration: HTTPServerConfiguration = .connectionTest()
    ) async throws -> AsyncTestingConnection {
        let connection = try await AsyncTestingConnection(configuration: configuration, router: .held(by: latch))
        try await connection.send(requests)
        let clock = ContinuousClock()
        let deadline = clock.now + .seconds(5)
        while latch.arrivals == 0, clock.now < deadline {
            try await Task.sleep(for: .milliseconds(1))
        }
        try #require(latch.arrivals == 1)
        return connection
    }

    @Test func asyncResponseArrivesAfterAnotherPipelinedRequestAndIsWrittenFirst() async throws {
        let latch = Latch()
        let connection = try await self.connection(sending: get("/held") + get("/hello"), latch: latch)
        // `/hello` is complete and immediate, but must not overtake `/held`.
        #expect(try await connection.responses().isEmpty)
        latch.open()
        let responses = try await connection.responses(count: 2)
        #expect(responses.map(\.summary) == ["200 held done", "200 hello world\n"])
        #expect(connection.isOpen)
        await connection.finish()
    }

    /// `HTTPServerPipelineHandler` hands each held request over from inside the write of the
    /// previous response. Carried out recursively, 3000 of them overflowed this loop's stack
    /// (SIGSEGV, tried); the handler's action queue serves them in a loop.
    @Test func deepPipelineBehindAnAsyncResponseIsServedInOrder() async throws {
        let latch = Latch()
        let count = 3000
        let batch = (0..<count).map { get("/internal/ready/r\($0)") }.joined()
        let connection = try await self.connection(sending: get("/held") + batch, latch: latch)
        latch.open()
        let responses = try await connection.responses(count: count + 1)
        #expect(responses.map(\.summary) == ["200 held done"] + (0..<count).map { "200 r\($0)" })
        await connection.finish()
    }

    @Test func limitViolationWaitsForTheResponsesBeforeIt() async throws {
        let latch = Latch()
        let tooLong = get("/" + String(repeating: "p", count: 100))
        let connection = try await self.connection(sending: get("/held") + get("/hello") + tooLong, latch: latch)
        #expect(try await connection.responses().isEmpty)
        #expect(connection.isOpen)
        latch.open()
        let responses = try await connection.responses(count: 3)
        #expect(responses.map(\.status) == [200, 200, 414])
        #expect(responses.map { $0.header("connection") } == [nil, nil, "close"])
        #expect(await connection.waitForClose())
        await connection.finish()
    }

    @Test func garbageBehindAnAsyncResponseIs400AfterIt() async throws {
        let latch = Latch()
        let connection = try await self.connection(sending: get("/held") + "GARBAGE\r\n\r\n", latch: latch)
        #expect(try await connection.responses().isEmpty)
        latch.open()
        let responses = try await connection.responses(count: 2)
        #expect(responses.map(\.status) == [200, 400])
        #expect(responses.last?.header("connection") == "close")
        #expect(await connection.waitForClose())
        await connection.finish()
    }

    /// What may end a connection while an `.async` handler runs.
    enum Interruption: String, CaseIterable, Sendable {
        /// Server shutdown: the pipelined `/hello` that had not started is dropped.
        case quiescing
        /// The client half-closed after its request.
        case halfClose
    }

    /// Either way the in-flight response is written, with `Connection: close`, and then the
    /// connection closes.
    @Test(arguments: Interruption.allCases)
    func anInterruptionLetsTheInFlightResponseFinishWithConnectionClose(_ interruption: Interruption) async throws {
        let latch = Latch()
        let requests = interruption == .quiescing ? get("/held") + get("/hello") : get("/held")
        let connection = try await self.connection(sending: requests, latch: latch)
        switch interruption {
        case .quiescing: await connection.fire(ChannelShouldQuiesceEvent())
        case .halfClose: await connection.fire(ChannelEvent.inputClosed)
        }
        #expect(connection.isOpen)
        latch.open()
        #expect(await connection.waitForClose())
        let responses = try await connection.responses()
        #expect(responses.map(\.summary) == ["200 held done"])
        #expect(responses.first?.header("connection") == "close")
        await connection.finish()
    }

    @Test func noTimerCutsASlowAsyncResponse() async throws {
        let latch = Latch()
        let configuration = HTTPServerConfiguration.connectionTest(idleTimeout: .seconds(1), readTimeout: .seconds(1))
        // A partial request behind the held one: reading is paused, so no read timeout either.
        let connection = try await self.connection(
            sending: get("/held") + "GET /hello HTTP/1.1\r\n",
            latch: latch,
            configuration: configuration
        )
        await connection.advanceTime(by: .seconds(10))
        #expect(connection.isOpen)
        latch.open()
        #expect(try await connection.responses(count: 1).map(\.summary) == ["200 held done"])
        // Now the partial request is the client's to finish: the read timeout runs from here.
        await connection.advanceTime(by: .milliseconds(999))
        #expect(connection.isOpen)
        await connection.advanceTime(by: .milliseconds(1))
        #expect(!connection.isOpen)
        await connection.finish()
    }

    @Test func aResponseForAClosedConnectionIsDropped() async throws {
        let latch = Latch()
        let connection = try await self.connection(sending: get("/held"), latch: latch)
        try await connection.channel.close()
        latch.open()
        try await Task.sleep(for: .milliseconds(50))
        #expect(try await connection.responses().isEmpty)
        await connection.finish()
    }
}
