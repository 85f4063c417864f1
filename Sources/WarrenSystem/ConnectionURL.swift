import Glibc

/// A connection URL, `scheme://[user[:password]@]host[:port][/path][?query]`, split without
/// Foundation into its still percent-encoded parts.
///
/// Splitting never fails; the methods that decode a part throw ``URLSyntaxError``, whose messages
/// name the part that is wrong and never quote the URL (which may hold a password). The scheme
/// and path rules (which schemes, what the path means, which query keys) are the caller's.
public struct ConnectionURL: Sendable {
    /// The scheme, lowercased (`amqp`, `redis`...).
    public var scheme: String
    /// The text before the last `@` of the authority, or `nil` when there is no `@`.
    public var userInfo: Substring?
    /// `host[:port]`, the host in brackets when it is an IPv6 address.
    public var hostPort: Substring
    /// The text after the first `/` that follows the authority, or `nil` when there is none.
    public var path: Substring?
    /// The text after the first `?`, or `nil` when there is none.
    public var query: Substring?
    /// Whether the text after `://` contains a space or a line break.
    public var containsWhitespace: Bool
    /// Whether there is a `#` before the query (in the authority or the path).
    public var containsFragment: Bool
    /// Whether ``decode(_:part:)`` refuses a decoded NUL byte (for C strings, e.g. libpq's).
    public var refusesNUL: Bool

    /// Splits `url`; `nil` when it does not start with `scheme://`.
    public init?(_ url: String, refusingNUL: Bool = false) {
        guard let colon = url.firstIndex(of: ":"), url[colon...].hasPrefix("://") else { return nil }
        scheme = url[..<colon].lowercased()
        var rest = url[url.index(colon, offsetBy: 3)...]
        containsWhitespace = rest.contains(where: { $0 == " " || $0.isNewline })
        query = nil
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        containsFragment = rest.contains("#")
        path = nil
        if let slash = rest.firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }
        userInfo = nil
        if let at = rest.lastIndex(of: "@") {
            userInfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
        }
        hostPort = rest
        refusesNUL = refusingNUL
    }

    /// The decoded user and password (`nil` when the user info has no `:`), or `nil` when the URL
    /// has no user info.
    ///
    /// - Parameter userPart: what to call the user in messages ("user", "user name").
    public func credentials(userPart: String) throws(URLSyntaxError) -> (user: String, password: String?)? {
        guard let userInfo else { return nil }
        guard let colon = userInfo.firstIndex(of: ":") else { return (try decode(userInfo, part: userPart), nil) }
        let user = try decode(userInfo[..<colon], part: userPart)
        return (user, try decode(userInfo[userInfo.index(after: colon)...], part: "password"))
    }

    /// The decoded host (`nil` when empty) and the port (`nil` when not given). An IPv6 address is
    /// written in brackets (`[::1]:5432`) and returned without them.
    ///
    /// - Parameter requiringHost: throw "the host is missing" when the host is empty.
    public func hostAndPort(requiringHost: Bool = false) throws(URLSyntaxError) -> (host: String?, port: Int?) {
        var hostPart = hostPort
        var portPart: Substring?
        if hostPart.hasPrefix("[") {
            guard let close = hostPart.firstIndex(of: "]") else { throw URLSyntaxError("unterminated IPv6 address") }
            let after = hostPart[hostPart.index(after: close)...]
            hostPart = hostPart[hostPart.index(after: hostPart.startIndex)..<close]
            if !after.isEmpty {
                guard after.hasPrefix(":") else { throw URLSyntaxError("unexpected text after the IPv6 address") }
                portPart = after.dropFirst()
            }
        } else if let colon = hostPart.lastIndex(of: ":") {
            portPart = hostPart[hostPart.index(after: colon)...]
            hostPart = hostPart[..<colon]
        }
        if requiringHost && hostPart.isEmpty { throw URLSyntaxError("the host is missing") }
        let host = hostPart.isEmpty ? nil : try decode(hostPart, part: "host")
        guard let portPart else { return (host, nil) }
        guard let port = Int(portPart), (1...65535).contains(port) else {
            throw URLSyntaxError("the port is not a number in 1...65535")
        }
        return (host, port)
    }

    /// The query's `key=value` pairs in order, still percent-encoded (a pair without `=` has an
    /// empty value; empty pairs are skipped).
    public var queryItems: [(key: Substring, value: Substring)] {
        (query ?? "").split(separator: "&").map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (parts[0], parts.count > 1 ? parts[1] : "")
        }
    }

    /// Percent-decodes one part of the URL, which must then be UTF-8 (without NUL bytes when
    /// ``refusesNUL``).
    ///
    /// - Parameter part: what to call the part in messages ("password", "vhost").
    public func decode(_ text: Substring, part: String) throws(URLSyntaxError) -> String {
        guard let bytes = PercentEncoding.decode(text) else {
            throw URLSyntaxError("bad percent-encoding in the \(part)")
        }
        guard let decoded = String(validating: bytes, as: UTF8.self), !(refusesNUL && bytes.contains(0)) else {
            throw URLSyntaxError("the \(part) is not valid UTF-8\(refusesNUL ? " text" : "") after percent-decoding")
        }
        return decoded
    }
}

/// A connection URL that cannot be used. The message names the part that is wrong and never
/// quotes the URL.
public struct URLSyntaxError: Error, Sendable, Equatable {
    /// What is wrong, in words ("the port is not a number in 1...65535").
    public var message: String

    /// Creates an error.
    public init(_ message: String) { self.message = message }
}

extension ConnectionURL {
    /// Checks that the file a query parameter names (a CA, a certificate, a key) can be opened for
    /// reading by this process now, and returns its path. A typo or a missing Secret mount is then a
    /// configuration error at start, naming the parameter, instead of a connect failure on every
    /// retry.
    public static func readableFile(_ path: String, key: some StringProtocol) throws(URLSyntaxError) -> String {
        guard !path.isEmpty else { throw URLSyntaxError("query '\(key)' is empty") }
        // O_NONBLOCK: opening a FIFO by mistake must not wait for a writer.
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            throw URLSyntaxError("query '\(key)': cannot read \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var statBuffer = stat()
        if fstat(fd, &statBuffer) == 0, (statBuffer.st_mode & S_IFMT) != S_IFREG {
            throw URLSyntaxError("query '\(key)': \(path) is not a regular file (a PEM file is expected)")
        }
        return path
    }
}
