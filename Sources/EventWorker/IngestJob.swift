import Logging
import Warren
import WarrenAMQP
import WarrenHealth
import WarrenPostgres
import WarrenRedis

/// The example job: each event becomes exactly one row in `events`, whatever redelivery, duplicates
/// and crashes do. Postgres is the truth (`INSERT … ON CONFLICT (id) DO NOTHING`); Redis only saves a
/// round trip for events already seen, and its failure can never lose an event.
struct IngestJob: Sendable {
    let redis: RedisClient
    let postgres: PostgresClient
    let registry: HealthRegistry
    /// How long a "seen" key lives in Redis.
    var seenTTLSeconds = 24 * 3600

    static let createTable = """
        CREATE TABLE IF NOT EXISTS events (
            id uuid PRIMARY KEY,
            type text NOT NULL,
            payload jsonb NOT NULL,
            received_at timestamptz NOT NULL DEFAULT now()
        )
        """

    /// Creates the table if it is missing.
    func migrate() async throws {
        _ = try await postgres.execute(Self.createTable, [])
    }

    func handle(_ delivery: AMQPDelivery) async -> MessageOutcome {
        let event: Event
        do {
            event = try Event.parse(delivery.body)
        } catch {
            return .deadLetter(reason: error.description)
        }
        let key = "warren:seen:\(event.id)"
        // Ask Redis only while its check passes: a frozen Redis must not stall every message.
        let useRedis = registry.result(of: "redis")?.status == .pass
        if useRedis, (try? await redis.get(key)) != nil {
            return .ack
        }
        do {
            _ = try await postgres.execute(
                "INSERT INTO events (id, type, payload) VALUES ($1::uuid, $2, $3::jsonb) ON CONFLICT (id) DO NOTHING",
                [event.id, event.type, event.payloadJSON])
        } catch let error as PostgresError where error.code == .queryFailed {
            return .retry(reason: "insert of event \(event.id) failed: \(error)")  // the id, for the dead-letter line
        } catch {
            return .requeue(reason: "postgres unavailable: \(error)")
        }
        if useRedis {
            _ = try? await redis.set(key, "1", expirySeconds: seenTTLSeconds)
        }
        return .ack
    }
}
