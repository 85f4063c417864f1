import Testing
import WarrenTestSupport
@testable import WarrenRedis

/// Against the real Redis of `scripts/services` (`REDIS_URL`). Serialized: some tests stop or
/// freeze the server, and always bring it back before they return.
@Suite("Redis client against a real Redis", .serialized)
struct RedisClientTests {
    let configuration: RedisConfiguration

    init() throws {
        configuration = try RedisConfiguration(url: Servers.redisURL)
    }

    @Test func pingsAndRunsCommands() async throws {
        let redis = RedisClient(configuration: configuration)
        let key = uniqueName("warren-test")
        try await redis.ping()
        #expect(try await redis.get(key) == nil)
        try await redis.set(key, "héllo \u{0}bytes", expirySeconds: 60)
        #expect(try await redis.get(key) == "héllo \u{0}bytes")
        #expect(try await redis.setIfAbsent(key, "other", expirySeconds: 60) == false)
        #expect(try await redis.get(key) == "héllo \u{0}bytes")
        #expect(try await redis.delete(key) == true)
        #expect(try await redis.delete(key) == false)
        #expect(try await redis.setIfAbsent(key, "first", expirySeconds: 60) == true)
        let ttl = try await redis.command(["TTL", key])
        #expect(ttl == .integer(60) || ttl == .integer(59))
        try await redis.set(key, "no expiry", expirySeconds: nil)
        #expect(try await redis.command(["TTL", key]) == .integer(-1))
        try await redis.delete(key)
        await redis.shutdown()
    }

    @Test func errorReplyKeepsTheConnection() async throws {
        let redis = RedisClient(configuration: configuration)
        let key = uniqueName("warren-test")
        #expect(try await redis.command(["LPUSH", key, "x"]) == .integer(1))
        await #expect {
            _ = try await redis.get(key)
        } throws: { error in
            (error as? RedisError)?.code == .commandFailed && "\(error)".contains("WRONGTYPE")
        }
        await #expect(throws: RedisError.self) { try await redis.set(key, "v", expirySeconds: -5) }
        try await redis.delete(key)
        try await redis.ping()
        #expect(try await redis.connectCount() == 1)
        await redis.shutdown()
    }

    @Test func reusesOneConnection() async throws {
        let redis = RedisClient(configuration: configuration)
        let first = try await redis.command(["CLIENT", "ID"])
        for _ in 0..<20 { try await redis.ping() }
        // Concurrent callers share the connection too.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<50 { group.addTask { try await redis.ping() } }
            try await group.waitForAll()
        }
        #expect(try await redis.command(["CLIENT", "ID"]) == first)
        #expect(try await redis.connectCount() == 1)
        await redis.shutdown()
    }

    @Test func selectsTheConfiguredDatabase() async throws {
        var config = configuration
        config.database = 3
        let db3 = RedisClient(configuration: config)
        let db0 = RedisClient(configuration: configuration)
        let key = uniqueName("warren-test")
        try await db3.set(key, "in db 3", expirySeconds: 60)
        #expect(try await db3.get(key) == "in db 3")
        #expect(try await db0.get(key) == nil || configuration.database == 3)
        try await db3.delete(key)
        await db3.shutdown()
        await db0.shutdown()
    }

    @Test func refusedAuthNeverShowsThePassword() async throws {
        var config = configuration
        config.password = "Hunter2Secret"
        let redis = RedisClient(configuration: config)
        await #expect {
            try await redis.ping()
        } throws: { error in
            guard let error = error as? RedisError else { return false }
            return error.code == .authenticationFailed && !error.description.contains("Hunter2")
        }
        await redis.shutdown()
    }

    @Test func releasedWithoutShutdownClosesItsConnection() async throws {
        let observer = RedisClient(configuration: configuration)
        var id = RedisValue.null
        do {
            let redis = RedisClient(configuration: configuration)
            id = try await redis.command(["CLIENT", "ID"])
        }
        guard case .integer(let number) = id else { Issue.record("CLIENT ID: \(id)"); return }
        let closed = await eventually(timeout: .seconds(2)) {
            (try? await observer.command(["CLIENT", "LIST", "ID", String(number)])) == .bulkString([])
        }
        #expect(closed)
        await observer.shutdown()
    }

    @Test func failsAfterShutdown() async throws {
        let redis = RedisClient(configuration: configuration)
        try await redis.ping()
        await redis.shutdown()
        await redis.shutdown()
        await #expect {
            try await redis.ping()
        } throws: { ($0 as? RedisError)?.code == .clientShutDown }
    }

    @Test func serverStoppedFailsFastThenReconnects() async throws {
        let redis = RedisClient(configuration: configuration)
        try await redis.ping()
        try await Servers.whileStopped(.redis) {
            for _ in 0..<2 {  // the dropped connection, then a refused connect
                let (error, elapsed) = await timed { try await redis.ping() }
                let redisError = try #require(error as? RedisError)
                #expect(redisError.code == .connectionLost || redisError.code == .connectFailed, "\(redisError)")
                #expect(redisError.message.contains(configuration.endpoint), "\(redisError)")
                #expect(elapsed < .seconds(1))
            }
        }
        try await redis.ping()
        #expect(try await redis.connectCount() == 2)
        await redis.shutdown()
    }

    @Test func frozenServerTimesOutThenRecovers() async throws {
        var config = configuration
        config.commandTimeout = .milliseconds(500)
        let redis = RedisClient(configuration: config)
        try await redis.ping()
        try await Servers.whileFrozen(.redis) {
            // On the open connection, then after a reconnect (the kernel still accepts the connect).
            for _ in 0..<2 {
                let (error, elapsed) = await timed { try await redis.ping() }
                let redisError = try #require(error as? RedisError)
                #expect(redisError.code == .timeout, "\(redisError)")
                #expect(elapsed >= .milliseconds(450))
                #expect(elapsed < .milliseconds(800), "took \(elapsed)")
            }
            // Callers queued behind a timeout fail with it instead of waiting one timeout each.
            let (_, elapsed) = await timed {
                await withTaskGroup(of: Void.self) { group in
                    for _ in 0..<5 {
                        group.addTask { await #expect(throws: RedisError.self) { try await redis.ping() } }
                    }
                }
            }
            #expect(elapsed < .milliseconds(1300), "five queued pings took \(elapsed)")
        }
        let recovered = await eventually(timeout: .seconds(2)) { (try? await redis.ping()) != nil }
        #expect(recovered)
        await redis.shutdown()
    }
}
