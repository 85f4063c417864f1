import NIOCore
import NIOHTTP1

/// A complete response: status, headers and body bytes.
///
/// The server sets `Content-Length` from the body and manages `Connection` itself; any value
/// a handler puts in those two headers is replaced.
public struct HTTPResponse: Sendable {
    /// The status, e.g. `.ok` or `.serviceUnavailable`.
    public var status: HTTPResponseStatus { didSet { self.preparedHead = nil } }
    /// Response headers (`Content-Type` among them, see ``contentType``).
    public var headers: HTTPHeaders { didSet { self.preparedHead = nil } }
    /// The body. For a `HEAD` request it is measured for `Content-Length` but not sent.
    public var body: ByteBuffer { didSet { self.preparedHead = nil } }
    /// The head of a kept-alive HTTP/1.1 answer, made once by ``prepareHead()`` for a response
    /// served many times (a rendered health report); any change above drops it.
    private var preparedHead: HTTPResponseHead?

    /// Creates a response with a `ByteBuffer` body.
    /// - Parameter contentType: when given, sets the `Content-Type` header.
    public init(
        status: HTTPResponseStatus,
        headers: HTTPHeaders = [:],
        body: ByteBuffer = ByteBuffer(),
        contentType: String? = nil
    ) {
        self.status = status
        self.headers = headers
        self.body = body
        if let contentType {
            self.headers.replaceOrAdd(name: "Content-Type", value: contentType)
        }
    }

    /// Creates a response with a body given as bytes.
    /// - Parameter contentType: when given, sets the `Content-Type` header.
    public init(
        status: HTTPResponseStatus,
        headers: HTTPHeaders = [:],
        bytes: [UInt8],
        contentType: String? = nil
    ) {
        self.init(status: status, headers: headers, body: ByteBuffer(bytes: bytes), contentType: contentType)
    }

    /// The `Content-Type` header, or `nil` when none is set.
    public var contentType: String? {
        get { self.headers.first(name: "Content-Type") }
        set {
            if let newValue {
                self.headers.replaceOrAdd(name: "Content-Type", value: newValue)
            } else {
                self.headers.remove(name: "Content-Type")
            }
        }
    }

    /// A UTF-8 text response (`text/plain; charset=utf-8` unless told otherwise).
    public static func text(
        _ text: String,
        status: HTTPResponseStatus = .ok,
        contentType: String = "text/plain; charset=utf-8"
    ) -> HTTPResponse {
        HTTPResponse(status: status, body: ByteBuffer(string: text), contentType: contentType)
    }

    /// A response whose body is already-encoded JSON text (`application/json` unless told
    /// otherwise, e.g. `application/health+json`).
    public static func json(
        _ json: String,
        status: HTTPResponseStatus = .ok,
        contentType: String = "application/json"
    ) -> HTTPResponse {
        HTTPResponse(status: status, body: ByteBuffer(string: json), contentType: contentType)
    }

    /// The response head as written: `Content-Length` from the body (also for `HEAD`, which gets
    /// the `GET` headers without the body), no `Transfer-Encoding`, and `Connection` set by the
    /// server: `close` when the connection closes after this response, `keep-alive` for an
    /// HTTP/1.0 client that asked for it.
    func head(version: HTTPVersion, keepAlive: Bool) -> HTTPResponseHead {
        if keepAlive, version == .http1_1, let preparedHead = self.preparedHead {
            return preparedHead
        }
        var headers = self.headers
        headers.remove(name: "Connection")
        headers.remove(name: "Transfer-Encoding")
        headers.replaceOrAdd(name: "Content-Length", value: String(self.body.readableBytes))
        if !keepAlive {
            headers.add(name: "Connection", value: "close")
        } else if version == .http1_0 {
            headers.add(name: "Connection", value: "keep-alive")
        }
        return HTTPResponseHead(version: version, status: self.status, headers: headers)
    }

    /// Makes the head of a kept-alive HTTP/1.1 answer now, for a response that will be served many
    /// times: each request then writes it as it is instead of copying and editing the headers.
    package mutating func prepareHead() {
        self.preparedHead = nil
        self.preparedHead = self.head(version: .http1_1, keepAlive: true)
    }

    /// The small JSON error body the server uses for its own answers (404, 405, 400, …):
    /// `{"status":404,"error":"Not Found"}`.
    static func error(_ status: HTTPResponseStatus, headers: HTTPHeaders = [:]) -> HTTPResponse {
        var response = HTTPResponse.json(
            #"{"status":\#(status.code),"error":"\#(status.reasonPhrase)"}"# + "\n",
            status: status
        )
        for (name, value) in headers {
            response.headers.replaceOrAdd(name: name, value: value)
        }
        return response
    }
}
