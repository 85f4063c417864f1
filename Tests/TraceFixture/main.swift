// warren-trace-fixture: a Worker whose handler publishes, for the tracing test (Tests/WarrenIntegrationTests/
// TracingTests.swift). Subscription TRACE_IN takes a Hop; attempt 1 of a hop with `fail` throws (a retry);
// then it publishes the hop to TRACE_OUT, which a second subscription takes. Spans go over OTLP/HTTP to
// OTEL_EXPORTER_OTLP_ENDPOINT. Runs until SIGTERM.
#if OTLP
import Glibc
import Logging
import OTel
import Warren
import WarrenAMQP

struct Hop: Codable, Sendable {
    var id: String
    var fail: Bool
}

func setting(_ name: String) -> String {
    guard let value = getenv(name) else { fatalError("warren-trace-fixture: \(name) is not set") }
    return String(cString: value)
}

var otel = OTel.Configuration.default
otel.logs.enabled = false
otel.metrics.enabled = false
otel.traces.otlpExporter.protocol = .httpProtobuf
let exporter = try OTel.bootstrap(configuration: otel)

let (inbound, outbound) = (setting("TRACE_IN"), setting("TRACE_OUT"))
let logger = Logger(label: "warren-trace-fixture")
let worker = Worker(configuration: WorkerConfiguration(amqp: try AMQPConfiguration(url: setting("AMQP_URL")), healthPort: nil),
                    logger: logger)
let quick = SubscriptionOptions(retry: RetryPolicy(maxAttempts: 3, initialDelay: .milliseconds(100), maximumDelay: .milliseconds(100)))
try worker.subscribe(Subscription(Topology(queue: inbound), options: quick) { (hop: Hop, context: MessageContext) in
    context.logger.info("hop in", metadata: ["hop": "\(hop.id)", "attempt": "\(context.attempt)"])
    if hop.fail && context.attempt == 1 { throw InvalidHop() }
    try await context.publish(hop, routingKey: outbound)
})
try worker.subscribe(Subscription(Topology(queue: outbound), options: quick) { (hop: Hop, context: MessageContext) in
    context.logger.info("hop out", metadata: ["hop": "\(hop.id)"])
})
struct InvalidHop: Error {}
print("warren-trace-fixture: consuming \(inbound) → \(outbound)")
try await worker.runUntilSignalled(alongside: [exporter])
#else
fatalError("warren-trace-fixture needs the OTLP package trait")
#endif
