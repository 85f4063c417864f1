/// A channel number: 1 up to the negotiated `channel_max` (0 is the connection itself).
typealias ChannelID = UInt16

/// A consumer, for its whole life. Tags are only unique within a channel and can be reused after
/// a cancel; an id is unique within a connection.
struct ConsumerID: Hashable, Sendable {
    let value: Int
}

/// A message published in confirm mode, awaiting the broker's `basic.ack` or `basic.nack`.
struct ConfirmID: Hashable, Sendable {
    let channel: ChannelID
    /// The publish sequence number: 1 for the channel's first message, then one more per message.
    let sequence: UInt64
}

/// One open channel's protocol state: its consumers, the publisher confirms it awaits, and the
/// settlements it owes the broker.
///
/// Pure, no I/O: the connection's ``ConnectionStateMachine`` owns one per channel, feeds it what
/// the broker sent and what the application asked, and returns what to do.
struct ChannelStateMachine {
    enum ConsumerState: Equatable {
        /// `consume-ok` received: deliveries go to the consumer.
        case active
        /// `basic.cancel` sent: what arrives before `cancel-ok` still goes to the consumer.
        case cancelling
    }

    /// What to do with a delivery the broker sent.
    enum DeliveryAction: Equatable {
        /// Add it to the batch for this consumer, handed over at the end of the loop turn.
        case handOver(ConsumerID)
        /// No consumer takes it: it is requeued (a `basic.nack` in the next settlement flush).
        case requeue
    }

    private struct Consumer {
        let id: ConsumerID
        var state: ConsumerState
    }

    let id: ChannelID
    private var consumers: [String: Consumer] = [:] {
        didSet { lastDelivered = nil }
    }
    /// The consumer of the last delivery, while `consumers` is unchanged: a run of deliveries is
    /// usually for one consumer, whose tag (the same `String` each time, see `ReusedString`)
    /// compares by identity, where hashing its ~30 bytes cost ~350 instructions per message.
    private var lastDelivered: (tag: String, id: ConsumerID)?
    private var coalescer = AckCoalescer()
    /// The channel's `basic.qos` prefetch count (0: none set, or unlimited).
    private(set) var prefetch: UInt16 = 0
    private var nextPublishSequence: UInt64 = 1
    /// Sequence numbers published and not yet confirmed, ascending.
    private var unconfirmed: [UInt64] = []

    init(id: ChannelID) {
        self.id = id
    }

    // MARK: Consumers

    /// The broker answered `basic.consume` with `consume-ok` for `tag`.
    mutating func consumeOk(tag: String, id consumer: ConsumerID) {
        consumers[tag] = Consumer(id: consumer, state: .active)
    }

    /// Sending `basic.cancel` for `tag`. Returns false when no such consumer is registered.
    @discardableResult
    mutating func cancelRequested(tag: String) -> Bool {
        guard consumers[tag] != nil else { return false }
        consumers[tag]?.state = .cancelling
        return true
    }

    /// `cancel-ok` for `tag`: the consumer is done; its sequence ends normally after the deliveries
    /// that came before. Returns it, or nil when it was gone already (the broker cancelled it).
    mutating func cancelOk(tag: String) -> ConsumerID? {
        consumers.removeValue(forKey: tag)?.id
    }

    /// The broker sent `basic.cancel` for `tag` (its queue was deleted, or its leader moved).
    /// Returns the consumer, whose sequence ends with an error, or nil for an unknown tag.
    mutating func brokerCancelled(tag: String) -> ConsumerID? {
        consumers.removeValue(forKey: tag)?.id
    }

    /// The state of consumer `tag`, nil when it is not registered.
    func consumerState(tag: String) -> ConsumerState? {
        consumers[tag]?.state
    }

    // MARK: Deliveries and settlements

    /// The broker delivered `deliveryTag` to `consumerTag`. Hot path: no allocation.
    mutating func delivered(_ deliveryTag: UInt64, consumerTag: String) -> DeliveryAction {
        coalescer.delivered(deliveryTag)
        if let last = lastDelivered, last.tag == consumerTag {
            return .handOver(last.id)
        }
        if let consumer = consumers[consumerTag] {
            lastDelivered = (consumerTag, consumer.id)
            return .handOver(consumer.id)
        }
        coalescer.settle(deliveryTag, .nack(requeue: true))
        return .requeue
    }

    /// The application settled `deliveryTag`. Returns false, and records nothing, when the tag is not
    /// outstanding on this channel (settled twice, or from before a reconnect).
    mutating func settle(_ deliveryTag: UInt64, _ settlement: AMQPSettlement) -> Bool {
        coalescer.settle(deliveryTag, settlement)
    }

    /// The settlements to send now, coalesced.
    mutating func flushSettlements() -> [AckCoalescer.Command] {
        coalescer.flush()
    }

    /// The broker accepted `basic.qos` with `count`.
    mutating func prefetchSet(_ count: UInt16) {
        prefetch = count
    }

    /// True when the settlements waiting should go now, whatever their age: a nack or reject waits
    /// (it may be dead-lettering, and is rare), or the acks waiting hold a quarter of the prefetch
    /// window (the broker sends nothing once the whole window is unacknowledged), or 256 acks wait
    /// with no prefetch set.
    var settlementsDue: Bool {
        guard !coalescer.hasPendingOthers else { return true }
        let acks = coalescer.pendingAckCount
        return acks > 0 && acks >= (prefetch == 0 ? 256 : max(1, Int(prefetch) / 4))
    }

    /// True when acks wait for the next flush.
    var hasPendingAcks: Bool { coalescer.pendingAckCount > 0 }

    // MARK: Publisher confirms

    /// A message was published; returns its sequence number, which its confirm will name.
    mutating func published() -> UInt64 {
        let sequence = nextPublishSequence
        nextPublishSequence += 1
        unconfirmed.append(sequence)
        return sequence
    }

    /// The broker confirmed `sequence` (and, with `multiple`, every earlier one). Returns the
    /// sequence numbers this settles, ascending; unknown ones are ignored.
    mutating func confirmed(_ sequence: UInt64, multiple: Bool) -> [UInt64] {
        let end = firstIndex(after: sequence)
        if multiple {
            let settled = Array(unconfirmed[..<end])
            unconfirmed.removeFirst(end)
            return settled
        }
        guard end > 0, unconfirmed[end - 1] == sequence else { return [] }
        unconfirmed.remove(at: end - 1)
        return [sequence]
    }

    /// The index of the first unconfirmed sequence number above `sequence`.
    private func firstIndex(after sequence: UInt64) -> Int {
        var low = 0
        var high = unconfirmed.count
        while low < high {
            let mid = (low + high) / 2
            if unconfirmed[mid] <= sequence { low = mid + 1 } else { high = mid }
        }
        return low
    }

    // MARK: End

    /// The channel is gone: returns its consumers and unconfirmed messages, which end with it.
    /// Unsettled deliveries need nothing: the broker requeues them with the channel.
    mutating func close() -> (consumers: [ConsumerID], confirms: [ConfirmID]) {
        let ended = (consumers.values.map(\.id), unconfirmed.map { ConfirmID(channel: id, sequence: $0) })
        consumers.removeAll()
        unconfirmed.removeAll()
        return ended
    }
}
