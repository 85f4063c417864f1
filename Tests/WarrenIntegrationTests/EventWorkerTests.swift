import Foundation
import Testing
import Warren
import WarrenAMQP
import WarrenPostgres
import WarrenTestSupport

/// A queue, a tag in every event's payload (to count this test's rows), and the clients to look.
struct IngestFixture {
    var queue = uniqueName("e2e")
    var queueType = QueueType.classic
    var run = UUID().uuidString.lowercased()
    let amqp: AMQPConnection
    let postgres: PostgresClient

    /// The retries of these tests (the worker's settings below): fast, 4 attempts.
    static let retry = RetryPolicy(maxAttempts: 4, initialDelay: .milliseconds(300), maximumDelay: .seconds(2))

    static func make(queueType: QueueType = .classic) async throws -> IngestFixture {
        let amqp = try await AMQPConnection.connect(configuration: try AMQPConfiguration(url: Servers.amqpURL))
        let postgres = PostgresClient(configuration: try PostgresConfiguration(url: Servers.databaseURL))
        _ = try await postgres.execute("""
            CREATE TABLE IF NOT EXISTS events (id uuid PRIMARY KEY, type text NOT NULL, payload jsonb NOT NULL,
            received_at timestamptz NOT NULL DEFAULT now())
            """, [])
        let fixture = IngestFixture(queueType: queueType, amqp: amqp, postgres: postgres)
        try await fixture.topology.declare(on: amqp, retry: retry)
        return fixture
    }

    var topology: Topology { Topology(queue: queue, queueType: queueType) }

    var environment: [String: String] {
        ["QUEUE": queue, "QUEUE_TYPE": queueType.rawValue, "HANDLER": "ingest", "PREFETCH": "50", "CONCURRENCY": "8",
         "MAX_ATTEMPTS": "4", "RETRY_DELAY": "0.3", "RETRY_DELAY_MAX": "2"]
    }

    func body(id: String, n: Int) -> [UInt8] {
        Array(#"{"id":"\#(id)","type":"test","payload":{"run":"\#(run)","n":\#(n)}}"#.utf8)
    }

    /// Publishes `count` valid events with confirms; returns their bodies (to re-send as duplicates).
    @discardableResult
    func publishEvents(_ count: Int) async throws -> [[UInt8]] {
        let bodies = (0..<count).map { body(id: UUID().uuidString.lowercased(), n: $0) }
        try await publish(bodies)
        return bodies
    }

    func publish(_ bodies: [[UInt8]]) async throws {
        let amqp = self.amqp
        let queue = self.queue
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (i, body) in bodies.enumerated() {
                if i >= 256 { try await group.next() }
                group.addTask { try await amqp.publish(body, routingKey: queue, properties: .persistentJSON) }
            }
            try await group.waitForAll()
        }
    }

    func rows() async throws -> Int {
        let result = try await postgres.execute("SELECT count(*) FROM events WHERE payload->>'run' = $1", [run])
        return Int(result.rows.first?.first.flatMap { $0 } ?? "0") ?? 0
    }

    func depth() async throws -> UInt32 { try await amqp.inspectQueue(queue).messageCount }
    func dead() async throws -> UInt32 { try await amqp.inspectQueue("\(queue).dead").messageCount }

    /// True when this test's rows, the queue depth and (if given) the dead-letter depth are as expected.
    func state(rows expectedRows: Int, depth expectedDepth: UInt32 = 0, dead expectedDead: UInt32? = nil) async throws -> Bool {
        let rows = try await rows()
        let depth = try await depth()
        let dead = try await dead()
        return rows == expectedRows && depth == expectedDepth && (expectedDead.map { $0 == dead } ?? true)
    }

    func describe() async -> String {
        "rows \((try? await rows()) ?? -1), depth \((try? await depth()) ?? 0), dead \((try? await dead()) ?? 0)"
    }

    /// Waits until `condition` holds, polling every 100 ms; false after `timeout` seconds.
    func until(_ timeout: Double, _ condition: () async throws -> Bool) async throws -> Bool {
        let start = monotonicSeconds()
        while monotonicSeconds() - start < timeout {
            // A look may fail while a server restarts (the client reconnects on its next call).
            if (try? await condition()) == true { return true }
            try await Task.sleep(for: .milliseconds(100))
        }
        return try await condition()
    }

