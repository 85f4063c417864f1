import WarrenSystem

/// Parses `postgresql://user[:password]@host[:port][/db][?key=value&...]` without Foundation and
/// without ever putting the password (or any other text of the URL but a known query key) into an
/// error message.
enum PostgresURLParser {
    static func parse(_ url: String) throws(PostgresError) -> PostgresConfiguration {
        do throws(URLSyntaxError) {
            return try parse(url: url)
        } catch {
            throw PostgresError(.invalidURL, "PostgreSQL URL: \(error.message)")
        }
    }

    private static func parse(url text: String) throws(URLSyntaxError) -> PostgresConfiguration {
        // libpq takes C strings: a decoded NUL byte would cut a value short.
        guard let url = ConnectionURL(text, refusingNUL: true) else {
            throw URLSyntaxError("expected postgresql://user[:password]@host[:port]/database")
        }
        switch url.scheme {
        case "postgresql", "postgres": break
        default: throw URLSyntaxError("unsupported scheme; use postgresql://")
        }
        if url.containsWhitespace { throw URLSyntaxError("contains whitespace") }
        if url.containsFragment || url.query?.contains("#") == true {
            throw URLSyntaxError("fragments (#) are not allowed")
        }

        var config = PostgresConfiguration()
        guard let (user, password) = try url.credentials(userPart: "user") else {
            throw URLSyntaxError("the user is missing: write postgresql://user@host/database")
        }
        config.user = user
        config.password = password
        guard !config.user.isEmpty else { throw URLSyntaxError("the user is empty") }

        let (host, port) = try url.hostAndPort(requiringHost: true)
        if let host { config.host = host }
        if let port { config.port = port }
        let path = url.path ?? ""
        if path.contains("/") { throw URLSyntaxError("the database must be a single path segment") }
        config.database = path.isEmpty ? config.user : try url.decode(path, part: "database")
        try parseQuery(url, into: &config)
        return config
    }

    private static func parseQuery(_ url: ConnectionURL, into config: inout PostgresConfiguration) throws(URLSyntaxError) {
        for (key, value) in url.queryItems {
            switch key {
            case "sslmode":
                let mode = try url.decode(value, part: "sslmode")
                guard PostgresConfiguration.sslModes.contains(mode) else {
                    throw URLSyntaxError("sslmode must be one of \(PostgresConfiguration.sslModes.sorted().joined(separator: ", "))")
                }
                config.sslMode = mode
            case "sslrootcert":
                config.sslRootCert = try ConnectionURL.readableFile(try url.decode(value, part: "sslrootcert"), key: "sslrootcert")
            case "sslcert":
                config.sslCert = try ConnectionURL.readableFile(try url.decode(value, part: "sslcert"), key: "sslcert")
            case "sslkey":
                config.sslKey = try ConnectionURL.readableFile(try url.decode(value, part: "sslkey"), key: "sslkey")
            case "application_name":
                config.applicationName = try url.decode(value, part: "application_name")
            case "connect_timeout":
                guard let seconds = Int(value), seconds > 0, seconds <= 3600 else {
                    throw URLSyntaxError("connect_timeout must be a whole number of seconds in 1...3600")
                }
                config.connectTimeout = .seconds(seconds)
            default:
                let printable = !key.isEmpty && key.count <= 32 && key.allSatisfy { $0 == "_" || ($0.isASCII && $0.isLowercase) }
                throw URLSyntaxError(printable ? "unsupported query parameter '\(key)' (supported: \(supported))"
                                               : "an unsupported query parameter (supported: \(supported))")
            }
        }
        if (config.sslCert == nil) != (config.sslKey == nil) {
            throw URLSyntaxError("sslcert and sslkey go together: set both (a client certificate and its key) or neither")
        }
    }

    private static let supported = "sslmode, sslrootcert, sslcert, sslkey, application_name, connect_timeout"
}
