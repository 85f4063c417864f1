import NIOCore
import NIOHTTP1
import Synchronization
import WarrenHealth
import WarrenHTTP
import WarrenSystem

/// The paths of the health contract.
public enum HealthPaths {
    /// Liveness: the worker's own loops tick (never a dependency).
    public static let alive = "/internal/alive"
    /// Readiness: started, not shutting down, every readiness check passes; `/<check>` for one.
    public static let ready = "/internal/ready"
    /// Startup: first connect, topology and start-up tasks done.
    public static let started = "/internal/started"
    /// The Prometheus exposition, when the worker has a metrics route.
    public static let metrics = "/metrics"
}

/// The health routes as plain values, to mount on an application's own HTTP server (Hummingbird,
/// Vapor, …) instead of, or beside, the worker's side port. Answers come from cached state only
/// (no await, no dependency round trip), so they are cheap enough for any server's event loop.
///
/// ```swift
/// let health = worker.healthEndpoints
/// router.get("/internal/**") { request, _ in
///     let answer = health.respond(path: request.uri.path, query: request.uri.query) ?? .notFound
///     return Response(status: .init(code: answer.status), headers: [.contentType: answer.contentType],
///                     body: .init(byteBuffer: ByteBuffer(bytes: answer.body)))
/// }
/// ```
public struct HealthEndpoints: Sendable {
    /// An answer: status code, content type and body (`application/health+json`).
    public struct Response: Sendable, Equatable {
        /// The HTTP status code: 200, 503, or 404 for an unknown check.
        public var status: Int
        /// `application/health+json` for reports.
        public var contentType: String
        /// The body, UTF-8 JSON (send none for HEAD).
        public var body: [UInt8]

        /// 404 for a path that is no health route.
        public static let notFound = Response(status: 404, contentType: "text/plain; charset=utf-8", body: Array("not found\n".utf8))
    }

    /// Where the answers come from: cached check results and the liveness watchdog.
    public let reporter: HealthReporter

    /// Endpoints answering from `reporter`; a ``Worker`` gives you its own as ``Worker/healthEndpoints``.
    public init(reporter: HealthReporter) {
        self.reporter = reporter
    }

    /// The answer to `GET path?query`, or `nil` when `path` is not a health route.
    ///
    /// - `/internal/alive`: the liveness watchdog (and the uptime).
    /// - `/internal/ready` (`?exclude=<check>`, repeatable): every readiness check.
    /// - `/internal/ready/<check>`: one check; 404 for an unknown check.
    /// - `/internal/started`: start-up finished.
    public func respond(path: String, query: String? = nil) -> Response? {
        let request = HTTPRequest(method: .GET, uri: query.map { "\(path)?\($0)" } ?? path)
        switch request.path {
        case HealthPaths.alive:
            return Response(reporter.liveness())
        case HealthPaths.ready:
            return Response(reporter.readiness(excluding: Set(request.queryValues(for: "exclude"))))
        case HealthPaths.started:
            return Response(reporter.startup())
        case let other where other.hasPrefix(HealthPaths.ready + "/"):
            let name = PercentEncoding.decode(other.dropFirst(HealthPaths.ready.count + 1)).map { String(decoding: $0, as: UTF8.self) }
            return readiness(check: name)
        default:
            return nil
        }
    }

    /// `/internal/ready/<check>`: that check's report, or a 404 naming the known checks.
    func readiness(check name: String?) -> Response {
        if let name, !name.isEmpty, let report = reporter.readiness(check: name) {
            return Response(report)
        }
        // Check names are the user's: rendered through the report's JSON escaping like every string.
        let known = reporter.registry.checkNames(kind: .readiness).joined(separator: ", ")
        let report = HealthReport(status: .fail, output: "unknown check; known: \(known)",
                                  version: reporter.version, releaseId: reporter.releaseId)
        return Response(status: 404, contentType: HealthReport.contentType, body: Array(report.json().utf8))
    }
}

extension HealthEndpoints.Response {
    init(_ report: HealthReport) {
        self.init(status: report.httpStatus, contentType: HealthReport.contentType, body: Array(report.json().utf8))
    }

    /// The answer as the side port serves it, with `Cache-Control: no-store`.
    var httpResponse: HTTPResponse {
        var response = HTTPResponse(status: HTTPResponseStatus(statusCode: status), bytes: body, contentType: contentType)
        response.headers.replaceOrAdd(name: "Cache-Control", value: "no-store")
        return response
    }
}

extension HTTPRouter {
    /// The probe routes of the health contract (see ``HealthEndpoints``) on the side port, answered on
    /// its event loop, so they answer even when Swift's cooperative pool is stuck — which is exactly
    /// what `/internal/alive` must be able to report.
    public mutating func addHealthRoutes(_ reporter: HealthReporter) {
        let endpoints = HealthEndpoints(reporter: reporter)
        let alive = RenderedReport<HealthReporter.LivenessInputs>()
        let ready = RenderedReport<HealthReport>(), started = RenderedReport<HealthReport>()
        get(HealthPaths.alive, .immediate { _ in alive.response(for: reporter.livenessInputs(), render: reporter.liveness) })
        get(HealthPaths.ready, .immediate { request in
            let excluded = request.queryValues(for: "exclude")
            if excluded.isEmpty { return ready.response(for: reporter.readiness()) }
            return HealthEndpoints.Response(reporter.readiness(excluding: Set(excluded))).httpResponse
        })
        get(prefix: HealthPaths.ready + "/", .immediate { request in endpoints.readiness(check: request.pathRemainder).httpResponse })
        get(HealthPaths.started, .immediate { _ in started.response(for: reporter.startup()) })
    }
}

/// The last report a route rendered, and its response. Readiness and startup reports change when a
/// check result does (every check interval at most), liveness every millisecond (its time and
/// uptime), while probes may come far more often: a report equal to the last one reuses its JSON and
/// response head (under wrk: 1.6× the requests per second for `/internal/ready`). The key is what
/// the report is made of, taken afresh for every request (for readiness, the report itself; for
/// liveness, ``HealthReporter/LivenessInputs``, so a probe within the same millisecond makes no
/// report at all), so nothing is served staler than what it is made from.
final class RenderedReport<Key: Equatable & Sendable>: Sendable {
    private let last = Mutex<(key: Key, response: HTTPResponse)?>(nil)

    func response(for key: Key, render: (Key) -> HealthReport) -> HTTPResponse {
        if let hit = last.withLock({ last in last.flatMap { $0.key == key ? $0.response : nil } }) { return hit }
        var response = HealthEndpoints.Response(render(key)).httpResponse
        response.prepareHead()
        last.withLock { $0 = (key, response) }
        return response
    }
}

extension RenderedReport where Key == HealthReport {
    func response(for report: HealthReport) -> HTTPResponse {
        response(for: report, render: { $0 })
    }
}
