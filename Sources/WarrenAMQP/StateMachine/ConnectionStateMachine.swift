/// The protocol state of one AMQP connection: its lifecycle (connecting → open → closing → closed),
/// the heartbeat deadline, and its channels (each a ``ChannelStateMachine``: consumers, publisher
/// confirms, settlements).
///
/// Pure, in the style of postgres-nio's `ConnectionStateMachine`: no C, no socket, no clock, no
/// logging. The owner thread's adapter (``ConnectionOwner``) reports each event (what the broker
/// sent, what the application asked, the time) and performs the action it gets back; unit tests do
/// the same without a broker. Channels and consumers are tracked by id, so several of each per
/// connection is a matter of the adapter opening them.
struct ConnectionStateMachine {
    enum State: Equatable {
        /// TCP connect, login and channel setup in progress.
        case connecting
        /// Usable.
        case open
        /// A clean close is under way: the final settlements, then `channel.close`, `connection.close`.
        case closing
        /// Done: `nil` after a clean close, else what went wrong.
        case closed(AMQPError?)
    }

    /// A settlement command for the wire, on a channel.
    struct Settlement: Equatable {
        let channel: ChannelID
        let command: AckCoalescer.Command
    }

    /// What to do once connected.
    enum OpenAction: Equatable {
        /// Report the connection open.
        case ready
        /// A close was asked for while connecting: close these channels and the connection, then
        /// report ``ConnectionStateMachine/closeCompleted()``.
        case closeConnection(channels: [ChannelID])
    }

    /// What to do when the application asks to close.
    enum CloseAction: Equatable {
        /// Send `settlements`, close `channels`, then the connection; then report
        /// ``ConnectionStateMachine/closeCompleted()``.
        case closeConnection(settlements: [Settlement], channels: [ChannelID])
        /// Not open yet: ``ConnectionStateMachine/opened(heartbeatSeconds:channels:at:)`` says to close.
        case closeWhenOpen
        /// Closing or closed already.
        case none
    }

    /// How long the owner thread may sleep in poll(), or that the broker is dead.
    enum PollAction: Equatable {
        case poll(milliseconds: Int32)
        case heartbeatTimeout(AMQPError)
    }

    /// A consumer whose sequence ends: normally (`error` nil) or with `error`.
    struct ConsumerEnd: Equatable {
        let id: ConsumerID
        let error: AMQPError?
    }

    /// Publisher confirms the broker settled: succeed them (`error` nil) or fail them with `error`.
    struct Confirmation: Equatable {
        let channel: ChannelID
        let sequences: [UInt64]
        let error: AMQPError?
    }

    /// Everything that ends with the connection.
    struct Shutdown: Equatable {
        /// `nil` for a close the application asked for; otherwise what went wrong.
        let reason: AMQPError?
        /// Consumers whose sequence ends: normally when `reason` is nil, else with ``consumerError``.
        let consumers: [ConsumerID]
        /// Publishes still unconfirmed: they fail with ``requestError`` (the message may or may not
        /// have been routed).
        let confirms: [ConfirmID]

        /// What consumers' sequences end with, after what was read for them; `nil`: they end
        /// normally. Their settlements are dropped from now on: the broker requeues the unsettled
        /// messages with the connection.
        var consumerError: AMQPError? {
            reason.map { AMQPError($0.code, "consumer stopped: \($0.message)", replyCode: $0.replyCode) }
        }

        /// What unconfirmed publishes and requests not yet carried out fail with.
        var requestError: AMQPError {
            reason.map { AMQPError($0.code, "connection closed: \($0.message)", replyCode: $0.replyCode) }
                ?? AMQPError(.connectionClosed, "connection closed")
        }
    }

    /// The longest poll() sleep: bounds heartbeat sending, heartbeat checks and the liveness tick.
    static let maxPollMilliseconds: Int32 = 100

    private(set) var state: State = .connecting
    private var closeWhenOpen = false
    /// Few (one today): an array searched linearly beats hashing.
    private var channels: [ChannelStateMachine] = []
    private var nextConsumerID = 0
    private var heartbeatNanoseconds: UInt64 = 0
    private var lastInbound: UInt64 = 0
    /// When ``dueSettlements(at:)`` first saw the acks now waiting (nil: none wait).
    private var acksWaitingSince: UInt64?

    /// How long an ack may wait to go out with later ones (see ``dueSettlements(at:)``).
    static let ackDelayNanoseconds: UInt64 = 2_000_000

    var isOpen: Bool {
        if case .open = state { return true }
        return false
    }

    // MARK: Lifecycle

    /// Logged in, with `channels` open (in confirm mode) and the negotiated heartbeat timeout
    /// (0: none). `now` is monotonic nanoseconds, as for every other event.
    mutating func opened(heartbeatSeconds: Int, channels ids: [ChannelID], at now: UInt64) -> OpenAction {
        precondition(state == .connecting, "opened() in state \(state)")
        heartbeatNanoseconds = UInt64(max(heartbeatSeconds, 0)) * 1_000_000_000
        lastInbound = now
        channels = ids.map(ChannelStateMachine.init(id:))
        if closeWhenOpen {
            state = .closing
            return .closeConnection(channels: ids)
        }
        state = .open
        return .ready
    }

