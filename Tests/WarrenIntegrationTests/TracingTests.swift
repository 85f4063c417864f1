import Foundation
import Testing
import Warren
import WarrenAMQP
import WarrenTestSupport

/// A real OTLP/HTTP receiver on loopback (scripts/otlp-receiver: Python, decoding with the
/// opentelemetry-proto package), writing every span it receives as a JSON line.
final class OTLPReceiver: @unchecked Sendable {
    /// The port the receiver bound (it picks a free one: a random port was once taken by another
    /// listener, and the test then waited for spans sent to that one).
    let port: Int
    let out = FileManager.default.temporaryDirectory.appendingPathComponent("otlp-\(UUID().uuidString).jsonl")
    private let process = Process()

    init() async throws {
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        let portFile = out.path + ".port"
        process.executableURL = Servers.root.appendingPathComponent("scripts/otlp-receiver")
        process.arguments = ["--port", "0", "--port-file", portFile, "--out", out.path]
        process.standardInput = FileHandle.nullDevice
        let receiver = process
        try withDefaultSignalMask { try receiver.run() }
        var bound: Int?
        // The first run of scripts/otlp-receiver installs its venv: allow a minute.
        _ = await eventually(timeout: .seconds(60), every: .milliseconds(100)) {
            bound = (try? String(contentsOfFile: portFile, encoding: .utf8)).flatMap { Int($0) }
            return bound != nil || !receiver.isRunning
        }
        try? FileManager.default.removeItem(atPath: portFile)
        guard let bound else {
            if receiver.isRunning { receiver.terminate() }
            throw Servers.Failure("the OTLP receiver did not start listening")
        }
        port = bound
    }

