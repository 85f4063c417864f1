import Testing
@testable import WarrenRedis

@Suite("Redis URL parsing")
struct RedisURLTests {
    @Test func parsesAFullURL() throws {
        let config = try RedisConfiguration(url: "redis://app:p%40ss%3Aword@cache.internal:6380/3")
        #expect(config.host == "cache.internal")
        #expect(config.port == 6380)
        #expect(config.username == "app")
        #expect(config.password == "p@ss:word")
        #expect(config.database == 3)
        #expect(config.connectTimeout == .seconds(1))
        #expect(config.commandTimeout == .seconds(1))
    }

    @Test func defaultsMissingParts() throws {
        let config = try RedisConfiguration(url: "redis://127.0.0.1")
        #expect(config.port == 6379)
        #expect(config.password == nil)
        #expect(config.username == nil)
        #expect(config.database == 0)
        #expect(try RedisConfiguration(url: "redis://localhost:7000/").database == 0)
        #expect(try RedisConfiguration(url: "REDIS://h/0").host == "h")
    }

    @Test func passwordOnlyAndIPv6() throws {
        let config = try RedisConfiguration(url: "redis://:secret@[::1]:6390/2")
        #expect(config.host == "::1")
        #expect(config.port == 6390)
        #expect(config.username == nil)
        #expect(config.password == "secret")
        #expect(config.redactedURL == "redis://:***@[::1]:6390/2")
    }

    @Test func redactsThePassword() throws {
        let config = try RedisConfiguration(url: "redis://app:Sup3r-S3cret@cache:6379/1")
        #expect(config.redactedURL == "redis://app:***@cache:6379/1")
        for text in [config.description, config.debugDescription, String(reflecting: config), "\(config)", dumped(config)] {
            #expect(!text.contains("Sup3r-S3cret"), "\(text)")
        }
        #expect(try RedisConfiguration(url: "redis://h:1/0").redactedURL == "redis://h:1/0")
    }

    @Test(arguments: [
        ("http://h:6379", "scheme"),
        ("rediss://h/0?ssl_cert_reqs=optional", "ssl_cert_reqs"),
        ("redis://h/0?ssl_ca_certs=/etc/hostname", "'ssl_ca_certs' is a TLS option; use rediss://"),
        ("redis://h/0?ssl_cert_reqs=none", "'ssl_cert_reqs' is a TLS option; use rediss://"),
        ("rediss://h/0?ssl_certfile=/etc/hostname", "'ssl_certfile' needs 'ssl_keyfile'"),
        ("rediss://h/0?ssl_keyfile=/etc/hostname", "'ssl_keyfile' needs 'ssl_certfile'"),
        ("rediss://h/0?ssl_ca_certs=/nonexistent/ca.pem", "'ssl_ca_certs': cannot read /nonexistent/ca.pem"),
        ("rediss://h/0?ssl_keyfile=/nonexistent/k.pem&ssl_certfile=/etc/hostname", "'ssl_keyfile': cannot read"),
        ("rediss://h/0?ssl_ca_certs=/tmp", "'ssl_ca_certs': /tmp is not a regular file"),
        ("rediss://h/0?ssl_ca_certs=", "'ssl_ca_certs' is empty"),
        ("rediss://h/0?ssl_check_hostname=false", "'ssl_check_hostname' is not supported"),
        ("redis//h", "expected redis://"),
        ("redis://h:0", "port"),
        ("redis://h:99999", "port"),
        ("redis://h:abc", "port"),
        ("redis://h/x", "database"),
        ("redis://h/-1", "database"),
        ("redis://h/0?timeout=3", "query"),
        ("redis://h/0#x", "fragment"),
        ("redis://user@h", "needs a password"),
        ("redis://:bad%zzpass@h", "percent-encoding in the password"),
        ("redis://[::1:6379", "IPv6"),
        ("redis://h /0", "whitespace"),
    ])
    func rejectsBadURLs(url: String, mentions: String) {
        #expect {
            try RedisConfiguration(url: url)
        } throws: { error in
            guard let error = error as? RedisError else { return false }
            return error.code == .invalidURL && error.message.contains(mentions)
        }
    }

    @Test(arguments: [
        "redis://app:Hunter2Secret@h:notaport/0",
        "redis://app:Hunter2Secret%zz@h/0",
        "redis://app:Hunter2Secret@h/db",
        "rediss://app:Hunter2Secret@h/0?ssl_ca_certs=/nonexistent",
        "rediss://app:Hunter2Secret@h/0?Hunter2Secret=1",
        "rediss://app:Hunter2Secret@h/0?ssl_cert_reqs=Hunter2Secret",
        "redis://app:Hunter2Secret@h/0?x=Hunter2Secret",
        "redis://h:Hunter2Secret/0",
        "Hunter2Secret://h",
        "redis:Hunter2Secret@h",
    ])
    func neverEchoesThePassword(url: String) {
        do {
            _ = try RedisConfiguration(url: url)
            Issue.record("expected \(url) to be rejected")
        } catch {
            #expect(error.code == .invalidURL)
            #expect(!error.description.contains("Hunter2"), "\(error)")
            #expect(!String(reflecting: error).contains("Hunter2"), "\(error)")
        }
    }

    @Test func parsesRediss() throws {
        let config = try RedisConfiguration(url: "rediss://:s3cret@cache.internal:6380/2?ssl_ca_certs=/etc/hostname&ssl_certfile=/etc/hostname&ssl_keyfile=/etc/hostname")
        #expect(config.host == "cache.internal")
        #expect(config.port == 6380)
        #expect(config.database == 2)
        #expect(config.tls == RedisTLSConfiguration(caCertificateFile: "/etc/hostname", certificateFile: "/etc/hostname",
                                                    keyFile: "/etc/hostname", verifyPeer: true))
        #expect(config.redactedURL == "rediss://:***@cache.internal:6380/2?ssl_ca_certs=/etc/hostname&ssl_certfile=/etc/hostname&ssl_keyfile=/etc/hostname")
        #expect(!config.description.contains("s3cret"))
    }

    @Test func redissDefaultsToTheSystemTrustStoreAndVerifies() throws {
        let config = try RedisConfiguration(url: "rediss://h")
        #expect(config.port == 6379)
        #expect(config.tls == RedisTLSConfiguration())
        #expect(config.tls?.caCertificateFile == nil)
        #expect(config.tls?.verifyPeer == true)
        #expect(config.redactedURL == "rediss://h:6379/0")
        #expect(try RedisConfiguration(url: "redis://h").tls == nil)
        #expect(try RedisConfiguration(url: "REDISS://h/0?ssl_cert_reqs=required").tls?.verifyPeer == true)
    }

    @Test func certificateRequirementsNone() throws {
        let config = try RedisConfiguration(url: "rediss://h:7000/0?ssl_cert_reqs=none")
        #expect(config.tls?.verifyPeer == false)
        #expect(config.redactedURL == "rediss://h:7000/0?ssl_cert_reqs=none")
    }

    @Test func percentEncodedPaths() throws {
        let config = try RedisConfiguration(url: "rediss://h/0?ssl_ca_certs=%2Fetc%2Fhostname")
        #expect(config.tls?.caCertificateFile == "/etc/hostname")
        #expect(config.redactedURL == "rediss://h:6379/0?ssl_ca_certs=/etc/hostname")
        // The redacted URL parses back to the same configuration.
        #expect(try RedisConfiguration(url: config.redactedURL) == config)
    }

    private func dumped(_ value: some Any) -> String {
        var out = ""
        dump(value, to: &out)
        return out
    }
}
