import Foundation
import Testing
import WarrenTestSupport
@testable import WarrenRedis

/// Against the TLS ports of `scripts/services`' Redis (`REDISS_URL`; see the script's header): the
/// main server requires a client certificate signed by the test CA, and the two ports after it
/// serve an expired certificate and one made for another name. Serialized: one test freezes Redis.
@Suite("Redis over TLS against a real Redis", .serialized)
struct RedisTLSTests {
    let configuration: RedisConfiguration
    let dir = Servers.tlsDirectory

    init() throws {
        configuration = try RedisConfiguration(url: Servers.redissURL)
    }

    var tlsPort: Int { configuration.port }
    var plainPort: Int { (try? RedisConfiguration(url: Servers.redisURL).port) ?? 6379 }
    var clientCertificate: String { "ssl_certfile=\(dir)/client.pem&ssl_keyfile=\(dir)/client.key" }
    var trusted: String { "ssl_ca_certs=\(dir)/ca.pem" }

    /// A rediss URL to `host:port` (the TLS port by default) with `query`.
    func url(host: String = "127.0.0.1", port: Int? = nil, _ query: String) -> String {
        "rediss://\(host):\(port ?? tlsPort)/0?\(query)"
    }

    /// Pings through a new client and returns the error, which must be a RedisError.
    func pingError(_ url: String, _ sourceLocation: SourceLocation = #_sourceLocation) async throws -> RedisError {
        var config = try RedisConfiguration(url: url)
        config.commandTimeout = .seconds(2)
        let redis = RedisClient(configuration: config)
        let failure: RedisError
        do {
            try await redis.ping()
            Issue.record("\(url): PING answered, expected a failure", sourceLocation: sourceLocation)
            failure = RedisError(.commandFailed, "answered")
        } catch let error as RedisError {
            failure = error
        }
        await redis.shutdown()
        return failure
    }

    @Test func pingSetGetWithAClientCertificate() async throws {
        #expect(configuration.tls?.certificateFile != nil)
        let redis = RedisClient(configuration: configuration)
        let key = uniqueName("warren-tls")
        try await redis.ping()
        try await redis.set(key, "über TLS \u{0}bytes", expirySeconds: 60)
        #expect(try await redis.get(key) == "über TLS \u{0}bytes")
        // A value larger than one TLS record (16 KiB) and than the read buffer.
        let big = String(repeating: "0123456789abcdef", count: 8192)
        try await redis.set(key, big, expirySeconds: 60)
        #expect(try await redis.get(key) == big)
        #expect(try await redis.delete(key))
        // The server sees the connection on its TLS port.
        guard case .bulkString(let info) = try await redis.command(["CLIENT", "INFO"]) else {
            Issue.record("CLIENT INFO did not answer a bulk string")
            return
        }
        #expect(String(decoding: info, as: UTF8.self).contains("laddr=127.0.0.1:\(tlsPort)"))
        #expect(try await redis.connectCount() == 1)
        await redis.shutdown()
    }

    @Test func untrustedCA() async throws {
        let error = try await pingError(url("ssl_ca_certs=\(dir)/other-ca.pem&\(clientCertificate)"))
        #expect(error.code == .tlsFailed, "\(error)")
        #expect(error.message.contains("not signed by a trusted CA"), "\(error)")
        #expect(error.message.contains("ssl_ca_certs"), "\(error)")
    }

    @Test func systemTrustStoreByDefault() async throws {
        // Without ssl_ca_certs the test CA is not trusted.
        let error = try await pingError(url(clientCertificate))
        #expect(error.code == .tlsFailed, "\(error)")
        #expect(error.message.contains("not trusted by the system trust store"), "\(error)")
    }

    @Test func nameMismatch() async throws {
        let error = try await pingError(url(port: tlsPort + 2, "\(trusted)&\(clientCertificate)"))
        #expect(error.code == .tlsFailed, "\(error)")
        #expect(error.message.contains("not valid for '127.0.0.1'"), "\(error)")
    }

    @Test func nameMismatchByHostName() async throws {
        let error = try await pingError(url(host: "localhost", port: tlsPort + 2, "\(trusted)&\(clientCertificate)"))
        #expect(error.code == .tlsFailed, "\(error)")
        #expect(error.message.contains("not valid for 'localhost'"), "\(error)")
    }

    @Test func connectsByHostName() async throws {
        let redis = RedisClient(configuration: try RedisConfiguration(url: url(host: "localhost", "\(trusted)&\(clientCertificate)")))
        try await redis.ping()
        await redis.shutdown()
    }

    @Test func expiredServerCertificate() async throws {
        let error = try await pingError(url(port: tlsPort + 1, "\(trusted)&\(clientCertificate)"))
        #expect(error.code == .tlsFailed, "\(error)")
        #expect(error.message.contains("has expired"), "\(error)")
    }

    @Test func noClientCertificate() async throws {
        let error = try await pingError(url(trusted))
        #expect(error.code == .tlsFailed, "\(error)")
        #expect(error.message.contains("requires a client certificate"), "\(error)")
        #expect(error.message.contains("ssl_certfile"), "\(error)")
    }

