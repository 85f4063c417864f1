import WarrenTestSupport
import Foundation
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import Testing
import WarrenSystem

@testable import WarrenHTTP

/// A counter shared between tasks and threads.
private final class Counter: Sendable {
    private let value = Atomic<Int>(0)
    func increment() { self.value.add(1, ordering: .sequentiallyConsistent) }
    var current: Int { self.value.load(ordering: .sequentiallyConsistent) }
}

extension HTTPServerSocketTests {
    /// Independence from the cooperative pool, graceful shutdown, and swift-service-lifecycle.
    @Suite struct Lifecycle {
        @Test func immediateHandlerAnswersWhileTheCooperativePoolIsBlocked() async throws {
            try await withServer { _, port in
                let width = ProcessInfo.processInfo.activeProcessorCount
                let started = Counter()
                let finished = Counter()
                // The client thread starts BEFORE the pool is blocked, and waits until it is.
                let client = BackgroundThread { () throws -> (latency: Double, status: Int, poolStillBlocked: Bool) in
                    let waitUntil = monotonicSeconds() + 5
                    while started.current < width {
                        guard monotonicSeconds() < waitUntil else { throw RawClientError.timeout }
                        usleep(1000)
                    }
                    usleep(50_000)
                    let start = monotonicSeconds()
                    let response = try RawConnection.exchange(port: port, get("/internal/alive"), timeout: 1)
                    let latency = monotonicSeconds() - start
                    return (latency, response.status, finished.current == 0)
                }
                await withTaskGroup(of: Void.self) { group in
                    for _ in 0..<width {
                        group.addTask {
                            started.increment()
                            let end = monotonicSeconds() + 1.5
                            while monotonicSeconds() < end {
                                usleep(10_000)  // blocks this cooperative thread on purpose
                            }
                            finished.increment()
                        }
                    }
                }
                let outcome = try await client.value()
                #expect(outcome.status == 200)
                #expect(outcome.latency < 0.2, "probe took \(outcome.latency) s")
                #expect(outcome.poolStillBlocked, "the blockers finished before the probe: the test proved nothing")
            }
        }

        /// The loop's thread asks for a short time slice, so a probe can preempt a busy core's
        /// running thread (ThreadTimeSlice); `nil` leaves the kernel's default. Routes run on that
        /// thread, so one reports what the kernel says of it.
        @Test(.enabled(if: ThreadTimeSlice.current != nil, "needs Linux 6.12 or later (EEVDF custom slices)"))
        func eventLoopThreadRunsWithTheConfiguredTimeSlice() async throws {
            var router = HTTPRouter()
            router.get("/slice", .immediate { _ in
                .text(ThreadTimeSlice.current.map { "\($0.nanoseconds) ns" } ?? "unknown")
            })
            let defaultSlice = try #require(ThreadTimeSlice.current)
            try await withServer(router: router) { _, port in
                let response = try await onThread { try RawConnection.exchange(port: port, get("/slice")) }
                #expect(response.bodyText == "100000 ns")
            }
            var configuration = HTTPServerConfiguration.test()
            configuration.eventLoopTimeSlice = nil
            try await withServer(configuration: configuration, router: router) { _, port in
                let response = try await onThread { try RawConnection.exchange(port: port, get("/slice")) }
                #expect(response.bodyText == "\(defaultSlice.nanoseconds) ns")
            }
        }

        @Test func gracefulShutdownFinishesInFlightAndRefusesNewConnections() async throws {
            let router = HTTPRouter.test(slowDelay: .seconds(1))
            let server = HTTPServer(configuration: .test(), router: router, logger: testLogger)
            let port = try await server.start()
            // An idle keep-alive connection, and one with a slow request in flight.
            let idle = try await onThread {
                let connection = try RawConnection.connect(port: port)
                try connection.send(get("/hello"))
                _ = try connection.readResponse()
                return connection
            }
            let inFlight = BackgroundThread { () throws -> RawResponse in
                let connection = try RawConnection.connect(port: port)
                try connection.send(get("/slow"))
                return try connection.readResponse(timeout: 5)
            }
            #expect(await eventually { server.statistics.activeConnections == 2 })
            try await Task.sleep(for: .milliseconds(200))

            let clock = ContinuousClock()
            let shutdownStart = clock.now
            async let shutdown: Void = server.shutdown()

            let idleClosed = try await onThread { idle.waitForClose(timeout: 0.5) }
            #expect(idleClosed, "idle connection should close at once")
            let newConnection = try await onThread { () -> String in
                do {
                    let connection = try RawConnection.connect(port: port)
                    try? connection.send(get("/hello"))
                    return connection.waitForClose(timeout: 1) ? "closed" : "served"
                } catch RawClientError.connect(let code) {
                    return code == ECONNREFUSED ? "refused" : "error \(code)"
                }
            }
            #expect(newConnection == "refused" || newConnection == "closed")

            let response = try await inFlight.value()
            #expect(response.status == 200)
            #expect(response.bodyText == "slow done")
            #expect(response.header("connection") == "close")
            await shutdown
            let took = clock.now - shutdownStart
            #expect(took >= .milliseconds(500) && took < .seconds(4), "shutdown took \(took)")
            #expect(await server.localAddress == nil)
            await #expect(throws: HTTPServerError.alreadyStarted) { try await server.start() }
        }

