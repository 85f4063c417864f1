import WarrenHealth

extension HealthCheck {
    /// The `redis` readiness check: a `PING` over the client's long-lived connection, on the client's
    /// owner thread (never on the cooperative pool).
    ///
    /// - Parameter gatesConsumption: pause consumption while it fails (for handlers that cannot work
    ///   without Redis; a cache that is only an optimisation should not gate).
    public static func redis(_ client: RedisClient, timeout: Duration = .milliseconds(500),
                             interval: Duration = .milliseconds(250), gatesConsumption: Bool = false) -> HealthCheck {
        HealthCheck(name: "redis", kind: .readiness, timeout: timeout, interval: interval,
                    gatesConsumption: gatesConsumption, componentID: { [endpoint = client.configuration.endpoint] in endpoint }) {
            try await client.ping()
        }
    }
}
