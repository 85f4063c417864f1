import NIOHTTP1

/// The life of one side-port connection, as a state machine: each channel event goes in, the
/// effect to carry out comes out as an ``Action``. It does no I/O and owns no timer;
/// ``HTTPConnectionHandler`` carries the actions out and keeps the one timer ``timer`` asks for.
///
/// NIO's `HTTPServerPipelineHandler`, in front of the handler, hands requests over one at a time:
/// a pipelined request is held there (and reading stops) until the response to the previous one
/// is written. So at most one request is ever being answered here, and no queue is needed.
/// Quiescing (`ChannelShouldQuiesceEvent`) is handled there too: an idle connection is closed, the
/// response in flight goes out with `Connection: close`, then the connection is closed (only after
/// a 414/431, once that handler is gone, does the event reach ``quiesce()``).
struct HTTPConnectionStateMachine {
    enum State {
        /// Waiting for the next request.
        case idle(Input)
        /// A request head has arrived; its end has not.
        case receiving(HTTPRequestHead, Input)
        /// The response to a complete request is being computed (inline, or by an async handler).
        case responding(HTTPRequestHead, Input)
        /// The last response is written and the connection is closing; `lingering`: the output side
        /// is shut and input is drained for a moment, so a client still sending reads the response
        /// instead of a TCP reset.
        case closing(lingering: Bool)
        case closed
    }

    /// What is known of the input side while requests are still being taken.
    struct Input: Equatable {
        /// Requests a read ended inside of (``HTTPRequestLimitEvent/requestStarted``) whose head has
        /// not reached this handler yet. One that arrives whole is not counted: its head comes in the
        /// same read, or, held by `HTTPServerPipelineHandler` behind a response, from inside that
        /// response's write, before any timer is chosen again.
        var requestsStarted = 0
        /// A request line or header block over its limit (414/431), to answer once the requests
        /// before it are answered. Nothing is read after it.
        var rejection: Rejection?
        /// The peer shut its sending side (half-close): answer what arrived, then close.
        var peerClosed = false
    }

    /// A request answered with the server's own error response, then the connection closed.
    struct Rejection: Equatable {
        var status: HTTPResponseStatus
        var reason: String
        /// The request was cut off before the decoder produced its head (414/431): the response
        /// answers no request `HTTPServerPipelineHandler` has seen.
        var isUnparsed = false
    }

    /// How a connection is closed.
    enum Closing: Equatable {
        /// Shut the output (after pending writes), drain input until the peer closes or the linger timer fires.
        case lingering
        /// Close once pending writes are done (the peer has stopped sending, or a timeout fired).
        case immediately
    }

    enum Action {
        case none
        /// Route `request` and pass its response to ``responseReady(_:)``, inline or when the async
        /// handler finishes.
        case route(HTTPRequest)
        /// Write the response to the request `head`; then close as told, or, when `closing` is nil
        /// (keep-alive), report ``responseWritten()`` once the write call has returned.
        case write(HTTPResponse, HTTPRequestHead, closing: Closing?)
        /// Answer with the server's own error response (`Connection: close`), then close.
        case reject(Rejection, closing: Closing)
        /// Close without writing anything more.
        case close(Closing)
    }

    /// The timers of a connection; at most one runs at a time.
    enum Timer: Equatable {
        /// No request in progress (after accept, or between keep-alive requests).
        case idle
        /// A request has started to arrive and is not complete (slowloris); not counted while a
        /// response is outstanding, since reading is paused then.
        case read
        /// Lingering close.
        case linger
    }

    private(set) var state = State.idle(Input())

    /// The timer that should be running now; the handler swaps it when this changes.
    var timer: Timer? {
        switch self.state {
        case .idle(let input): input.requestsStarted > 0 ? .read : .idle
        case .receiving: .read
        case .responding: nil
        case .closing(let lingering): lingering ? .linger : nil
        case .closed: nil
        }
    }

    // MARK: Input events

    /// A read ended inside a request head (from ``HTTPRequestLimitHandler``, ahead of the decoder).
    mutating func requestStarted() {
        self.updateInput { $0.requestsStarted += 1 }
    }

    /// ``HTTPRequestLimitHandler`` found the request line or header block too long; it forwards
    /// nothing more. Requests complete before it may still be held by `HTTPServerPipelineHandler`,
    /// so while one is being answered the rejection waits for ``responseWritten()``.
    mutating func limitExceeded(_ status: HTTPResponseStatus) -> Action {
        let rejection = Rejection(
            status: status,
            reason: status == .uriTooLong ? "request line too long" : "header block too large",
            isUnparsed: true
        )
        if case .idle(let input) = self.state {
            return self.reject(rejection, input)
        }
        self.updateInput { input in
            if input.rejection == nil { input.rejection = rejection }
        }
        return .none
    }

    mutating func requestHead(_ head: HTTPRequestHead) -> Action {
        guard case .idle(var input) = self.state else { return .none }
        input.requestsStarted = max(0, input.requestsStarted - 1)
        if head.version.major != 1 {
            return self.reject(Rejection(status: .httpVersionNotSupported, reason: "unsupported HTTP version"), input)
        }
        if Self.announcesBody(head.headers) {
            return self.reject(Rejection(status: .payloadTooLarge, reason: "request body not accepted"), input)
        }
        self.state = .receiving(head, input)
        return .none
    }