    /// The same fixture over a new AMQP connection (after the broker restarted).
    func reconnected() async throws -> IngestFixture {
        IngestFixture(queue: queue, queueType: queueType, run: run,
                      amqp: try await AMQPConnection.connect(configuration: try AMQPConfiguration(url: Servers.amqpURL)),
                      postgres: postgres)
    }

    func cleanUp() async {
        await amqp.deleteTopology(of: queue, retry: [RetryPolicy(), IngestFixture.retry])
        _ = try? await postgres.execute("DELETE FROM events WHERE payload->>'run' = $1", [run])
        await amqp.close()
        await postgres.shutdown()
    }
}

extension Integration {
    @Suite("event-worker end to end")
    struct EventWorkerTests {
        @Test func ingestsExactlyOnceAndDeadLettersMalformedMessages() async throws {
            let f = try await IngestFixture.make()
            let bodies = try await f.publishEvents(10_000)
            try await f.publish(Array(bodies.prefix(500)))  // duplicates
            let malformed: [String] = [
                "this is not json",
                #"["an","array"]"#,
                #"{"id":"\#(UUID().uuidString)","type":"test"}"#,
                #"{"id":"not-a-uuid","type":"test","payload":{}}"#,
                #"{"id":"\#(UUID().uuidString)","type":"","payload":{}}"#,
                #"{"id":"\#(UUID().uuidString)","type":"test","payload":"not an object"}"#,
            ]
            try await f.publish(malformed.map { Array($0.utf8) })
            let worker = try WorkerProcess(environment: f.environment)
            let drained = try await f.until(60) { try await f.state(rows: 10_000, dead: 6) }
            worker.signal(SIGTERM)
            let status = await worker.waitForExit(timeout: 25)
            let summary = await f.describe()
            #expect(drained, "\(summary)")
            #expect(try await f.rows() == 10_000)
            #expect(try await f.dead() == UInt32(malformed.count))
            #expect(status == 0)
            let deadLines = worker.output.split(separator: "\n").filter { $0.contains("dead-lettered a message") }
            #expect(deadLines.count == malformed.count, "each dead letter logged once")
            await f.cleanUp()
        }

        /// Valid JSON that PostgreSQL cannot store (jsonb refuses \u0000) is an invalid message: dead-lettered
        /// at once with its reason, never retried, and its neighbours are stored.
        @Test func aValuePostgresCannotStoreIsDeadLetteredAtOnceAndSparesItsNeighbours() async throws {
            let f = try await IngestFixture.make()
            try await f.publishEvents(200)
            let poison = #"{"id":"\#(UUID().uuidString)","type":"test","payload":{"run":"\#(f.run)","s":"\u0000"}}"#
            try await f.publish([Array(poison.utf8)])
            try await f.publishEvents(200)
            let worker = try WorkerProcess(environment: f.environment)
            let settled = try await f.until(30) { try await f.state(rows: 400, dead: 1) }
            worker.signal(SIGTERM)
            #expect(await worker.waitForExit(timeout: 25) == 0)
            let summary = await f.describe()
            #expect(settled, "\(summary)")
            #expect(!worker.output.contains("handler failed"), "never retried")
            let letter = try #require(try await f.takeDeadLetters(1).first)
            #expect(letter.properties.headers["x-warren-reason"]?.stringValue?.contains("NUL character") == true)
            #expect(letter.properties.headers["x-warren-attempts"] == .int(1))
            await f.cleanUp()
        }