    /// The OpenTelemetry environment that sends a process's spans here, quickly.
    var environment: [String: String] {
        ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:\(port)", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
         "OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_TRACES_SAMPLER": "always_on"]
    }

    struct Span {
        var traceID: String
        var spanID: String
        var parentSpanID: String
        var name: String
        var kind: String
        var status: Int
        var service: String?
        var attributes: [String: Any]
    }

    var spans: [Span] {
        let text = (try? String(contentsOf: out, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { line in
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
            return Span(traceID: o["trace_id"] as? String ?? "", spanID: o["span_id"] as? String ?? "",
                        parentSpanID: o["parent_span_id"] as? String ?? "", name: o["name"] as? String ?? "",
                        kind: o["kind"] as? String ?? "", status: o["status"] as? Int ?? 0, service: o["service"] as? String,
                        attributes: o["attributes"] as? [String: Any] ?? [:])
        }
    }

    /// Waits until `condition` holds for the spans received; returns them.
    func spans(until timeout: Duration, _ condition: ([Span]) -> Bool) async -> [Span] {
        _ = await eventually(timeout: timeout, every: .milliseconds(100)) { condition(self.spans) }
        return spans
    }

    func stop() {
        if process.isRunning { process.terminate() }
        try? FileManager.default.removeItem(at: out)
    }
}

/// A W3C `traceparent` with random ids: (header, trace id, span id).
func makeTraceparent() -> (String, String, String) {
    func hex(_ bytes: Int) -> String { (0..<bytes).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined() }
    let trace = hex(16)
    let span = hex(8)
    return ("00-\(trace)-\(span)-01", trace, span)
}

extension Integration {
    @Suite("Tracing over OTLP to a real receiver")
    struct TracingTests {
        /// A message published with a `traceparent` yields a consumer span in that trace, child of the
        /// publisher's span, with the messaging attributes; `event-worker publish` starts a trace per event.
        @Test func eventWorkerContinuesTheTraceOfAMessageAndPublishStartsTraces() async throws {
            let receiver = try await OTLPReceiver()
            defer { receiver.stop() }
            let f = try await IngestFixture.make()
            var environment = f.environment.merging(receiver.environment) { $1 }
            environment["OTEL_SERVICE_NAME"] = "event-worker-under-test"
            let worker = try WorkerProcess(environment: environment)
            // Stopped whatever the outcome: a worker left running keeps its broker connection, which
            // a later test counting event-worker connections would see.
            defer { Task { await worker.terminate() } }
            let (traceparent, trace, parent) = makeTraceparent()
            let id = UUID().uuidString.lowercased()
            let body = #"{"id":"\#(id)","type":"traced","payload":{"run":"\#(f.run)"}}"#
            try await f.amqp.publish(Array(body.utf8), routingKey: f.queue, properties: AMQPProperties(
                contentType: "application/json", headers: ["traceparent": .string(traceparent)], deliveryMode: 2, messageID: id))
            let spans = await receiver.spans(until: .seconds(20)) { $0.contains { $0.traceID == trace } }
            let consumer = try #require(spans.first { $0.traceID == trace }, "a span in the message's trace: \(spans.map(\.name))")
            #expect(consumer.parentSpanID == parent, "child of the publisher's span")
            #expect(consumer.kind == "consumer")
            #expect(consumer.name == "\(f.queue) process")
            #expect(consumer.service == "event-worker-under-test")
            #expect(consumer.attributes["messaging.system"] as? String == "rabbitmq")
            #expect(consumer.attributes["messaging.destination.subscription.name"] as? String == f.queue)
            #expect(consumer.attributes["messaging.rabbitmq.destination.routing_key"] as? String == f.queue)
            #expect(consumer.attributes["messaging.message.id"] as? String == id)
            #expect(consumer.attributes["messaging.message.body.size"] as? Int == body.utf8.count
                || (consumer.attributes["messaging.message.body.size"] as? String) == String(body.utf8.count))
            #expect(consumer.attributes["warren.outcome"] as? String == "ack")

            // `event-worker publish`: a producer span per event, which the worker's consumer span continues.
            let publish = try await WorkerProcess.runToEnd(["publish", "--count", "3"],
                                                           environment: f.environment.merging(receiver.environment) { $1 })
            #expect(publish.status == 0, "\(publish.output)")
            let traced = await receiver.spans(until: .seconds(20)) { spans in
                let producers = spans.filter { $0.kind == "producer" && $0.name == "\(f.queue) publish" }
                return producers.count == 3 && producers.allSatisfy { p in spans.contains { $0.kind == "consumer" && $0.parentSpanID == p.spanID } }
            }
            let producers = traced.filter { $0.kind == "producer" && $0.name == "\(f.queue) publish" }
            #expect(producers.count == 3 && Set(producers.map(\.traceID)).count == 3, "one new trace per event")
            for producer in producers {
                let continued = traced.first { $0.kind == "consumer" && $0.parentSpanID == producer.spanID }
                #expect(continued?.traceID == producer.traceID, "the worker continues the publisher's trace")
            }
            worker.signal(SIGTERM)
            #expect(await worker.waitForExit(timeout: 25) == 0)
            await f.cleanUp()
        }

        /// A handler's publish is a child span whose context the next consumer continues; a retried
        /// message keeps its trace; the handler's log lines carry the trace and span ids.
        @Test func aHandlersPublishAndARetryStayInTheTrace() async throws {
            let receiver = try await OTLPReceiver()
            defer { receiver.stop() }
            let inbound = uniqueName("trace-in")
            let outbound = uniqueName("trace-out")
            var environment = receiver.environment
            environment["OTEL_SERVICE_NAME"] = "warren-trace-fixture"
            environment["TRACE_IN"] = inbound
            environment["TRACE_OUT"] = outbound
            let fixture = try WorkerProcess([], environment: environment, executable: "warren-trace-fixture")
            let amqp = try await AMQPConnection.connect(configuration: try AMQPConfiguration(url: Servers.amqpURL))
            // Both consumers registered (a passive declare of a queue not declared yet would close our channel).
            let consuming = await eventually(timeout: .seconds(20)) {
                fixture.output.split(separator: "\n").filter { $0.contains("consuming") }.count >= 2
            }
            #expect(consuming, "\(fixture.output.suffix(1000))")
            let (traceparent, trace, parent) = makeTraceparent()
            try await amqp.publish(Array(#"{"id":"h-1","fail":true}"#.utf8), routingKey: inbound,
                                   properties: AMQPProperties(contentType: "application/json", headers: ["traceparent": .string(traceparent)]))
            let spans = await receiver.spans(until: .seconds(20)) { spans in
                spans.contains { $0.traceID == trace && $0.name == "\(outbound) process" }
            }
            let inTrace = spans.filter { $0.traceID == trace }
            let attempts = inTrace.filter { $0.name == "\(inbound) process" }
            #expect(attempts.count == 2, "attempt 1 (failed) and 2, both in the trace: \(inTrace.map(\.name))")
            #expect(attempts.allSatisfy { $0.parentSpanID == parent }, "each attempt a child of the publisher's span")
            #expect(attempts.contains { $0.attributes["warren.outcome"] as? String == "retry" && $0.status == 2 })
            let succeeded = try #require(attempts.first { $0.attributes["warren.outcome"] as? String == "ack" })
            let producer = try #require(inTrace.first { $0.kind == "producer" }, "the handler's publish")
            #expect(producer.parentSpanID == succeeded.spanID, "a child of the attempt that published")
            #expect(producer.attributes["messaging.rabbitmq.destination.routing_key"] as? String == outbound)
            let next = try #require(inTrace.first { $0.name == "\(outbound) process" })
            #expect(next.parentSpanID == producer.spanID, "the next consumer continues from the publish")
            // The handler's log line names the trace.
            let hopIn = fixture.output.split(separator: "\n").filter { $0.contains("hop in") }
            #expect(hopIn.contains { $0.contains(trace) }, "\(hopIn)")
            fixture.signal(SIGTERM)
            #expect(await fixture.waitForExit(timeout: 25) == 0)
            for queue in [inbound, outbound] { await amqp.deleteTopology(of: queue, retry: [RetryPolicy(maxAttempts: 3, initialDelay: .milliseconds(100), maximumDelay: .milliseconds(100))]) }
            await amqp.close()
        }
    }
}
