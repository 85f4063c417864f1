import NIOHTTP1

/// How a route computes its response.
public enum HTTPHandler: Sendable {
    /// Runs synchronously ON THE SERVER'S NIO EVENT LOOP, never on Swift's cooperative pool,
    /// so it answers even when every cooperative thread is busy. For probes that read cached
    /// state: it must not block, sleep or wait for anything.
    case immediate(@Sendable (HTTPRequest) -> HTTPResponse)
    /// Runs as a task on Swift's cooperative pool (e.g. `/metrics`). Its response is written
    /// back on the event loop, in request order.
    case async(@Sendable (HTTPRequest) async -> HTTPResponse)
}

/// The outcome of looking a path up in an ``HTTPRouter``.
public struct HTTPRouteMatch: Sendable {
    /// The handler registered for the path.
    public var handler: HTTPHandler
    /// For a prefix route, the percent-decoded rest of the path after the prefix; `nil` for an exact route.
    public var remainder: String?
}

/// A route table from paths to handlers; a `Sendable` value built before the server starts.
///
/// Routes answer `GET`; `HEAD` is answered from the same handler without a body; any other
/// method on a known path gets `405` with `Allow: GET, HEAD`; an unknown path gets `404`.
/// An exact route wins over a prefix route; among prefix routes the longest prefix wins.
public struct HTTPRouter: Sendable {
    private var exact: [String: HTTPHandler] = [:]
    /// Sorted longest first.
    private var prefixes: [(prefix: String, handler: HTTPHandler)] = []

    /// Creates an empty route table.
    public init() {}

    /// Registers `handler` for `GET`/`HEAD` on exactly `path` (e.g. `/internal/alive`).
    /// Registering the same path again replaces the handler.
    public mutating func get(_ path: String, _ handler: HTTPHandler) {
        self.exact[path] = handler
    }

    /// Registers `handler` for `GET`/`HEAD` on every path that starts with `prefix`
    /// (e.g. `/internal/ready/`); the handler reads the rest from ``HTTPRequest/pathRemainder``
    /// (which is `""` for the prefix itself). Registering the same prefix again replaces the handler.
    public mutating func get(prefix: String, _ handler: HTTPHandler) {
        self.prefixes.removeAll { $0.prefix == prefix }
        self.prefixes.append((prefix, handler))
        self.prefixes.sort { $0.prefix.utf8.count > $1.prefix.utf8.count }
    }

    /// Looks up the handler for a path (as in ``HTTPRequest/path``: no query, not decoded).
    public func match(path: String) -> HTTPRouteMatch? {
        if let handler = self.exact[path] {
            return HTTPRouteMatch(handler: handler, remainder: nil)
        }
        for route in self.prefixes where path.hasPrefix(route.prefix) {
            let rest = path.dropFirst(route.prefix.count)
            return HTTPRouteMatch(handler: route.handler, remainder: percentDecode(rest, plusIsSpace: false))
        }
        return nil
    }

    /// What the server does with a request: call a handler, or answer at once (404/405).
    enum Decision {
        case handle(HTTPHandler, HTTPRequest)
        case respond(HTTPResponse)
    }

    /// Decides how to answer `request`, applying the method rules.
    func decide(_ request: HTTPRequest) -> Decision {
        guard let match = self.match(path: request.path) else {
            return .respond(.error(.notFound))
        }
        switch request.method {
        case .GET, .HEAD:
            var request = request
            request.pathRemainder = match.remainder
            return .handle(match.handler, request)
        default:
            return .respond(.error(.methodNotAllowed, headers: ["Allow": "GET, HEAD"]))
        }
    }
}
