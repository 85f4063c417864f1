import WarrenTestSupport
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Testing

@testable import WarrenHTTP

/// The parent of every suite that opens sockets: `.serialized` (inherited by nested suites)
/// keeps timing-sensitive tests, and the one that blocks the cooperative pool, apart.
@Suite(.serialized) struct HTTPServerSocketTests {}

extension HTTPServerConfiguration {
    /// Loopback, ephemeral port, everything else as given.
    static func test(
        maxConnections: Int = 64,
        idleTimeout: TimeAmount = .seconds(30),
        readTimeout: TimeAmount = .seconds(5),
        shutdownTimeout: TimeAmount = .seconds(5)
    ) -> HTTPServerConfiguration {
        HTTPServerConfiguration(
            host: "127.0.0.1",
            port: 0,
            maxConnections: maxConnections,
            idleTimeout: idleTimeout,
            readTimeout: readTimeout,
            shutdownTimeout: shutdownTimeout
        )
    }
}

extension HTTPRouter {
    /// Routes used across the socket tests.
    static func test(slowDelay: Duration = .milliseconds(300)) -> HTTPRouter {
        var router = HTTPRouter()
        router.get("/hello", .immediate { _ in .text("hello world\n") })
        router.get("/internal/alive", .immediate { _ in .json(#"{"status":"pass"}"#, contentType: "application/health+json") })
        router.get(prefix: "/internal/ready/", .immediate { request in .text(request.pathRemainder ?? "<nil>") })
        router.get("/query", .immediate { request in
            .text(request.queryValues(for: "exclude").joined(separator: "|"))
        })
        router.get("/slow", .async { _ in
            try? await Task.sleep(for: slowDelay)
            return .text("slow done")
        })
        router.get("/metrics", .async { _ in .text("warren_up 1\n", contentType: "text/plain; version=0.0.4") })
        return router
    }
}

/// A logger that prints only warnings and above (set `WARREN_HTTP_TEST_LOG=debug` to see all).
let testLogger: Logger = {
    var logger = Logger(label: "warren.http.test")
    logger.logLevel = Logger.Level(rawValue: ProcessInfo.processInfo.environment["WARREN_HTTP_TEST_LOG"] ?? "") ?? .warning
    return logger
}()

/// Starts a server on an ephemeral loopback port, runs `body`, and always shuts the server down.
func withServer(
    configuration: HTTPServerConfiguration = .test(),
    router: HTTPRouter = .test(),
    _ body: (HTTPServer, Int) async throws -> Void
) async throws {
    let server = HTTPServer(configuration: configuration, router: router, logger: testLogger)
    let port = try await server.start()
    do {
        try await body(server, port)
    } catch {
        await server.shutdown()
        throw error
    }
    await server.shutdown()
}

/// Polls `condition` (on the calling task, sleeping between tries) until true or `timeout` passes.
func eventually(timeout: Duration = .seconds(3), _ condition: () -> Bool) async -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now + timeout
    while clock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(10))
    }
    return condition()
}
