import NIOCore
import NIOHTTP1
import WarrenHealth
import WarrenHTTP

extension HTTPRouter {
    /// The probe routes of the health contract, answered on the server's event loop from cached
    /// state only (no await, no dependency round trip), so they answer even when Swift's cooperative
    /// pool is stuck — which is exactly what `/internal/alive` must be able to report.
    ///
    /// - `/internal/alive`: liveness watchdog.
    /// - `/internal/ready` (`?exclude=<check>`, repeatable): every readiness check.
    /// - `/internal/ready/<check>`: one check; 404 for an unknown check.
    /// - `/internal/started`: start-up finished.
    public mutating func addHealthRoutes(_ reporter: HealthReporter) {
        get(HealthPaths.alive, .immediate { _ in reporter.liveness().httpResponse })
        get(HealthPaths.ready, .immediate { request in
            reporter.readiness(excluding: Set(request.queryValues(for: "exclude"))).httpResponse
        })
        get(prefix: HealthPaths.ready + "/", .immediate { request in
            guard let name = request.pathRemainder, !name.isEmpty, let report = reporter.readiness(check: name) else {
                // Check names are the user's: rendered through the report's JSON escaping like every string.
                let known = reporter.registry.checkNames(kind: .readiness).joined(separator: ", ")
                let report = HealthReport(status: .fail, output: "unknown check; known: \(known)")
                return .json(report.json(), status: .notFound, contentType: HealthReport.contentType)
            }
            return report.httpResponse
        })
        get(HealthPaths.started, .immediate { _ in reporter.startup().httpResponse })
    }
}

/// The probe paths; deploy files and the drift test use these same strings.
public enum HealthPaths {
    public static let alive = "/internal/alive"
    public static let ready = "/internal/ready"
    public static let started = "/internal/started"
    public static let metrics = "/metrics"
}

extension HealthReport {
    /// 200 or 503 with the `application/health+json` body; `Cache-Control: no-store`.
    var httpResponse: HTTPResponse {
        var response = HTTPResponse.json(json(), status: HTTPResponseStatus(statusCode: httpStatus), contentType: HealthReport.contentType)
        response.headers.replaceOrAdd(name: "Cache-Control", value: "no-store")
        return response
    }
}
