import Logging
import NIOCore
import NIOHTTP1

/// Serves one connection: feeds channel events to ``HTTPConnectionStateMachine`` and carries out
/// its actions. Immediate handlers run inline on the event loop; async handlers run on the
/// cooperative pool and their response comes back to the loop through the ``EventLoopGate``.
///
/// It sits at the tail of the pipeline that ``HTTPConnectionPipeline`` builds, behind NIO's
/// `HTTPServerPipelineHandler` (one request at a time, quiescing, half-closure).
final class HTTPConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    private typealias Machine = HTTPConnectionStateMachine

    private let router: HTTPRouter
    private let configuration: HTTPServerConfiguration
    private let gate: EventLoopGate
    private var logger: Logger
    private var machine = Machine()

    /// Actions not carried out yet. `HTTPServerPipelineHandler` hands over the next request it
    /// holds from inside our write of a response's end; the actions that produces wait here until
    /// the write has returned, so a deep pipeline is served by a loop instead of a recursion as
    /// deep as the pipeline (which a client could make overflow the stack).
    private var pendingActions = CircularBuffer<Machine.Action>(initialCapacity: 2)
    private var isRunningActions = false
    /// A request to route once the channel is writable again (the client is not reading its
    /// responses; holding it keeps `HTTPServerPipelineHandler` from reading more).
    private var requestWaitingForWritability: HTTPRequest?
    /// The timer the state machine wants, and its deadline.
    private var timer: (kind: Machine.Timer, deadline: NIODeadline)?
    /// The task that wakes up for `timer`: at its deadline, or earlier (see ``syncTimer(context:)``).
    private var wakeUp: Scheduled<Void>?
    /// Completes when the last response written so far is flushed; a close waits for it.
    private var lastWrite: EventLoopFuture<Void>?
    /// The async handler computing the response in flight; cancelled when the connection closes.
    private var asyncHandlerTask: Task<Void, Never>?

    init(router: HTTPRouter, configuration: HTTPServerConfiguration, gate: EventLoopGate, logger: Logger) {
        self.router = router
        self.configuration = configuration
        self.gate = gate
        self.logger = logger
    }

    // MARK: Channel events

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive {
            self.syncTimer(context: context)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.cancelTimer()
    }

    func channelActive(context: ChannelHandlerContext) {
        if let remote = context.channel.remoteAddress {
            // Rendered only if a line is logged: formatting the address (inet_ntop, sprintf) for
            // every connection was ~4 % of a probe on a fresh connection, and few connections log.
            self.logger[metadataKey: "warren.http.remote"] = .stringConvertible(RemotePeer(address: remote))
        }
        self.syncTimer(context: context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.machine.channelInactive()
        self.cancelTimer()
        self.requestWaitingForWritability = nil
        self.asyncHandlerTask?.cancel()
        self.asyncHandlerTask = nil
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, let request = self.requestWaitingForWritability {
            self.requestWaitingForWritability = nil
            self.run(.route(request), context: context)
        }
        context.fireChannelWritabilityChanged()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let action: Machine.Action
        switch Self.unwrapInboundIn(data) {
        case .head(let head): action = self.machine.requestHead(head)
        case .body: action = self.machine.requestBody()
        case .end: action = self.machine.requestEnd()
        }
        self.run(action, context: context)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case HTTPRequestLimitEvent.requestStarted:
            self.machine.requestStarted()
            self.run(.none, context: context)
        case HTTPRequestLimitEvent.limitExceeded(let status):
            self.run(self.machine.limitExceeded(status), context: context)
        case ChannelEvent.inputClosed:
            self.run(self.machine.inputClosed(), context: context)
        case is ChannelShouldQuiesceEvent:
            self.run(self.machine.quiesce(), context: context)
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        switch error {
        case let error as HTTPParserError:
            // The decoder also parses what is left when the channel goes inactive: a partial
            // request then is an error no one is there to receive.
            guard context.channel.isActive else { return }
            self.run(self.machine.protocolError(reason: "malformed request: \(error.debugDescription)"), context: context)
        case is ByteToMessageDecoderError:
            // Bytes after a parse error: that error closes the connection (once it is delivered).
            break
        default:
            self.logger.debug(
                "connection error",
                metadata: ["warren.http.error": "\(String(describing: type(of: error))): \(error)"]
            )
            self.run(self.machine.failed(), context: context)
        }
    }

    // MARK: Actions

    /// Carries out `action`, and every action it leads to, in order; re-entrant calls only queue.
    private func run(_ action: Machine.Action, context: ChannelHandlerContext) {
        self.pendingActions.append(action)
        guard !self.isRunningActions else { return }
        self.isRunningActions = true
        while let next = self.pendingActions.popFirst() {
            self.perform(next, context: context)
        }
        self.isRunningActions = false
        self.syncTimer(context: context)
    }

    private func perform(_ action: Machine.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .route(let request):
            guard context.channel.isWritable else {
                self.requestWaitingForWritability = request
                return
            }
            self.route(request, context: context)
        case .write(let response, let head, let closing):
            self.logger.debug(
                "request",
                metadata: [
                    "warren.http.method": "\(head.method.rawValue)",
                    // The path only: query strings may carry secrets. Capped: it comes from the client.
                    "warren.http.path": "\(HTTPRequestTarget(head.uri).path.prefix(200))",
                    "warren.http.status": "\(response.status.code)",
                ]
            )
            self.write(response, version: head.version, isHead: head.method == .HEAD, keepAlive: closing == nil, context: context)
            if let closing {
                self.close(closing, context: context)
            } else {
                self.perform(self.machine.responseWritten(), context: context)
            }
        case .reject(let rejection, let closing):
            self.logger.info(
                "request rejected",
                metadata: ["warren.http.status": "\(rejection.status.code)", "warren.http.reason": "\(rejection.reason)"]
            )
            if rejection.isUnparsed {
                self.removePipeliningHandler(context: context)
            }
            self.write(.error(rejection.status), version: .http1_1, isHead: false, keepAlive: false, context: context)
            self.close(closing, context: context)
        case .close(let closing):
            self.close(closing, context: context)
        }
    }

    /// A 414/431 answers a request `HTTPServerPipelineHandler` never saw (the limit handler cut it
    /// off before the decoder), and it asserts that every response answers a request. Nothing is
    /// read after a limit violation, and the rejection is only written once that handler holds no
    /// request (``HTTPConnectionStateMachine/responseWritten()``), so it has nothing left to do:
    /// it is removed, as NIO's HTTP upgrade removes it.
    private func removePipeliningHandler(context: ChannelHandlerContext) {
        let pipeline = context.pipeline.syncOperations
        if let handler = try? pipeline.handler(type: HTTPServerPipelineHandler.self) {
            pipeline.removeHandler(handler, promise: nil)
        }
    }

    private func route(_ request: HTTPRequest, context: ChannelHandlerContext) {
        switch self.router.decide(request) {
        case .respond(let response):
            self.pendingActions.append(self.machine.responseReady(response))
        case .handle(.immediate(let handler), let routed):
            self.pendingActions.append(self.machine.responseReady(handler(routed)))
        case .handle(.async(let handler), let routed):
            self.startAsyncHandler(handler, routed, context: context)
        }
    }

    /// Runs an async handler on the cooperative pool; its response comes back to the event loop
    /// through the gate (dropped if the server has shut the loop down meanwhile).
    private func startAsyncHandler(
        _ handler: @escaping @Sendable (HTTPRequest) async -> HTTPResponse,
        _ routed: HTTPRequest,
        context: ChannelHandlerContext
    ) {
        let loop = context.eventLoop
        let gate = self.gate
        let target = NIOLoopBound((handler: self, context: context), eventLoop: loop)
        self.asyncHandlerTask = Task {
            let response = await handler(routed)
            gate.execute(on: loop) {
                let (handler, context) = target.value
                handler.asyncHandlerFinished(response, context: context)
            }
        }
    }

    private func asyncHandlerFinished(_ response: HTTPResponse, context: ChannelHandlerContext) {
        self.asyncHandlerTask = nil
        self.run(self.machine.responseReady(response), context: context)
    }

    /// Writes a whole response and flushes it.
    private func write(
        _ response: HTTPResponse,
        version: HTTPVersion,
        isHead: Bool,
        keepAlive: Bool,
        context: ChannelHandlerContext
    ) {
        let head = response.head(version: version, keepAlive: keepAlive)
        context.write(Self.wrapOutboundOut(.head(head)), promise: nil)
        // HEAD: the GET headers (Content-Length included), no body.
        if !isHead, response.body.readableBytes > 0 {
            context.write(Self.wrapOutboundOut(.body(.byteBuffer(response.body))), promise: nil)
        }
        self.lastWrite = context.writeAndFlush(Self.wrapOutboundOut(.end(nil)))
    }

    private func close(_ closing: Machine.Closing, context: ChannelHandlerContext) {
        switch closing {
        case .lingering:
            // NIO shuts the output only once pending writes are out; input keeps being read (and
            // dropped) until the peer closes or the linger timer fires.
            context.close(mode: .output).assumeIsolated().whenFailure { _ in
                context.close(promise: nil)
            }
        case .immediately:
            guard let lastWrite = self.lastWrite else {
                context.close(promise: nil)
                return
            }
            lastWrite.assumeIsolated().whenComplete { _ in
                context.close(promise: nil)
            }
        }
    }

    // MARK: Timer

    /// Runs the timer the state machine asks for (keeping it if it is already the one running).
    ///
    /// Every request switches the timer twice (idle → read when it starts, read → idle once
    /// answered), and a scheduled task cancelled and another scheduled for each switch was ~8 % of
    /// the event loop's time under wrk. So a switch only records the new deadline; one wake-up task
    /// per connection runs at the deadline or earlier, never later than the shortest timer from when
    /// it was scheduled. No deadline set afterwards can come before it, so none needs a reschedule;
    /// a wake-up that finds its deadline moved on schedules the next one.
    private func syncTimer(context: ChannelHandlerContext) {
        let wanted = self.machine.timer
        guard self.timer?.kind != wanted else { return }
        guard let wanted else {
            self.timer = nil  // the wake-up, if any, finds nothing to do
            return
        }
        let now = context.eventLoop.now
        self.timer = (wanted, now + self.delay(of: wanted))
        if self.wakeUp == nil { self.scheduleWakeUp(from: now, context: context) }
    }

    private func delay(of timer: Machine.Timer) -> TimeAmount {
        switch timer {
        case .idle: self.configuration.idleTimeout
        case .read: self.configuration.readTimeout
        case .linger: min(self.configuration.readTimeout, .seconds(2))
        }
    }

    /// Wakes up at the timer's deadline, or after the shortest timer if that comes first.
    private func scheduleWakeUp(from now: NIODeadline, context: ChannelHandlerContext) {
        guard let timer = self.timer else { return }
        let shortest = min(self.delay(of: .idle), self.delay(of: .read), self.delay(of: .linger))
        self.wakeUp = context.eventLoop.assumeIsolated().scheduleTask(deadline: min(timer.deadline, now + shortest)) {
            self.wakeUp = nil
            self.timerWokeUp(context: context)
        }
    }

    private func timerWokeUp(context: ChannelHandlerContext) {
        guard let timer = self.timer else { return }
        let now = context.eventLoop.now
        guard now >= timer.deadline else {
            self.scheduleWakeUp(from: now, context: context)
            return
        }
        self.timer = nil
        switch timer.kind {
        case .idle: self.logger.debug("idle timeout, closing connection")
        case .read: self.logger.info("read timeout: request incomplete, closing connection")
        case .linger: break
        }
        self.run(self.machine.timerFired(timer.kind), context: context)
    }

    private func cancelTimer() {
        self.wakeUp?.cancel()
        self.wakeUp = nil
        self.timer = nil
    }
}

/// A connection's peer as log metadata: `ip:port`, formatted when a line is rendered.
private struct RemotePeer: CustomStringConvertible, Sendable {
    let address: SocketAddress
    var description: String { "\(self.address.ipAddress ?? "?"):\(self.address.port ?? 0)" }
}
