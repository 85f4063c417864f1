import WarrenTestSupport
import Foundation
import NIOCore
import Synchronization
import Testing

@testable import WarrenHTTP

extension HTTPServerSocketTests {
    /// Malformed and oversized input, timeouts and the connection limit.
    @Suite struct Limits {
        /// 400 (or a plain close) for the bad client; the server keeps serving others.
        @Test(arguments: [
            "\u{00}\u{01} hello\r\n\r\n",
            "GARBAGE\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Header Without Colon\r\n\r\n",
            "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
            "GET /\u{7F} HTTP/1.1\r\n\r\n",
        ])
        func malformedRequestGets400AndTheServerIsUnharmed(raw: String) async throws {
            try await withServer { _, port in
                let (status, closed, next) = try await onThread {
                    let bad = try RawConnection.connect(port: port)
                    try bad.send(raw)
                    let status: Int?
                    do {
                        status = try bad.readResponse(timeout: 2).status
                    } catch RawClientError.closedBeforeResponse {
                        status = nil
                    }
                    let closed = bad.waitForClose(timeout: 2)
                    let next = try RawConnection.exchange(port: port, get("/hello"))
                    return (status, closed, next)
                }
                #expect(status == 400 || status == nil)
                #expect(closed)
                #expect(next.status == 200)
            }
        }

        @Test func garbageAfterAGoodRequestAnswersTheGoodOneFirst() async throws {
            try await withServer { _, port in
                let (first, second, closed) = try await onThread {
                    let connection = try RawConnection.connect(port: port)
                    try connection.send(get("/slow") + "\u{00}\u{01} hello\r\n\r\n")
                    let first = try connection.readResponse()
                    let second = try connection.readResponse()
                    return (first, second, connection.waitForClose(timeout: 2))
                }
                #expect(first.status == 200)
                #expect(first.bodyText == "slow done")
                #expect(second.status == 400)
                #expect(second.header("connection") == "close")
                #expect(closed)
            }
        }

        @Test func seventyKilobyteHeaderIs431() async throws {
            try await withServer { _, port in
                let (response, closed, next) = try await onThread {
                    let connection = try RawConnection.connect(port: port)
                    let big = "X-Big: " + String(repeating: "a", count: 70 * 1024) + "\r\n"
                    try connection.send("GET /hello HTTP/1.1\r\nHost: x\r\n" + big + "\r\n")
                    let response = try connection.readResponse()
                    let closed = connection.waitForClose(timeout: 3)
                    return (response, closed, try RawConnection.exchange(port: port, get("/hello")))
                }
                #expect(response.status == 431)
                #expect(response.header("connection") == "close")
                #expect(closed)
                #expect(next.status == 200)
            }
        }

        @Test func manySmallHeadersOverTheLimitAre431() async throws {
            try await withServer { _, port in
                let response = try await onThread {
                    let headers = (0..<2000).map { "X-H\($0): v\r\n" }.joined()
                    return try RawConnection.exchange(port: port, get("/hello", headers: headers))
                }
                #expect(response.status == 431)
            }
        }

        @Test func longRequestLineIs414() async throws {
            try await withServer { _, port in
                let response = try await onThread {
                    try RawConnection.exchange(port: port, get("/hello?pad=" + String(repeating: "p", count: 9000)))
                }
                #expect(response.status == 414)
            }
        }

        @Test(arguments: [
            "GET /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
            "GET /hello HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            "POST /internal/alive HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
        ])
        func requestWithABodyIsRejected(raw: String) async throws {
            try await withServer { _, port in
                let (response, closed) = try await onThread {
                    let connection = try RawConnection.connect(port: port)
                    try connection.send(raw)
                    let response = try connection.readResponse()
                    return (response, connection.waitForClose(timeout: 3))
                }
                #expect(response.status == 413 || response.status == 400)
                #expect(response.header("connection") == "close")
                #expect(closed)
            }
        }

