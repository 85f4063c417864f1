import WarrenTestSupport
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import WarrenHTTP

/// ``HTTPConnectionHandler`` in the production pipeline, on an `EmbeddedChannel`: immediate
/// handlers, limits, malformed input, timers (virtual time), half-close, quiescing, writability.
/// Limits here: request line 64 bytes, header block 128 bytes.
@Suite struct ConnectionHandlerTests {
    private let notFound = #"404 {"status":404,"error":"Not Found"}"# + "\n"

    // MARK: Requests and responses

    @Test func pipelinedRequestsAreAnsweredInOrder() throws {
        let connection = try EmbeddedConnection()
        try connection.send(get("/hello") + get("/internal/ready/a") + get("/nope") + get("/internal/ready/b"))
        let responses = try connection.responses()
        #expect(responses.map(\.summary) == ["200 hello world\n", "200 a", self.notFound, "200 b"])
        #expect(responses.allSatisfy { $0.header("connection") == nil && $0.version == "HTTP/1.1" })
        #expect(connection.isOpen)
    }

    @Test func requestSplitAcrossReadsIsAnsweredOnce() throws {
        let connection = try EmbeddedConnection()
        for byte in get("/hello") {
            try connection.send(String(byte))
        }
        #expect(try connection.responses().map(\.summary) == ["200 hello world\n"])
    }

    @Test func headHasTheGetHeadersAndNoBody() throws {
        let connection = try EmbeddedConnection()
        try connection.send(get("/internal/alive") + get("/internal/alive", method: "HEAD") + get("/hello"))
        let responses = try connection.responses(heads: [1])
        try #require(responses.count == 3)
        let (getResponse, headResponse) = (responses[0], responses[1])
        #expect(headResponse.status == 200)
        #expect(headResponse.body.isEmpty)
        #expect(headResponse.header("content-length") == getResponse.header("content-length"))
        #expect(headResponse.header("content-type") == "application/health+json")
        // Had the HEAD response carried a body, this one would not parse as "200 hello world".
        #expect(responses[2].summary == "200 hello world\n")
    }

    @Test func otherMethodsGet405WithAllow() throws {
        let connection = try EmbeddedConnection()
        try connection.send(get("/internal/alive", method: "DELETE", headers: "Content-Length: 0\r\n"))
        let responses = try connection.responses()
        #expect(responses.map(\.status) == [405])
        #expect(responses.first?.header("allow") == "GET, HEAD")
        #expect(connection.isOpen)
    }

    @Test func connectionCloseIsHonouredAndLaterRequestsAreDropped() throws {
        let connection = try EmbeddedConnection()
        try connection.send(get("/hello", headers: "Connection: close\r\n") + get("/hello"))
        let responses = try connection.responses()
        #expect(responses.map(\.summary) == ["200 hello world\n"])
        #expect(responses.first?.header("connection") == "close")
        #expect(!connection.isOpen)
    }

