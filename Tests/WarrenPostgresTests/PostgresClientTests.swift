import Testing
import WarrenTestSupport
@testable import WarrenPostgres

/// Against the real PostgreSQL of `scripts/services` (`DATABASE_URL`). Serialized: some tests stop
/// or freeze the server, and always bring it back before they return.
@Suite("PostgreSQL client against a real server", .serialized)
struct PostgresClientTests {
    let configuration: PostgresConfiguration

    init() throws {
        configuration = try PostgresConfiguration(url: Servers.databaseURL)
    }

    @Test func selectOne() async throws {
        let db = PostgresClient(configuration: configuration)
        try await db.selectOne()
        await db.shutdown()
    }

    @Test func parameterizedInsertAndSelect() async throws {
        let db = PostgresClient(configuration: configuration)
        let created = try await db.execute("CREATE TEMP TABLE items (id int PRIMARY KEY, name text, note text)")
        #expect(created.commandTag == "CREATE TABLE")
        #expect(created.affectedRows == 0)
        let tricky = "'); DROP TABLE items; -- ünïcödé"
        let inserted = try await db.execute("INSERT INTO items (id, name, note) VALUES ($1, $2, $3), ($4, $5, $6)",
                                            ["1", tricky, nil, "2", "plain", "n"])
        #expect(inserted.affectedRows == 2)
        #expect(inserted.commandTag == "INSERT 0 2")
        let duplicate = try await db.execute("INSERT INTO items (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING", ["1", "again"])
        #expect(duplicate.affectedRows == 0)
        let fresh = try await db.execute("INSERT INTO items (id, name) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING", ["3", "new"])
        #expect(fresh.affectedRows == 1)
        let rows = try await db.execute("SELECT id, name, note FROM items WHERE id <= $1 ORDER BY id", ["2"])
        #expect(rows.columns == ["id", "name", "note"])
        #expect(rows.rows == [["1", tricky, nil], ["2", "plain", "n"]])
        #expect(rows.affectedRows == 2)
        #expect(rows[0, "name"] == tricky)
        #expect(rows[1, "missing"] == nil)
        let updated = try await db.execute("UPDATE items SET note = $1", ["x"])
        #expect(updated.affectedRows == 3)
        let empty = try await db.execute("SELECT id FROM items WHERE false")
        #expect(empty.rows.isEmpty && empty.columns == ["id"])
        await db.shutdown()
    }

