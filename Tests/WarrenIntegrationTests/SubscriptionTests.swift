import Logging
import Synchronization
import Testing
import Warren
import WarrenAMQP
import WarrenTestSupport

extension Integration {
    @Suite("Subscription against a real RabbitMQ")
    struct SubscriptionTests {
        /// A chunk handler that returns the wrong number of outcomes is a bug in the handler: the
        /// chunk counts as a failed attempt (retried, then dead-lettered), logged; the worker goes on.
        @Test func aHandlerReturningTheWrongNumberOfOutcomesFailsItsChunk() async throws {
            let logs = LogCapture()
            let logger = Logger(label: "warren.test") { logs.handler(label: $0) }
            let calls = Atomic<Int>(0)
            let queue = uniqueName("outcomes")
            let service = SubscriptionService(
                subscription: Subscription(Topology(queue: queue), options: SubscriptionOptions(
                    prefetch: 10, concurrency: 1, retry: RetryPolicy(maxAttempts: 2, initialDelay: .milliseconds(20), maximumDelay: .milliseconds(20))),
                                           minimumChunk: 1) { deliveries in
                    calls.add(1, ordering: .relaxed)
                    return deliveries.count == 1 ? [] : [.ack]  // never one outcome per delivery
                },
                configuration: try AMQPConfiguration(url: Servers.amqpURL),
                logger: logger)
            let running = Task { await service.run() }
            await service.waitUntilStarted()
            let publisher = try await AMQPConnection.connect(configuration: try AMQPConfiguration(url: Servers.amqpURL))
            for n in 0..<3 { try await publisher.publish(Array("m\(n)".utf8), routingKey: queue) }
            #expect(try await eventually(timeout: .seconds(20)) {
                try await publisher.inspectQueue("\(queue).dead").messageCount == 3
            }, "each message dead-lettered after 2 failed attempts")
            #expect(try await publisher.inspectQueue(queue).messageCount == 0)
            #expect(calls.load(ordering: .relaxed) >= 3, "the worker kept calling the handler")
            #expect(logs.all.contains("outcomes do not match deliveries"))
            #expect(logs.all.contains("returned 0 outcomes for 1 deliveries"))
            service.stop()
            _ = await running.result
            await publisher.deleteTopology(of: queue, retry: [service.subscription.options.retry])
            await publisher.close()
        }

        /// A reconnect only checks the topology (passive declares); something found missing — here
        /// the dead-letter queue, deleted while the worker ran — is declared again in full, so dead
        /// letters are never routed into nothing.
        @Test func aReconnectRedeclaresWhatWentMissing() async throws {
            let queue = uniqueName("redeclare")
            let retry = RetryPolicy(maxAttempts: 1, initialDelay: .milliseconds(20), maximumDelay: .milliseconds(20))
            let service = SubscriptionService(
                subscription: Subscription(Topology(queue: queue), options: SubscriptionOptions(prefetch: 10, concurrency: 1, retry: retry)) { deliveries in
                    deliveries.map { _ in .deadLetter(reason: "test") }
                },
                configuration: try AMQPConfiguration(url: Servers.amqpURL),
                reconnectPolicy: ReconnectPolicy(initialDelay: .milliseconds(50), maximumDelay: .milliseconds(200)),
                logger: Logger(label: "warren.test"))
            let running = Task { await service.run() }
            await service.waitUntilStarted()
            let admin = try await AMQPConnection.connect(configuration: try AMQPConfiguration(url: Servers.amqpURL))
            _ = try await admin.deleteQueue("\(queue).dead")
            let first = service.current.connection
            await first?.close()
            let back = await eventually(timeout: .seconds(15), every: .milliseconds(50)) {
                guard let connection = service.current.connection, connection !== first, service.current.consumerTag != nil else { return false }
                return connection.state.isOpen
            }
            #expect(back, "consuming again after the reconnect")
            try await admin.publish(Array("poison".utf8), routingKey: queue)
            #expect(try await eventually(timeout: .seconds(10)) {
                try await admin.inspectQueue("\(queue).dead").messageCount == 1
            }, "the dead-letter queue was declared again and received the dead letter")
            service.stop()
            _ = await running.result
            await admin.deleteTopology(of: queue, retry: [retry])
            await admin.close()
        }
    }
}
