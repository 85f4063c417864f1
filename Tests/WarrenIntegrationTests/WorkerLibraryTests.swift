import Logging
import ServiceLifecycle
import Synchronization
import Testing
import Warren
import WarrenAMQP
import WarrenHealth
import WarrenTestSupport

/// The library as a team uses it: a Worker with several subscriptions, inside the application's own
/// ServiceGroup, against the real broker.
extension Integration {
    @Suite("Worker library against a real RabbitMQ")
    struct WorkerLibraryTests {
        struct Order: Codable, Sendable, Equatable {
            var id: String
            var total: Int
        }

        struct Receipt: Codable, Sendable, Equatable {
            var order: String
            var charged: Int
        }

        /// Another service of the application (say, its HTTP API): runs until the group shuts down.
        final class OtherService: Service {
            let stopped = Atomic<Bool>(false)

            func run() async throws {
                try? await gracefulShutdown()
                stopped.store(true, ordering: .relaxed)
            }
        }

        /// A worker with no side port, its logs captured, and a way to run it in a group beside another
        /// service.
        final class Harness: Sendable {
            let logs = LogCapture()
            let worker: Worker
            let names = Mutex<[String]>([])
            let other = OtherService()

            init() throws {
                let logs = self.logs
                worker = Worker(configuration: WorkerConfiguration(amqp: try AMQPConfiguration(url: Servers.amqpURL), healthPort: nil,
                                                                   reconnectPolicy: ReconnectPolicy(initialDelay: .milliseconds(50), maximumDelay: .milliseconds(200))),
                                logger: Logger(label: "warren.test") { logs.handler(label: $0) })
            }

            /// Retries fast enough for a test.
            static let quickRetry = RetryPolicy(maxAttempts: 3, initialDelay: .milliseconds(50), maximumDelay: .milliseconds(200))

            func name(_ prefix: String) -> String {
                let name = uniqueName(prefix)
                names.withLock { $0.append(name) }
                return name
            }

            /// Runs the worker beside ``other`` in one ServiceGroup until `body` returns, then shuts the
            /// group down gracefully and checks that both services stopped.
            func run(_ body: () async throws -> Void) async throws {
                let group = ServiceGroup(configuration: ServiceGroupConfiguration(
                    services: [.init(service: other), .init(service: worker)], logger: Logger(label: "warren.test.group")))
                let running = Task { try await group.run() }
                let consuming = await eventually(timeout: .seconds(10)) {
                    worker.subscriptions.allSatisfy { $0.phase == .consuming }
                }
                try #require(consuming, "every subscription consuming: \(worker.subscriptions.map(\.phase))")
                do {
                    try await body()
                } catch {
                    await group.triggerGracefulShutdown()
                    _ = try? await running.value
                    throw error
                }
                await group.triggerGracefulShutdown()
                try await running.value
                let otherStopped = other.stopped.load(ordering: .relaxed)
                #expect(otherStopped, "the other service shut down with the group")
                #expect(worker.subscriptions.allSatisfy { $0.phase == .stopped })
                #expect(logs.all.contains("stopped"))
            }

            func cleanUp() async {
                guard let amqp = try? await AMQPConnection.connect(configuration: try AMQPConfiguration(url: Servers.amqpURL)) else { return }
                for name in names.withLock({ $0 }) {
                    await amqp.deleteTopology(of: name, retry: [RetryPolicy(), Self.quickRetry])
                    try? await amqp.deleteExchange(name)
                }
                await amqp.close()
            }
        }

        static func publisher() async throws -> AMQPConnection {
            try await AMQPConnection.connect(configuration: try AMQPConfiguration(url: Servers.amqpURL))
        }