    @Test func clientCertificateRefused() async throws {
        // A certificate the server's CA did not sign (the other CA's own).
        let error = try await pingError(url("\(trusted)&ssl_certfile=\(dir)/other-ca.pem&ssl_keyfile=\(dir)/other-ca.key"))
        #expect(error.code == .tlsFailed, "\(error)")
        #expect(error.message.contains("refused the client certificate"), "\(error)")
    }

    @Test func tlsToThePlainPort() async throws {
        // A plain Redis waits for the end of a command line that the ClientHello never completes:
        // the handshake times out, and the message names the likely cause.
        var config = try RedisConfiguration(url: url(port: plainPort, "\(trusted)&\(clientCertificate)"))
        config.connectTimeout = .milliseconds(300)  // bounds the handshake
        let redis = RedisClient(configuration: config)
        let (error, elapsed) = await timed { try await redis.ping() }
        await redis.shutdown()
        let redisError = try #require(error as? RedisError)
        #expect(redisError.code == .timeout, "\(redisError)")
        #expect(redisError.message.contains("TLS handshake"), "\(redisError)")
        #expect(redisError.message.contains("does not speak TLS there"), "\(redisError)")
        #expect(redisError.message.contains("use redis://"), "\(redisError)")
        #expect(elapsed < .milliseconds(300) + .seconds(1), "bounded by the connect timeout, took \(elapsed)")
    }

    @Test func plainToTheTLSPort() async throws {
        let error = try await pingError("redis://127.0.0.1:\(tlsPort)/0")
        #expect(error.code == .connectFailed, "\(error)")
        #expect(error.message.contains("speaks TLS; use rediss://"), "\(error)")
    }

    /// A key with a passphrase (none can be given) fails at once: OpenSSL must not prompt on the
    /// terminal or stdin, which would block the client's thread for good.
    @Test func passphraseProtectedKeyFailsWithoutPrompting() async throws {
        let key = NSTemporaryDirectory() + "warren-encrypted-\(UUID().uuidString).key"
        defer { unlink(key) }
        _ = try await Servers.run("/usr/bin/openssl", ["pkey", "-in", "\(dir)/client.key", "-aes256", "-passout", "pass:secret", "-out", key])
        let clock = ContinuousClock()
        let start = clock.now
        let failure = try await pingError(url("\(trusted)&ssl_certfile=\(dir)/client.pem&ssl_keyfile=\(key)"))
        #expect(clock.now - start < .seconds(5), "no prompt: it failed at once")
        #expect(failure.code == .tlsFailed, "\(failure)")
        #expect(failure.message.contains("ssl_keyfile") || failure.message.contains("key"), "\(failure)")
    }

    @Test func unreadableCertificateFile() async throws {
        #expect {
            try RedisConfiguration(url: url("\(trusted)&ssl_certfile=\(dir)/missing.pem&ssl_keyfile=\(dir)/client.key"))
        } throws: { error in
            guard let error = error as? RedisError else { return false }
            return error.code == .invalidURL && error.message.contains("ssl_certfile") && error.message.contains("missing.pem")
        }
    }

    @Test func certificateRequirementsNoneConnectsToAnUntrustedServer() async throws {
        // The expired and wrong-name servers require no client certificate.
        for port in [tlsPort + 1, tlsPort + 2] {
            let redis = RedisClient(configuration: try RedisConfiguration(url: url(port: port, "ssl_ca_certs=\(dir)/other-ca.pem&ssl_cert_reqs=none")))
            try await redis.ping()
            await redis.shutdown()
        }
        let redis = RedisClient(configuration: try RedisConfiguration(url: url("ssl_cert_reqs=none&\(clientCertificate)")))
        try await redis.ping()
        await redis.shutdown()
    }

    @Test func frozenServerTimesOutThenRecovers() async throws {
        var config = configuration
        config.commandTimeout = .milliseconds(500)
        config.connectTimeout = .milliseconds(500)  // the reconnect's TLS handshake
        let redis = RedisClient(configuration: config)
        try await redis.ping()
        try await Servers.whileFrozen(.redis) {
            // On the open connection, then in the TLS handshake of a reconnect (the kernel still
            // accepts the TCP connect).
            for _ in 0..<2 {
                let (error, elapsed) = await timed { try await redis.ping() }
                let redisError = try #require(error as? RedisError)
                #expect(redisError.code == .timeout, "\(redisError)")
                #expect(elapsed >= .milliseconds(450))
                #expect(elapsed < .milliseconds(500) + .seconds(1), "bounded by the timeout, took \(elapsed)")
            }
        }
        let recovered = await eventually(timeout: .seconds(2)) { (try? await redis.ping()) != nil }
        #expect(recovered)
        await redis.shutdown()
    }

    @Test func serverRestartReconnects() async throws {
        let redis = RedisClient(configuration: configuration)
        try await redis.ping()
        try await Servers.whileStopped(.redis) {
            let error = await timed { try await redis.ping() }.error
            #expect((error as? RedisError)?.droppedConnection == true, "\(String(describing: error))")
        }
        try await redis.ping()
        #expect(try await redis.connectCount() == 2)
        await redis.shutdown()
    }
}
