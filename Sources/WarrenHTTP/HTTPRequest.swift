import NIOHTTP1

/// One `name=value` pair of a request's query string, percent-decoded.
public struct HTTPQueryItem: Sendable, Hashable {
    /// The decoded name (`exclude` in `?exclude=redis`).
    public var name: String
    /// The decoded value; empty for `?flag` and `?flag=`.
    public var value: String

    /// Creates a query item.
    init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

/// A request as a route handler sees it: no body (the server rejects requests that carry one).
public struct HTTPRequest: Sendable {
    /// The request method. A `HEAD` request reaches the `GET` handler with `.HEAD` here.
    public var method: HTTPMethod
    /// The protocol version of the request.
    public var version: HTTPVersion
    /// The path as sent, without query string and fragment, not percent-decoded
    /// (for `GET http://host/x?y` it is `/x`). Safe to log: it never contains the query.
    public var path: String
    /// For a prefix route, the percent-decoded rest of the path after the prefix
    /// (`redis` for `/internal/ready/redis` on prefix `/internal/ready/`); `nil` for an exact route.
    public var pathRemainder: String?
    /// The query items in the order sent; a key may repeat (`?exclude=a&exclude=b`).
    /// Names and values are percent-decoded and `+` is read as a space.
    public var queryItems: [HTTPQueryItem]
    /// The request headers.
    public var headers: HTTPHeaders

    /// Creates a request from a request target (`/path?query`, or absolute form `http://host/path?query`).
    /// Package access: Warren's ``HealthEndpoints`` parses an application server's request with it.
    package init(
        method: HTTPMethod,
        uri: String,
        version: HTTPVersion = .http1_1,
        headers: HTTPHeaders = [:]
    ) {
        let target = HTTPRequestTarget(uri)
        self.method = method
        self.version = version
        self.path = target.path
        self.pathRemainder = nil
        self.queryItems = target.query.map(HTTPQueryItem.parse(query:)) ?? []
        self.headers = headers
    }

    /// Every value of query key `name`, in order (`["a", "b"]` for `?exclude=a&exclude=b`).
    public func queryValues(for name: String) -> [String] {
        self.queryItems.filter { $0.name == name }.map(\.value)
    }

    /// The first value of query key `name`, or `nil` when absent.
    public func queryValue(for name: String) -> String? {
        self.queryItems.first { $0.name == name }?.value
    }
}

/// The parts of a request target: path and raw query.
struct HTTPRequestTarget: Equatable {
    var path: String
    var query: String?

    init(_ uri: String) {
        // Scanned as UTF-8 bytes: every delimiter is ASCII, so each index found is also a character
        // boundary of `uri` (and a probe's request costs no Character iteration or lowercased copy).
        let bytes = uri.utf8
        var start = bytes.startIndex
        // Absolute form (RFC 9112 §3.2.2): drop scheme and authority.
        if bytes.first != UInt8(ascii: "/"), let authority = Self.authorityStart(bytes) {
            start = bytes[authority...].firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") } ?? bytes.endIndex
        }
        let end = bytes[start...].firstIndex(of: UInt8(ascii: "#")) ?? bytes.endIndex
        var pathEnd = end
        if let question = bytes[start..<end].firstIndex(of: UInt8(ascii: "?")) {
            self.query = String(uri[bytes.index(after: question)..<end])
            pathEnd = question
        } else {
            self.query = nil
        }
        self.path = start == pathEnd ? "/" : String(uri[start..<pathEnd])
    }

    /// Where the authority starts when `bytes` begins with `http://` or `https://` (any case).
    private static func authorityStart(_ bytes: String.UTF8View) -> String.Index? {
        for scheme in ["http://", "https://"] {
            var index = bytes.startIndex
            var matches = true
            for expected in scheme.utf8 {
                guard index < bytes.endIndex, Self.lowercased(bytes[index]) == expected else {
                    matches = false
                    break
                }
                index = bytes.index(after: index)
            }
            if matches { return index }
        }
        return nil
    }

    private static func lowercased(_ byte: UInt8) -> UInt8 {
        (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte) ? byte | 0x20 : byte
    }
}

extension HTTPQueryItem {
    /// Parses `a=1&b=2&a=3` (as after the `?`) into items; empty pieces are skipped.
    static func parse(query: String) -> [HTTPQueryItem] {
        query.split(separator: "&", omittingEmptySubsequences: true).map { piece in
            if let equals = piece.firstIndex(of: "=") {
                return HTTPQueryItem(
                    name: percentDecode(piece[..<equals], plusIsSpace: true),
                    value: percentDecode(piece[piece.index(after: equals)...], plusIsSpace: true)
                )
            }
            return HTTPQueryItem(name: percentDecode(piece, plusIsSpace: true), value: "")
        }
    }
}

/// Decodes `%XX` escapes (and `+` as space when asked). A malformed escape is kept literally;
/// bytes that are not valid UTF-8 become U+FFFD.
func percentDecode<S: StringProtocol>(_ text: S, plusIsSpace: Bool) -> String {
    let utf8 = Array(text.utf8)
    guard utf8.contains(where: { $0 == UInt8(ascii: "%") || (plusIsSpace && $0 == UInt8(ascii: "+")) }) else {
        return String(text)
    }
    var out: [UInt8] = []
    out.reserveCapacity(utf8.count)
    var index = 0
    while index < utf8.count {
        let byte = utf8[index]
        if byte == UInt8(ascii: "%"), index + 2 < utf8.count,
            let high = hexValue(utf8[index + 1]), let low = hexValue(utf8[index + 2])
        {
            out.append(high << 4 | low)
            index += 3
        } else if plusIsSpace && byte == UInt8(ascii: "+") {
            out.append(UInt8(ascii: " "))
            index += 1
        } else {
            out.append(byte)
            index += 1
        }
    }
    return String(decoding: out, as: UTF8.self)
}

private func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return byte - UInt8(ascii: "A") + 10
    default: return nil
    }
}
