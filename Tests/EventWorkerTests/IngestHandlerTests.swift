import Testing
import Warren
import WarrenHealth
import WarrenPostgres
import WarrenRedis
import WarrenTesting
@testable import EventWorker

/// event-worker's handler under WarrenTesting: no broker, and no Redis or Postgres either (their URLs
/// point at a port where nothing listens), so what is tested is the handler's own decisions.
@Suite("event-worker handler, in memory")
struct IngestHandlerTests {
    /// The handler as `event-worker run` builds it, with Redis and Postgres unreachable.
    static func tester(handler: String = "ingest") throws -> (SubscriptionTester, RedisClient, PostgresClient) {
        let settings = try Settings.resolve(flags: [:], environment: [
            "HANDLER": handler, "QUEUE": "events",
            "REDIS_URL": "redis://127.0.0.1:1/0", "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/postgres",
        ])
        let redis = RedisClient(configuration: settings.redis)
        let postgres = PostgresClient(configuration: settings.postgres)
        let job = IngestJob(redis: redis, postgres: postgres, registry: HealthRegistry())
        return (SubscriptionTester(settings.subscription(job: job)), redis, postgres)
    }

    @Test(arguments: [
        ("this is not json", "body is not JSON"),
        (#"["an","array"]"#, "body is not a JSON object"),
        (#"{"id":"7d3b5a1e-8f0c-4a51-9d7e-2b1c0f6a9e33","type":"test"}"#, "field 'payload' is missing or not an object"),
        (#"{"id":"not-a-uuid","type":"test","payload":{}}"#, "field 'id' is not a UUID"),
        (#"{"id":"7d3b5a1e-8f0c-4a51-9d7e-2b1c0f6a9e33","type":" ","payload":{}}"#, "field 'type' is empty"),
        (#"{"id":"7d3b5a1e-8f0c-4a51-9d7e-2b1c0f6a9e33","type":"test","payload":"text"}"#, "field 'payload' is missing or not an object"),
    ])
    func malformedEventsAreDeadLetteredWithTheirReason(_ body: String, _ reason: String) async throws {
        let (tester, redis, postgres) = try Self.tester()
        let result = await tester.deliver(TestMessage(body: Array(body.utf8)))
        #expect(result.outcome == .deadLetter(reason: reason))
        #expect(result.published.isEmpty)
        await redis.shutdown()
        await postgres.shutdown()
    }

    /// Postgres down is a dependency outage, not a bad message: requeued (not an attempt), never
    /// dead-lettered; the malformed neighbour in the same chunk is dead-lettered all the same.
    @Test func aValidEventWhilePostgresIsDownIsRequeued() async throws {
        let (tester, redis, postgres) = try Self.tester()
        let valid = #"{"id":"7d3b5a1e-8f0c-4a51-9d7e-2b1c0f6a9e33","type":"test","payload":{"n":1}}"#
        let results = await tester.deliver([TestMessage(body: Array(valid.utf8)), TestMessage(body: Array("nope".utf8))])
        guard case .requeue(let reason) = results[0].outcome else {
            Issue.record("expected requeue, got \(results[0].outcome)")
            return
        }
        #expect(reason.hasPrefix("postgres unavailable"))
        #expect(results[1].outcome == .deadLetter(reason: "body is not JSON"))
        await redis.shutdown()
        await postgres.shutdown()
    }

    @Test func theNoopHandlerAcksAnything() async throws {
        let (tester, redis, postgres) = try Self.tester(handler: "noop")
        let results = await tester.deliver([TestMessage(body: []), TestMessage(body: Array("x".utf8))])
        #expect(results.map(\.outcome) == [.ack, .ack])
        await redis.shutdown()
        await postgres.shutdown()
    }
}
