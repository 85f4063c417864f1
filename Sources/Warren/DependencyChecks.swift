import WarrenHealth
import WarrenPostgres
import WarrenRedis

extension HealthCheck {
    /// `redis`: a `PING` over the client's long-lived connection.
    public static func redis(_ client: RedisClient, timeout: Duration = .milliseconds(800),
                             interval: Duration = .milliseconds(500), gatesConsumption: Bool = false) -> HealthCheck {
        HealthCheck(name: "redis", kind: .readiness, timeout: timeout, interval: interval,
                    gatesConsumption: gatesConsumption) {
            try await client.ping()
        }
    }

    /// `postgres`: `SELECT 1` over the client's long-lived connection, never on the cooperative pool.
    public static func postgres(_ client: PostgresClient, timeout: Duration = .milliseconds(800),
                                interval: Duration = .milliseconds(500), gatesConsumption: Bool = false) -> HealthCheck {
        HealthCheck(name: "postgres", kind: .readiness, timeout: timeout, interval: interval,
                    gatesConsumption: gatesConsumption) {
            try await client.selectOne()
        }
    }
}
