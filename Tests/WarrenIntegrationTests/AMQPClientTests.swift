import Foundation
import Testing
import WarrenAMQP
import WarrenTestSupport

extension Integration {
    @Suite("AMQP client against a real RabbitMQ")
    struct AMQPClientTests {
        let config: AMQPConfiguration

        init() throws {
            var config = try AMQPConfiguration(url: Servers.amqpURL, connectionName: "warren-tests")
            config.heartbeat = 2
            self.config = config
        }

        @Test func publishesAndConsumesTenThousandWithConfirmsAndAcks() async throws {
            let queue = uniqueName("test-10k")
            let count = 10_000
            let publisher = try await AMQPConnection.connect(configuration: config)
            try await publisher.declareQueue(queue, durable: false, autoDelete: false)
            // Publish with confirms, 200 in flight at a time.
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<count {
                    if i >= 200 { try await group.next() }
                    group.addTask {
                        try await publisher.publish(Array("\(i)".utf8), routingKey: queue, properties: .persistentJSON)
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await publisher.inspectQueue(queue).messageCount == UInt32(count))

            let consumer = try await AMQPConnection.connect(configuration: config)
            try await consumer.setPrefetch(500)
            let deliveries = try await consumer.consume(queue: queue)
            var seen = Set<Int>()
            var duplicates = 0
            for try await delivery in deliveries {
                let n = Int(String(decoding: delivery.body, as: UTF8.self))!
                if !seen.insert(n).inserted { duplicates += 1 }
                #expect(!delivery.redelivered)
                #expect(delivery.routingKey == queue)
                delivery.ack()
                if seen.count == count { break }
            }
            #expect(seen.count == count)
            #expect(duplicates == 0)
            // Every ack reached the broker: nothing ready, nothing unacked (those would be requeued on close).
            try await deliveries.cancel()
            await consumer.close()
            let info = try await publisher.inspectQueue(queue)
            #expect(info.messageCount == 0)
            #expect(info.consumerCount == 0)
            try await publisher.deleteQueue(queue)
            await publisher.close()
        }

        /// The owner thread reads content frames itself: an empty body, one frame, and bodies spanning
        /// several frames (frame_max is 128 KiB) arrive byte for byte, with their properties.
        @Test func bodiesOfEverySizeArriveWhole() async throws {
            let queue = uniqueName("test-sizes")
            let connection = try await AMQPConnection.connect(configuration: config)
            try await connection.declareQueue(queue, durable: false, autoDelete: false)
            let sizes = [0, 1, 131_064, 131_072, 300_000, 2_000_000]
            var bodies: [[UInt8]] = []
            for (index, size) in sizes.enumerated() {
                let body = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ index) }
                bodies.append(body)
                var properties = AMQPProperties.persistentJSON
                properties.messageID = "m\(index)"
                properties.headers = ["x-size": .int(Int64(size))]
                try await connection.publish(body, routingKey: queue, properties: properties)
            }
            let deliveries = try await connection.consume(queue: queue)
            var index = 0
            for try await delivery in deliveries {
                #expect(delivery.body == bodies[index], "body \(index) of \(sizes[index]) bytes")
                #expect(delivery.properties.messageID == "m\(index)")
                #expect(delivery.properties.contentType == "application/json")
                #expect(delivery.properties.headers["x-size"] == .int(Int64(sizes[index])))
                delivery.ack()
                index += 1
                if index == sizes.count { break }
            }
            try await deliveries.cancel()
            #expect(try await connection.inspectQueue(queue).messageCount == 0)
            try await connection.deleteQueue(queue)
            await connection.close()
        }

