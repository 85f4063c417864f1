import Testing
@testable import WarrenPostgres

@Suite("PostgreSQL URL parsing")
struct PostgresURLTests {
    @Test func parsesAFullURL() throws {
        let config = try PostgresConfiguration(
            url: "postgresql://app:p%40ss%3Aw%2Frd@db.internal:6543/events%20db?sslmode=require&application_name=event%20worker")
        #expect(config.host == "db.internal")
        #expect(config.port == 6543)
        #expect(config.user == "app")
        #expect(config.password == "p@ss:w/rd")
        #expect(config.database == "events db")
        #expect(config.sslMode == "require")
        #expect(config.applicationName == "event worker")
        #expect(config.connectTimeout == .seconds(2))
        #expect(config.queryTimeout == .seconds(1))
    }

    @Test func defaults() throws {
        let config = try PostgresConfiguration(url: "postgres://postgres@127.0.0.1")
        #expect(config.port == 5432)
        #expect(config.password == nil)
        #expect(config.database == "postgres")
        #expect(config.sslMode == "disable")
        #expect(config.applicationName == "warren")
        #expect(try PostgresConfiguration(url: "postgresql://bob@h/").database == "bob")
        #expect(try PostgresConfiguration(url: "postgresql://bob@h:1/x?connect_timeout=5").connectTimeout == .seconds(5))
        #expect(try PostgresConfiguration(url: "postgresql://bob@[::1]:5433/x").host == "::1")
    }

    @Test func redactsThePassword() throws {
        let config = try PostgresConfiguration(url: "postgresql://app:Sup3r-S3cret@db:5432/events")
        #expect(config.redactedURL == "postgresql://app:***@db:5432/events?sslmode=disable&application_name=warren")
        for text in [config.description, config.debugDescription, String(reflecting: config), "\(config)", dumped(config)] {
            #expect(!text.contains("Sup3r-S3cret"), "\(text)")
        }
        #expect(try PostgresConfiguration(url: "postgresql://app@db/x").redactedURL.hasPrefix("postgresql://app@db:5432/x?"))
    }

    @Test func connectionParametersAreKeywordValuePairs() throws {
        var config = try PostgresConfiguration(url: "postgresql://o'brien:pa%20ss%27%20word@h/db%20x?application_name=a%20b")
        config.connectTimeout = .milliseconds(500)
        let parameters = Dictionary(uniqueKeysWithValues: config.connectionParameters)
        #expect(parameters["user"] == "o'brien")
        #expect(parameters["password"] == "pa ss' word")
        #expect(parameters["dbname"] == "db x")
        #expect(parameters["application_name"] == "a b")
        #expect(parameters["sslmode"] == "disable")
        #expect(parameters["connect_timeout"] == "2")
    }

    @Test(arguments: [
        ("mysql://u@h/db", "scheme"),
        ("postgresql//u@h/db", "expected postgresql://"),
        ("postgresql://h/db", "user is missing"),
        ("postgresql://:pw@h/db", "user is empty"),
        ("postgresql://u@/db", "host is missing"),
        ("postgresql://u@h:0/db", "port"),
        ("postgresql://u@h:x/db", "port"),
        ("postgresql://u@h/a/b", "single path segment"),
        ("postgresql://u@h/db?sslmode=maybe", "sslmode"),
        ("postgresql://u@h/db?connect_timeout=-1", "connect_timeout"),
        ("postgresql://u@h/db?target_session_attrs=any", "unsupported query parameter 'target_session_attrs'"),
        ("postgresql://u@h/db%zz", "percent-encoding in the database"),
        ("postgresql://u@h/db%00", "database"),
        ("postgresql://u@h/db#frag", "fragment"),
        ("postgresql://u@h /db", "whitespace"),
    ])
    func rejectsBadURLs(url: String, mentions: String) {
        #expect {
            try PostgresConfiguration(url: url)
        } throws: { error in
            guard let error = error as? PostgresError else { return false }
            return error.code == .invalidURL && error.message.contains(mentions)
        }
    }

    @Test(arguments: [
        "postgresql://app:Hunter2Secret@h:notaport/db",
        "postgresql://app:Hunter2Secret%zz@h/db",
        "postgresql://app:Hunter2Secret@/db",
        "postgresql://app:Hunter2Secret@h/db?Hunter2Secret",
        "postgresql://app:Hunter2Secret@h/db?sslmode=Hunter2Secret",
        "postgresql://app:Hunter2Secret@h/db?password=Hunter2Secret",
        "postgresql://h:Hunter2Secret/db",
        "mysql://app:Hunter2Secret@h/db",
        "Hunter2Secret://h",
    ])
    func neverEchoesThePassword(url: String) {
        do {
            _ = try PostgresConfiguration(url: url)
            Issue.record("expected \(url) to be rejected")
        } catch {
            #expect(error.code == .invalidURL)
            #expect(!error.description.contains("Hunter2"), "\(error)")
        }
    }

    private func dumped(_ value: some Any) -> String {
        var out = ""
        dump(value, to: &out)
        return out
    }
}
