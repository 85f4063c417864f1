import Foundation
import Logging
import Testing
import Warren
import WarrenHealth
import WarrenPostgres
import WarrenRedis
import WarrenTestSupport

extension Integration {
    @Suite("Redis and Postgres readiness against real servers")
    struct DependencyProbeTests {
        static func clients() throws -> (RedisClient, PostgresClient) {
            var redis = try RedisConfiguration(url: Servers.redisURL)
            redis.connectTimeout = .milliseconds(500)
            redis.commandTimeout = .milliseconds(500)
            var postgres = try PostgresConfiguration(url: Servers.databaseURL)
            postgres.connectTimeout = .seconds(1)
            postgres.queryTimeout = .milliseconds(500)
            return (RedisClient(configuration: redis), PostgresClient(configuration: postgres))
        }

        /// Stop → fail within 1 s; start → pass within 2 s; freeze → probes under 1 s and fail within
        /// 2 s; thaw → pass within 2 s. Liveness stays 200 all along.
        func exercise(_ server: Servers.Name, harness: HealthHarness) async throws {
            let path = "/internal/ready/\(server.rawValue)"
            #expect(try await harness.waitForStatus(path, 200, timeout: 3) != nil, "\(server) up → pass")

            try await Servers.stop(server)
            let failedAfterStop = try await harness.waitForStatus(path, 503, timeout: 1)
            let aliveWhileStopped = try await harness.probe("/internal/alive").response.status
            try await Servers.start(server)
            let passedAfterStart = try await harness.waitForStatus(path, 200, timeout: 2)
            #expect(failedAfterStop != nil, "\(server) stopped → fail within 1 s")
            #expect(passedAfterStart != nil, "\(server) started → pass within 2 s")
            #expect(aliveWhileStopped == 200)

            try await Servers.signalTree(server, SIGSTOP)
            let failedWhileFrozen = try await harness.waitForStatus(path, 503, timeout: 2)  // each probe < 1 s or it throws
            let readyProbe = try await harness.probe("/internal/ready")
            let aliveWhileFrozen = try await harness.probe("/internal/alive")
            try await Servers.signalTree(server, SIGCONT)
            let passedAfterThaw = try await harness.waitForStatus(path, 200, timeout: 2)
            #expect(failedWhileFrozen != nil, "\(server) frozen → fail within 2 s")
            #expect(readyProbe.seconds < 1 && readyProbe.response.status == 503)
            #expect(aliveWhileFrozen.seconds < 1 && aliveWhileFrozen.response.status == 200)
            #expect(passedAfterThaw != nil, "\(server) thawed → pass within 2 s")
        }

        @Test func redisCheck() async throws {
            let (redis, postgres) = try Self.clients()
            let harness = try await HealthHarness(extraChecks: [.redis(redis)])
            try await exercise(.redis, harness: harness)
            await harness.stop()
            await redis.shutdown()
            await postgres.shutdown()
        }

        /// The same over `rediss://` (client certificate; the TLS handshake on each reconnect).
        @Test func redisCheckOverTLS() async throws {
            var config = try RedisConfiguration(url: Servers.redissURL)
            config.connectTimeout = .milliseconds(500)
            config.commandTimeout = .milliseconds(500)
            let redis = RedisClient(configuration: config)
            let harness = try await HealthHarness(extraChecks: [.redis(redis)])
            try await exercise(.redis, harness: harness)
            await harness.stop()
            await redis.shutdown()
        }

        @Test func postgresCheck() async throws {
            let (redis, postgres) = try Self.clients()
            let harness = try await HealthHarness(extraChecks: [.postgres(postgres)])
            try await exercise(.postgres, harness: harness)
            await harness.stop()
            await redis.shutdown()
            await postgres.shutdown()
        }

        @Test func passwordsNeverReachBodiesOrLogs() async throws {
            let secret = "Sup3r-s3cret-pw"
            var redisConfig = try RedisConfiguration(url: "redis://:\(secret)@127.0.0.1:\(URLComponents(string: Servers.redisURL)!.port!)/0")
            redisConfig.commandTimeout = .milliseconds(500)
            let redis = RedisClient(configuration: redisConfig)
            let postgresConfig = try PostgresConfiguration(
                url: "postgresql://nobody:\(secret)@127.0.0.1:\(URLComponents(string: Servers.databaseURL)!.port!)/postgres")
            let postgres = PostgresClient(configuration: postgresConfig)
            var amqpURL = URLComponents(string: Servers.amqpURL)!
            amqpURL.password = secret
            let harness = try? await HealthHarness(extraChecks: [.redis(redis), .postgres(postgres)],
                                                   amqpURL: amqpURL.string!, waitForStart: false)
            let h = try #require(harness)
            var bodies: [String] = []
            for _ in 0..<4 {
                for path in ["/internal/ready", "/internal/ready/redis", "/internal/ready/postgres",
                             "/internal/ready/rabbitmq", "/internal/alive", "/internal/started"] {
                    bodies.append(try await h.probe(path).response.bodyText)
                }
                try await Task.sleep(for: .milliseconds(300))
            }
            let ready = bodies[0]
            #expect(ready.contains("\"fail\""), "every check fails with wrong credentials: \(ready)")
            for body in bodies { #expect(!body.contains(secret), "secret in a body: \(body)") }
            let logs = h.logs.all
            #expect(!logs.isEmpty)
            #expect(!logs.contains(secret), "secret in the logs")
            await h.stop()
            await redis.shutdown()
            await postgres.shutdown()
        }
    }
}
