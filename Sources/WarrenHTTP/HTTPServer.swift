import Glibc
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle
import WarrenSystem

/// Errors from ``HTTPServer/start()``.
public enum HTTPServerError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `start()` was called on a server that is starting, running or already stopped.
    case alreadyStarted
    /// The listening socket could not be bound, e.g. the port is taken by another process or
    /// the host is not an address of this machine; `reason` is the system's.
    case cannotListen(host: String, port: Int, reason: String)

    public var description: String {
        switch self {
        case .alreadyStarted:
            "the HTTP server was started already"
        case .cannotListen(let host, let port, let reason):
            "cannot listen on \(host):\(port) (the side port): \(reason)"
        }
    }
}

/// The side-port HTTP/1.1 server: probes and `/metrics` from an ``HTTPRouter``.
///
/// It runs on its OWN single-threaded `MultiThreadedEventLoopGroup`, so
/// ``HTTPHandler/immediate(_:)`` routes answer even while Swift's cooperative pool is saturated.
/// Use it either directly (``start()`` then ``shutdown()``) or as a swift-service-lifecycle
/// `Service` in a `ServiceGroup` (``run()`` serves until graceful shutdown or cancellation).
/// A server runs once: after ``shutdown()`` it cannot be started again.
public actor HTTPServer: Service {
    private enum State {
        case idle
        case starting
        case running(MultiThreadedEventLoopGroup, any Channel)
        case shuttingDown
        case stopped
    }

    /// The configuration the server was created with.
    public nonisolated let configuration: HTTPServerConfiguration
    /// The route table.
    public nonisolated let router: HTTPRouter
    private let logger: Logger
    private let registry = ConnectionRegistry()
    private let gate = EventLoopGate()
    private var state = State.idle
    private var boundAddress: SocketAddress?
    private var startWaiters: [CheckedContinuation<Void, Never>] = []
    private var stopWaiters: [CheckedContinuation<Void, Never>] = []

    /// Creates a server; nothing is bound until ``start()`` or ``run()``.
    /// - Parameter logger: used for connection and request logs; metadata keys are prefixed
    ///   `warren.http.` and only paths are logged, never query strings or headers.
    public init(
        configuration: HTTPServerConfiguration = HTTPServerConfiguration(),
        router: HTTPRouter,
        logger: Logger = Logger(label: "warren.http")
    ) {
        self.configuration = configuration
        self.router = router
        self.logger = logger
    }

    /// The address the server is bound to while it runs (its port is the real one when
    /// ``HTTPServerConfiguration/port`` is 0); `nil` before start and after shutdown.
    var localAddress: SocketAddress? {
        self.boundAddress
    }

    /// Connection counters; readable from any context.
    nonisolated var statistics: HTTPServerStatistics {
        self.registry.statistics
    }

    /// Creates the event loop, binds and starts accepting.
    /// - Returns: the bound port.
    /// - Throws: ``HTTPServerError/alreadyStarted``, or ``HTTPServerError/cannotListen(host:port:reason:)``
    ///   (the server is then back to not started).
    @discardableResult
    public func start() async throws -> Int {
        guard case .idle = self.state else { throw HTTPServerError.alreadyStarted }
        self.state = .starting
        defer {
            let waiters = self.startWaiters
            self.startWaiters = []
            waiters.forEach { $0.resume() }
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        if let slice = self.configuration.eventLoopTimeSlice {
            // On the loop's one thread, which answers every probe (sched_setattr applies to the
            // calling thread). A refusal (a seccomp profile without sched_setattr) only costs latency.
            let failure = try? await group.next().submit { ThreadTimeSlice.request(slice) }.get()
            if let failure, failure != 0 {
                self.logger.debug(
                    "event loop time slice not set",
                    metadata: ["warren.http.error": "\(systemErrorText(failure))"]
                )
            }
        }
        do {
            let channel = try await self.makeBootstrap(group: group)
                .bind(host: self.configuration.host, port: self.configuration.port)
                .get()
            let address = channel.localAddress
            self.state = .running(group, channel)
            self.boundAddress = address
            self.logger.info(
                "HTTP server listening",
                metadata: [
                    "warren.http.host": "\(self.configuration.host)",
                    "warren.http.port": "\(address?.port ?? self.configuration.port)",
                ]
            )
            return address?.port ?? self.configuration.port
        } catch {
            self.state = .idle
            try? await group.shutdownGracefully()
            // NIO's IOError reads "bind(descriptor:ptr:bytes:): Address already in use) (errno: 98)":
            // say which address, and the system's reason alone.
            let reason = (error as? IOError).map { systemErrorText($0.errnoCode) } ?? "\(error)"
            throw HTTPServerError.cannotListen(host: self.configuration.host, port: self.configuration.port, reason: reason)
        }
    }

    /// Starts the server if needed and serves until graceful shutdown is triggered, the task is
    /// cancelled, or ``shutdown()`` is called; then shuts down gracefully and returns.
    public func run() async throws {
        if case .idle = self.state {
            try await self.start()
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                // Returns on graceful shutdown; throws on cancellation: both mean stop.
                try? await gracefulShutdown()
                await self.shutdown()
            }
            group.addTask {
                await self.waitUntilStopped()
            }
            await group.next()
            group.cancelAll()
        }
    }

    /// Stops gracefully: stops accepting (new connections are refused), closes idle connections,
    /// lets requests in flight finish with `Connection: close` for up to
    /// ``HTTPServerConfiguration/shutdownTimeout`` (then closes the rest), and shuts the event
    /// loop group down. Safe to call more than once and concurrently; returns when stopped.
    public func shutdown() async {
        while true {
            switch self.state {
            case .idle:
                self.state = .stopped
                self.resumeStopWaiters()
                return
            case .starting:
                await withCheckedContinuation { self.startWaiters.append($0) }
            case .running(let group, let channel):
                self.state = .shuttingDown
                await self.drain(group: group, serverChannel: channel)
                self.state = .stopped
                self.boundAddress = nil
                self.resumeStopWaiters()
                return
            case .shuttingDown:
                await self.waitUntilStopped()
                return
            case .stopped:
                return
            }
        }
    }

    // MARK: Private

    private func waitUntilStopped() async {
        if case .stopped = self.state { return }
        await withCheckedContinuation { self.stopWaiters.append($0) }
    }

    private func resumeStopWaiters() {
        let waiters = self.stopWaiters
        self.stopWaiters = []
        waiters.forEach { $0.resume() }
    }

    private func drain(group: MultiThreadedEventLoopGroup, serverChannel: any Channel) async {
        let connections = self.registry.beginShutdown()
        self.logger.info(
            "HTTP server shutting down",
            metadata: ["warren.http.connections": "\(connections.count)"]
        )
        try? await serverChannel.close()
        let loop = serverChannel.eventLoop
        for connection in connections {
            connection.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        }
        let allClosed = EventLoopFuture.andAllComplete(connections.map(\.closeFuture), on: loop)
        let deadline = loop.scheduleTask(in: self.configuration.shutdownTimeout) {
            for connection in connections {
                connection.close(promise: nil)
            }
        }
        try? await allClosed.get()
        deadline.cancel()
        // Async handlers still running (past the timeout) must not touch the loop once it is gone.
        self.gate.close()
        do {
            try await group.shutdownGracefully()
        } catch {
            self.logger.warning(
                "event loop group shutdown failed",
                metadata: ["warren.http.error": "\(error)"]
            )
        }
        self.logger.info("HTTP server stopped")
    }

    private func makeBootstrap(group: MultiThreadedEventLoopGroup) -> ServerBootstrap {
        let configuration = self.configuration
        let router = self.router
        let registry = self.registry
        let gate = self.gate
        let logger = self.logger
        return ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: Int32(clamping: configuration.backlog))
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.maxMessagesPerRead, value: 16)
            // TCP_NODELAY is an IPPROTO_TCP option (`.tcpOption`). `.socketOption(.tcp_nodelay)` would
            // be SOL_SOCKET level, where option 1 is SO_DEBUG: it needs CAP_NET_ADMIN, so as the
            // image's non-root user every accepted connection was reset (NIO closes the channel when
            // a child option fails). NIO sets it by default too; it is explicit here because probes
            // are tiny request/response pairs that must never wait for Nagle.
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    guard registry.admit(channel, limit: configuration.maxConnections) else {
                        logger.info(
                            "connection refused: too many connections or shutting down",
                            metadata: ["warren.http.max_connections": "\(configuration.maxConnections)"]
                        )
                        try sync.addHandler(RejectConnectionHandler())
                        return
                    }
                    channel.closeFuture.whenComplete { _ in registry.remove(channel) }
                    try HTTPConnectionPipeline.configure(
                        sync,
                        configuration: configuration,
                        router: router,
                        gate: gate,
                        logger: logger
                    )
                }
            }
    }
}

/// The system's text for an `errno` value and the number: "Address already in use (errno 98)".
private func systemErrorText(_ code: Int32) -> String {
    "\(String(cString: strerror(code))) (errno \(code))"
}
