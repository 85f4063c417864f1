import Logging
import ServiceLifecycle
#if OTLP
import OTel
#endif

/// Span export for `event-worker`: OTLP/HTTP with swift-otel when the standard OpenTelemetry
/// environment asks for it (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
/// `OTEL_TRACES_EXPORTER=otlp`; `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER`… are read by swift-otel).
/// Without them no tracer is bootstrapped, and Warren records nothing at all.
enum TracingExport {
    /// Bootstraps the tracer and returns the exporter's service (run it beside the worker), or `nil`.
    static func bootstrap(environment: [String: String]) throws(SettingError) -> (any Service)? {
        guard environment["OTEL_SDK_DISABLED"]?.lowercased() != "true" else { return nil }
        let asked = environment["OTEL_EXPORTER_OTLP_ENDPOINT"] != nil || environment["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] != nil
            || environment["OTEL_TRACES_EXPORTER"]?.lowercased() == "otlp"
        guard asked else { return nil }
        #if OTLP
        var configuration = OTel.Configuration.default
        configuration.serviceName = "event-worker"  // OTEL_SERVICE_NAME overrides it
        configuration.logs.enabled = false          // logs go to stderr as JSON lines
        configuration.metrics.enabled = false       // metrics are scraped from /metrics
        configuration.traces.otlpExporter.protocol = .httpProtobuf
        do {
            return try OTel.bootstrap(configuration: configuration, environment: environment)
        } catch {
            throw SettingError(setting: "OTEL_*", problem: "the OpenTelemetry configuration was refused: \(error)")
        }
        #else
        throw SettingError(setting: "OTEL_EXPORTER_OTLP_ENDPOINT",
                           problem: "this event-worker was built without its OTLP exporter (the OTLP package trait)")
        #endif
    }
}
