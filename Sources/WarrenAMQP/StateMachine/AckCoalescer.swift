/// Turns settlements of deliveries into as few wire commands as the protocol allows.
///
/// Pure state, no I/O: its ``ChannelStateMachine`` feeds it deliveries and settlements, and the
/// owner thread sends what ``flush()`` returns. A run of acks that starts at the oldest unsettled
/// delivery becomes one `basic.ack(multiple: true)`; any other ack stays single, because `multiple`
/// would also ack the older deliveries still in a handler. Settling a tag that is not outstanding (twice, or from a previous
/// channel) is dropped: the broker would close the channel with PRECONDITION_FAILED.
///
/// Each delivery's state sits beside its tag, found by position (tags usually increase by one),
/// not in hashed sets: this runs for every message on the owner thread, and the sets' hashing was
/// ~600 instructions of a no-op message's ~9,500.
struct AckCoalescer: Sendable {
    /// A command for the wire.
    enum Command: Equatable, Sendable {
        case ack(tag: UInt64, multiple: Bool)
        case nack(tag: UInt64, multiple: Bool, requeue: Bool)
        case reject(tag: UInt64, requeue: Bool)
    }

    private enum State: UInt8 {
        /// In a handler (or anywhere but settled).
        case unsettled
        /// Acked, waiting for the next flush.
        case ackPending
        /// Settled on the wire (or queued to be: a nack or reject), not yet passed by `head`.
        case settled
    }

    /// Delivered and not yet compacted away, in delivery order (tags increase on a channel).
    private var tags: [UInt64] = []
    /// The state of each entry of `tags`.
    private var states: [State] = []
    /// Index of the first live entry (entries before it are settled).
    private var head = 0
    /// Indices of the acks waiting for the next flush.
    private var pendingAcks: [Int] = []
    /// Individual nacks/rejects waiting for the next flush, in arrival order.
    private var pendingOthers: [Command] = []
    /// Entries at or after `head` in state `settled`.
    private var settledCount = 0

    /// Number of deliveries not yet settled on the wire.
    var unsettledCount: Int { tags.count - head - settledCount }
    /// Acks waiting for the next flush.
    var pendingAckCount: Int { pendingAcks.count }
    /// True when a nack or reject waits for the next flush.
    var hasPendingOthers: Bool { !pendingOthers.isEmpty }

    /// Records a delivery. Tags must increase.
    mutating func delivered(_ tag: UInt64) {
        tags.append(tag)
        states.append(.unsettled)
    }

    /// Records a settlement. Returns false (and records nothing) when `tag` is not outstanding.
    @discardableResult
    mutating func settle(_ tag: UInt64, _ settlement: AMQPSettlement) -> Bool {
        guard let index = index(of: tag), states[index] == .unsettled else { return false }
        switch settlement {
        case .ack:
            states[index] = .ackPending
            pendingAcks.append(index)
        case .nack(let requeue):
            states[index] = .settled
            settledCount += 1
            pendingOthers.append(.nack(tag: tag, multiple: false, requeue: requeue))
        case .reject(let requeue):
            states[index] = .settled
            settledCount += 1
            pendingOthers.append(.reject(tag: tag, requeue: requeue))
        }
        return true
    }

    /// The commands to send now, coalesced; clears what they settle.
    mutating func flush() -> [Command] {
        var commands = pendingOthers
        pendingOthers.removeAll(keepingCapacity: true)
        guard !pendingAcks.isEmpty else {
            compact()
            return commands
        }
        // The run of acks from the oldest unsettled delivery collapses into one multiple ack
        // (nacked/rejected entries in it were settled on the wire already).
        var last: UInt64?
        var runLength = 0
        run: while head < tags.count {
            switch states[head] {
            case .settled:
                settledCount -= 1
            case .ackPending:
                last = tags[head]
                runLength += 1
            case .unsettled:
                break run
            }
            head += 1
        }
        if let last { commands.append(.ack(tag: last, multiple: runLength > 1)) }
        // Acks behind an unsettled delivery must go one by one, in tag order.
        let behind = pendingAcks.filter { $0 >= head }
        for index in behind.sorted() {
            commands.append(.ack(tag: tags[index], multiple: false))
            states[index] = .settled
            settledCount += 1
        }
        pendingAcks.removeAll(keepingCapacity: true)
        compact()
        return commands
    }

    /// The position of an outstanding `tag`, or nil.
    private func index(of tag: UInt64) -> Int? {
        guard head < tags.count, tag >= tags[head], tag <= tags[tags.count - 1] else { return nil }
        // Tags on a channel usually increase by one: try the tag's place in that case first.
        let offset = tag - tags[head]
        if offset < UInt64(tags.count - head), tags[head + Int(offset)] == tag { return head + Int(offset) }
        var low = head
        var high = tags.count - 1
        while low <= high {
            let mid = (low + high) / 2
            if tags[mid] == tag { return mid }
            if tags[mid] < tag { low = mid + 1 } else { high = mid - 1 }
        }
        return nil
    }

    /// Drops settled entries from the front and reclaims the arrays' head (only with no pending
    /// ack: those are held by index).
    private mutating func compact() {
        while head < tags.count, states[head] == .settled {
            settledCount -= 1
            head += 1
        }
        if pendingAcks.isEmpty, head > 1024, head * 2 > tags.count {
            tags.removeFirst(head)
            states.removeFirst(head)
            head = 0
        }
    }
}