    /// The application asked to close the connection cleanly.
    mutating func closeRequested() -> CloseAction {
        switch state {
        case .connecting:
            closeWhenOpen = true
            return .closeWhenOpen
        case .open:
            let settlements = flushSettlements()
            state = .closing
            return .closeConnection(settlements: settlements, channels: channels.map(\.id))
        case .closing, .closed:
            return .none
        }
    }

    /// The clean close is done (or the connection was never opened). Returns what ends with it, or
    /// nil when the connection had ended already.
    mutating func closeCompleted() -> Shutdown? {
        if case .closed = state { return nil }
        return shutDown(reason: nil)
    }

    /// The connection failed: socket error, heartbeat timeout, the broker closed the connection or
    /// the channel, a request failed. Returns what ends with it, or nil when it had ended already.
    /// A failure during a clean close still ends it as closed cleanly: the close was asked for.
    mutating func failed(_ error: AMQPError) -> Shutdown? {
        switch state {
        case .closed: return nil
        case .closing: return shutDown(reason: nil)
        case .connecting, .open: return shutDown(reason: error)
        }
    }

    private mutating func shutDown(reason: AMQPError?) -> Shutdown {
        var consumers: [ConsumerID] = []
        var confirms: [ConfirmID] = []
        for index in channels.indices {
            let ended = channels[index].close()
            consumers += ended.consumers
            confirms += ended.confirms
        }
        channels.removeAll()
        state = .closed(reason)
        return Shutdown(reason: reason, consumers: consumers, confirms: confirms)
    }

    // MARK: Heartbeat

    /// Something arrived from the broker at `now`: a frame, a reply, or the socket became readable.
    /// Hot path: a store.
    mutating func received(at now: UInt64) {
        lastInbound = now
    }

    /// How long to sleep waiting for the socket (at most until waiting acks are due), or that the
    /// broker has been silent for longer than the heartbeat timeout (RabbitMQ sends a heartbeat every
    /// half timeout): it is hung or unreachable.
    func poll(at now: UInt64) -> PollAction {
        // Waiting acks are due within ackDelay: wake for them (rounded up to whole milliseconds).
        var limit = UInt64(Self.maxPollMilliseconds)
        if isOpen, let since = acksWaitingSince {
            let due = since + Self.ackDelayNanoseconds
            limit = due > now ? (due - now + 999_999) / 1_000_000 : 0
        }
        guard heartbeatNanoseconds > 0, isOpen else { return .poll(milliseconds: Int32(limit)) }
        let silent = now > lastInbound ? now - lastInbound : 0
        guard silent <= heartbeatNanoseconds else {
            return .heartbeatTimeout(AMQPError(.heartbeatTimeout, "no data from the broker for \(silent / 1_000_000) ms (heartbeat timeout \(heartbeatNanoseconds / 1_000_000_000) s): it is hung or unreachable"))
        }
        let remaining = (heartbeatNanoseconds - silent) / 1_000_000 + 1
        return .poll(milliseconds: Int32(min(remaining, limit)))
    }

    // MARK: Consumers

    /// `consume-ok` for `tag` on `channel`: returns the new consumer's id (nil when the connection
    /// or the channel is not open).
    mutating func consumeOk(channel: ChannelID, tag: String) -> ConsumerID? {
        guard isOpen, let index = index(of: channel) else { return nil }
        let id = ConsumerID(value: nextConsumerID)
        nextConsumerID += 1
        channels[index].consumeOk(tag: tag, id: id)
        return id
    }

    /// About to send `basic.cancel` for `tag`: deliveries until `cancel-ok` still go to it.
    mutating func cancelRequested(channel: ChannelID, tag: String) {
        guard let index = index(of: channel) else { return }
        channels[index].cancelRequested(tag: tag)
    }

    /// `cancel-ok` for `tag`: hand over what arrived before it, then end the consumer's sequence.
    mutating func cancelOk(channel: ChannelID, tag: String) -> ConsumerEnd? {
        guard let index = index(of: channel), let id = channels[index].cancelOk(tag: tag) else { return nil }
        return ConsumerEnd(id: id, error: nil)
    }

    /// The broker cancelled `tag` (`basic.cancel`: its queue was deleted, or a quorum queue's leader
    /// moved): hand over what arrived before, then end the consumer's sequence with an error.
    mutating func brokerCancelled(channel: ChannelID, tag: String) -> ConsumerEnd? {
        guard let index = index(of: channel), let id = channels[index].brokerCancelled(tag: tag) else { return nil }
        return ConsumerEnd(id: id, error: AMQPError(
            .consumerCancelledByBroker, "the broker cancelled consumer '\(tag)' (queue deleted, or its leader moved)"))
    }