    /// Body bytes. A head that announces a body is rejected already, so this is a backstop.
    mutating func requestBody() -> Action {
        guard case .receiving(_, let input) = self.state else { return .none }
        return self.reject(Rejection(status: .payloadTooLarge, reason: "request body not accepted"), input)
    }

    mutating func requestEnd() -> Action {
        guard case .receiving(let head, let input) = self.state else { return .none }
        self.state = .responding(head, input)
        return .route(HTTPRequest(method: head.method, uri: head.uri, version: head.version, headers: head.headers))
    }

    /// The peer shut its sending side. `HTTPServerPipelineHandler` delivers this after the
    /// requests it holds, so nothing more is coming.
    mutating func inputClosed() -> Action {
        switch self.state {
        case .idle, .receiving, .closing(lingering: true):
            // Idle: nothing to answer. Receiving: the request cannot complete. Lingering: done.
            self.state = .closing(lingering: false)
            return .close(.immediately)
        case .responding(let head, var input):
            input.peerClosed = true
            self.state = .responding(head, input)
            return .none
        case .closing(lingering: false), .closed:
            return .none
        }
    }

    /// The decoder could not parse a request. `HTTPServerPipelineHandler` holds such an error
    /// until the responses to the requests before it are written, so it comes while idle.
    mutating func protocolError(reason: String) -> Action {
        switch self.state {
        case .idle(let input), .receiving(_, let input):
            return self.reject(Rejection(status: .badRequest, reason: reason), input)
        case .responding:
            // Not expected (see above); a 400 now would be a second response to one request.
            self.state = .closing(lingering: false)
            return .close(.immediately)
        case .closing, .closed:
            return .none
        }
    }

    /// Any other error (I/O, a broken invariant in a NIO handler): close.
    mutating func failed() -> Action {
        guard self.input != nil else { return .none }
        self.state = .closing(lingering: false)
        return .close(.immediately)
    }

    /// `ChannelShouldQuiesceEvent` reaches this handler only once `HTTPServerPipelineHandler`
    /// (which handles it otherwise) is gone, i.e. after a 414/431: stop lingering.
    mutating func quiesce() -> Action {
        switch self.state {
        case .closing(lingering: true):
            self.state = .closing(lingering: false)
            return .close(.immediately)
        case .idle, .receiving, .responding, .closing(lingering: false), .closed:
            return .none
        }
    }

    mutating func timerFired(_ timer: Timer) -> Action {
        guard self.timer == timer else { return .none }
        self.state = .closing(lingering: false)
        return .close(.immediately)
    }

    mutating func channelInactive() {
        self.state = .closed
    }

    // MARK: Responses

    /// The response to the request being answered is ready.
    mutating func responseReady(_ response: HTTPResponse) -> Action {
        guard case .responding(let head, let input) = self.state else { return .none }
        if !head.isKeepAlive {
            let closing: Closing = input.peerClosed ? .immediately : .lingering
            self.state = .closing(lingering: closing == .lingering)
            return .write(response, head, closing: closing)
        }
        if input.peerClosed, input.rejection == nil {
            self.state = .closing(lingering: false)
            return .write(response, head, closing: .immediately)
        }
        // Idle before the write: writing the end of the response makes `HTTPServerPipelineHandler`
        // hand over the next request it holds, from inside the write call.
        self.state = .idle(input)
        return .write(response, head, closing: nil)
    }

    /// A keep-alive response has been written and the write call has returned. Still idle means
    /// `HTTPServerPipelineHandler` held no further request: a pending rejection is due now.
    mutating func responseWritten() -> Action {
        guard case .idle(let input) = self.state, let rejection = input.rejection else { return .none }
        return self.reject(rejection, input)
    }

    // MARK: Private

    /// The input side while requests are still being taken; nil once closing.
    private var input: Input? {
        switch self.state {
        case .idle(let input), .receiving(_, let input), .responding(_, let input): input
        case .closing, .closed: nil
        }
    }

    private mutating func updateInput(_ update: (inout Input) -> Void) {
        switch self.state {
        case .idle(var input):
            update(&input)
            self.state = .idle(input)
        case .receiving(let head, var input):
            update(&input)
            self.state = .receiving(head, input)
        case .responding(let head, var input):
            update(&input)
            self.state = .responding(head, input)
        case .closing, .closed:
            break
        }
    }

    private mutating func reject(_ rejection: Rejection, _ input: Input) -> Action {
        let closing: Closing = input.peerClosed ? .immediately : .lingering
        self.state = .closing(lingering: closing == .lingering)
        return .reject(rejection, closing: closing)
    }

    static func announcesBody(_ headers: HTTPHeaders) -> Bool {
        if headers.contains(name: "Transfer-Encoding") {
            return true
        }
        // A value that is not a number counts as a body (llhttp rejects most of those anyway).
        return headers["Content-Length"].contains { value in
            Int(value.filter { $0 != " " && $0 != "\t" }).map { $0 != 0 } ?? true
        }
    }
}
