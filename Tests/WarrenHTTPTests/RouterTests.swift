import WarrenTestSupport
import NIOCore
import NIOHTTP1
import Testing

@testable import WarrenHTTP

@Suite struct RouterTests {
    private func router() -> HTTPRouter {
        var router = HTTPRouter()
        router.get("/internal/ready", .immediate { _ in .text("all") })
        router.get(prefix: "/internal/ready/", .immediate { _ in .text("one") })
        router.get(prefix: "/internal/", .immediate { _ in .text("internal") })
        return router
    }

    @Test func exactRouteWinsOverPrefix() {
        let match = self.router().match(path: "/internal/ready")
        #expect(match != nil)
        #expect(match?.remainder == nil)
    }

    @Test func longestPrefixWinsAndPassesDecodedRemainder() throws {
        let router = self.router()
        #expect(router.match(path: "/internal/ready/redis")?.remainder == "redis")
        #expect(router.match(path: "/internal/ready/a%20b")?.remainder == "a b")
        #expect(router.match(path: "/internal/ready/")?.remainder == "")
        #expect(router.match(path: "/internal/other")?.remainder == "other")
        #expect(router.match(path: "/metrics") == nil)
    }

    @Test func methodRules() {
        let router = self.router()
        guard case .handle(_, let routed) = router.decide(HTTPRequest(method: .HEAD, uri: "/internal/ready/x")) else {
            Issue.record("HEAD should reach the GET handler")
            return
        }
        #expect(routed.pathRemainder == "x")
        guard case .respond(let notAllowed) = router.decide(HTTPRequest(method: .POST, uri: "/internal/ready")) else {
            Issue.record("POST should be answered by the router")
            return
        }
        #expect(notAllowed.status == .methodNotAllowed)
        #expect(notAllowed.headers.first(name: "Allow") == "GET, HEAD")
        guard case .respond(let notFound) = router.decide(HTTPRequest(method: .GET, uri: "/nope?x=1")) else {
            Issue.record("unknown path should be answered by the router")
            return
        }
        #expect(notFound.status == .notFound)
        #expect(notFound.contentType == "application/json")
    }

    @Test func reRegisteringReplaces() {
        var router = HTTPRouter()
        router.get(prefix: "/a/", .immediate { _ in .text("1") })
        router.get(prefix: "/a/", .immediate { _ in .text("2") })
        guard case .immediate(let handler) = router.match(path: "/a/x")?.handler else {
            Issue.record("expected an immediate handler")
            return
        }
        #expect(handler(HTTPRequest(method: .GET, uri: "/a/x")).body == ByteBuffer(string: "2"))
    }
}

@Suite struct RequestParsingTests {
    @Test func queryWithRepeatedKeysIsDecodedInOrder() {
        let request = HTTPRequest(method: .GET, uri: "/internal/ready?exclude=redis&exclude=post%67res&x=a+b&flag&=v&&")
        #expect(request.path == "/internal/ready")
        #expect(request.queryValues(for: "exclude") == ["redis", "postgres"])
        #expect(request.queryValue(for: "x") == "a b")
        #expect(request.queryValue(for: "flag") == "")
        #expect(request.queryValue(for: "") == "v")
        #expect(request.queryValue(for: "missing") == nil)
    }

    private struct Parts: Equatable {
        var path: String
        var query: String?
    }

    private func parts(_ uri: String) -> Parts {
        let target = HTTPRequestTarget(uri)
        return Parts(path: target.path, query: target.query)
    }

    @Test func targetForms() {
        #expect(parts("/a/b?c=d#frag") == Parts(path: "/a/b", query: "c=d"))
        #expect(parts("http://example.com:8080/x?y") == Parts(path: "/x", query: "y"))
        #expect(parts("HTTP://example.com") == Parts(path: "/", query: nil))
        #expect(parts("*") == Parts(path: "*", query: nil))
        #expect(parts("") == Parts(path: "/", query: nil))
        #expect(parts("hTTpS://h?q#f") == Parts(path: "/", query: "q"))
        #expect(parts("https://h/p/#f?not-a-query") == Parts(path: "/p/", query: nil))
        #expect(parts("http:/x") == Parts(path: "http:/x", query: nil), "not absolute form: no authority")
        #expect(parts("/é?x=ü#ö") == Parts(path: "/é", query: "x=ü"))
        #expect(parts("/?") == Parts(path: "/", query: ""))
    }

    @Test func percentDecoding() {
        #expect(percentDecode("a%2Fb%zz%4", plusIsSpace: false) == "a/b%zz%4")
        #expect(percentDecode("a+b", plusIsSpace: false) == "a+b")
        #expect(percentDecode("a+b", plusIsSpace: true) == "a b")
        #expect(percentDecode("%C3%A9", plusIsSpace: false) == "é")
        #expect(percentDecode("%FF", plusIsSpace: false) == "\u{FFFD}")
    }

    @Test func responseHelpers() {
        var response = HTTPResponse(status: .ok, bytes: [1, 2, 3], contentType: "application/octet-stream")
        #expect(response.body.readableBytes == 3)
        #expect(response.contentType == "application/octet-stream")
        response.contentType = nil
        #expect(response.headers.first(name: "content-type") == nil)
        let error = HTTPResponse.error(.notFound)
        #expect(String(buffer: error.body) == "{\"status\":404,\"error\":\"Not Found\"}\n")
    }
}
