/// Parses `postgresql://user[:password]@host[:port][/db][?key=value&...]` without Foundation and
/// without ever putting the password (or any other text of the URL but a known query key) into an
/// error message.
enum PostgresURLParser {
    static func parse(_ url: String) throws(PostgresError) -> PostgresConfiguration {
        var config = PostgresConfiguration()
        guard let colon = url.firstIndex(of: ":"), url[colon...].hasPrefix("://") else {
            throw invalid("expected postgresql://user[:password]@host[:port]/database")
        }
        switch url[..<colon].lowercased() {
        case "postgresql", "postgres": break
        default: throw invalid("unsupported scheme; use postgresql://")
        }
        var rest = url[url.index(colon, offsetBy: 3)...]
        if rest.contains(where: { $0 == " " || $0.isNewline }) { throw invalid("contains whitespace") }
        if rest.contains("#") { throw invalid("fragments (#) are not allowed") }

        var query: Substring = ""
        if let q = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: q)...]
            rest = rest[..<q]
        }
        var path: Substring = ""
        if let slash = rest.firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }
        guard let at = rest.lastIndex(of: "@") else {
            throw invalid("the user is missing: write postgresql://user@host/database")
        }
        let userInfo = rest[..<at]
        rest = rest[rest.index(after: at)...]
        if let colon = userInfo.firstIndex(of: ":") {
            config.user = try decode(userInfo[..<colon], part: "user")
            config.password = try decode(userInfo[userInfo.index(after: colon)...], part: "password")
        } else {
            config.user = try decode(userInfo, part: "user")
        }
        guard !config.user.isEmpty else { throw invalid("the user is empty") }

        try parseHostPort(rest, into: &config)
        if path.contains("/") { throw invalid("the database must be a single path segment") }
        config.database = path.isEmpty ? config.user : try decode(path, part: "database")
        try parseQuery(query, into: &config)
        return config
    }

    private static func parseHostPort(_ authority: Substring, into config: inout PostgresConfiguration) throws(PostgresError) {
        var hostPart = authority
        var portPart: Substring?
        if hostPart.hasPrefix("[") {
            guard let close = hostPart.firstIndex(of: "]") else { throw invalid("unterminated IPv6 address") }
            let after = hostPart[hostPart.index(after: close)...]
            hostPart = hostPart[hostPart.index(after: hostPart.startIndex)..<close]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw invalid("unexpected text after the IPv6 address") }
                portPart = after.dropFirst()
            }
        } else if let colon = hostPart.lastIndex(of: ":") {
            portPart = hostPart[hostPart.index(after: colon)...]
            hostPart = hostPart[..<colon]
        }
        guard !hostPart.isEmpty else { throw invalid("the host is missing") }
        config.host = try decode(hostPart, part: "host")
        if let portPart {
            guard let port = Int(portPart), (1...65535).contains(port) else {
                throw invalid("the port is not a number in 1...65535")
            }
            config.port = port
        }
    }

    private static func parseQuery(_ query: Substring, into config: inout PostgresConfiguration) throws(PostgresError) {
        for pair in query.split(separator: "&") where !pair.isEmpty {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = parts[0]
            let value = parts.count > 1 ? parts[1] : ""
            switch key {
            case "sslmode":
                let mode = try decode(value, part: "sslmode")
                guard PostgresConfiguration.sslModes.contains(mode) else {
                    throw invalid("sslmode must be one of \(PostgresConfiguration.sslModes.sorted().joined(separator: ", "))")
                }
                config.sslMode = mode
            case "application_name":
                config.applicationName = try decode(value, part: "application_name")
            case "connect_timeout":
                guard let seconds = Int(value), seconds > 0, seconds <= 3600 else {
                    throw invalid("connect_timeout must be a whole number of seconds in 1...3600")
                }
                config.connectTimeout = .seconds(seconds)
            default:
                let printable = !key.isEmpty && key.count <= 32 && key.allSatisfy { $0 == "_" || ($0.isASCII && $0.isLowercase) }
                throw invalid(printable ? "unsupported query parameter '\(key)' (supported: sslmode, application_name, connect_timeout)"
                                        : "an unsupported query parameter (supported: sslmode, application_name, connect_timeout)")
            }
        }
    }

    private static func decode(_ text: Substring, part: String) throws(PostgresError) -> String {
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
        guard let decoded = String(validating: bytes, as: UTF8.self), !decoded.utf8.contains(0) else {
            throw invalid("the \(part) is not valid UTF-8 text after percent-decoding")
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
        let hex = Array("0123456789ABCDEF".utf8)
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."),
                UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                out += "%" + String(decoding: [hex[Int(byte >> 4)], hex[Int(byte & 0xF)]], as: UTF8.self)
            }
        }
        return out
    }

    private static func invalid(_ what: String) -> PostgresError {
        PostgresError(.invalidURL, "PostgreSQL URL: \(what)")
    }
}
