import Foundation
import Testing
import Warren
import WarrenAMQP
import WarrenPostgres
import WarrenTestSupport

/// A trigger on `events` that refuses chosen event types, so a valid event can fail in the handler
/// (SQLSTATE P0001: a retryable error, not a bad message): every insert of a type listed in
/// `warren_test_poison`, and two of every three inserts of a `flaky-…` type.
enum TestTrigger {
    static func install(_ postgres: PostgresClient) async throws {
        for statement in [
            "CREATE TABLE IF NOT EXISTS warren_test_poison (type text PRIMARY KEY)",
            "CREATE SEQUENCE IF NOT EXISTS warren_test_flaky",
            """
            CREATE OR REPLACE FUNCTION warren_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF EXISTS (SELECT 1 FROM warren_test_poison WHERE type = NEW.type) THEN
                RAISE EXCEPTION 'event type % refused (test trigger)', NEW.type;
              END IF;
              IF NEW.type LIKE 'flaky-%' AND nextval('warren_test_flaky') % 3 <> 0 THEN
                RAISE EXCEPTION 'flaky failure (test trigger)';
              END IF;
              RETURN NEW;
            END $$
            """,
            "DROP TRIGGER IF EXISTS warren_test_refuse ON events",
            "CREATE TRIGGER warren_test_refuse BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION warren_test_refuse()",
        ] {
            _ = try await postgres.execute(statement, [])
        }
    }

    static func poison(_ type: String, _ postgres: PostgresClient) async throws {
        _ = try await postgres.execute("INSERT INTO warren_test_poison (type) VALUES ($1) ON CONFLICT DO NOTHING", [type])
    }

    static func cure(_ type: String, _ postgres: PostgresClient) async throws {
        _ = try await postgres.execute("DELETE FROM warren_test_poison WHERE type = $1", [type])
    }
}

extension IngestFixture {
    /// An event of `type` with message id `id`, published with a confirm.
    func publishEvent(id: String, type: String) async throws {
        let body = #"{"id":"\#(id)","type":"\#(type)","payload":{"run":"\#(run)"}}"#
        try await amqp.publish(Array(body.utf8), routingKey: queue,
                               properties: AMQPProperties(contentType: "application/json", deliveryMode: 2, messageID: id))
    }

    /// Takes the dead letters (up to `count`) off `<queue>.dead` and returns them (acked: gone).
    func takeDeadLetters(_ count: Int) async throws -> [AMQPDelivery] {
        let consumer = try await amqp.consume(queue: topology.deadLetterQueue)
        var taken: [AMQPDelivery] = []
        for try await batch in consumer.batches {
            for delivery in batch {
                delivery.ack()
                taken.append(delivery)
            }
            if taken.count >= count { break }
        }
        try await consumer.cancel()
        return taken
    }
}

extension WorkerProcess {
    /// The JSON log lines whose message contains `message` and whose metadata has `key` = `value`.
    func logLines(_ message: String, where key: String, is value: String) -> [[String: Any]] {
        output.split(separator: "\n").compactMap { line in
            guard line.contains(message), let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                  object[key] as? String == value else { return nil }
            return object
        }
    }
}

/// Seconds since midnight of a log line's `time` (`2026-11-29T23:06:36.212Z`).
func logSeconds(_ line: [String: Any]) -> Double {
    guard let time = line["time"] as? String, let t = time.split(separator: "T").last else { return 0 }
    let parts = t.dropLast().split(separator: ":").compactMap { Double($0) }
    return parts.count == 3 ? parts[0] * 3600 + parts[1] * 60 + parts[2] : 0
}

extension Integration {
    @Suite("Delayed retries through the broker (event-worker)")
    struct RetryTests {
        static let failed = "handler failed; the message will be delivered again after a delay"

