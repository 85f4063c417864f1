import Logging
import NIOCore
import NIOHTTP1

/// Serves one connection: queues complete requests, answers them strictly in order (immediate
/// handlers inline on the event loop, async handlers on the cooperative pool), rejects bodies and
/// malformed or oversized requests, and runs the idle and read timeouts.
///
/// Pipeline, head to tail: `HTTPRequestLimitHandler`, `HTTPResponseEncoder`,
/// `ByteToMessageHandler(HTTPRequestDecoder)`, this handler.
final class HTTPConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundIn = Never
    typealias OutboundOut = HTTPServerResponsePart

    enum Work {
        case request(HTTPRequest, keepAlive: Bool)
        case reject(HTTPResponseStatus, reason: String)
    }

    private let router: HTTPRouter
    let configuration: HTTPServerConfiguration
    private let gate: EventLoopGate
    var logger: Logger

    /// Complete requests (or rejections) not yet answered, in arrival order.
    var queue = CircularBuffer<Work>(initialCapacity: 4)
    /// The head of the request being received, until its `.end`.
    private var partialHead: HTTPRequestHead?
    /// A request's first byte has arrived but the request is not complete yet.
    var requestInProgress = false
    /// An async handler is computing the response at the front of the line.
    var responding = false
    /// No further requests are accepted (after `Connection: close`, a rejection, or quiescing).
    var inputClosed = false
    /// Graceful shutdown asked this connection to finish.
    private var quiescing = false
    /// The last response is written (or being written) and the connection is closing.
    var closing = false
    /// The channel is inactive.
    private var closed = false
    /// The peer shut down its sending side (half-close); answer what is queued, then close.
    private var peerClosedInput = false
    /// This side sent FIN after the last response (lingering close).
    private var outputClosed = false
    /// Reading is held back because too many requests are queued.
    var readsPaused = false
    private var pendingRead = false

    var idleTimer: Scheduled<Void>?
    var readTimer: Scheduled<Void>?
    var lingerTimer: Scheduled<Void>?

    /// The async handler computing the response at the front of the line; cancelled when the
    /// connection closes.
    private var asyncHandlerTask: Task<Void, Never>?

    init(router: HTTPRouter, configuration: HTTPServerConfiguration, gate: EventLoopGate, logger: Logger) {
        self.router = router
        self.configuration = configuration
        self.gate = gate
        self.logger = logger
    }

    // MARK: Channel events

    func channelActive(context: ChannelHandlerContext) {
        if let remote = context.channel.remoteAddress {
            self.logger[metadataKey: "warren.http.remote"] = "\(remote.ipAddress ?? "?"):\(remote.port ?? 0)"
        }
        self.updateIdleTimer(context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.closed = true
        self.closing = true
        self.queue.removeAll()
        self.cancelTimers()
        self.asyncHandlerTask?.cancel()
        self.asyncHandlerTask = nil
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.cancelTimers()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            self.processQueue(context: context)
        }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case let event as HTTPRequestLimitEvent:
            switch event {
            case .requestStarted:
                guard !self.inputClosed else { return }
                self.requestInProgress = true
                self.cancelIdleTimer()
                self.armReadTimer(context: context)
            case .limitExceeded(let status):
                let reason = status == .uriTooLong ? "request line too long" : "header block too large"
                self.reject(status, reason: reason, context: context)
            }
        case is ChannelShouldQuiesceEvent:
            self.quiesce(context: context)
        case let event as ChannelEvent where event == .inputClosed:
            self.peerClosedInput = true
            if self.closing {
                // Lingering close done (or under way: lingeringClose sees the flag).
                if self.outputClosed { context.close(promise: nil) }
                return
            }
            // `printf 'GET /metrics HTTP/1.1\r\n\r\n' | nc -N`: still answer what arrived.
            self.inputClosed = true
            self.partialHead = nil
            self.requestInProgress = false
            self.cancelReadTimer()
            self.processQueue(context: context)
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !self.inputClosed else { return }
        switch Self.unwrapInboundIn(data) {
        case .head(let head):
            if head.version.major != 1 {
                self.reject(.httpVersionNotSupported, reason: "unsupported HTTP version", context: context)
            } else if Self.announcesBody(head.headers) {
                self.reject(.payloadTooLarge, reason: "request body not accepted", context: context)
            } else {
                self.partialHead = head
            }
        case .body:
            self.reject(.payloadTooLarge, reason: "request body not accepted", context: context)
        case .end:
            guard let head = self.partialHead else { return }
            self.partialHead = nil
            self.requestInProgress = false
            self.cancelReadTimer()
            let keepAlive = head.isKeepAlive
            if !keepAlive {
                self.inputClosed = true
            }
            let request = HTTPRequest(method: head.method, uri: head.uri, version: head.version, headers: head.headers)
            self.queue.append(.request(request, keepAlive: keepAlive))
            if self.queue.count >= self.configuration.maxPipelinedRequests {
                self.readsPaused = true
            }
            self.processQueue(context: context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        switch error {
        case let error as HTTPParserError:
            if case .headerOverflow = error {
                self.reject(.requestHeaderFieldsTooLarge, reason: "header block too large", context: context)
            } else {
                self.reject(.badRequest, reason: "malformed request: \(error.debugDescription)", context: context)
            }
        case is ByteToMessageDecoderError:
            // Bytes after a parse error; the connection is already being answered and closed.
            self.reject(.badRequest, reason: "malformed request", context: context)
        default:
            self.logger.debug(
                "connection error",
                metadata: ["warren.http.error": "\(String(describing: type(of: error))): \(error)"]
            )
            self.closing = true
            context.close(promise: nil)
        }
    }

    // MARK: Outbound

    func read(context: ChannelHandlerContext) {
        if self.readsPaused {
            self.pendingRead = true
        } else {
            context.read()
        }
    }

    // MARK: Request processing

    /// Answers queued requests in order until one needs an async handler, the channel stops
    /// being writable, or the queue is empty.
    private func processQueue(context: ChannelHandlerContext) {
        while !self.responding, !self.closing, context.channel.isWritable, let work = self.queue.popFirst() {
            switch work {
            case .reject(let status, let reason):
                self.logger.info(
                    "request rejected",
                    metadata: ["warren.http.status": "\(status.code)", "warren.http.reason": "\(reason)"]
                )
                self.write(.error(status), version: .http1_1, isHead: false, keepAlive: false, context: context)
            case .request(let request, let keepAlive):
                switch self.router.decide(request) {
                case .respond(let response):
                    self.finish(request, response, keepAlive: keepAlive, context: context)
                case .handle(.immediate(let handler), let routed):
                    self.finish(request, handler(routed), keepAlive: keepAlive, context: context)
                case .handle(.async(let handler), let routed):
                    self.responding = true
                    self.startAsyncHandler(handler, routed, request: request, keepAlive: keepAlive, context: context)
                    return
                }
            }
        }
        guard !self.closing else { return }
        if self.readsPaused, self.queue.count < max(1, self.configuration.maxPipelinedRequests / 2) {
            self.readsPaused = false
            if self.pendingRead {
                self.pendingRead = false
                context.read()
            }
        }
        if self.inputClosed, self.queue.isEmpty, !self.responding {
            // Nothing left to answer and nothing more will be read (e.g. quiescing while idle).
            self.closing = true
            self.cancelTimers()
            context.close(promise: nil)
            return
        }
        self.updateIdleTimer(context: context)
    }

    /// Runs an async handler on the cooperative pool; its response comes back to the event loop
    /// through the gate and is written in order.
    private func startAsyncHandler(
        _ handler: @escaping @Sendable (HTTPRequest) async -> HTTPResponse,
        _ routed: HTTPRequest,
        request: HTTPRequest,
        keepAlive: Bool,
        context: ChannelHandlerContext
    ) {
        let loop = context.eventLoop
        let gate = self.gate
        let target = NIOLoopBound((handler: self, context: context), eventLoop: loop)
        self.asyncHandlerTask = Task {
            let response = await handler(routed)
            gate.execute(on: loop) {
                let (handler, context) = target.value
                handler.asyncHandlerFinished(request, response, keepAlive: keepAlive, context: context)
            }
        }
    }

    private func asyncHandlerFinished(
        _ request: HTTPRequest,
        _ response: HTTPResponse,
        keepAlive: Bool,
        context: ChannelHandlerContext
    ) {
        self.asyncHandlerTask = nil
        self.responding = false
        guard !self.closed else { return }
        self.finish(request, response, keepAlive: keepAlive, context: context)
        self.processQueue(context: context)
    }

    private func finish(_ request: HTTPRequest, _ response: HTTPResponse, keepAlive: Bool, context: ChannelHandlerContext) {
        let keepAlive = keepAlive && !self.quiescing
        self.logger.debug(
            "request",
            metadata: [
                "warren.http.method": "\(request.method.rawValue)",
                // The path only: query strings may carry secrets. Capped: it comes from the client.
                "warren.http.path": "\(request.path.prefix(200))",
                "warren.http.status": "\(response.status.code)",
            ]
        )
        self.write(response, version: request.version, isHead: request.method == .HEAD, keepAlive: keepAlive, context: context)
    }

    /// Writes a whole response; when `keepAlive` is false, closes the connection after it.
    private func write(
        _ response: HTTPResponse,
        version: HTTPVersion,
        isHead: Bool,
        keepAlive: Bool,
        context: ChannelHandlerContext
    ) {
        var headers = response.headers
        headers.remove(name: "Connection")
        headers.remove(name: "Transfer-Encoding")
        headers.replaceOrAdd(name: "Content-Length", value: String(response.body.readableBytes))
        if !keepAlive {
            headers.add(name: "Connection", value: "close")
        } else if version == .http1_0 {
            headers.add(name: "Connection", value: "keep-alive")
        }
        let head = HTTPResponseHead(version: version, status: response.status, headers: headers)
        context.write(Self.wrapOutboundOut(.head(head)), promise: nil)
        if !isHead, response.body.readableBytes > 0 {
            context.write(Self.wrapOutboundOut(.body(.byteBuffer(response.body))), promise: nil)
        }
        guard !keepAlive else {
            context.writeAndFlush(Self.wrapOutboundOut(.end(nil)), promise: nil)
            return
        }
        self.closing = true
        self.inputClosed = true
        self.queue.removeAll()
        self.cancelTimers()
        let written = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(Self.wrapOutboundOut(.end(nil)), promise: written)
        written.futureResult.assumeIsolated().whenComplete { result in
            switch result {
            case .success: self.lingeringClose(context: context)
            case .failure: context.close(promise: nil)
            }
        }
    }

    /// Half-closes (FIN) after the last response and keeps draining input for a moment, so a client
    /// still sending (a rejected body or header block) reads the response instead of a TCP reset.
    private func lingeringClose(context: ChannelHandlerContext) {
        guard !self.closed else { return }
        guard !self.peerClosedInput else {
            context.close(promise: nil)
            return
        }
        self.outputClosed = true
        let closedOutput = context.eventLoop.makePromise(of: Void.self)
        context.close(mode: .output, promise: closedOutput)
        closedOutput.futureResult.assumeIsolated().whenFailure { _ in
            context.close(promise: nil)
        }
        let linger = min(self.configuration.readTimeout, .seconds(2))
        self.lingerTimer = context.eventLoop.assumeIsolated().scheduleTask(in: linger) {
            context.close(promise: nil)
        }
    }

    /// Answers `status` (after the requests already queued) and closes; the first rejection wins.
    private func reject(_ status: HTTPResponseStatus, reason: String, context: ChannelHandlerContext) {
        guard !self.inputClosed else { return }
        self.inputClosed = true
        self.partialHead = nil
        self.requestInProgress = false
        self.cancelReadTimer()
        self.queue.append(.reject(status, reason: reason))
        self.processQueue(context: context)
    }

    /// Graceful shutdown: finish the response in flight (with `Connection: close`), drop what has
    /// not started, and close; an idle connection closes at once.
    private func quiesce(context: ChannelHandlerContext) {
        guard !self.quiescing, !self.closing else { return }
        self.quiescing = true
        self.inputClosed = true
        self.partialHead = nil
        self.requestInProgress = false
        self.queue.removeAll()
        self.cancelReadTimer()
        self.processQueue(context: context)
    }

    private static func announcesBody(_ headers: HTTPHeaders) -> Bool {
        if headers.contains(name: "Transfer-Encoding") {
            return true
        }
        // A value that is not a number counts as a body (llhttp rejects most of those anyway).
        return headers["Content-Length"].contains { value in
            Int(value.filter { $0 != " " && $0 != "\t" }).map { $0 != 0 } ?? true
        }
    }
}
