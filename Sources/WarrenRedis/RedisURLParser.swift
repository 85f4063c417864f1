/// Parses `redis://[[user]:password@]host[:port][/db]` without Foundation and without ever putting
/// any text of the URL (the password least of all) into an error message.
enum RedisURLParser {
    static func parse(_ url: String) throws(RedisError) -> RedisConfiguration {
        var config = RedisConfiguration()
        guard let colon = url.firstIndex(of: ":"), url[colon...].hasPrefix("://") else {
            throw invalid("expected redis://[[user]:password@]host[:port][/db]")
        }
        switch url[..<colon].lowercased() {
        case "redis": break
        case "rediss": throw invalid("TLS (rediss://) is not supported; use redis://")
        default: throw invalid("unsupported scheme; use redis://")
        }
        var rest = url[url.index(colon, offsetBy: 3)...]
        if rest.contains(where: { $0 == " " || $0.isNewline }) { throw invalid("contains whitespace") }
        if rest.contains("?") { throw invalid("query parameters are not supported") }
        if rest.contains("#") { throw invalid("fragments (#) are not allowed") }

        var path: Substring?
        if let slash = rest.firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }
        if let at = rest.lastIndex(of: "@") {
            let userInfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            guard let colon = userInfo.firstIndex(of: ":") else {
                throw invalid("a user name needs a password: write redis://user:password@host or redis://:password@host")
            }
            let user = try decode(userInfo[..<colon], part: "user name")
            config.username = user.isEmpty ? nil : user
            config.password = try decode(userInfo[userInfo.index(after: colon)...], part: "password")
        }
        try parseHostPort(rest, into: &config)
        if let path, !path.isEmpty {
            guard let db = Int(path), db >= 0, db <= 1_000_000 else {
                throw invalid("the database (path) must be a number like /0")
            }
            config.database = db
        }
        return config
    }

    private static func parseHostPort(_ authority: Substring, into config: inout RedisConfiguration) throws(RedisError) {
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
        if !hostPart.isEmpty { config.host = try decode(hostPart, part: "host") }
        if let portPart {
            guard let port = Int(portPart), (1...65535).contains(port) else {
                throw invalid("the port is not a number in 1...65535")
            }
            config.port = port
        }
    }

    private static func decode(_ text: Substring, part: String) throws(RedisError) -> String {
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

    private static func invalid(_ what: String) -> RedisError {
        RedisError(.invalidURL, "Redis URL: \(what)")
    }
}