    /// True while consumer `tag` is registered and not being cancelled.
    func isConsumerRegistered(channel: ChannelID, tag: String) -> Bool {
        guard let index = index(of: channel) else { return false }
        return channels[index].consumerState(tag: tag) == .active
    }

    // MARK: Deliveries and settlements

    /// The broker delivered `deliveryTag` to `consumerTag` on `channel`. Hot path: no allocation.
    mutating func delivered(channel: ChannelID, deliveryTag: UInt64, consumerTag: String) -> ChannelStateMachine.DeliveryAction {
        guard let index = index(of: channel) else { return .requeue }
        return channels[index].delivered(deliveryTag, consumerTag: consumerTag)
    }

    /// A consumer's sequence was gone when its batch was handed over: requeue the batch.
    mutating func handOverRefused(channel: ChannelID, deliveryTags: some Sequence<UInt64>) {
        guard isOpen, let index = index(of: channel) else { return }
        for tag in deliveryTags { _ = channels[index].settle(tag, .nack(requeue: true)) }
    }

    /// The application settled a delivery. Returns false, and records nothing, when the tag is not
    /// outstanding (settled twice, from an earlier connection) or the connection is not open.
    mutating func settle(channel: ChannelID, deliveryTag: UInt64, _ settlement: AMQPSettlement) -> Bool {
        guard isOpen, let index = index(of: channel) else { return false }
        return channels[index].settle(deliveryTag, settlement)
    }

    /// The settlements to send now, coalesced (runs of acks become one `multiple` ack).
    mutating func flushSettlements() -> [Settlement] {
        acksWaitingSince = nil
        guard isOpen else { return [] }
        var settlements: [Settlement] = []
        for index in channels.indices {
            for command in channels[index].flushSettlements() {
                settlements.append(Settlement(channel: channels[index].id, command: command))
            }
        }
        return settlements
    }

    /// The settlements due at `now`, coalesced; none while acks may still wait for more.
    ///
    /// An ack waits up to ``ackDelayNanoseconds`` for later ones, so that one `basic.ack(multiple)`
    /// settles many: each ack sent is a send() on the owner thread and a frame the broker handles,
    /// on the cores it shares with the worker (a 100,000-message no-op drain sent ~7,500 acks when
    /// every loop turn flushed, where the C consumer, acking every 100 deliveries, sends 1,000).
    /// Everything goes at once when a channel's ``ChannelStateMachine/settlementsDue`` (a nack or
    /// reject, or acks holding a quarter of the prefetch window) or when the oldest waiting ack is
    /// that old. The cost is the ack of a delivery handled in the last 2 ms being lost with the
    /// connection (the broker delivers it again, as it would one still in a handler).
    /// ``poll(at:)`` wakes the owner when the wait is over.
    mutating func dueSettlements(at now: UInt64) -> [Settlement] {
        guard isOpen else { return [] }
        if channels.contains(where: \.settlementsDue) { return flushSettlements() }
        guard channels.contains(where: \.hasPendingAcks) else { return [] }
        let since = acksWaitingSince ?? now
        guard now >= since + Self.ackDelayNanoseconds else {
            acksWaitingSince = since
            return []
        }
        return flushSettlements()
    }

    /// The broker accepted `basic.qos` with `count` on `channel`.
    mutating func prefetchSet(channel: ChannelID, count: UInt16) {
        guard let index = index(of: channel) else { return }
        channels[index].prefetchSet(count)
    }

    // MARK: Publisher confirms

    /// A message was published on `channel`; returns the id its confirm will settle, nil when the
    /// connection or the channel is not open.
    mutating func published(channel: ChannelID) -> ConfirmID? {
        guard isOpen, let index = index(of: channel) else { return nil }
        return ConfirmID(channel: channel, sequence: channels[index].published())
    }

    /// `basic.ack` from the broker: the messages are safely routed.
    mutating func acked(channel: ChannelID, sequence: UInt64, multiple: Bool) -> Confirmation {
        confirmation(channel: channel, sequence: sequence, multiple: multiple, error: nil)
    }

    /// `basic.nack` from the broker: it refused the messages.
    mutating func nacked(channel: ChannelID, sequence: UInt64, multiple: Bool) -> Confirmation {
        confirmation(channel: channel, sequence: sequence, multiple: multiple,
                     error: AMQPError(.publishNacked, "the broker refused the message (basic.nack)"))
    }

    private mutating func confirmation(channel: ChannelID, sequence: UInt64, multiple: Bool, error: AMQPError?) -> Confirmation {
        guard let index = index(of: channel) else { return Confirmation(channel: channel, sequences: [], error: error) }
        return Confirmation(channel: channel, sequences: channels[index].confirmed(sequence, multiple: multiple), error: error)
    }

    private func index(of channel: ChannelID) -> Int? {
        for index in channels.indices where channels[index].id == channel { return index }
        return nil
    }
}
