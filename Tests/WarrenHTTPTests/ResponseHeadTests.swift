import NIOCore
import NIOHTTP1
import Testing
@testable import WarrenHTTP

/// The head the server writes for a response, made per request or prepared once.
@Suite("Response heads (pure)")
struct ResponseHeadTests {
    private func response() -> HTTPResponse {
        var response = HTTPResponse.json(#"{"status":"pass"}"#, contentType: "application/health+json")
        response.headers.add(name: "Connection", value: "upgrade")  // the server manages this one
        response.headers.add(name: "Transfer-Encoding", value: "chunked")  // and drops this one
        return response
    }

    @Test func theServerSetsLengthAndConnection() {
        let keptAlive = self.response().head(version: .http1_1, keepAlive: true)
        #expect(keptAlive.headers["Content-Length"] == ["17"])
        #expect(keptAlive.headers["Connection"].isEmpty)
        #expect(keptAlive.headers["Transfer-Encoding"].isEmpty)
        #expect(keptAlive.headers["Content-Type"] == ["application/health+json"])
        #expect(self.response().head(version: .http1_1, keepAlive: false).headers["Connection"] == ["close"])
        #expect(self.response().head(version: .http1_0, keepAlive: true).headers["Connection"] == ["keep-alive"])
    }

    @Test func aPreparedHeadIsTheSameAndAnyChangeDropsIt() {
        var prepared = self.response()
        prepared.prepareHead()
        #expect(prepared.head(version: .http1_1, keepAlive: true) == self.response().head(version: .http1_1, keepAlive: true))
        // Only the kept-alive HTTP/1.1 head is prepared; the others are still made as asked.
        #expect(prepared.head(version: .http1_1, keepAlive: false).headers["Connection"] == ["close"])
        #expect(prepared.head(version: .http1_0, keepAlive: true).headers["Connection"] == ["keep-alive"])

        var changedHeader = prepared
        changedHeader.headers.replaceOrAdd(name: "Cache-Control", value: "no-store")
        #expect(changedHeader.head(version: .http1_1, keepAlive: true).headers["Cache-Control"] == ["no-store"])
        var changedBody = prepared
        changedBody.body = ByteBuffer(string: "{}")
        #expect(changedBody.head(version: .http1_1, keepAlive: true).headers["Content-Length"] == ["2"])
        var changedStatus = prepared
        changedStatus.status = .serviceUnavailable
        #expect(changedStatus.head(version: .http1_1, keepAlive: true).status == .serviceUnavailable)
    }
}
