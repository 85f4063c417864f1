import Foundation
import Testing
import Warren
import WarrenAMQP
import WarrenPostgres
import WarrenRedis
import WarrenTestSupport

/// event-worker (as deployed: uid 10001, no capabilities) with all three connections over TLS.
enum WorkerTLS {
    /// RabbitMQ's TLS listener with the client certificate (`scripts/services env`: AMQPS_URL).
    static var amqp: String { TLSServers.url }
    /// Redis's TLS port with the client certificate (`scripts/services env`: REDISS_URL).
    static var redis: String {
        ProcessInfo.processInfo.environment["REDISS_URL"]
            ?? "rediss://127.0.0.1:7379/0?ssl_ca_certs=\(TLSServers.dir)/ca.pem&ssl_certfile=\(TLSServers.dir)/client.pem&ssl_keyfile=\(TLSServers.dir)/client.key"
    }
    /// PostgreSQL with verify-full; `application_name` marks the worker's sessions in pg_stat_activity.
    static func postgres(host: String = "127.0.0.1", applicationName: String) throws -> String {
        let port = try PostgresConfiguration(url: Servers.databaseURL).port
        return "postgresql://postgres@\(host):\(port)/postgres?sslmode=verify-full&sslrootcert=\(TLSServers.dir)/ca.pem&application_name=\(applicationName)"
    }
}

extension Integration {
    @Suite("event-worker over TLS")
    struct WorkerTLSTests {
        @Test func ingestsOverTLSOnAllThreeConnections() async throws {
            let f = try await IngestFixture.make()
            try await f.publishEvents(1_000)
            let app = uniqueName("warren-tls")
            var environment = f.environment
            environment["AMQP_URL"] = WorkerTLS.amqp
            environment["REDIS_URL"] = WorkerTLS.redis
            environment["DATABASE_URL"] = try WorkerTLS.postgres(applicationName: app)
            let worker = try WorkerProcess(environment: environment)
            let drained = try await f.until(60) { try await f.state(rows: 1_000, dead: 0) }
            let summary = await f.describe()
            #expect(drained, "\(summary)\n\(worker.output.suffix(2_000))")
            // Readiness names the broker, Redis and Postgres in use (host:port, no credentials).
            let ready = await worker.probe("/internal/ready")
            let body = ready?.bodyText ?? ""
            #expect(ready?.status == 200, "\(body)")
            for endpoint in ["127.0.0.1:\(TLSServers.tlsPort)", "127.0.0.1:\(try RedisConfiguration(url: WorkerTLS.redis).port)",
                             "127.0.0.1:\(try PostgresConfiguration(url: Servers.databaseURL).port)"] {
                #expect(body.contains("\"componentId\":\"\(endpoint)\""), "\(endpoint) in \(body)")
            }

            // RabbitMQ lists the worker's connection on its TLS port, with the client certificate.
            let connections = try await Servers.services(
                "rabbitmqctl", "list_connections", "--silent", "port", "ssl", "peer_cert_subject", "client_properties")
            // (Only those on the TLS port: another test's event-worker, exiting, may still be listed on
            // the plain port; readiness above already named the TLS port as this worker's broker.)
            let workers = connections.split(separator: "\n").filter { $0.contains("event-worker") && $0.hasPrefix("\(TLSServers.tlsPort)\t") }
            #expect(!workers.isEmpty && workers.allSatisfy { $0.hasPrefix("\(TLSServers.tlsPort)\ttrue\t") && $0.contains("CN=warren-client") },
                    "\(connections)")
            // PostgreSQL sees every session of the worker over TLS.
            let sessions = try await f.postgres.execute(
                "SELECT count(*) FILTER (WHERE s.ssl), count(*) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = $1",
                [app])
            let counts = sessions.rows.first?.map { Int($0 ?? "") ?? 0 } ?? []
            #expect(counts.count == 2 && counts[1] > 0 && counts[0] == counts[1], "TLS sessions, all sessions: \(counts)")
            // Redis's TLS port speaks only TLS, and the readiness check's PING went through it.
            let redisReady = await worker.probe("/internal/ready/redis")
            #expect(redisReady?.status == 200, "\(redisReady?.bodyText ?? "no answer")")

            worker.signal(SIGTERM)
            #expect(await worker.waitForExit(timeout: 25) == 0)
            await f.cleanUp()
        }

        /// A TLS failure on each connection: not ready, the check's output says what is wrong, alive,
        /// no crash; and the worker keeps retrying (the output is still there a while later).
        @Test func tlsFailuresAreNotReadyButAliveWithTheirReason() async throws {
            let dir = TLSServers.dir
            var environment = ["QUEUE": uniqueName("tls-fail"), "HANDLER": "ingest"]
            environment["AMQP_URL"] = TLSServers.url(TLSServers.clientCertificate + "&cacertfile=\(dir)/other-ca.pem")
            environment["REDIS_URL"] = WorkerTLS.redis.replacing("ssl_ca_certs=\(dir)/ca.pem", with: "ssl_ca_certs=\(dir)/other-ca.pem")
            environment["DATABASE_URL"] = try WorkerTLS.postgres(host: "127.0.0.2", applicationName: "warren-tls-fail")
            let worker = try WorkerProcess(environment: environment)
            let expected = [
                ("rabbitmq", "not signed by a trusted CA"),
                ("redis", "other-ca.pem"),
                ("postgres", "not valid for '127.0.0.2'"),
            ]
            for (check, reason) in expected {
                let seen = await eventually(timeout: .seconds(15), every: .milliseconds(200)) {
                    let response = await worker.probe("/internal/ready/\(check)")
                    return response?.status == 503 && response?.bodyText.contains(reason) == true
                }
                let body = await worker.probe("/internal/ready/\(check)")?.bodyText ?? "no answer"
                #expect(seen, "\(check): \(body)")
            }
            #expect(await worker.probe("/internal/ready")?.status == 503)
            try await Task.sleep(for: .seconds(2))
            #expect(await worker.probe("/internal/alive")?.status == 200)
            #expect(worker.isRunning)
            let output = worker.output
            #expect(output.contains("not signed by a trusted CA"), "the log says why too")
            #expect(!output.contains("guest:guest"), "no credentials in the log")
            worker.signal(SIGTERM)
            #expect(await worker.waitForExit(timeout: 25) == 0)
        }
    }
}
