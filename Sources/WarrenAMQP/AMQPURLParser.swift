import Glibc
import WarrenSystem

/// Parses AMQP URIs (https://www.rabbitmq.com/docs/uri-spec) without Foundation and without
/// ever putting the password into an error message.
enum AMQPURLParser {
    /// One URL, or several separated by commas (several brokers sharing everything but host:port).
    static func parseList(_ text: String) throws(AMQPError) -> AMQPConfiguration {
        let urls = split(text)
        guard urls.count > 1 else { return try parse(text) }
        var first: AMQPConfiguration?
        for (index, url) in urls.enumerated() {
            guard !url.isEmpty else {
                throw AMQPError(.invalidURL, "AMQP URL: entry \(index + 1) of the comma-separated list is empty")
            }
            var config: AMQPConfiguration
            do throws(AMQPError) {
                config = try parse(url)
            } catch {
                throw AMQPError(.invalidURL, "AMQP URL entry \(index + 1): \(error.message.dropPrefix("AMQP URL: "))")
            }
            guard var merged = first else {
                first = config
                continue
            }
            let endpoint = config.endpoints[0]
            config.endpoints = merged.endpoints
            guard config == merged else {
                throw AMQPError(.invalidURL, "AMQP URL entry \(index + 1): every URL of a list must have the same scheme, user, password, vhost and options as the first; only host and port may differ")
            }
            merged.endpoints.append(endpoint)
            first = merged
        }
        return first!
    }

    /// Splits at the commas that start another URL (`,amqp://` or `,amqps://`, spaces allowed
    /// around the comma), so that a comma inside a password or a query stays where it is.
    static func split(_ text: String) -> [String] {
        var urls: [String] = []
        var current = ""
        var rest = Substring(text)
        while let comma = rest.firstIndex(of: ",") {
            let tail = rest[rest.index(after: comma)...]
            let after = tail.drop(while: { $0 == " " })
            let lower = after.prefix(8).lowercased()
            current += rest[..<comma]
            if lower.hasPrefix("amqp://") || lower.hasPrefix("amqps://") || after.isEmpty || after.hasPrefix(",") {
                urls.append(current)
                current = ""
                rest = after
            } else {
                current += ","
                rest = tail
            }
        }
        urls.append(current + rest)
        return urls.map { String($0.drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed()) }
    }

    static func parse(_ url: String) throws(AMQPError) -> AMQPConfiguration {
        do throws(URLSyntaxError) {
            return try parse(url: url)
        } catch {
            throw AMQPError(.invalidURL, "AMQP URL: \(error.message)")
        }
    }

    private static func parse(url text: String) throws(URLSyntaxError) -> AMQPConfiguration {
        guard let url = ConnectionURL(text) else { throw URLSyntaxError("expected amqp://user:password@host:port/vhost or amqps://...") }
        let secure: Bool
        switch url.scheme {
        case "amqp": secure = false
        case "amqps": secure = true
        default: throw URLSyntaxError("unsupported scheme; use amqp:// or amqps:// (TLS)")
        }
        if url.containsWhitespace { throw URLSyntaxError("contains whitespace") }
        if url.containsFragment { throw URLSyntaxError("fragments (#) are not allowed") }

        var config = AMQPConfiguration(port: secure ? 5671 : 5672)
        if secure { config.tls = AMQPTLSConfiguration() }
        if let (user, password) = try url.credentials(userPart: "user name") {
            config.username = user
            if let password { config.password = password }
        }
        let (host, port) = try url.hostAndPort()
        if let host { config.host = host }
        if let port { config.port = port }
        if let path = url.path {
            if path.contains("/") {
                throw URLSyntaxError("vhost must be a single path segment; write '/' as %2F")
            }
            config.virtualHost = path.isEmpty ? "/" : try url.decode(path, part: "vhost")
        }
        try parseQuery(url, into: &config)
        return config
    }

    private static func parseQuery(_ url: ConnectionURL, into config: inout AMQPConfiguration) throws(URLSyntaxError) {
        var tls = config.tls
        for (key, value) in url.queryItems {
            switch key {
            case "heartbeat":
                guard let seconds = Int(value), (0...65535).contains(seconds) else {
                    throw URLSyntaxError("query 'heartbeat' must be seconds in 0...65535")
                }
                config.heartbeat = seconds
            case "connection_timeout":
                guard let millis = Int(value), millis > 0 else {
                    throw URLSyntaxError("query 'connection_timeout' must be a positive number of milliseconds")
                }
                config.connectTimeout = .milliseconds(millis)
            case "cacertfile", "certfile", "keyfile", "verify", "server_name_indication":
                guard tls != nil else {
                    throw URLSyntaxError("query '\(key)' is a TLS option; use amqps://")
                }
                let decoded = try url.decode(value, part: "query '\(key)'")
                switch key {
                case "cacertfile": tls?.caCertificateFile = try ConnectionURL.readableFile(decoded, key: key)
                case "certfile": tls?.certificateFile = try ConnectionURL.readableFile(decoded, key: key)
                case "keyfile": tls?.keyFile = try ConnectionURL.readableFile(decoded, key: key)
                case "verify":
                    switch decoded {
                    case "verify_peer": tls?.verifyPeer = true
                    case "verify_none": tls?.verifyPeer = false
                    default: throw URLSyntaxError("query 'verify' must be verify_peer or verify_none")
                    }
                default:
                    guard !decoded.isEmpty else { throw URLSyntaxError("query 'server_name_indication' is empty") }
                    if decoded == "disable" {
                        tls?.sendsServerName = false
                    } else {
                        tls?.serverName = decoded
                    }
                }
            default:
                // Other RabbitMQ URI options (channel_max, frame_max, auth_mechanism...) are accepted
                // and left at this client's defaults.
                continue
            }
        }
        if let tls, (tls.certificateFile == nil) != (tls.keyFile == nil) {
            throw URLSyntaxError(tls.certificateFile == nil
                ? "query 'keyfile' needs 'certfile' (the client certificate)"
                : "query 'certfile' needs 'keyfile' (the client certificate's private key)")
        }
        config.tls = tls
    }

    /// The path when the file can be opened for reading; otherwise an error naming the parameter.
}

private extension String {
    func dropPrefix(_ prefix: String) -> String {
        hasPrefix(prefix) ? String(dropFirst(prefix.count)) : self
    }
}
