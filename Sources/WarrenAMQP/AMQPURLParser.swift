/// Parses AMQP URIs (https://www.rabbitmq.com/docs/uri-spec) without Foundation and without
/// ever putting the password into an error message.
enum AMQPURLParser {
    static func parse(_ url: String) throws(AMQPError) -> AMQPConfiguration {
        var config = AMQPConfiguration()
        guard let colon = url.firstIndex(of: ":"), url[colon...].hasPrefix("://") else {
            throw invalid("expected amqp://user:password@host:port/vhost")
        }
        let scheme = url[..<colon].lowercased()
        switch scheme {
        case "amqp": break
        case "amqps": throw invalid("scheme 'amqps' (TLS) is not supported; use amqp://")
        default: throw invalid("unsupported scheme '\(scheme.prefix(16))'; use amqp://")
        }
        var rest = url[url.index(colon, offsetBy: 3)...]
        if rest.contains(where: { $0 == " " || $0.isNewline }) {
            throw invalid("contains whitespace")
        }

        var query: Substring = ""
        if let q = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: q)...]
            rest = rest[..<q]
        }
        if rest.contains("#") { throw invalid("fragments (#) are not allowed") }

        var path: Substring?
        if let slash = rest.firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }

        // authority = [userinfo@]host[:port]
        if let at = rest.lastIndex(of: "@") {
            let userInfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = userInfo.firstIndex(of: ":") {
                config.username = try decode(userInfo[..<colon], part: "user name")
                config.password = try decode(userInfo[userInfo.index(after: colon)...], part: "password")
            } else {
                config.username = try decode(userInfo, part: "user name")
            }
        }
        try parseHostPort(rest, into: &config)

        if let path {
            if path.contains("/") {
                throw invalid("vhost must be a single path segment; write '/' as %2F")
            }
            config.virtualHost = path.isEmpty ? "/" : try decode(path, part: "vhost")
        }
        try parseQuery(query, into: &config)
        return config
    }

    private static func parseHostPort(_ authority: Substring, into config: inout AMQPConfiguration) throws(AMQPError) {
        var hostPart = authority
        var portPart: Substring?
        if hostPart.hasPrefix("[") {
            guard let close = hostPart.firstIndex(of: "]") else { throw invalid("unterminated IPv6 address") }
            let after = hostPart[hostPart.index(after: close)...]
            hostPart = hostPart[hostPart.index(after: hostPart.startIndex)..<close]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw invalid("unexpected text after IPv6 address") }
                portPart = after.dropFirst()
            }
        } else if let colon = hostPart.lastIndex(of: ":") {
            portPart = hostPart[hostPart.index(after: colon)...]
            hostPart = hostPart[..<colon]
        }
        if !hostPart.isEmpty {
            config.host = try decode(hostPart, part: "host")
        }
        if let portPart {
            guard let port = Int(portPart), (1...65535).contains(port) else {
                throw invalid("port is not a number in 1...65535")
            }
            config.port = port
        }
    }

    private static func parseQuery(_ query: Substring, into config: inout AMQPConfiguration) throws(AMQPError) {
        for pair in query.split(separator: "&") where !pair.isEmpty {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = parts[0]
            let value = parts.count > 1 ? parts[1] : ""
            switch key {
            case "heartbeat":
                guard let seconds = Int(value), (0...65535).contains(seconds) else {
                    throw invalid("query 'heartbeat' must be seconds in 0...65535")
                }
                config.heartbeat = seconds
            case "connection_timeout":
                guard let millis = Int(value), millis > 0 else {
                    throw invalid("query 'connection_timeout' must be a positive number of milliseconds")
                }
                config.connectTimeout = .milliseconds(millis)
            default:
                // Other RabbitMQ URI options (channel_max, frame_max, auth_mechanism...) are accepted
                // and left at this client's defaults.
                continue
            }
        }
    }

    private static func decode(_ text: Substring, part: String) throws(AMQPError) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(text.utf8.count)
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = iterator.next().flatMap(hexValue), let low = iterator.next().flatMap(hexValue) else {
                    throw invalid("bad percent-encoding in the \(part)")
                }
                bytes.append(high << 4 | low)
            } else {
                bytes.append(byte)
            }
        }
        guard let decoded = String(validating: bytes, as: UTF8.self) else {
            throw invalid("the \(part) is not valid UTF-8 after percent-decoding")
        }
        return decoded
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    static func percentEncode(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."),
                UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = Array("0123456789ABCDEF".utf8)
                out += "%" + String(decoding: [hex[Int(byte >> 4)], hex[Int(byte & 0xF)]], as: UTF8.self)
            }
        }
        return out
    }

    private static func invalid(_ what: String) -> AMQPError {
        AMQPError(.invalidURL, "AMQP URL: \(what)")
    }
}