        /// Tasks that prefer the connection's executor run on its I/O thread: consuming, acking and a
        /// publish awaiting its confirm never leave it. Once the connection closed, they still run
        /// (on the global executor), and one that was waiting for a delivery is woken by the close.
        @Test func tasksPreferringTheConnectionRunOnItsIOThread() async throws {
            let queue = uniqueName("test-executor")
            let connection = try await AMQPConnection.connect(configuration: config)
            try await connection.declareQueue(queue, durable: false, autoDelete: false)
            let count = 2_000
            try await withThrowingTaskGroup(of: Void.self) { group in
                for i in 0..<count {
                    if i >= 200 { try await group.next() }
                    group.addTask { try await connection.publish(Array("\(i)".utf8), routingKey: queue) }
                }
                try await group.waitForAll()
            }
            try await connection.setPrefetch(100)
            let threads = try await withTaskExecutorPreference(connection.taskExecutor) {
                var threads: Set<String> = [currentThreadName()]
                let deliveries = try await connection.consume(queue: queue)
                var received = Set<String>()  // published concurrently: in no particular order
                for try await delivery in deliveries {
                    threads.insert(currentThreadName())
                    received.insert(String(decoding: delivery.body, as: UTF8.self))
                    delivery.ack()
                    if received.count == count { break }
                }
                #expect(received == Set((0..<count).map { "\($0)" }))
                try await deliveries.cancel()
                threads.insert(currentThreadName())
                try await connection.publish(Array("last".utf8), routingKey: queue)
                threads.insert(currentThreadName())
                return threads
            }
            #expect(threads == ["warren-amqp"], "every step on the connection's I/O thread: \(threads)")
            #expect(try await connection.inspectQueue(queue).messageCount == 1, "every ack reached the broker")

            // A consumer task waiting on the connection's thread when it closes is woken and ends.
            let waiting = Task(executorPreference: connection.taskExecutor) { () async throws -> (Int, String) in
                let deliveries = try await connection.consume(queue: queue)
                var received = 0
                for try await delivery in deliveries {
                    received += 1
                    _ = delivery  // not acked: the close returns it to the queue
                }
                return (received, currentThreadName())
            }
            let consuming = await eventually(timeout: .seconds(5)) { (try? await connection.inspectQueue(queue).consumerCount) == 1 }
            #expect(consuming)
            await connection.close()
            let (received, endedOn) = try await waiting.value
            #expect(received == 1)
            #expect(endedOn != "warren-amqp", "after the close, on the global executor")
            let after = await Task(executorPreference: connection.taskExecutor) { currentThreadName() }.value
            #expect(after != "warren-amqp")

            let cleanup = try await AMQPConnection.connect(configuration: config)
            #expect(try await cleanup.inspectQueue(queue).messageCount == 1, "the unacked delivery went back to the queue")
            try await cleanup.deleteQueue(queue)
            await cleanup.close()
        }

        @Test func nackWithRequeueRedelivers() async throws {
            let queue = uniqueName("test-nack")
            let connection = try await AMQPConnection.connect(configuration: config)
            try await connection.declareQueue(queue, durable: false)
            try await connection.publish(Array("hello".utf8), routingKey: queue)
            try await connection.setPrefetch(1)
            let deliveries = try await connection.consume(queue: queue)
            var iterator = deliveries.makeAsyncIterator()
            let first = try #require(try await iterator.next())
            #expect(!first.redelivered)
            first.nack(requeue: true)
            let second = try #require(try await iterator.next())
            #expect(second.redelivered)
            #expect(second.body == Array("hello".utf8))
            second.ack()
            try await deliveries.cancel()
            #expect(try await connection.inspectQueue(queue).messageCount == 0)
            try await connection.deleteQueue(queue)
            await connection.close()
        }

