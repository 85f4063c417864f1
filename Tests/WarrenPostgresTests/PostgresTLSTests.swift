import Foundation
import Testing
import WarrenTestSupport
@testable import WarrenPostgres

/// TLS against the real PostgreSQL of `scripts/services`: `ssl=on` with the test CA's server
/// certificate (names localhost and 127.0.0.1; the server also listens on 127.0.0.2, a name the
/// certificate lacks), and the role `warren_cert`, which pg_hba.conf admits only over TLS with a
/// client certificate signed by the test CA.
@Suite("PostgreSQL over TLS against a real server")
struct PostgresTLSTests {
    let port: Int
    let dir = Servers.tlsDirectory

    init() throws {
        port = try PostgresConfiguration(url: Servers.databaseURL).port
    }

    func url(host: String = "127.0.0.1", user: String = "postgres", _ query: String) -> String {
        "postgresql://\(user)@\(host):\(port)/postgres?\(query)"
    }

    /// Connects and runs `SELECT 1`; returns the error.
    func failure(_ url: String) async throws -> PostgresError {
        let db = PostgresClient(configuration: try PostgresConfiguration(url: url))
        var caught = PostgresError(.unexpectedResult, "connected")
        do {
            try await db.selectOne()
            Issue.record("connected, expected a failure")
        } catch let error as PostgresError {
            caught = error
        }
        await db.shutdown()
        return caught
    }

    @Test func verifyFullWithClientCertificateAndTheServerSeesTLS() async throws {
        let key = try Servers.privateKeyCopyForLibpq()
        defer { unlink(key) }
        let config = try PostgresConfiguration(url: url(
            user: "warren_cert",
            "sslmode=verify-full&sslrootcert=\(dir)/ca.pem&sslcert=\(dir)/client.pem&sslkey=\(key)"))
        #expect(config.connectionParameters.contains { $0 == ("sslrootcert", "\(dir)/ca.pem") })
        #expect(config.redactedURL.contains("sslmode=verify-full") && config.redactedURL.contains("sslcert="))
        let db = PostgresClient(configuration: config)
        let row = try await db.execute("SELECT ssl, version, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        #expect(row[0, "ssl"] == "t")
        #expect(row[0, "version"]?.hasPrefix("TLSv1.") == true)
        #expect(row[0, "client_dn"]?.contains("CN=warren-client") == true)
        await db.shutdown()
    }

    @Test func untrustedCA() async throws {
        let error = try await failure(url("sslmode=verify-ca&sslrootcert=\(dir)/other-ca.pem"))
        #expect(error.code == .tlsFailed)
        #expect(error.message.contains("not trusted by the CA file \(dir)/other-ca.pem"), "\(error)")
        #expect(error.droppedConnection)
    }

    @Test func nameMismatch() async throws {
        let error = try await failure(url(host: "127.0.0.2", "sslmode=verify-full&sslrootcert=\(dir)/ca.pem"))
        #expect(error.code == .tlsFailed)
        #expect(error.message.contains("not valid for '127.0.0.2'"), "\(error)")
        // verify-ca does not check the name: the same server is fine.
        let db = PostgresClient(configuration: try PostgresConfiguration(
            url: url(host: "127.0.0.2", "sslmode=verify-ca&sslrootcert=\(dir)/ca.pem")))
        try await db.selectOne()
        await db.shutdown()
    }

    @Test func missingClientCertificate() async throws {
        let error = try await failure(url(user: "warren_cert", "sslmode=verify-full&sslrootcert=\(dir)/ca.pem"))
        #expect(error.code == .tlsFailed)
        #expect(error.message.contains("requires a client certificate and none is configured"), "\(error)")
    }

    @Test func plainConnectionWhereTheServerRequiresTLS() async throws {
        let error = try await failure(url(user: "warren_cert", "sslmode=disable"))
        #expect(error.code == .tlsFailed)
        #expect(error.message.contains("rejects this user without TLS"), "\(error)")
    }

    /// Not TLS failures, though libpq's text mentions encryption or SSL: left as connect failures.
    @Test func classificationKeepsOtherFailuresApart() throws {
        let config = try PostgresConfiguration(url: url("sslmode=prefer"))
        let noEntry = #"no pg_hba.conf entry for host "10.0.0.1", user "app", database "app", no encryption"#
        #expect(PostgresTLS.error(noEntry, endpoint: "db:5432", config) == nil)
        let preferThenPassword = #"connection to server at "db" (10.0.0.1), port 5432 failed: SSL error: unexpected eof while reading connection to server at "db" (10.0.0.1), port 5432 failed: FATAL: password authentication failed for user "app""#
        #expect(PostgresTLS.error(preferThenPassword, endpoint: "db:5432", config) == nil)
        let rejected = #"FATAL: pg_hba.conf rejects connection for host "127.0.0.1", user "warren_cert", database "postgres", no encryption"#
        #expect(PostgresTLS.error(rejected, endpoint: "db:5432", config)?.code == .tlsFailed)
    }

    @Test func keyThatOthersCanReadIsRefusedWithTheFix() async throws {
        // client.key is mode 0644 (the brokers' copy): libpq refuses it, and the message says why.
        let error = try await failure(url(
            user: "warren_cert",
            "sslmode=verify-full&sslrootcert=\(dir)/ca.pem&sslcert=\(dir)/client.pem&sslkey=\(dir)/client.key"))
        #expect(error.code == .tlsFailed)
        #expect(error.message.contains("0600"), "\(error)")
    }

    @Test func unreadableFilesAreConfigurationErrorsNamingTheParameter() throws {
        for key in ["sslrootcert", "sslcert", "sslkey"] {
            var query = "sslmode=verify-full&\(key)=/nonexistent/\(key).pem"
            if key == "sslcert" { query += "&sslkey=\(dir)/client.key" }
            if key == "sslkey" { query += "&sslcert=\(dir)/client.pem" }
            #expect {
                try PostgresConfiguration(url: url(query))
            } throws: { error in
                guard let error = error as? PostgresError else { return false }
                return error.code == .invalidURL && error.message.contains("'\(key)'")
                    && error.message.contains("/nonexistent/\(key).pem")
            }
        }
        #expect(throws: PostgresError.self) {
            try PostgresConfiguration(url: url("sslcert=\(dir)/client.pem"))  // no sslkey
        }
    }
}