        /// MAX_ATTEMPTS 4, RETRY_DELAY 0.3 s, RETRY_DELAY_MAX 2 s: attempts 1–3 fail and wait about
        /// 0.3, 0.6 and 1.2 s (up to 20 % less), attempt 4 fails and dead-letters with the reason and
        /// the count in its headers.
        @Test(arguments: [QueueType.classic, .quorum])
        func aMessageThatAlwaysFailsIsTriedMaxAttemptsTimesWithGrowingDelays(_ queueType: QueueType) async throws {
            let f = try await IngestFixture.make(queueType: queueType)
            try await TestTrigger.install(f.postgres)
            let poisonType = "poison-\(f.run)"
            try await TestTrigger.poison(poisonType, f.postgres)
            let id = UUID().uuidString.lowercased()
            try await f.publishEvents(50)
            try await f.publishEvent(id: id, type: poisonType)
            try await f.publishEvents(50)
            let worker = try WorkerProcess(environment: f.environment)
            let settled = try await f.until(30) { try await f.state(rows: 100, dead: 1) }
            let summary = await f.describe()
            #expect(settled, "\(summary)")
            let failures = worker.logLines(Self.failed, where: "warren.message_id", is: id)
            let dead = worker.logLines("dead-lettered a message after repeated failures", where: "warren.message_id", is: id)
            #expect(failures.map { $0["warren.attempt"] as? String } == ["1", "2", "3"], "\(failures)")
            #expect(dead.count == 1 && dead.first?["warren.attempt"] as? String == "4")
            let times = (failures + dead).map(logSeconds)
            if times.count == 4 {
                let gaps = zip(times.dropFirst(), times).map { $0 - $1 }
                for (gap, delay) in zip(gaps, [0.3, 0.6, 1.2]) {
                    #expect(gap >= delay * 0.8 - 0.05 && gap < delay + 1.0, "gaps \(gaps) for delays 0.3, 0.6, 1.2")
                }
                #expect(gaps[2] > gaps[0], "delays grow: \(gaps)")
            }
            let letters = try await f.takeDeadLetters(1)
            let headers = try #require(letters.first?.properties.headers)
            #expect(headers["x-warren-attempts"] == .int(4))
            #expect(headers["x-warren-reason"]?.stringValue?.contains("gave up after 4 attempts") == true)
            #expect(headers["x-warren-reason"]?.stringValue?.contains("refused (test trigger)") == true)
            #expect(headers["x-warren-original-routing-key"]?.stringValue == f.queue)
            #expect(headers["x-warren-original-exchange"]?.stringValue == "")
            #expect(letters.first?.properties.messageID == id)
            worker.signal(SIGTERM)
            #expect(await worker.waitForExit(timeout: 25) == 0)
            try await TestTrigger.cure(poisonType, f.postgres)
            await f.cleanUp()
        }

        @Test func aTransientFailureSucceedsOnALaterAttempt() async throws {
            let f = try await IngestFixture.make()
            try await TestTrigger.install(f.postgres)
            _ = try await f.postgres.execute("ALTER SEQUENCE warren_test_flaky RESTART", [])
            let id = UUID().uuidString.lowercased()
            try await f.publishEvent(id: id, type: "flaky-\(f.run)")
            let worker = try WorkerProcess(environment: f.environment)
            let stored = try await f.until(20) {
                let rows = try await f.postgres.execute("SELECT count(*) FROM events WHERE id = $1::uuid", [id])
                return rows.rows.first?.first.flatMap { $0 } == "1"
            }
            #expect(stored, "stored on the third attempt")
            let failures = worker.logLines(Self.failed, where: "warren.message_id", is: id)
            #expect(failures.map { $0["warren.attempt"] as? String } == ["1", "2"])
            #expect(try await f.dead() == 0)
            worker.signal(SIGTERM)
            #expect(await worker.waitForExit(timeout: 25) == 0)
            _ = try await f.postgres.execute("DELETE FROM events WHERE id = $1::uuid", [id])
            await f.cleanUp()
        }

