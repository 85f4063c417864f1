import WarrenHealth

extension HealthCheck {
    /// The `postgres` readiness check: `SELECT 1` over the client's long-lived connection, on the
    /// client's owner thread (never on the cooperative pool).
    ///
    /// - Parameter gatesConsumption: pause consumption while it fails (for handlers that write to
    ///   Postgres: their messages then wait in the queue instead of failing).
    public static func postgres(_ client: PostgresClient, timeout: Duration = .milliseconds(500),
                                interval: Duration = .milliseconds(250), gatesConsumption: Bool = false) -> HealthCheck {
        HealthCheck(name: "postgres", kind: .readiness, timeout: timeout, interval: interval,
                    gatesConsumption: gatesConsumption, componentID: { [endpoint = client.configuration.endpoint] in endpoint }) {
            try await client.selectOne()
        }
    }
}