        @Test func postgresOutagePausesConsumptionWithoutDeadLettering() async throws {
            let f = try await IngestFixture.make()
            try await f.publishEvents(10_000)
            let worker = try WorkerProcess(environment: f.environment)
            #expect(try await f.until(30) { try await f.rows() >= 1_000 })
            try await Servers.stop(.postgres)
            let notReady = await worker.waitForStatus("/internal/ready", 503, timeout: 2)
            try await Task.sleep(for: .milliseconds(700))
            let depth1 = try await f.depth()
            try await Task.sleep(for: .seconds(1))
            let depth2 = try await f.depth()
            let alive = await worker.probe("/internal/alive")?.status
            let dead = try await f.dead()
            try await Servers.start(.postgres)
            #expect(notReady != nil, "readiness must fail while postgres is down")
            #expect(depth1 == depth2 && depth1 > 0, "consumption pauses: depth \(depth1) → \(depth2)")
            #expect(dead == 0, "a dependency outage never dead-letters")
            #expect(alive == 200, "liveness never depends on postgres")
            #expect(await worker.waitForStatus("/internal/ready", 200, timeout: 10) != nil)
            #expect(try await f.until(60) { try await f.state(rows: 10_000) })
            #expect(try await f.rows() == 10_000)
            #expect(try await f.dead() == 0)
            worker.signal(SIGTERM)
            #expect(await worker.waitForExit(timeout: 25) == 0)
            await f.cleanUp()
        }

        @Test func sigtermWhilePausedExitsPromptly() async throws {
            let f = try await IngestFixture.make()
            let worker = try WorkerProcess(environment: f.environment)
            #expect(await worker.waitForStatus("/internal/ready", 200, timeout: 10) != nil)
            try await Servers.stop(.postgres)
            let paused = await worker.waitForStatus("/internal/ready", 503, timeout: 2)
            let clock = ContinuousClock()
            let signalled = clock.now
            worker.signal(SIGTERM)
            let status = await worker.waitForExit(timeout: 25)
            let took = clock.now - signalled
            try await Servers.start(.postgres)
            #expect(paused != nil)
            #expect(status == 0)
            #expect(took < .seconds(5), "a paused worker has nothing in flight: \(took)")
            await f.cleanUp()
        }

        @Test func brokerRestartMidStream() async throws {
            let f = try await IngestFixture.make()
            try await f.publishEvents(10_000)
            let worker = try WorkerProcess(environment: f.environment)
            #expect(try await f.until(30) { try await f.rows() >= 1_000 })
            try await Servers.stop(.rabbitmq)
            let notReady = await worker.waitForStatus("/internal/ready", 503, timeout: 1)
            let alive = await worker.probe("/internal/alive")?.status
            try await Servers.start(.rabbitmq)
            #expect(notReady != nil, "readiness must fail at once when the broker goes")
            #expect(alive == 200)
            // Bounded by the reconnect backoff (up to 10 s between attempts) after the broker's own
            // restart, which takes several seconds on a loaded machine.
            let back = await worker.waitForStatus("/internal/ready", 200, timeout: 30)
            #expect(back != nil, "ready again after reconnect")
            print("brokerRestartMidStream: ready again \(back.map { String(format: "%.1f", $0) } ?? "never") s after the broker answered")
            // The fixture's own connection died with the broker: look through a new one.
            let g = try await f.reconnected()
            #expect(try await g.until(60) { try await g.state(rows: 10_000) })
            #expect(try await g.rows() == 10_000)
            #expect(try await g.dead() == 0)
            worker.signal(SIGTERM)
            #expect(await worker.waitForExit(timeout: 25) == 0)
            await g.cleanUp()
        }

