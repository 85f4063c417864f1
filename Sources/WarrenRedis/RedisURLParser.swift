import WarrenSystem

/// Parses `redis://[[user]:password@]host[:port][/db]` without Foundation and without ever putting
/// any text of the URL (the password least of all) into an error message.
enum RedisURLParser {
    static func parse(_ url: String) throws(RedisError) -> RedisConfiguration {
        do throws(URLSyntaxError) {
            return try parse(url: url)
        } catch {
            throw RedisError(.invalidURL, "Redis URL: \(error.message)")
        }
    }

    private static func parse(url text: String) throws(URLSyntaxError) -> RedisConfiguration {
        guard let url = ConnectionURL(text) else { throw URLSyntaxError("expected redis://[[user]:password@]host[:port][/db]") }
        switch url.scheme {
        case "redis": break
        case "rediss": throw URLSyntaxError("TLS (rediss://) is not supported; use redis://")
        default: throw URLSyntaxError("unsupported scheme; use redis://")
        }
        if url.containsWhitespace { throw URLSyntaxError("contains whitespace") }
        if url.query != nil { throw URLSyntaxError("query parameters are not supported") }
        if url.containsFragment { throw URLSyntaxError("fragments (#) are not allowed") }

        var config = RedisConfiguration()
        if let userInfo = url.userInfo, !userInfo.contains(":") {
            throw URLSyntaxError("a user name needs a password: write redis://user:password@host or redis://:password@host")
        }
        if let (user, password) = try url.credentials(userPart: "user name") {
            config.username = user.isEmpty ? nil : user
            config.password = password
        }
        let (host, port) = try url.hostAndPort()
        if let host { config.host = host }
        if let port { config.port = port }
        if let path = url.path, !path.isEmpty {
            guard let db = Int(path), db >= 0, db <= 1_000_000 else {
                throw URLSyntaxError("the database (path) must be a number like /0")
            }
            config.database = db
        }
        return config
    }
}