        static func json(_ order: Order) -> [UInt8] {
            Array(#"{"id":"\#(order.id)","total":\#(order.total)}"#.utf8)
        }

        @Test func aTopicExchangeRoutesToTwoSubscriptionsOfOneWorkerInsideAServiceGroup() async throws {
            let h = try Harness()
            let shop = h.name("shop")
            let europe = Mutex<[String]>([])
            let vip = Mutex<[String]>([])
            try h.worker.subscribe(Subscription(Topology(queue: h.name("eu"), bindings: [.topic(shop, "order.eu.*")])) {
                (order: Order, _: MessageContext) in europe.withLock { $0.append(order.id) }
            })
            try h.worker.subscribe(Subscription(Topology(queue: h.name("vip"), bindings: [.topic(shop, "order.*.vip"), .topic(shop, "order.us.#")])) {
                (order: Order, _: MessageContext) in vip.withLock { $0.append(order.id) }
            })
            let amqp = try await Self.publisher()
            try await h.run {
                for (key, id) in [("order.eu.new", "1"), ("order.us.new", "2"), ("order.eu.vip", "3"), ("order.ap.new", "4")] {
                    try await amqp.publish(Self.json(Order(id: id, total: 1)), exchange: shop, routingKey: key)
                }
                let routed = await eventually(timeout: .seconds(10)) {
                    europe.withLock { Set($0) } == ["1", "3"] && vip.withLock { Set($0) } == ["2", "3"]
                }
                #expect(routed, "eu got \(europe.withLock { $0 }), vip got \(vip.withLock { $0 })")
            }
            #expect(europe.withLock { $0.count } == 2 && vip.withLock { $0.count } == 2, "each exactly once")
            await amqp.close()
            await h.cleanUp()
        }

        @Test func aTypedHandlerPublishesAResultThatASecondConsumerReceivesWithTheCorrelationID() async throws {
            let h = try Harness()
            let shop = h.name("shop")
            let receipts = h.name("receipts")
            try h.worker.subscribe(Subscription(Topology(queue: h.name("orders"), bindings: [.direct(shop, "order.placed")])) {
                (order: Order, context: MessageContext) in
                try await context.publish(Receipt(order: order.id, charged: order.total), to: shop, routingKey: "receipt.created")
            })
            let amqp = try await Self.publisher()
            try await h.run {
                try await amqp.declareQueue(receipts, durable: false, autoDelete: true)
                try await amqp.bindQueue(receipts, exchange: shop, routingKey: "receipt.created")
                let consumer = try await amqp.consume(queue: receipts)
                try await amqp.publish(Self.json(Order(id: "o-42", total: 1999)), exchange: shop, routingKey: "order.placed",
                                       properties: AMQPProperties(contentType: "application/json", correlationID: "corr-7"))
                var iterator = consumer.makeAsyncIterator()
                let delivery = try #require(try await iterator.next())
                delivery.ack()
                #expect(delivery.properties.correlationID == "corr-7")
                #expect(delivery.properties.contentType == "application/json")
                #expect(delivery.properties.deliveryMode == 2)
                #expect(String(decoding: delivery.body, as: UTF8.self) == #"{"charged":1999,"order":"o-42"}"#
                    || String(decoding: delivery.body, as: UTF8.self) == #"{"order":"o-42","charged":1999}"#)
                try await consumer.cancel()
            }
            await amqp.close()
            await h.cleanUp()
        }

        @Test func anUndecodableBodyIsDeadLetteredWithTheReasonAndAThrowingHandlerIsRetried() async throws {
            let h = try Harness()
            let queue = h.name("typed")
            let shop = h.name("shop")
            let attempts = Mutex<[String: [Int]]>([:])
            let routing = Mutex<[String]>([])
            try h.worker.subscribe(Subscription(Topology(queue: queue, bindings: [.direct(shop, "order.placed")]),
                                                options: SubscriptionOptions(retry: Harness.quickRetry)) {
                (order: Order, context: MessageContext) in
                attempts.withLock { $0[order.id, default: []].append(context.attempt) }
                if order.id == "flaky" { routing.withLock { $0.append("\(context.exchange) \(context.routingKey)") } }
                if order.id == "flaky", context.attempt == 1 { throw CheckFailure("payment service timed out") }
            })
            let amqp = try await Self.publisher()
            try await h.run {
                try await amqp.publish(Array(#"{"id":"bad","total":"lots"}"#.utf8), routingKey: queue)
                try await amqp.publish(Self.json(Order(id: "flaky", total: 5)), exchange: shop, routingKey: "order.placed")
                let settled = try await eventually(timeout: .seconds(10)) {
                    try await amqp.inspectQueue("\(queue).dead").messageCount == 1
                        && attempts.withLock { $0["flaky"] } == [1, 2]
                }
                let dead = try await amqp.inspectQueue("\(queue).dead").messageCount
                #expect(settled, "dead: \(dead), attempts: \(attempts.withLock { $0 })")
                #expect(attempts.withLock { $0["bad"] } == nil, "the handler never ran for the undecodable body")
                #expect(routing.withLock { $0 } == ["\(shop) order.placed", "\(shop) order.placed"],
                        "a retry, back through the delay queue, still knows its first exchange and routing key")
                let consumer = try await amqp.consume(queue: "\(queue).dead")
                var letters = consumer.makeAsyncIterator()
                let letter = try #require(try await letters.next())
                letter.ack()
                try await consumer.cancel()
                #expect(letter.properties.headers["x-warren-reason"]?.stringValue?.hasPrefix("not decodable: total is not Int") == true,
                        "\(letter.properties.headers)")
                #expect(letter.properties.headers["x-warren-attempts"] == .int(1))
                #expect(try await amqp.inspectQueue(queue).messageCount == 0)
            }
            #expect(h.logs.all.contains("not decodable: total is not Int"), "\(h.logs.all)")
            #expect(h.logs.all.contains("payment service timed out"))
            await amqp.close()
            await h.cleanUp()
        }

        /// A handler past its timeout is cancelled and its message retried as a failed attempt, on the
        /// cooperative pool and on the connection's thread (where the handler runs, and where the
        /// retry's publish and its confirm are awaited).
        @Test(arguments: [HandlerExecutor.cooperativePool, .connectionThread])
        func aHandlerPastItsTimeoutIsCancelledAndRetried(_ executor: HandlerExecutor) async throws {
            let h = try Harness()
            let queue = h.name("slow")
            let attempts = Mutex<[Int]>([])
            let cancelled = Atomic<Bool>(false)
            let threads = Mutex<Set<String>>([])
            try h.worker.subscribe(Subscription(Topology(queue: queue),
                                                options: SubscriptionOptions(retry: Harness.quickRetry, handlerTimeout: .milliseconds(300),
                                                                             handlerExecutor: executor)) {
                (order: Order, context: MessageContext) in
                threads.withLock { _ = $0.insert(currentThreadName()) }
                attempts.withLock { $0.append(context.attempt) }
                if context.attempt == 1 {
                    do { try await Task.sleep(for: .seconds(30)) } catch { cancelled.store(true, ordering: .relaxed) }
                }
            })
            let amqp = try await Self.publisher()
            try await h.run {
                try await amqp.publish(Self.json(Order(id: "slow", total: 1)), routingKey: queue)
                let done = await eventually(timeout: .seconds(10)) { attempts.withLock { $0 } == [1, 2] }
                #expect(done, "\(attempts.withLock { $0 })")
                #expect(try await amqp.inspectQueue("\(queue).dead").messageCount == 0)
            }
            let wasCancelled = cancelled.load(ordering: .relaxed)
            #expect(wasCancelled, "the slow handler's task was cancelled")
            let ranOn = threads.withLock { $0 }
            #expect(executor == .connectionThread ? ranOn == ["warren-amqp"] : !ranOn.contains("warren-amqp"), "\(ranOn)")
            #expect(h.logs.all.contains("handler timed out"))
            #expect(h.logs.all.contains("ran past its timeout (0.3 s)"))
            await amqp.close()
            await h.cleanUp()
        }

        @Test func oneSubscriptionsGateClosingDoesNotPauseTheOther() async throws {
            let h = try Harness()
            let gated = h.name("gated")
            let free = h.name("free")
            let down = Atomic<Bool>(false)
            try h.worker.addCheck(HealthCheck(name: "ledger", timeout: .milliseconds(200), interval: .milliseconds(50)) {
                if down.load(ordering: .relaxed) { throw CheckFailure("ledger down") }
            })
            let handled = Mutex<[String]>([])
            try h.worker.subscribe(Subscription(Topology(queue: gated), options: SubscriptionOptions(needs: ["ledger"])) { delivery in
                handled.withLock { $0.append("gated") }
                return .ack
            })
            try h.worker.subscribe(Subscription(Topology(queue: free), options: SubscriptionOptions(needs: [])) { delivery in
                handled.withLock { $0.append("free") }
                return .ack
            })
            let amqp = try await Self.publisher()
            try await h.run {
                down.store(true, ordering: .relaxed)
                let paused = await eventually(timeout: .seconds(5)) {
                    if case .paused = h.worker.subscriptions[0].phase { return true }
                    return false
                }
                #expect(paused, "the subscription that needs the ledger pauses: \(h.worker.subscriptions[0].phase)")
                #expect(h.worker.subscriptions[1].phase == .consuming, "the other goes on")
                try await amqp.publish(Array("a".utf8), routingKey: gated)
                try await amqp.publish(Array("b".utf8), routingKey: free)
                #expect(await eventually(timeout: .seconds(5)) { handled.withLock { $0 } == ["free"] })
                try await Task.sleep(for: .milliseconds(300))
                #expect(try await amqp.inspectQueue(gated).messageCount == 1, "the paused queue holds its message")
                down.store(false, ordering: .relaxed)
                #expect(await eventually(timeout: .seconds(5)) { handled.withLock { $0 } == ["free", "gated"] })
            }
            await amqp.close()
            await h.cleanUp()
        }

        @Test func checksAndSubscriptionsAreRefusedOnceTheWorkerRuns() async throws {
            let h = try Harness()
            try h.worker.subscribe(Subscription(Topology(queue: h.name("late"))) { _ in .ack })
            try await h.run {
                #expect(throws: WorkerError.self) { try h.worker.addCheck(HealthCheck(name: "late") {}) }
                #expect(throws: WorkerError.self) { try h.worker.subscribe(Subscription("another") { _ in .ack }) }
                #expect(throws: WorkerError.self) { try h.worker.addStartupTask("late") {} }
            }
            await h.cleanUp()
        }
    }
}