        @Test func sigtermDrainsAndLosesNothing() async throws {
            let f = try await IngestFixture.make()
            try await f.publishEvents(10_000)
            let worker = try WorkerProcess(environment: f.environment)
            #expect(try await f.until(30) { try await f.rows() >= 1_000 })
            let clock = ContinuousClock()
            let signalled = clock.now
            worker.signal(SIGTERM)
            // Readiness fails at once: within a second the probe answers 503, or nothing answers
            // any more (a worker whose in-flight messages finished in a few ms has closed its side
            // port already), which is fine as long as it said it was shutting down.
            var last: Int?? = .none
            while clock.now - signalled < .seconds(1) {
                let answer = await worker.probe("/internal/ready")?.status
                last = .some(answer)
                if answer != 200 { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            let status = await worker.waitForExit(timeout: 25)
            let took = clock.now - signalled
            let saidShuttingDown = worker.output.contains("shutting down: readiness fails")
            let failed = last == .some(503) || (last == .some(nil) && saidShuttingDown)
            #expect(failed, "readiness fails at once on SIGTERM (last answer within 1 s: \(String(describing: last)))")
            #expect(status == 0, "exit 0: \(worker.output.suffix(2000))")
            #expect(took < .seconds(20), "within the drain timeout")
            let rows = try await f.rows()
            let depth = try await f.depth()
            #expect(rows + Int(depth) == 10_000, "rows \(rows) + queue \(depth) = all events")
            let again = try WorkerProcess(environment: f.environment)
            #expect(try await f.until(60) { try await f.state(rows: 10_000) })
            #expect(try await f.rows() == 10_000, "the rest drained exactly once")
            again.signal(SIGTERM)
            #expect(await again.waitForExit(timeout: 25) == 0)
            await f.cleanUp()
        }

        @Test(arguments: [
            ("AMQP_URL", "not a url"),
            ("AMQP_URL", "http://guest:guest@127.0.0.1:5672/"),
            ("AMQP_URL", "amqps://guest:guest@127.0.0.1:6672/?certfile=/nonexistent/client.pem&keyfile=/nonexistent/client.key"),
            ("HEALTH_PORT", "abc"),
            ("PREFETCH", "-5"),
            ("QUEUE_TYPE", "stream"),
            ("HANDLER_THREAD", "main"),
            ("REDIS_URL", "redis://:hunter2@127.0.0.1:notaport/0"),
            ("REDIS_URL", "rediss://:hunter2@127.0.0.1:7379/0?ssl_ca_certs=/nonexistent/ca.pem"),
            ("DATABASE_URL", "postgresql://u:hunter2@127.0.0.1:5432/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem"),
            ("DATABASE_URL", "postgresql://u:hunter2@127.0.0.1:5432/db?sslmode=require&sslcert=/nonexistent/c.pem&sslkey=/nonexistent/c.key"),
            ("REDIS_URL", "rediss://:hunter2@127.0.0.1:7379/0?ssl_certfile=/nonexistent/client.pem&ssl_keyfile=/nonexistent/client.key"),
            ("REDIS_URL", "redis://:hunter2@127.0.0.1:6379/0?ssl_ca_certs=/nonexistent/ca.pem"),
        ])
        func badSettingsExitTwoNamingTheSetting(_ setting: String, _ value: String) async throws {
            let (status, output) = try await WorkerProcess.runToEnd(["run"], environment: [setting: value])
            let lines = output.split(separator: "\n")
            #expect(status == 2)
            #expect(lines.count == 1, "one line: \(output)")
            #expect(lines.first?.contains(setting) == true, "\(output)")
            #expect(!output.contains("hunter2") && !output.contains("guest:guest"), "no password echoed: \(output)")
        }

        @Test func healthcheckCommandFollowsReadiness() async throws {
            let f = try await IngestFixture.make()
            let worker = try WorkerProcess(environment: f.environment)
            #expect(await worker.waitForStatus("/internal/ready", 200, timeout: 10) != nil)
            let port = ["HEALTH_PORT": String(worker.healthPort)]
            #expect(try await WorkerProcess.runToEnd(["healthcheck", "--probe", "ready"], environment: port).status == 0)
            try await Servers.stop(.rabbitmq)
            let down = try await WorkerProcess.runToEnd(["healthcheck", "--probe", "ready"], environment: port).status
            let alive = try await WorkerProcess.runToEnd(["healthcheck", "--probe", "alive"], environment: port).status
            try await Servers.start(.rabbitmq)
            #expect(down == 1, "not ready while the broker is down")
            #expect(alive == 0)
            #expect(await worker.waitForStatus("/internal/ready", 200, timeout: 15) != nil)
            #expect(try await WorkerProcess.runToEnd(["healthcheck", "--probe", "ready"], environment: port).status == 0)
            worker.signal(SIGTERM)
            #expect(await worker.waitForExit(timeout: 25) == 0)
            let g = try await f.reconnected()
            await g.cleanUp()
        }
    }
}