        /// Postgres down far longer than 20 redeliveries would take, on a quorum queue under a policy
        /// with RabbitMQ 4's default `delivery-limit` of 20, with messages in flight: a requeue is a
        /// delayed new message and never an attempt, so nothing meets the limit, every valid event is
        /// stored once, and a poison message published before the outage (its first attempt failed
        /// just before) still dies after exactly MAX_ATTEMPTS attempts.
        @Test func aLongPostgresOutageOnAQuorumQueueCostsNoAttempt() async throws {
            let f = try await IngestFixture.make(queueType: .quorum)
            let policy = "warren-limit-\(f.queue)"
            _ = try await Servers.services("rabbitmqctl", "set_policy", "--apply-to", "queues", policy, "^\(f.queue)$",
                                           #"{"delivery-limit":20}"#)
            try await TestTrigger.install(f.postgres)
            let poisonType = "poison-\(f.run)"
            try await TestTrigger.poison(poisonType, f.postgres)
            let id = UUID().uuidString.lowercased()
            try await f.publishEvents(3_000)
            try await f.publishEvent(id: id, type: poisonType)
            var environment = f.environment
            environment["RETRY_DELAY"] = "0.1"  // 20 requeues would take 2 s; the outage lasts 5
            let worker = try WorkerProcess(environment: environment)
            let firstFailure = try await f.until(30) { !worker.logLines(Self.failed, where: "warren.message_id", is: id).isEmpty }
            #expect(firstFailure)
            try await Servers.stop(.postgres)
            try await f.publishEvents(500)
            try await Task.sleep(for: .seconds(5))
            try await Servers.start(.postgres)
            let settled = try await f.until(60) { try await f.state(rows: 3_500, dead: 1) }
            let summary = await f.describe()
            #expect(settled, "\(summary)")
            let failures = worker.logLines(Self.failed, where: "warren.message_id", is: id).compactMap { $0["warren.attempt"] as? String }
            let dead = worker.logLines("dead-lettered a message", where: "warren.message_id", is: id)
            #expect(failures == ["1", "2", "3"], "\(failures)")
            #expect(dead.count == 1 && dead.first?["warren.attempt"] as? String == "4", "\(dead)")
            #expect(worker.output.contains("requeued") || worker.output.contains("pausing consumption"))
            let letters = try await f.takeDeadLetters(1)
            #expect(letters.first?.properties.headers["x-warren-attempts"] == .int(4))
            #expect(letters.first?.properties.messageID == id)
            worker.signal(SIGTERM)
            #expect(await worker.waitForExit(timeout: 25) == 0)
            _ = try? await Servers.services("rabbitmqctl", "clear_policy", policy)
            try await TestTrigger.cure(poisonType, f.postgres)
            await f.cleanUp()
        }

        /// SIGKILL while a retry waits in a delay queue: the count lives in the message, so the next
        /// worker continues it (attempts 3 and 4 there), and nothing is lost.
        @Test func attemptCountsSurviveAKilledWorker() async throws {
            let f = try await IngestFixture.make()
            try await TestTrigger.install(f.postgres)
            let poisonType = "poison-\(f.run)"
            try await TestTrigger.poison(poisonType, f.postgres)
            let id = UUID().uuidString.lowercased()
            try await f.publishEvent(id: id, type: poisonType)
            try await f.publishEvents(200)
            var environment = f.environment
            environment["RETRY_DELAY"] = "1"
            environment["RETRY_DELAY_MAX"] = "1"
            let first = try WorkerProcess(environment: environment)
            let twoFailures = try await f.until(20) { first.logLines(Self.failed, where: "warren.message_id", is: id).count == 2 }
            #expect(twoFailures)
            first.signal(SIGKILL)
            _ = await first.waitForExit(timeout: 5)
            let second = try WorkerProcess(environment: environment)
            let settled = try await f.until(30) { try await f.state(rows: 200, dead: 1) }
            let summary = await f.describe()
            #expect(settled, "\(summary)")
            let before = first.logLines(Self.failed, where: "warren.message_id", is: id).compactMap { $0["warren.attempt"] as? String }
            let after = second.logLines(Self.failed, where: "warren.message_id", is: id).compactMap { $0["warren.attempt"] as? String }
            #expect(before == ["1", "2"])
            #expect(after == ["3"], "the count continues after the restart")
            let letters = try await f.takeDeadLetters(1)
            #expect(letters.first?.properties.headers["x-warren-attempts"] == .int(4))
            second.signal(SIGTERM)
            #expect(await second.waitForExit(timeout: 25) == 0)
            try await TestTrigger.cure(poisonType, f.postgres)
            await f.cleanUp()
        }

        @Test func redriveReturnsDeadLettersAndTheyAreProcessed() async throws {
            let f = try await IngestFixture.make()
            try await TestTrigger.install(f.postgres)
            let poisonType = "poison-\(f.run)"
            try await TestTrigger.poison(poisonType, f.postgres)
            let ids = (0..<3).map { _ in UUID().uuidString.lowercased() }
            for id in ids { try await f.publishEvent(id: id, type: poisonType) }
            let worker = try WorkerProcess(environment: f.environment)
            #expect(try await f.until(30) { try await f.dead() == 3 })
            try await TestTrigger.cure(poisonType, f.postgres)  // the bug is fixed
            let (status, output) = try await WorkerProcess.runToEnd(["redrive", "--count", "2"], environment: f.environment)
            #expect(status == 0, "\(output)")
            #expect(output.contains("moved 2 dead letters"), "\(output)")
            let redriven = try await f.until(20) {
                let rows = try await f.rows()
                let dead = try await f.dead()
                return rows == 2 && dead == 1
            }
            let afterTwo = await f.describe()
            #expect(redriven, "\(afterTwo)")
            let (rest, restOutput) = try await WorkerProcess.runToEnd(["redrive"], environment: f.environment)
            #expect(rest == 0 && restOutput.contains("moved 1 dead letters"), "\(restOutput)")
            let all = try await f.until(20) { try await f.state(rows: 3, dead: 0) }
            let afterAll = await f.describe()
            #expect(all, "\(afterAll)")
            worker.signal(SIGTERM)
            #expect(await worker.waitForExit(timeout: 25) == 0)
            await f.cleanUp()
        }

        /// Dead letters that leave the queue while a redrive runs (purged here) must not leave it
        /// waiting forever for them: it moves what it got and returns; nothing is lost or doubled.
        @Test func redriveReturnsWhenDeadLettersVanish() async throws {
            let f = try await IngestFixture.make()
            let dead = f.topology.deadLetterQueue
            let count = 1_000
            for i in 0..<count { try await f.amqp.publish(Array("dead \(i)".utf8), routingKey: dead) }
            let redriver = try await AMQPConnection.connect(configuration: try AMQPConfiguration(url: Servers.amqpURL))
            let topology = f.topology
            let purger = f.amqp
            let (moved, purged): (Int?, Int) = try await withThrowingTaskGroup(of: (Int?, Int?).self) { group in
                group.addTask { (try await topology.redrive(on: redriver), nil) }
                group.addTask {
                    try await Task.sleep(for: .milliseconds(5))
                    return (nil, Int(try await purger.purgeQueue(dead)))
                }
                group.addTask {
                    try await Task.sleep(for: .seconds(20))
                    return (nil, nil)
                }
                var moved: Int?, purged = 0
                while moved == nil, let result = try await group.next() {
                    if let count = result.1 { purged = count }
                    if let count = result.0 { moved = count }
                    if result == (nil, nil) { break }  // the time limit
                }
                group.cancelAll()
                return (moved, purged)
            }
            let movedCount = try #require(moved, "redrive still waiting after 20 s for dead letters that were purged")
            #expect(movedCount + purged == count, "moved \(movedCount) + purged \(purged)")
            #expect(try await f.depth() == UInt32(movedCount))
            #expect(try await f.dead() == 0)
            await redriver.close()
            await f.cleanUp()
        }
    }
}
