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
        ("rediss://h:6379", "TLS"),
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
        "rediss://app:Hunter2Secret@h/0",
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

    private func dumped(_ value: some Any) -> String {
        var out = ""
        dump(value, to: &out)
        return out
    }
}