        @Test func rejectWithoutRequeueDeadLetters() async throws {
            let queue = uniqueName("test-dlx")
            let connection = try await AMQPConnection.connect(configuration: config)
            try await connection.declareExchange("\(queue).dlx", type: "fanout", durable: false, autoDelete: false)
            try await connection.declareQueue("\(queue).dead", durable: false)
            try await connection.bindQueue("\(queue).dead", exchange: "\(queue).dlx")
            try await connection.declareQueue(queue, durable: false, arguments: ["x-dead-letter-exchange": .string("\(queue).dlx")])
            try await connection.publish(Array("{not json".utf8), routingKey: queue,
                                         properties: AMQPProperties(headers: ["attempt": 1], messageID: "m-1"))
            let deliveries = try await connection.consume(queue: queue)
            for try await delivery in deliveries {
                #expect(delivery.properties.messageID == "m-1")
                #expect(delivery.properties.headers["attempt"] == .int(1))
                delivery.reject(requeue: false)
                break
            }
            try await deliveries.cancel()
            let arrived = try await eventually(timeout: .seconds(2)) {
                try await connection.inspectQueue("\(queue).dead").messageCount == 1
            }
            #expect(arrived)
            #expect(try await connection.inspectQueue(queue).messageCount == 0)
            // The dead letter carries its history in x-death.
            let dead = try await connection.consume(queue: "\(queue).dead")
            for try await delivery in dead {
                #expect(delivery.body == Array("{not json".utf8))
                guard case .array(let deaths)? = delivery.properties.headers["x-death"],
                      case .table(let death)? = deaths.first else {
                    Issue.record("x-death header missing")
                    break
                }
                #expect(death["reason"]?.stringValue == "rejected")
                #expect(death["queue"]?.stringValue == queue)
                delivery.ack()
                break
            }
            try await dead.cancel()
            for name in [queue, "\(queue).dead"] { try await connection.deleteQueue(name) }
            try await connection.deleteExchange("\(queue).dlx")
            await connection.close()
        }

        @Test func verifyConsumerIsARoundTripThatSeesCancellation() async throws {
            let queue = uniqueName("test-verify")
            let connection = try await AMQPConnection.connect(configuration: config)
            try await connection.declareQueue(queue, durable: false)
            let deliveries = try await connection.consume(queue: queue)
            let info = try await connection.verifyConsumer(deliveries.tag, queue: queue)
            #expect(info.consumerCount == 1)
            try await deliveries.cancel()
            await #expect(throws: AMQPError.self) { try await connection.verifyConsumer(deliveries.tag, queue: queue) }
            #expect(connection.state == .open, "a cancelled consumer is not a broken connection")
            // The broker cancels a consumer whose queue is deleted (consumer_cancel_notify).
            let again = try await connection.consume(queue: queue)
            let other = try await AMQPConnection.connect(configuration: config)
            try await other.deleteQueue(queue)
            await other.close()
            do {
                for try await _ in again {}
                Issue.record("the consumer of a deleted queue kept going")
            } catch let error as AMQPError {
                #expect(error.code == .consumerCancelledByBroker)
            }
            await connection.close()
        }

        @Test func requestRepliesCountAsTrafficForTheHeartbeat() async throws {
            // Only request/reply traffic (as readiness checks make): the broker then sends no
            // heartbeats, and the replies must keep the connection alive.
            let queue = uniqueName("test-idle")
            let connection = try await AMQPConnection.connect(configuration: config)  // heartbeat 2 s
            try await connection.declareQueue(queue, durable: false)
            let clock = ContinuousClock()
            let end = clock.now + .seconds(6)
            while clock.now < end {
                _ = try await connection.inspectQueue(queue)
                try await Task.sleep(for: .milliseconds(300))
            }
            #expect(connection.state == .open, "\(connection.state)")
            try await connection.deleteQueue(queue)
            await connection.close()
        }

        @Test func cleanCloseEndsConsumersAndRefusesWork() async throws {
            let queue = uniqueName("test-close")
            let connection = try await AMQPConnection.connect(configuration: config)
            try await connection.declareQueue(queue, durable: false, autoDelete: true)
            let deliveries = try await connection.consume(queue: queue)
            await connection.close()
            #expect(connection.state == .closed(nil))
            var count = 0
            for try await _ in deliveries { count += 1 }
            #expect(count == 0)
            await #expect(throws: AMQPError.self) { try await connection.publish([1], routingKey: queue) }
        }

