/// Turns settlements of deliveries into as few wire commands as the protocol allows.
///
/// Pure state, no I/O: its ``ChannelStateMachine`` feeds it deliveries and settlements, and the
/// owner thread sends what ``flush()`` returns. A run of acks that starts at the oldest unsettled
/// delivery becomes one `basic.ack(multiple: true)`; any other ack stays single, because `multiple`
/// would also ack the older deliveries still in a handler. Settling a tag that is not outstanding (twice, or from a previous
/// channel) is dropped: the broker would close the channel with PRECONDITION_FAILED.
struct AckCoalescer: Sendable {
    /// A command for the wire.
    enum Command: Equatable, Sendable {
        case ack(tag: UInt64, multiple: Bool)
        case nack(tag: UInt64, multiple: Bool, requeue: Bool)
        case reject(tag: UInt64, requeue: Bool)
    }

    /// Delivered and not yet settled, in delivery order (tags increase on a channel).
    private var outstanding: [UInt64] = []
    /// Index of the first live entry in `outstanding` (entries before it are settled).
    private var head = 0
    /// Tags whose ack is waiting for the next flush.
    private var pendingAcks: Set<UInt64> = []
    /// Individual nacks/rejects waiting for the next flush, in arrival order.
    private var pendingOthers: [Command] = []
    /// Tags settled in `outstanding` but not yet compacted away.
    private var settled: Set<UInt64> = []

    /// Number of deliveries not yet settled on the wire.
    var unsettledCount: Int { outstanding.count - head - settled.count }

    /// Records a delivery. Tags must increase.
    mutating func delivered(_ tag: UInt64) {
        outstanding.append(tag)
    }

    /// Records a settlement. Returns false (and records nothing) when `tag` is not outstanding.
    @discardableResult
    mutating func settle(_ tag: UInt64, _ settlement: AMQPSettlement) -> Bool {
        guard isOutstanding(tag), !pendingAcks.contains(tag) else { return false }
        switch settlement {
        case .ack:
            pendingAcks.insert(tag)
        case .nack(let requeue):
            settled.insert(tag)
            pendingOthers.append(.nack(tag: tag, multiple: false, requeue: requeue))
        case .reject(let requeue):
            settled.insert(tag)
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
        // The run of acks from the oldest unsettled delivery collapses into one multiple ack.
        compact()
        var last: UInt64?
        var runLength = 0
        while head < outstanding.count {
            let tag = outstanding[head]
            if settled.remove(tag) != nil { head += 1; continue }  // nacked/rejected earlier
            guard pendingAcks.remove(tag) != nil else { break }
            last = tag
            runLength += 1
            head += 1
        }
        if let last { commands.append(.ack(tag: last, multiple: runLength > 1)) }
        // Acks behind an unsettled delivery must go one by one.
        for tag in pendingAcks.sorted() {
            commands.append(.ack(tag: tag, multiple: false))
            settled.insert(tag)
        }
        pendingAcks.removeAll(keepingCapacity: true)
        compact()
        return commands
    }

    private func isOutstanding(_ tag: UInt64) -> Bool {
        guard head < outstanding.count, tag >= outstanding[head], tag <= outstanding[outstanding.count - 1] else {
            return false
        }
        return !settled.contains(tag) && binarySearch(tag)
    }

    private func binarySearch(_ tag: UInt64) -> Bool {
        var low = head
        var high = outstanding.count - 1
        while low <= high {
            let mid = (low + high) / 2
            if outstanding[mid] == tag { return true }
            if outstanding[mid] < tag { low = mid + 1 } else { high = mid - 1 }
        }
        return false
    }

    /// Drops settled entries from the front and reclaims the array's head.
    private mutating func compact() {
        while head < outstanding.count, settled.remove(outstanding[head]) != nil { head += 1 }
        if head > 1024, head * 2 > outstanding.count {
            outstanding.removeFirst(head)
            head = 0
        }
    }
}