        @Test func largeBodyStillGetsItsResponse() async throws {
            // The server drains input while it closes, so the client reads 413 rather than a reset.
            try await withServer { _, port in
                let response = try await onThread {
                    let connection = try RawConnection.connect(port: port)
                    let body = String(repeating: "b", count: 256 * 1024)
                    try connection.send("GET /hello HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body)
                    return try connection.readResponse()
                }
                #expect(response.status == 413)
            }
        }

        @Test func unsupportedVersionIsRejected() async throws {
            try await withServer { _, port in
                let (status, next) = try await onThread {
                    let connection = try RawConnection.connect(port: port)
                    try connection.send("GET /hello HTTP/2.0\r\n\r\n")
                    let status = try? connection.readResponse().status
                    return (status, try RawConnection.exchange(port: port, get("/hello")))
                }
                #expect(status == 505 || status == 400 || status == nil)
                #expect(next.status == 200)
            }
        }

        @Test func stalledConnectionsDoNotDelayAProbeAndAreClosedByReadTimeout() async throws {
            // The default limit: a burst of 300 stalled connections must not lock probes out.
            let configuration = HTTPServerConfiguration.test(maxConnections: HTTPServerConfiguration().maxConnections, readTimeout: .seconds(1))
            try await withServer(configuration: configuration) { server, port in
                let stalled = try await onThread {
                    try (0..<300).map { _ in
                        let connection = try RawConnection.connect(port: port)
                        try connection.send("GET /")
                        return connection
                    }
                }
                #expect(await eventually { server.statistics.activeConnections == 300 })
                let (latency, probe) = try await onThread {
                    let start = monotonicSeconds()
                    let probe = try RawConnection.exchange(port: port, get("/internal/alive"))
                    return (monotonicSeconds() - start, probe)
                }
                #expect(probe.status == 200)
                #expect(latency < 0.1, "probe took \(latency) s")
                let stillOpen = stalled.filter { $0.isOpenNow() }.count
                #expect(stillOpen == 300, "closed too early")
                let closedCount = try await onThread {
                    stalled.filter { $0.waitForClose(timeout: 3) }.count
                }
                #expect(closedCount == 300)
                #expect(await eventually { server.statistics.activeConnections == 0 })
                stalled.forEach { $0.close() }
            }
        }

        @Test func slowlorisTricklingHeadersIsClosedByReadTimeout() async throws {
            let configuration = HTTPServerConfiguration.test(readTimeout: .milliseconds(500))
            try await withServer(configuration: configuration) { _, port in
                let (closedAfter, gotResponse) = try await onThread {
                    let connection = try RawConnection.connect(port: port)
                    let start = monotonicSeconds()
                    try connection.send("GET /hello HTTP/1.1\r\n")
                    for index in 0..<20 {
                        // One header line every 100 ms: never complete within 500 ms.
                        usleep(100_000)
                        if (try? connection.send("X-\(index): y\r\n")) == nil { break }
                        if !connection.isOpenNow() { break }
                    }
                    let closed = connection.waitForClose(timeout: 2)
                    return (monotonicSeconds() - start, !closed)
                }
                #expect(!gotResponse)
                #expect(closedAfter < 1.5)
            }
        }

        @Test func connectionsBeyondTheLimitAreClosedAndCounted() async throws {
            try await withServer(configuration: .test(maxConnections: 3)) { server, port in
                let held = try await onThread {
                    try (0..<3).map { _ in
                        let connection = try RawConnection.connect(port: port)
                        try connection.send(get("/hello"))
                        _ = try connection.readResponse()
                        return connection
                    }
                }
                let extraClosed = try await onThread {
                    let extra = try RawConnection.connect(port: port)
                    try? extra.send(get("/hello"))
                    return extra.waitForClose(timeout: 2)
                }
                #expect(extraClosed)
                #expect(server.statistics.rejectedConnections == 1)
                #expect(server.statistics.activeConnections == 3)
                held.forEach { $0.close() }
                #expect(await eventually { server.statistics.activeConnections == 0 })
                let probe = try await onThread { try RawConnection.exchange(port: port, get("/internal/alive")) }
                #expect(probe.status == 200)
            }
        }

        @Test func idleTimeoutClosesASilentKeepAliveConnection() async throws {
            try await withServer(configuration: .test(idleTimeout: .milliseconds(300))) { server, port in
                let (openAt100ms, closedAfter, silentClosed) = try await onThread {
                    let connection = try RawConnection.connect(port: port)
                    try connection.send(get("/hello"))
                    _ = try connection.readResponse()
                    let start = monotonicSeconds()
                    usleep(100_000)
                    let openAt100ms = connection.isOpenNow()
                    let closed = connection.waitForClose(timeout: 3)
                    let closedAfter = closed ? monotonicSeconds() - start : .infinity
                    // A connection that never sends anything is idle too.
                    let silent = try RawConnection.connect(port: port)
                    return (openAt100ms, closedAfter, silent.waitForClose(timeout: 3))
                }
                #expect(openAt100ms)
                #expect(closedAfter > 0.2 && closedAfter < 1.5, "closed after \(closedAfter) s")
                #expect(silentClosed)
                #expect(await eventually { server.statistics.activeConnections == 0 })
            }
        }

        @Test func idleTimeoutDoesNotCutASlowAsyncResponse() async throws {
            let router = HTTPRouter.test(slowDelay: .milliseconds(600))
            try await withServer(configuration: .test(idleTimeout: .milliseconds(200)), router: router) { _, port in
                let response = try await onThread { try RawConnection.exchange(port: port, get("/slow")) }
                #expect(response.bodyText == "slow done")
            }
        }
    }
}
