import WarrenTestSupport
import Foundation
import Testing

@testable import WarrenHTTP

extension HTTPServerSocketTests {
    /// Routing, methods, keep-alive and pipelining over real sockets.
    @Suite struct Routing {
        @Test func getReturns200WithBody() async throws {
            try await withServer { _, port in
                let response = try await onThread { try RawConnection.exchange(port: port, get("/hello")) }
                #expect(response.status == 200)
                #expect(response.bodyText == "hello world\n")
                #expect(response.header("content-length") == "12")
                #expect(response.header("content-type") == "text/plain; charset=utf-8")
            }
        }

        @Test func headHasTheGetHeadersAndNoBody() async throws {
            try await withServer { _, port in
                let (getResponse, headResponse, after) = try await onThread {
                    let connection = try RawConnection.connect(port: port)
                    try connection.send(get("/internal/alive"))
                    let getResponse = try connection.readResponse()
                    try connection.send(get("/internal/alive", method: "HEAD"))
                    let headResponse = try connection.readResponse(isHead: true)
                    // If the HEAD response had carried a body, this would read it as a status line.
                    try connection.send(get("/hello"))
                    let after = try connection.readResponse()
                    return (getResponse, headResponse, after)
                }
                #expect(getResponse.status == 200)
                #expect(getResponse.bodyText == #"{"status":"pass"}"#)
                #expect(headResponse.status == getResponse.status)
                #expect(headResponse.header("content-length") == getResponse.header("content-length"))
                #expect(headResponse.header("content-type") == "application/health+json")
                #expect(headResponse.body.isEmpty)
                #expect(after.status == 200)
                #expect(after.bodyText == "hello world\n")
            }
        }

        @Test func headOnAnAsyncRoute() async throws {
            try await withServer { _, port in
                let response = try await onThread {
                    try RawConnection.exchange(port: port, get("/metrics", method: "HEAD"), isHead: true)
                }
                #expect(response.status == 200)
                #expect(response.header("content-length") == "12")
            }
        }

        @Test(arguments: ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
        func otherMethodsGet405WithAllow(method: String) async throws {
            try await withServer { _, port in
                let response = try await onThread {
                    try RawConnection.exchange(port: port, get("/internal/alive", method: method, headers: "Content-Length: 0\r\n"))
                }
                #expect(response.status == 405)
                #expect(response.header("allow") == "GET, HEAD")
            }
        }

        @Test func unknownPathIs404() async throws {
            try await withServer { _, port in
                let (getResponse, postResponse) = try await onThread {
                    (
                        try RawConnection.exchange(port: port, get("/nope?token=secret")),
                        try RawConnection.exchange(port: port, get("/nope", method: "POST", headers: "Content-Length: 0\r\n"))
                    )
                }
                #expect(getResponse.status == 404)
                #expect(getResponse.bodyText == "{\"status\":404,\"error\":\"Not Found\"}\n")
                #expect(getResponse.header("content-type") == "application/json")
                #expect(postResponse.status == 404)
            }
        }

        @Test func prefixRoutePassesTheRemainder() async throws {
            try await withServer { _, port in
                let (plain, encoded, empty) = try await onThread {
                    (
                        try RawConnection.exchange(port: port, get("/internal/ready/redis?exclude=x")),
                        try RawConnection.exchange(port: port, get("/internal/ready/event%2Dloop")),
                        try RawConnection.exchange(port: port, get("/internal/ready/"))
                    )
                }
                #expect(plain.bodyText == "redis")
                #expect(encoded.bodyText == "event-loop")
                #expect(empty.status == 200)
                #expect(empty.bodyText == "")
            }
        }

        @Test func queryWithRepeatedKeys() async throws {
            try await withServer { _, port in
                let response = try await onThread {
                    try RawConnection.exchange(port: port, get("/query?exclude=redis&other=1&exclude=post%67res&exclude=a+b"))
                }
                #expect(response.bodyText == "redis|postgres|a b")
            }
        }

        @Test func keepAliveServesTwoRequestsOnOneConnection() async throws {
            try await withServer { server, port in
                let (first, second, stillOpen) = try await onThread {
                    let connection = try RawConnection.connect(port: port)
                    try connection.send(get("/hello"))
                    let first = try connection.readResponse()
                    try connection.send(get("/metrics"))
                    let second = try connection.readResponse()
                    return (first, second, connection.isOpenNow())
                }
                #expect(first.status == 200)
                #expect(first.header("connection") == nil)
                #expect(second.bodyText == "warren_up 1\n")
                #expect(stillOpen)
                #expect(server.statistics.acceptedConnections == 1)
            }
        }

        @Test func pipelinedRequestsAreAnsweredInOrder() async throws {
            try await withServer { _, port in
                let bodies = try await onThread {
                    let connection = try RawConnection.connect(port: port)
                    // The slow async one in the middle must not let the immediate ones overtake it.
                    try connection.send(get("/hello") + get("/slow") + get("/internal/ready/a") + get("/nope") + get("/internal/ready/b"))
                    return try (0..<5).map { _ in
                        let response = try connection.readResponse()
                        return "\(response.status) \(response.bodyText)"
                    }
                }
                #expect(
                    bodies == [
                        "200 hello world\n", "200 slow done", "200 a", "404 {\"status\":404,\"error\":\"Not Found\"}\n", "200 b",
                    ]
                )
            }
        }

