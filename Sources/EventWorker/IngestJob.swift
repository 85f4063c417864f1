import Logging
import Warren
import WarrenAMQP
import WarrenHealth
import WarrenPostgres
import WarrenRedis

/// The example job: each event becomes exactly one row in `events`, whatever redelivery, duplicates
/// and crashes do. Postgres is the truth (`INSERT … ON CONFLICT (id) DO NOTHING`); Redis only saves a
/// round trip for events already seen, and its failure can never lose an event.
///
/// It works a chunk of deliveries at a time: one `MGET` for the "seen" keys, one multi-row `INSERT`,
/// one script that sets the keys. A chunk whose insert the server refuses is retried row by row, so
/// one bad event cannot send its neighbours to the dead-letter queue.
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

    /// Sets every key in KEYS to "1" with the expiry in ARGV[1], in one round trip.
    static let markSeenScript = "for _, key in ipairs(KEYS) do redis.call('SET', key, '1', 'EX', ARGV[1]) end"

    /// Creates the table if it is missing.
    func migrate() async throws {
        _ = try await postgres.execute(Self.createTable, [])
    }

    func handle(_ deliveries: [AMQPDelivery]) async -> [MessageOutcome] {
        var outcomes = [MessageOutcome](repeating: .ack, count: deliveries.count)
        var pending: [(index: Int, event: Event)] = []
        for (index, delivery) in deliveries.enumerated() {
            do {
                pending.append((index, try Event.parse(delivery.body)))
            } catch {
                outcomes[index] = .deadLetter(reason: error.description)
            }
        }
        // Ask Redis only while its check passes: a frozen Redis must not stall every message.
        let useRedis = registry.result(of: "redis")?.status == .pass
        if useRedis, !pending.isEmpty, let seen = try? await seenIDs(pending.map(\.event.id)) {
            pending.removeAll { seen.contains($0.event.id) }  // already stored: ack
        }
        guard !pending.isEmpty else { return outcomes }
        do {
            try await insert(pending.map(\.event))
        } catch let error as PostgresError where error.code == .queryFailed && pending.count > 1 {
            // Find the event the server refuses; the others go in one by one.
            for item in pending {
                do {
                    try await insert([item.event])
                } catch {
                    outcomes[item.index] = outcome(for: error, id: item.event.id)
                }
            }
        } catch {
            for item in pending { outcomes[item.index] = outcome(for: error, id: item.event.id) }
        }
        let stored = pending.filter { outcomes[$0.index] == .ack }.map(\.event.id)
        if useRedis, !stored.isEmpty {
            _ = try? await redis.command(["EVAL", Self.markSeenScript, String(stored.count)] + stored.map(Self.seenKey) + [String(seenTTLSeconds)])
        }
        return outcomes
    }

    private static func seenKey(_ id: String) -> String { "warren:seen:\(id)" }

    private func seenIDs(_ ids: [String]) async throws -> Set<String> {
        guard case .array(let values) = try await redis.command(["MGET"] + ids.map(Self.seenKey)) else { return [] }
        return Set(zip(ids, values).compactMap { id, value in value == .null ? nil : id })
    }

    private func insert(_ events: [Event]) async throws {
        var rows: [String] = []
        var parameters: [String?] = []
        rows.reserveCapacity(events.count)
        parameters.reserveCapacity(events.count * 3)
        for event in events {
            let n = parameters.count
            rows.append("($\(n + 1)::uuid, $\(n + 2), $\(n + 3)::jsonb)")
            parameters += [event.id, event.type, event.payloadJSON]
        }
        _ = try await postgres.execute(
            "INSERT INTO events (id, type, payload) VALUES \(rows.joined(separator: ", ")) ON CONFLICT (id) DO NOTHING",
            parameters)
    }

    private func outcome(for error: any Error, id: String) -> MessageOutcome {
        if let error = error as? PostgresError, error.code == .queryFailed {
            // Class 22 (data exception: untranslatable character, value too long, …) is the event's
            // fault and fails the same way every time: dead-letter it now instead of retrying.
            if error.sqlState?.hasPrefix("22") == true {
                return .deadLetter(reason: "PostgreSQL cannot store event \(id): \(error)")
            }
            return .retry(reason: "insert of event \(id) failed: \(error)")
        }
        return .requeue(reason: "postgres unavailable: \(error)")
    }
}