    @Test func http10ClosesUnlessKeepAliveIsAsked() throws {
        let plain = try EmbeddedConnection()
        try plain.send("GET /hello HTTP/1.0\r\n\r\n")
        let plainResponse = try #require(try plain.responses().first)
        #expect(plainResponse.version == "HTTP/1.0")
        #expect(plainResponse.header("connection") == "close")
        #expect(!plain.isOpen)

        let keepAlive = try EmbeddedConnection()
        try keepAlive.send("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        #expect(try keepAlive.responses().first?.header("connection") == "keep-alive")
        #expect(keepAlive.isOpen)
    }

    // MARK: Limits and malformed input

    @Test func longRequestLineIs414() throws {
        let connection = try EmbeddedConnection()
        try connection.send(get("/hello?pad=" + String(repeating: "p", count: 100)))
        let responses = try connection.responses()
        #expect(responses.map(\.status) == [414])
        #expect(responses.first?.header("connection") == "close")
        #expect(responses.first?.header("content-type") == "application/json")
        #expect(!connection.isOpen)
    }

    @Test func largeHeaderBlockIs431() throws {
        let connection = try EmbeddedConnection()
        try connection.send("GET /hello HTTP/1.1\r\nHost: x\r\n")
        try connection.send("X-Big: " + String(repeating: "a", count: 200) + "\r\n\r\n")
        let responses = try connection.responses()
        #expect(responses.map(\.status) == [431])
        #expect(responses.first?.header("connection") == "close")
        #expect(!connection.isOpen)
    }

    @Test func limitViolationIsAnsweredAfterTheRequestsBeforeIt() throws {
        let connection = try EmbeddedConnection()
        try connection.send(get("/hello") + get("/internal/ready/a") + get("/" + String(repeating: "p", count: 100)))
        let responses = try connection.responses()
        #expect(responses.map(\.status) == [200, 200, 414])
        #expect(responses.map { $0.header("connection") } == [nil, nil, "close"])
        #expect(!connection.isOpen)
    }

    @Test(arguments: [
        "GET /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        "GET /hello HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "POST /internal/alive HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
    ])
    func requestWithABodyIs413(raw: String) throws {
        let connection = try EmbeddedConnection()
        try connection.send(raw)
        let responses = try connection.responses()
        #expect(responses.map(\.status) == [413])
        #expect(responses.first?.header("connection") == "close")
        #expect(!connection.isOpen)
    }

    @Test(arguments: [
        "\u{00}\u{01} hello\r\n\r\n",
        "GARBAGE\r\n\r\n",
        "GET / HTTP/1.1\r\nBad Header Without Colon\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    ])
    func malformedRequestIs400AndCloses(raw: String) throws {
        let connection = try EmbeddedConnection()
        try connection.send(raw)
        let responses = try connection.responses()
        #expect(responses.map(\.status) == [400])
        #expect(responses.first?.header("connection") == "close")
        #expect(!connection.isOpen)
    }

    @Test func garbageAfterAGoodRequestAnswersTheGoodOneFirst() throws {
        let connection = try EmbeddedConnection()
        try connection.send(get("/hello") + "\u{00}\u{01} hello\r\n\r\n")
        let responses = try connection.responses()
        #expect(responses.map(\.status) == [200, 400])
        #expect(!connection.isOpen)
    }

    @Test func unsupportedVersionIsRejected() throws {
        let connection = try EmbeddedConnection()
        try connection.send("GET /hello HTTP/2.0\r\n\r\n")
        let statuses = try connection.responses().map(\.status)
        #expect(statuses == [505] || statuses == [400])
        #expect(!connection.isOpen)
    }

    // MARK: Timers

    @Test func readTimeoutClosesAnIncompleteRequestAndTricklingDoesNotExtendIt() throws {
        let connection = try EmbeddedConnection(configuration: .connectionTest(readTimeout: .seconds(5)))
        try connection.send("GET /hello HTTP/1.1\r\n")
        connection.advanceTime(by: .seconds(3))
        try connection.send("X-1: y\r\n")
        connection.advanceTime(by: .milliseconds(1999))
        #expect(connection.isOpen)
        connection.advanceTime(by: .milliseconds(1))
        #expect(!connection.isOpen)
        #expect(try connection.responses().isEmpty)
    }

    @Test func idleTimeoutClosesASilentConnection() throws {
        let connection = try EmbeddedConnection(configuration: .connectionTest(idleTimeout: .seconds(30)))
        connection.advanceTime(by: .milliseconds(29_999))
        #expect(connection.isOpen)
        connection.advanceTime(by: .milliseconds(1))
        #expect(!connection.isOpen)
    }

    @Test func idleTimeoutRestartsAfterEachResponse() throws {
        let connection = try EmbeddedConnection(configuration: .connectionTest(idleTimeout: .seconds(30)))
        connection.advanceTime(by: .seconds(20))
        try connection.send(get("/hello"))
        connection.advanceTime(by: .seconds(20))
        try connection.send(get("/hello"))
        connection.advanceTime(by: .milliseconds(29_999))
        #expect(connection.isOpen)
        #expect(try connection.responses().count == 2)
        connection.advanceTime(by: .milliseconds(1))
        #expect(!connection.isOpen)
    }

    @Test func anIncompleteRequestIsUnderTheReadTimeoutNotTheIdleOne() throws {
        let configuration = HTTPServerConfiguration.connectionTest(idleTimeout: .seconds(1), readTimeout: .seconds(5))
        let connection = try EmbeddedConnection(configuration: configuration)
        try connection.send("GET /hello HTTP/1.1\r\n")
        connection.advanceTime(by: .seconds(4))
        #expect(connection.isOpen)
        try connection.send("Host: x\r\n\r\n")
        #expect(try connection.responses().map(\.status) == [200])
        // Idle again: the idle timeout is back.
        connection.advanceTime(by: .seconds(1))
        #expect(!connection.isOpen)
    }

    // MARK: Half-close, quiescing, writability

    @Test func halfCloseAfterARequestAnswersItAndCloses() throws {
        let connection = try EmbeddedConnection()
        try connection.send(get("/hello") + get("/internal/ready/x"))
        connection.fire(ChannelEvent.inputClosed)
        #expect(try connection.responses().map(\.summary) == ["200 hello world\n", "200 x"])
        #expect(!connection.isOpen)
    }

    @Test func quiescingClosesAnIdleConnectionAtOnce() throws {
        let connection = try EmbeddedConnection()
        try connection.send(get("/hello"))
        connection.fire(ChannelShouldQuiesceEvent())
        #expect(try connection.responses().count == 1)
        #expect(!connection.isOpen)
    }

    @Test func quiescingClosesAConnectionWithAnIncompleteRequest() throws {
        let connection = try EmbeddedConnection()
        try connection.send("GET /hello HTTP/1.1\r\n")
        connection.fire(ChannelShouldQuiesceEvent())
        #expect(!connection.isOpen)
        #expect(try connection.responses().isEmpty)
    }

    @Test func aClientThatDoesNotReadGetsNoMoreResponsesUntilWritable() throws {
        let connection = try EmbeddedConnection()
        connection.channel.isWritable = false
        try connection.send(get("/hello") + get("/internal/ready/x"))
        #expect(try connection.responses().isEmpty)
        connection.channel.isWritable = true
        connection.channel.pipeline.fireChannelWritabilityChanged()
        #expect(try connection.responses().map(\.summary) == ["200 hello world\n", "200 x"])
        #expect(connection.isOpen)
    }
}