        @Test func deepPipelineIsServedWithBackpressure() async throws {
            // 200 requests in one write: far past maxPipelinedRequests (16), so reading pauses and resumes.
            try await withServer { _, port in
                let count = try await onThread {
                    let connection = try RawConnection.connect(port: port)
                    let batch = (0..<200).map { get($0 % 10 == 5 ? "/metrics" : "/internal/ready/r\($0)") }.joined()
                    try connection.send(batch)
                    var ok = 0
                    for index in 0..<200 {
                        let response = try connection.readResponse()
                        let expected = index % 10 == 5 ? "warren_up 1\n" : "r\(index)"
                        if response.status == 200, response.bodyText == expected { ok += 1 }
                    }
                    return ok
                }
                #expect(count == 200)
            }
        }

        @Test func connectionCloseIsHonoured() async throws {
            try await withServer(configuration: .test(readTimeout: .milliseconds(500))) { server, port in
                let (response, closed, connection) = try await onThread {
                    let connection = try RawConnection.connect(port: port)
                    try connection.send(get("/hello", headers: "Connection: close\r\n") + get("/hello"))
                    let response = try connection.readResponse()
                    return (response, connection.waitForClose(timeout: 2), connection)
                }
                #expect(response.status == 200)
                #expect(response.header("connection") == "close")
                #expect(closed)
                // The client keeps its socket open: the server's lingering close still ends.
                #expect(await eventually { server.statistics.activeConnections == 0 })
                connection.close()
                // A client that closes promptly frees the connection at once.
                try await onThread {
                    let connection = try RawConnection.connect(port: port)
                    try connection.send(get("/hello", headers: "Connection: close\r\n"))
                    _ = try connection.readResponse()
                    connection.close()
                }
                #expect(await eventually(timeout: .milliseconds(300)) { server.statistics.activeConnections == 0 })
            }
        }

        @Test func clientHalfCloseStillGetsItsResponses() async throws {
            try await withServer { server, port in
                let (first, second, closed) = try await onThread {
                    let connection = try RawConnection.connect(port: port)
                    try connection.send(get("/slow") + get("/hello"))
                    connection.shutdownWrite()
                    let first = try connection.readResponse()
                    let second = try connection.readResponse()
                    return (first, second, connection.waitForClose(timeout: 2))
                }
                #expect(first.bodyText == "slow done")
                #expect(second.bodyText == "hello world\n")
                #expect(closed)
                #expect(await eventually { server.statistics.activeConnections == 0 })
            }
        }

        @Test func http10ClosesUnlessKeepAliveIsAsked() async throws {
            try await withServer { _, port in
                let (plain, plainClosed, keepAlive, keepAliveOpen) = try await onThread {
                    let one = try RawConnection.connect(port: port)
                    try one.send("GET /hello HTTP/1.0\r\n\r\n")
                    let plain = try one.readResponse()
                    let plainClosed = one.waitForClose(timeout: 2)
                    let two = try RawConnection.connect(port: port)
                    try two.send("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                    let keepAlive = try two.readResponse()
                    try two.send("GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
                    _ = try two.readResponse()
                    return (plain, plainClosed, keepAlive, two.isOpenNow())
                }
                #expect(plain.version == "HTTP/1.0")
                #expect(plain.header("connection") == "close")
                #expect(plainClosed)
                #expect(keepAlive.header("connection") == "keep-alive")
                #expect(keepAliveOpen)
            }
        }
    }
}
