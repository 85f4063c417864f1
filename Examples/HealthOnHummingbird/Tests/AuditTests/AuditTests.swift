import Audit
import Hummingbird
import HummingbirdTesting
import Logging
import Testing
import Warren
import WarrenAMQP
import WarrenTesting

@Suite struct AuditTests {
    @Test func eventsAreCountedAndOneWithoutActionIsDeadLettered() async throws {
        let counter = AuditCounter()
        let tester = SubscriptionTester(auditSubscription(counting: counter))
        #expect(try await tester.deliver(.json(AuditEvent(actor: "ann", action: "login"), exchange: "audit")).outcome == .ack)
        #expect(try await tester.deliver(.json(AuditEvent(actor: "bob", action: "logout"))).outcome == .ack)
        #expect(counter.value == 2)
        #expect(try await tester.deliver(.json(AuditEvent(actor: "eve", action: ""))).outcome == .deadLetter(reason: "no action"))
        if case .deadLetter = await tester.deliver(TestMessage(body: Array("{}".utf8))).outcome {} else { Issue.record("undecodable") }
        #expect(counter.value == 2)
    }

    /// The health routes on the app's router, against a worker that is configured but not running (no
    /// broker, no server): start-up has not happened, so started and ready fail; liveness passes (the
    /// watchdog's clock starts with the worker, well inside the stall threshold).
    @Test func healthRoutesAreServedByTheAppsRouter() async throws {
        let counter = AuditCounter()
        let configuration = WorkerConfiguration(amqp: try AMQPConfiguration(url: "amqp://127.0.0.1:1/%2F"),
                                                healthPort: nil, stallThreshold: .seconds(60))
        let worker = Worker(configuration: configuration, subscription: auditSubscription(counting: counter),
                            logger: Logger(label: "test"))
        let app = Application(router: makeRouter(worker: worker, counter: counter))
        try await app.test(.router) { client in
            func expectHealth(_ uri: String, _ status: HTTPResponse.Status, _ fragment: String,
                              sourceLocation: SourceLocation = #_sourceLocation) async throws {
                try await client.execute(uri: uri, method: .get) { response in
                    #expect(response.status == status, "\(uri)", sourceLocation: sourceLocation)
                    #expect(response.headers[.contentType] == "application/health+json", "\(uri)", sourceLocation: sourceLocation)
                    #expect(response.headers[.cacheControl] == "no-store", sourceLocation: sourceLocation)
                    #expect(String(buffer: response.body).contains(fragment), "\(uri): \(String(buffer: response.body))",
                            sourceLocation: sourceLocation)
                }
            }
            try await expectHealth("/internal/alive", .ok, #""status":"pass""#)
            try await expectHealth("/internal/started", .serviceUnavailable, "starting")
            try await expectHealth("/internal/ready", .serviceUnavailable, "starting")
            try await expectHealth("/internal/ready?exclude=rabbitmq", .serviceUnavailable, "starting")
            try await expectHealth("/internal/ready/rabbitmq", .serviceUnavailable, "not evaluated yet")
            try await expectHealth("/internal/ready/nope", .notFound, "known: rabbitmq")
            try await client.execute(uri: "/internal/alive", method: .head) { response in
                #expect(response.status == .ok)
                #expect(response.headers[.contentType] == "application/health+json")
                #expect(response.body.readableBytes == 0)
            }
            try await client.execute(uri: "/internal/nothing", method: .get) { response in
                #expect(response.status == .notFound)
            }
            try await client.execute(uri: "/audit/count", method: .get) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body) == "0\n")
            }
        }
    }
}
