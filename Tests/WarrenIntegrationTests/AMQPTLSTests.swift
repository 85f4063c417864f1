import Foundation
import Logging
import Testing
import Warren
import WarrenAMQP
import WarrenTestSupport

/// The TLS listener and the certificates `scripts/services` makes (see its header).
enum TLSServers {
    static var url: String {
        ProcessInfo.processInfo.environment["AMQPS_URL"]
            ?? "amqps://guest:guest@127.0.0.1:6672/%2F?cacertfile=\(dir)/ca.pem&certfile=\(dir)/client.pem&keyfile=\(dir)/client.key"
    }
    static var dir: String {
        ProcessInfo.processInfo.environment["WARREN_TLS_DIR"]
            ?? "\(ProcessInfo.processInfo.environment["WARREN_STATE_DIR"] ?? "/tmp/warren-services")/tls"
    }
    static var tlsPort: Int { (try? AMQPConfiguration(url: url).port) ?? 6672 }
    static var plainPort: Int { (try? AMQPConfiguration(url: Servers.amqpURL).port) ?? 5672 }

    /// An amqps URL to the TLS listener with the given query.
    static func url(port: Int? = nil, _ query: String) -> String {
        "amqps://guest:guest@127.0.0.1:\(port ?? tlsPort)/%2F?\(query)"
    }
    static let clientCertificate = "certfile=\(dir)/client.pem&keyfile=\(dir)/client.key"
    static var trusted: String { "cacertfile=\(dir)/ca.pem" }
}

extension Integration {
    @Suite("AMQP over TLS against a real RabbitMQ")
    struct AMQPTLSTests {
        /// Connects and returns the error, which must be an AMQPError.
        func connectError(_ url: String, name: String) async throws -> AMQPError {
            var config = try AMQPConfiguration(url: url, connectionName: name)
            config.connectTimeout = .seconds(3)
            do {
                let connection = try await AMQPConnection.connect(configuration: config)
                await connection.close()
                Issue.record("\(name): connected, expected a failure")
                return AMQPError(.connectionClosed, "connected")
            } catch let error as AMQPError {
                return error
            }
        }

        @Test func connectsWithClientCertificateAndTheBrokerSeesTLS() async throws {
            let name = uniqueName("warren-tls")
            let config = try AMQPConfiguration(url: TLSServers.url, connectionName: name)
            #expect(config.tls?.certificateFile != nil)
            let connection = try await AMQPConnection.connect(configuration: config)
            #expect(connection.isTLS)
            #expect(connection.connectedEndpoint == AMQPEndpoint(host: "127.0.0.1", port: TLSServers.tlsPort))
            let queue = uniqueName("test-tls")
            try await connection.declareQueue(queue, durable: false)
            for i in 0..<10 { try await connection.publish(Array("m\(i)".utf8), routingKey: queue) }
            let deliveries = try await connection.consume(queue: queue)
            var seen: [String] = []
            for try await delivery in deliveries {
                seen.append(String(decoding: delivery.body, as: UTF8.self))
                delivery.ack()
                if seen.count == 10 { break }
            }
            #expect(seen == (0..<10).map { "m\($0)" })
            try await deliveries.cancel()

            // The broker lists the connection on its TLS port as ssl = true.
            let listed = try await eventually(timeout: .seconds(5), every: .milliseconds(200)) {
                let out = try await Servers.services("rabbitmqctl", "list_connections", "--silent", "port", "ssl", "client_properties")
                return out.split(separator: "\n").contains { $0.contains(name) && $0.hasPrefix("\(TLSServers.tlsPort)\ttrue") }
            }
            #expect(listed)
            try await connection.deleteQueue(queue)
            await connection.close()
        }

        @Test func untrustedCA() async throws {
            let error = try await connectError(TLSServers.url("cacertfile=\(TLSServers.dir)/other-ca.pem&\(TLSServers.clientCertificate)"), name: "untrusted")
            #expect(error.code == .tlsFailed)
            #expect(error.message.contains("not signed by a trusted CA"), "\(error)")
            #expect(error.message.contains("cacertfile"), "\(error)")
        }

