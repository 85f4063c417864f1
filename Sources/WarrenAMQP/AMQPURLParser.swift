import WarrenSystem

/// Parses AMQP URIs (https://www.rabbitmq.com/docs/uri-spec) without Foundation and without
/// ever putting the password into an error message.
enum AMQPURLParser {
    static func parse(_ url: String) throws(AMQPError) -> AMQPConfiguration {
        do throws(URLSyntaxError) {
            return try parse(url: url)
        } catch {
            throw AMQPError(.invalidURL, "AMQP URL: \(error.message)")
        }
    }

    private static func parse(url text: String) throws(URLSyntaxError) -> AMQPConfiguration {
        guard let url = ConnectionURL(text) else { throw URLSyntaxError("expected amqp://user:password@host:port/vhost") }
        switch url.scheme {
        case "amqp": break
        case "amqps": throw URLSyntaxError("scheme 'amqps' (TLS) is not supported; use amqp://")
        default: throw URLSyntaxError("unsupported scheme; use amqp://")
        }
        if url.containsWhitespace { throw URLSyntaxError("contains whitespace") }
        if url.containsFragment { throw URLSyntaxError("fragments (#) are not allowed") }

        var config = AMQPConfiguration()
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
        try parseQuery(url.queryItems, into: &config)
        return config
    }

    private static func parseQuery(_ items: [(key: Substring, value: Substring)], into config: inout AMQPConfiguration) throws(URLSyntaxError) {
        for (key, value) in items {
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
            default:
                // Other RabbitMQ URI options (channel_max, frame_max, auth_mechanism...) are accepted
                // and left at this client's defaults.
                continue
            }
        }
    }
}