    @Test func serverErrorsCarrySQLStateAndKeepTheConnection() async throws {
        let db = PostgresClient(configuration: configuration)
        let pid = try await db.execute("SELECT pg_backend_pid()").rows
        try await db.execute("CREATE TEMP TABLE uniq (id text PRIMARY KEY)")
        try await db.execute("INSERT INTO uniq VALUES ($1)", ["a"])
        await #expect {
            try await db.execute("INSERT INTO uniq VALUES ($1)", ["a"])
        } throws: { error in
            guard let error = error as? PostgresError else { return false }
            return error.code == .queryFailed && error.sqlState == "23505"
                && error.message.contains("duplicate key") && error.detail?.contains("(id)=(a)") == true
                && !error.description.contains("(id)=(a)")
        }
        await #expect {
            try await db.execute("SELEC 1")
        } throws: { ($0 as? PostgresError)?.sqlState == "42601" }
        await #expect {
            try await db.execute("SELECT $1::int", ["not a number"])
        } throws: { ($0 as? PostgresError)?.sqlState == "22P02" }
        // Refused before reaching the server: still no reconnect.
        await #expect {
            try await db.execute("SELECT 1", Array(repeating: "x", count: 70_000))
        } throws: { ($0 as? PostgresError)?.code == .queryFailed }
        await #expect {
            try await db.execute("SELECT $1", ["nul\u{0}byte"])
        } throws: { ($0 as? PostgresError)?.code == .queryFailed }
        #expect(try await db.execute("SELECT pg_backend_pid()").rows == pid)
        #expect(try await db.connectCount() == 1)
        await db.shutdown()
    }

    @Test func reusesOneConnection() async throws {
        let db = PostgresClient(configuration: configuration)
        let pid = try await db.execute("SELECT pg_backend_pid()").rows
        for _ in 0..<20 { try await db.selectOne() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<50 { group.addTask { try await db.selectOne() } }
            try await group.waitForAll()
        }
        #expect(try await db.execute("SELECT pg_backend_pid()").rows == pid)
        #expect(try await db.connectCount() == 1)
        let name = try await db.execute("SELECT current_setting('application_name')").rows
        #expect(name == [[configuration.applicationName]])
        await db.shutdown()
    }

    @Test func loginFailureIsClearAndNeverShowsThePassword() async throws {
        var config = configuration
        config.database = "no_such_database_\(UInt32.random(in: 0...UInt32.max))"
        config.password = "Hunter2Secret"
        let db = PostgresClient(configuration: config)
        let (error, elapsed) = await timed { try await db.selectOne() }
        let pgError = try #require(error as? PostgresError)
        #expect(pgError.code == .connectFailed)
        #expect(pgError.message.contains("does not exist"), "\(pgError)")
        #expect(!pgError.description.contains("Hunter2"))
        #expect(elapsed < .seconds(1))
        await db.shutdown()
    }

    @Test func terminatedBackendReconnectsOnTheNextCall() async throws {
        let db = PostgresClient(configuration: configuration)
        let admin = PostgresClient(configuration: configuration)
        let pid = try #require(try await db.execute("SELECT pg_backend_pid()").rows.first?.first ?? nil)
        #expect(try await admin.execute("SELECT pg_terminate_backend($1::int)", [pid]).rows == [["t"]])
        await #expect {
            try await db.selectOne()
        } throws: { error in
            guard let error = error as? PostgresError else { return false }
            return error.code == .connectionClosed
        }
        try await db.selectOne()
        #expect(try await db.execute("SELECT pg_backend_pid()").rows != [[pid]])
        #expect(try await db.connectCount() == 2)
        await db.shutdown()
        await admin.shutdown()
    }

    @Test func slowQueryTimesOutAndIsCancelled() async throws {
        var config = configuration
        config.queryTimeout = .milliseconds(500)
        config.applicationName = uniqueName("warren-timeout")
        let db = PostgresClient(configuration: config)
        let admin = PostgresClient(configuration: configuration)
        try await db.selectOne()
        let (error, elapsed) = await timed { try await db.execute("SELECT pg_sleep(30)") }
        #expect((error as? PostgresError)?.code == .timeout, "\(String(describing: error))")
        #expect(elapsed >= .milliseconds(450) && elapsed < .milliseconds(800), "took \(elapsed)")
        // The server stopped running it (cancel request, then the closed connection).
        let gone = await eventually(timeout: .seconds(2)) {
            let rows = try? await admin.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", [config.applicationName]).rows
            return rows == [["0"]]
        }
        #expect(gone)
        try await db.selectOne()
        #expect(try await db.connectCount() == 2)
        await db.shutdown()
        await admin.shutdown()
    }

    @Test func releasedWithoutShutdownClosesItsConnection() async throws {
        let observer = PostgresClient(configuration: configuration)
        var pid: String?
        do {
            let db = PostgresClient(configuration: configuration)
            pid = try await db.execute("SELECT pg_backend_pid()").rows.first?.first ?? nil
        }
        let closed = await eventually(timeout: .seconds(2)) {
            (try? await observer.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int", [pid]).rows) == [["0"]]
        }
        #expect(closed)
        await observer.shutdown()
    }

    @Test func failsAfterShutdown() async throws {
        let db = PostgresClient(configuration: configuration)
        try await db.selectOne()
        await db.shutdown()
        await db.shutdown()
        await #expect {
            try await db.selectOne()
        } throws: { ($0 as? PostgresError)?.code == .clientShutDown }
    }

    @Test func serverStoppedFailsFastThenReconnects() async throws {
        let db = PostgresClient(configuration: configuration)
        try await db.selectOne()
        try await Servers.whileStopped(.postgres) {
            for _ in 0..<2 {  // the dropped connection, then a refused connect
                let (error, elapsed) = await timed { try await db.selectOne() }
                let pgError = try #require(error as? PostgresError)
                #expect(pgError.code == .connectionClosed || pgError.code == .connectFailed, "\(pgError)")
                #expect(pgError.message.contains(configuration.endpoint), "\(pgError)")
                #expect(elapsed < .seconds(1), "took \(elapsed)")
            }
        }
        try await db.selectOne()
        #expect(try await db.connectCount() == 2)
        await db.shutdown()
    }

    @Test func frozenServerTimesOutThenRecovers() async throws {
        var config = configuration
        config.queryTimeout = .milliseconds(500)
        config.connectTimeout = .seconds(1)
        let db = PostgresClient(configuration: config)
        try await db.selectOne()
        try await Servers.whileFrozen(.postgres) {
            // On the open connection: queryTimeout bounds it.
            var (error, elapsed) = await timed { try await db.selectOne() }
            #expect((error as? PostgresError)?.code == .timeout, "\(String(describing: error))")
            #expect(elapsed >= .milliseconds(450) && elapsed < .milliseconds(800), "took \(elapsed)")
            // Reconnecting: the kernel accepts the TCP connect, the login never completes.
            (error, elapsed) = await timed { try await db.selectOne() }
            #expect((error as? PostgresError)?.code == .timeout, "\(String(describing: error))")
            #expect(elapsed >= .milliseconds(950) && elapsed < .milliseconds(1500), "took \(elapsed)")
            // Callers queued behind a timeout fail with it instead of waiting one timeout each.
            let (_, together) = await timed {
                await withTaskGroup(of: Void.self) { group in
                    for _ in 0..<5 {
                        group.addTask { await #expect(throws: PostgresError.self) { try await db.selectOne() } }
                    }
                }
            }
            #expect(together < .milliseconds(2300), "five queued calls took \(together)")
        }
        let recovered = await eventually(timeout: .seconds(2)) { (try? await db.selectOne()) != nil }
        #expect(recovered)
        // The cancel request sent while frozen completes once the server runs again.
        #expect(await eventually(timeout: .seconds(5)) { PostgresCancel.inFlightCount == 0 })
        await db.shutdown()
    }

    @Test func frozenBeforeConnectIsBoundedByConnectTimeout() async throws {
        var config = configuration
        config.queryTimeout = .milliseconds(500)
        config.connectTimeout = .seconds(1)
        let db = PostgresClient(configuration: config)
        try await Servers.whileFrozen(.postgres) {
            let (error, elapsed) = await timed { try await db.selectOne() }
            let pgError = try #require(error as? PostgresError)
            #expect(pgError.code == .timeout, "\(pgError)")
            #expect(pgError.message.contains("could not connect"), "\(pgError)")
            #expect(elapsed >= .milliseconds(950) && elapsed < .milliseconds(1500), "took \(elapsed)")
        }
        let recovered = await eventually(timeout: .seconds(2)) { (try? await db.selectOne()) != nil }
        #expect(recovered)
        await db.shutdown()
    }
}