        @Test func badCredentialsSayWhatFailedWithoutThePassword() async throws {
            var bad = config
            bad.password = "wrong-password-123"
            do {
                _ = try await AMQPConnection.connect(configuration: bad)
                Issue.record("login with a wrong password succeeded")
            } catch let error as AMQPError {
                #expect(error.code == .authenticationFailed)
                #expect(!error.description.contains("wrong-password-123"))
            }
            var nowhere = config
            nowhere.port = 1
            await #expect(throws: AMQPError.self) { _ = try await AMQPConnection.connect(configuration: nowhere) }
        }

        // MARK: Faults (the broker is stopped, killed, frozen; each test leaves it running)

        @Test func killedBrokerIsReportedClosedWithinOneSecond() async throws {
            let connection = try await AMQPConnection.connect(configuration: config)
            let clock = ContinuousClock()
            let killed = clock.now
            try await Servers.signal(.rabbitmq, SIGKILL)
            let closed = try await closedState(of: connection)
            let elapsed = clock.now - killed
            try await Servers.start(.rabbitmq)
            #expect(elapsed < .seconds(1), "took \(elapsed)")
            #expect(closed != nil)
        }

        @Test func stoppedBrokerIsReportedClosedWithinOneSecond() async throws {
            let connection = try await AMQPConnection.connect(configuration: config)
            let states = connection.stateUpdates()
            let clock = ContinuousClock()
            let watcher = Task { () -> (ContinuousClock.Instant, AMQPError?) in
                for await case .closed(let reason) in states { return (clock.now, reason) }
                return (clock.now, nil)
            }
            try await Servers.stop(.rabbitmq)
            let stopped = clock.now
            let (closedAt, reason) = await watcher.value
            try await Servers.start(.rabbitmq)
            // A graceful stop closes client connections early in shutdown (320 CONNECTION_FORCED),
            // so the close is seen before `stop` even returns.
            #expect(closedAt < stopped + .seconds(1))
            #expect(reason?.code == .connectionClosedByBroker || reason?.code == .socketError)
        }

        @Test func frozenBrokerIsReportedClosedWithinTwoHeartbeats() async throws {
            let connection = try await AMQPConnection.connect(configuration: config)
            let clock = ContinuousClock()
            try await Servers.signal(.rabbitmq, SIGSTOP)
            let frozen = clock.now
            let reason = try await closedState(of: connection, timeout: .seconds(10))
            let elapsed = clock.now - frozen
            try await Servers.signal(.rabbitmq, SIGCONT)
            #expect(reason?.code == .heartbeatTimeout)
            #expect(elapsed <= .seconds(2 * config.heartbeat), "took \(elapsed)")
        }

        @Test func consumesAgainAfterBrokerRestart() async throws {
            let queue = uniqueName("test-restart")
            let before = try await AMQPConnection.connect(configuration: config)
            try await before.declareQueue(queue, durable: true)
            try await Servers.stop(.rabbitmq)
            try await Servers.start(.rabbitmq)
            _ = try await closedState(of: before)

            let after = try await AMQPConnection.connect(configuration: config)
            try await after.declareQueue(queue, durable: true)
            try await after.publish(Array("again".utf8), routingKey: queue, properties: .persistentJSON)
            let deliveries = try await after.consume(queue: queue)
            for try await delivery in deliveries {
                #expect(delivery.body == Array("again".utf8))
                delivery.ack()
                break
            }
            try await deliveries.cancel()
            try await after.deleteQueue(queue)
            await after.close()
        }

        /// Waits for the connection to close; returns the reason. Fails the test after `timeout`.
        private func closedState(of connection: AMQPConnection, timeout: Duration = .seconds(5)) async throws -> AMQPError? {
            let closed = await eventually(timeout: timeout, every: .milliseconds(5)) {
                if case .closed = connection.state { return true }
                return false
            }
            try #require(closed, "connection still \(connection.state) after \(timeout)")
            guard case .closed(let reason) = connection.state else { return nil }
            return reason
        }
    }
}
