import WarrenSystem

/// Parses `redis://[[user]:password@]host[:port][/db]` and `rediss://...?ssl_...` without
/// Foundation and without ever putting any text of the URL (the password least of all) into an
/// error message; only the TLS file paths, which are not secret, are quoted.
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
        var config = RedisConfiguration()
        switch url.scheme {
        case "redis": break
        case "rediss": config.tls = RedisTLSConfiguration()
        default: throw URLSyntaxError("unsupported scheme; use redis:// or rediss:// (TLS)")
        }
        if url.containsWhitespace { throw URLSyntaxError("contains whitespace") }
        if url.containsFragment { throw URLSyntaxError("fragments (#) are not allowed") }

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
        try parseQuery(url, into: &config)
        return config
    }

    /// redis-py's TLS parameters; anything else is refused (silently ignoring a misspelt
    /// `ssl_cert_reqs` would weaken TLS without a word).
    private static func parseQuery(_ url: ConnectionURL, into config: inout RedisConfiguration) throws(URLSyntaxError) {
        for (key, value) in url.queryItems {
            switch key {
            case "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs":
                guard config.tls != nil else {
                    throw URLSyntaxError("query '\(key)' is a TLS option; use rediss://")
                }
                let decoded = try url.decode(value, part: "query '\(key)'")
                switch key {
                case "ssl_ca_certs": config.tls?.caCertificateFile = try ConnectionURL.readableFile(decoded, key: key)
                case "ssl_certfile": config.tls?.certificateFile = try ConnectionURL.readableFile(decoded, key: key)
                case "ssl_keyfile": config.tls?.keyFile = try ConnectionURL.readableFile(decoded, key: key)
                default:
                    switch decoded {
                    case "required": config.tls?.verifyPeer = true
                    case "none": config.tls?.verifyPeer = false
                    default: throw URLSyntaxError("query 'ssl_cert_reqs' must be required or none")
                    }
                }
            default:
                // Only the key is quoted: a key is a name, a value might be a secret.
                let name = String(decoding: PercentEncoding.decode(key) ?? Array(key.utf8), as: UTF8.self)
                let plain = name.count <= 32 && name.allSatisfy { $0.isLetter || $0 == "_" } && name != config.password
                let shown = plain ? "'\(name)' " : ""
                throw URLSyntaxError("query \(shown)is not supported (rediss:// takes ssl_ca_certs, ssl_certfile, ssl_keyfile and ssl_cert_reqs)")
            }
        }
        if let tls = config.tls, (tls.certificateFile == nil) != (tls.keyFile == nil) {
            throw URLSyntaxError(tls.certificateFile == nil
                ? "query 'ssl_keyfile' needs 'ssl_certfile' (the client certificate)"
                : "query 'ssl_certfile' needs 'ssl_keyfile' (the client certificate's private key)")
        }
    }
}