        @Test func systemTrustStoreDoesNotKnowTheTestCA() async throws {
            let error = try await connectError(TLSServers.url(TLSServers.clientCertificate), name: "system-store")
            #expect(error.code == .tlsFailed)
            #expect(error.message.contains("not signed by a trusted CA"), "\(error)")
            #expect(error.message.contains("system trust store"), "\(error)")
        }

        @Test func certificateForAnotherName() async throws {
            // The broker serves a certificate made for other.warren.test to this SNI.
            let error = try await connectError(TLSServers.url("\(TLSServers.trusted)&\(TLSServers.clientCertificate)&server_name_indication=wrong-name.warren.test"), name: "wrong-name")
            #expect(error.code == .tlsFailed)
            #expect(error.message.contains("not valid for 'wrong-name.warren.test'"), "\(error)")
        }

        @Test func nameNotInTheServerCertificate() async throws {
            // The broker's own certificate (localhost, 127.0.0.1) checked against another name.
            let error = try await connectError(TLSServers.url("\(TLSServers.trusted)&\(TLSServers.clientCertificate)&server_name_indication=rabbit.example"), name: "mismatch")
            #expect(error.code == .tlsFailed)
            #expect(error.message.contains("not valid for 'rabbit.example'"), "\(error)")
        }

        @Test func expiredServerCertificate() async throws {
            let error = try await connectError(TLSServers.url("\(TLSServers.trusted)&\(TLSServers.clientCertificate)&server_name_indication=expired.warren.test"), name: "expired")
            #expect(error.code == .tlsFailed)
            #expect(error.message.contains("has expired"), "\(error)")
        }

        @Test func missingClientCertificate() async throws {
            let error = try await connectError(TLSServers.url(TLSServers.trusted), name: "no-client-cert")
            #expect(error.code == .tlsFailed)
            #expect(error.message.contains("requires a client certificate"), "\(error)")
        }

        /// A passphrase-protected keyfile (no passphrase can be given) fails at once: OpenSSL must not
        /// prompt on the terminal or stdin, which would block the connection's thread for good.
        @Test func passphraseProtectedKeyFailsWithoutPrompting() async throws {
            let key = NSTemporaryDirectory() + "warren-encrypted-\(UUID().uuidString).key"
            defer { unlink(key) }
            _ = try await Servers.run("/usr/bin/openssl", ["pkey", "-in", "\(TLSServers.dir)/client.key", "-aes256", "-passout", "pass:secret", "-out", key])
            let clock = ContinuousClock()
            let start = clock.now
            let error = try await connectError(TLSServers.url("\(TLSServers.trusted)&certfile=\(TLSServers.dir)/client.pem&keyfile=\(key)"), name: "encrypted-key")
            #expect(clock.now - start < .seconds(5), "no prompt: it failed at once")
            #expect(error.code == .tlsFailed)
            #expect(error.message.contains("keyfile"), "\(error)")
        }

        @Test func tlsToThePlainPort() async throws {
            let error = try await connectError(TLSServers.url(port: TLSServers.plainPort, "\(TLSServers.trusted)&\(TLSServers.clientCertificate)"), name: "tls-to-plain")
            #expect(error.code == .tlsFailed)
            #expect(error.message.contains("does not speak TLS"), "\(error)")
        }

        @Test func plainToTheTLSPort() async throws {
            let error = try await connectError("amqp://guest:guest@127.0.0.1:\(TLSServers.tlsPort)/%2F", name: "plain-to-tls")
            #expect(error.code == .handshakeFailed)
            #expect(error.message.contains("use amqps://"), "\(error)")
        }

        @Test func withoutSNITheBrokerServesItsDefaultCertificate() async throws {
            // No SNI: the default certificate (127.0.0.1 in its SAN), checked against the host.
            let url = TLSServers.url("\(TLSServers.trusted)&\(TLSServers.clientCertificate)&server_name_indication=disable")
            let connection = try await AMQPConnection.connect(configuration: try AMQPConfiguration(url: url))
            #expect(connection.state == .open)
            await connection.close()
        }

        @Test func verifyNoneSkipsTheChecks() async throws {
            // Untrusted CA and a wrong name, but verify_none: encrypted, not authenticated.
            let url = TLSServers.url("cacertfile=\(TLSServers.dir)/other-ca.pem&\(TLSServers.clientCertificate)&verify=verify_none&server_name_indication=rabbit.example")
            let connection = try await AMQPConnection.connect(configuration: try AMQPConfiguration(url: url))
            #expect(connection.state == .open)
            await connection.close()
        }

