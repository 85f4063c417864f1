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
    }
}
