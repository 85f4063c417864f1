import NIOCore
import WarrenSystem

/// Settings of the side-port HTTP server: where it listens and the limits that protect it.
///
/// Every property has a default suited to Kubernetes probes and a Prometheus scrape; tests
/// typically use `port: 0` (an ephemeral port) and short timeouts.
public struct HTTPServerConfiguration: Sendable, Hashable {
    /// The address to bind to. Default `"0.0.0.0"` (all IPv4 interfaces).
    public var host: String
    /// The TCP port to bind to. Default `8080`; `0` asks the kernel for an ephemeral port
    /// (read it back from ``HTTPServer/start()``).
    public var port: Int
    /// The most connections served at once. A connection accepted beyond this is closed at once,
    /// before anything is read from it, and counted as rejected.
    /// Default `512`: above a burst of a few hundred stalled connections (the read timeout reclaims them)
    /// and below the common 1024 open-files limit.
    public var maxConnections: Int
    /// The longest request line (`GET /path?query HTTP/1.1`, without CRLF) accepted, in bytes.
    /// A longer one is answered `414 URI Too Long` and the connection closed. Default 8 KiB.
    public var maxRequestLineBytes: Int
    /// The largest header block (every header line after the request line, up to and including
    /// the blank line that ends it) accepted, in bytes. A larger one is answered
    /// `431 Request Header Fields Too Large` and the connection closed. Default 16 KiB.
    public var maxHeaderBytes: Int
    /// How long a connection may sit with no request in progress (between keep-alive requests,
    /// or after accept before the first byte) before it is closed. Default 30 s.
    public var idleTimeout: TimeAmount
    /// How long a request may take to arrive completely, counted from its first byte (or, for a
    /// request pipelined behind another, from when the response to that one is written: reading
    /// pauses while a response is outstanding). A request still incomplete after this (a
    /// slowloris client) gets its connection closed. Default 5 s.
    public var readTimeout: TimeAmount
    /// The longest ``HTTPServer/shutdown()`` waits for in-flight requests before it closes
    /// the remaining connections forcibly. Default 10 s.
    public var shutdownTimeout: TimeAmount
    /// The listen backlog of the server socket (the kernel caps it at `net.core.somaxconn`).
    /// A burst of connects larger than this can see SYNs dropped and retried a second later.
    /// Default 1024.
    public var backlog: Int
    /// The time slice the server's event loop thread asks the kernel for (``ThreadTimeSlice``;
    /// Linux 6.12 and later), or `nil` for the kernel's default. Default 100 µs, the shortest: the
    /// thread sleeps until a probe arrives and then runs for a fraction of a millisecond; with a
    /// slice shorter than the running thread's it may preempt it at once instead of waiting behind
    /// the consume path or the broker for up to a scheduler tick when every core is busy. Its
    /// share of the CPU is unchanged.
    public var eventLoopTimeSlice: Duration?

    /// Creates a configuration; every argument has a default.
    public init(
        host: String = "0.0.0.0",
        port: Int = 8080,
        maxConnections: Int = 512,
        maxRequestLineBytes: Int = 8 * 1024,
        maxHeaderBytes: Int = 16 * 1024,
        idleTimeout: TimeAmount = .seconds(30),
        readTimeout: TimeAmount = .seconds(5),
        shutdownTimeout: TimeAmount = .seconds(10),
        backlog: Int = 1024,
        eventLoopTimeSlice: Duration? = .microseconds(100)
    ) {
        self.host = host
        self.port = port
        self.maxConnections = maxConnections
        self.maxRequestLineBytes = maxRequestLineBytes
        self.maxHeaderBytes = maxHeaderBytes
        self.idleTimeout = idleTimeout
        self.readTimeout = readTimeout
        self.shutdownTimeout = shutdownTimeout
        self.backlog = backlog
        self.eventLoopTimeSlice = eventLoopTimeSlice
    }
}