        @Test func severalBrokersSkipTheClosedOne() async throws {
            let good = try AMQPConfiguration(url: Servers.amqpURL)
            let closed = "amqp://guest:guest@127.0.0.1:1/%2F"
            // The order is shuffled for each connection: whichever comes first, the open one wins.
            for _ in 0..<4 {
                let config = try AMQPConfiguration(url: "\(closed),\(Servers.amqpURL)")
                #expect(config.endpoints.count == 2)
                let connection = try await AMQPConnection.connect(configuration: config)
                #expect(connection.connectedEndpoint == good.endpoints[0])
                try await connection.declareQueue(uniqueName("test-multi"), durable: false, exclusive: true)
                await connection.close()
            }
            let error = try await connectError("\(closed),amqp://guest:guest@127.0.0.1:2/%2F", name: "all-closed")
            #expect(error.code == .connectFailed)
            #expect(error.message.contains("127.0.0.1:1") && error.message.contains("127.0.0.1:2"), "\(error)")
        }

        @Test func failuresAreDistinct() async throws {
            let d = TLSServers.dir
            let urls = [
                TLSServers.url("cacertfile=\(d)/other-ca.pem&\(TLSServers.clientCertificate)"),
                TLSServers.url("\(TLSServers.trusted)&\(TLSServers.clientCertificate)&server_name_indication=wrong-name.warren.test"),
                TLSServers.url("\(TLSServers.trusted)&\(TLSServers.clientCertificate)&server_name_indication=expired.warren.test"),
                TLSServers.url(TLSServers.trusted),
                TLSServers.url(port: TLSServers.plainPort, "\(TLSServers.trusted)&\(TLSServers.clientCertificate)"),
                "amqp://guest:guest@127.0.0.1:\(TLSServers.tlsPort)/%2F",
            ]
            var reasons: [String] = []
            for (index, url) in urls.enumerated() {
                let error = try await connectError(url, name: "distinct-\(index)")
                // The first clause says what is wrong; OpenSSL's details follow.
                reasons.append(String(error.message.split(separator: "(").first ?? ""))
            }
            #expect(Set(reasons).count == urls.count, "\(reasons)")
        }
    
        /// A subscription goes through the brokers in turn: the closed one is skipped, and after a
        /// lost connection the next attempt starts with the broker after the one it used.
        @Test func subscriptionRotatesThroughTheBrokers() async throws {
            let good = try AMQPConfiguration(url: Servers.amqpURL)
            let port = good.port
            // Three spellings: a closed port, and two names of the same broker.
            var config = try AMQPConfiguration(url: "amqp://guest:guest@127.0.0.1:1/%2F,amqp://guest:guest@127.0.0.1:\(port)/%2F,amqp://guest:guest@localhost:\(port)/%2F")
            config.shufflesEndpoints = false
            let queue = uniqueName("test-rotation")
            let service = SubscriptionService(
                subscription: Subscription(Topology(queue: queue), options: SubscriptionOptions(prefetch: 10, concurrency: 1)) { deliveries in
                    deliveries.map { _ in .ack }
                },
                configuration: config,
                reconnectPolicy: ReconnectPolicy(initialDelay: .milliseconds(50), maximumDelay: .milliseconds(100)),
                logger: Logger(label: "warren.test"))
            let running = Task { await service.run() }
            await service.waitUntilStarted()
            #expect(service.current.connection?.connectedEndpoint == AMQPEndpoint(host: "127.0.0.1", port: port))
            // Lose the connection: the next attempt starts after 127.0.0.1, with localhost.
            await service.current.connection?.close()
            let moved = await eventually(timeout: .seconds(10), every: .milliseconds(50)) {
                guard let connection = service.current.connection, connection.state.isOpen else { return false }
                return connection.connectedEndpoint == AMQPEndpoint(host: "localhost", port: port)
            }
            #expect(moved)
            service.stop()
            _ = await running.result
            let cleanup = try await AMQPConnection.connect(configuration: good)
            await cleanup.deleteTopology(of: queue)
            await cleanup.close()
        }
    }
}