        @Test func shutdownClosesAConnectionInTheMiddleOfARequest() async throws {
            let server = HTTPServer(configuration: .test(), router: .test(), logger: testLogger)
            let port = try await server.start()
            let partial = try await onThread { () throws -> RawConnection in
                let connection = try RawConnection.connect(port: port)
                try connection.send("GET /hello HTTP/1.1\r\nHost: x\r\n")
                return connection
            }
            // The decoder parses the partial request to EOF as the connection closes; that error
            // must not be answered into the closed channel.
            let took = await shutdownOnceConnected(server)
            #expect(took < .seconds(1), "shutdown took \(took)")
            let outcome = try await onThread { () -> String in
                do {
                    return "response \(try partial.readResponse(timeout: 2).status)"
                } catch RawClientError.closedBeforeResponse {
                    return "closed"
                }
            }
            #expect(outcome == "closed")
        }

        @Test func shutdownIsBoundedByItsTimeout() async throws {
            var router = HTTPRouter()
            router.get("/forever", .async { _ in
                // Ignores cancellation on purpose.
                let end = ContinuousClock.now + .seconds(3)
                while ContinuousClock.now < end { try? await Task.sleep(for: .milliseconds(50)) }
                return .text("too late")
            })
            let configuration = HTTPServerConfiguration.test(shutdownTimeout: .milliseconds(300))
            let server = HTTPServer(configuration: configuration, router: router, logger: testLogger)
            let port = try await server.start()
            let client = BackgroundThread { () throws -> Bool in
                let connection = try RawConnection.connect(port: port)
                try connection.send(get("/forever"))
                return connection.waitForClose(timeout: 5)
            }
            let took = await shutdownOnceConnected(server)
            #expect(took < .seconds(2), "shutdown took \(took)")
            #expect(try await client.value())
            // The abandoned handler finishes after the loop is gone; that must be harmless.
            try await Task.sleep(for: .seconds(3))
        }

        @Test func runsAsAServiceUntilGracefulShutdown() async throws {
            let server = HTTPServer(configuration: .test(), router: .test(), logger: testLogger)
            let port = try await server.start()
            let group = ServiceGroup(services: [server], logger: testLogger)
            try await withThrowingTaskGroup(of: Void.self) { tasks in
                tasks.addTask { try await group.run() }
                let response = try await onThread { try RawConnection.exchange(port: port, get("/metrics")) }
                #expect(response.bodyText == "warren_up 1\n")
                await group.triggerGracefulShutdown()
                try await tasks.waitForAll()
            }
            let refused = try await onThread { () -> Bool in
                do {
                    _ = try RawConnection.connect(port: port)
                    return false
                } catch RawClientError.connect(let code) {
                    return code == ECONNREFUSED
                }
            }
            #expect(refused)
        }

        @Test func runStartsTheServerAndStopsOnCancellation() async throws {
            let server = HTTPServer(configuration: .test(), router: .test(), logger: testLogger)
            let task = Task { try await server.run() }
            var port: Int?
            for _ in 0..<300 where port == nil {
                port = await server.localAddress?.port
                try await Task.sleep(for: .milliseconds(10))
            }
            let boundPort = try #require(port)
            let response = try await onThread { try RawConnection.exchange(port: boundPort, get("/hello")) }
            #expect(response.status == 200)
            task.cancel()
            try await task.value
            #expect(await server.localAddress == nil)
        }

        @Test func shutdownBeforeStartAndBindFailure() async throws {
            let unused = HTTPServer(router: .test(), logger: testLogger)
            await unused.shutdown()
            await #expect(throws: HTTPServerError.alreadyStarted) { try await unused.start() }

            let first = HTTPServer(configuration: .test(), router: .test(), logger: testLogger)
            let port = try await first.start()
            var clash = HTTPServerConfiguration.test()
            clash.port = port
            let second = HTTPServer(configuration: clash, router: .test(), logger: testLogger)
            let error = await #expect(throws: HTTPServerError.self) { try await second.start() }
            #expect(error == .cannotListen(host: clash.host, port: port, reason: "Address already in use (errno 98)"))
            #expect(error.map { "\($0)" } == "cannot listen on \(clash.host):\(port) (the side port): Address already in use (errno 98)")
            await second.shutdown()
            await first.shutdown()
        }
    }
}

/// Waits until `server` has its one connection (and a moment for the request to arrive), then shuts
/// it down; returns how long the shutdown took. Records an issue if the connection never showed.
func shutdownOnceConnected(_ server: HTTPServer, sourceLocation: SourceLocation = #_sourceLocation) async -> Duration {
    #expect(await eventually { server.statistics.activeConnections == 1 }, "one connection before shutdown",
            sourceLocation: sourceLocation)
    try? await Task.sleep(for: .milliseconds(100))
    let clock = ContinuousClock()
    let start = clock.now
    await server.shutdown()
    return clock.now - start
}
