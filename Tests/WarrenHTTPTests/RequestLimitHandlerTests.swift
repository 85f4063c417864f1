import WarrenTestSupport
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import WarrenHTTP

/// Records what the limit handler passes on.
private final class Recorder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    enum Item: Equatable {
        case bytes(String)
        case event(HTTPRequestLimitEvent)
    }
    var items: [Item] = []

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = Self.unwrapInboundIn(data)
        if case .bytes(let previous) = self.items.last {
            self.items[self.items.count - 1] = .bytes(previous + String(buffer: buffer))
        } else {
            self.items.append(.bytes(String(buffer: buffer)))
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? HTTPRequestLimitEvent {
            self.items.append(.event(event))
        }
    }
}

@Suite struct RequestLimitHandlerTests {
    private func feed(_ chunks: [String], maxRequestLine: Int = 32, maxHeaders: Int = 64) throws -> [Recorder.Item] {
        let recorder = Recorder()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(
            HTTPRequestLimitHandler(maxRequestLineBytes: maxRequestLine, maxHeaderBytes: maxHeaders)
        )
        try channel.pipeline.syncOperations.addHandler(recorder)
        for chunk in chunks {
            try channel.writeInbound(ByteBuffer(string: chunk))
        }
        _ = try? channel.finish()
        return recorder.items
    }

    /// A request whose head arrives whole in one read needs no mark: its head reaches the
    /// connection handler in that read. One still incomplete when a read ends is marked (the read
    /// timeout starts), after the bytes of that read.
    @Test func marksARequestStillIncompleteWhenAReadEnds() throws {
        let items = try self.feed(["GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\n", "\r\n", "GET /c HTTP/1.1\r\n\r\n"])
        #expect(
            items == [
                .bytes("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\n"), .event(.requestStarted),
                .bytes("\r\nGET /c HTTP/1.1\r\n\r\n"),
            ]
        )
    }

    @Test func byteByByteStillCountsOneRequest() throws {
        let request = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
        let items = try self.feed(request.map { String($0) })
        #expect(items == [.bytes("G"), .event(.requestStarted), .bytes(String(request.dropFirst()))])
    }

    @Test func longRequestLineIs414AndStopsForwarding() throws {
        let good = "GET / HTTP/1.1\r\n\r\n"
        let items = try self.feed([good + "GET /" + String(repeating: "a", count: 40), " HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n"])
        #expect(items == [.bytes(good), .event(.limitExceeded(.uriTooLong))])
    }

    @Test func largeHeaderBlockIs431() throws {
        let items = try self.feed(["GET / HTTP/1.1\r\n", "X-Big: " + String(repeating: "b", count: 100) + "\r\n\r\n"])
        #expect(
            items == [
                .bytes("GET / HTTP/1.1\r\n"), .event(.requestStarted), .event(.limitExceeded(.requestHeaderFieldsTooLarge)),
            ]
        )
    }

    @Test func headerBlockJustUnderTheLimitPasses() throws {
        // 62 bytes of header line + CRLF of the blank line = 64.
        let header = "X: " + String(repeating: "v", count: 57) + "\r\n"
        #expect(header.utf8.count == 62)
        let request = "GET / HTTP/1.1\r\n" + header + "\r\n"
        let items = try self.feed([request])
        #expect(items == [.bytes(request)])
    }
}
