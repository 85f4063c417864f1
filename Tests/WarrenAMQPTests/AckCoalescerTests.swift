import Testing
@testable import WarrenAMQP

@Suite("Ack coalescing")
struct AckCoalescerTests {
    private func coalescer(delivered tags: ClosedRange<UInt64>) -> AckCoalescer {
        var c = AckCoalescer()
        for tag in tags { c.delivered(tag) }
        return c
    }

    @Test func contiguousAcksBecomeOneMultipleAck() {
        var c = coalescer(delivered: 1...100)
        for tag in UInt64(1)...100 { let ok = c.settle(tag, .ack); #expect(ok) }
        #expect(c.flush() == [.ack(tag: 100, multiple: true)])
        #expect(c.unsettledCount == 0)
        #expect(c.flush() == [])
    }

    @Test func singleAckIsNotMultiple() {
        var c = coalescer(delivered: 1...3)
        c.settle(1, .ack)
        #expect(c.flush() == [.ack(tag: 1, multiple: false)])
        #expect(c.unsettledCount == 2)
    }

    @Test func acksBehindAnUnsettledDeliveryStaySingle() {
        var c = coalescer(delivered: 1...5)
        c.settle(2, .ack)
        c.settle(3, .ack)
        c.settle(5, .ack)
        // 1 is still in a handler: a multiple ack would ack it too.
        #expect(c.flush() == [.ack(tag: 2, multiple: false), .ack(tag: 3, multiple: false), .ack(tag: 5, multiple: false)])
        c.settle(1, .ack)
        c.settle(4, .ack)
        // 2, 3 and 5 are acked already, so one multiple ack of 4 covers exactly 1 and 4.
        #expect(c.flush() == [.ack(tag: 4, multiple: true)])
        #expect(c.unsettledCount == 0)
    }

    @Test func runFromTheOldestThenSingles() {
        var c = coalescer(delivered: 1...6)
        for tag: UInt64 in [1, 2, 3, 5, 6] { c.settle(tag, .ack) }
        #expect(c.flush() == [.ack(tag: 3, multiple: true), .ack(tag: 5, multiple: false), .ack(tag: 6, multiple: false)])
        c.settle(4, .ack)
        #expect(c.flush() == [.ack(tag: 4, multiple: false)])
    }

    @Test func nacksAndRejectsAreSentAloneAndDoNotBreakTheRun() {
        var c = coalescer(delivered: 1...4)
        c.settle(2, .nack(requeue: true))
        c.settle(3, .reject(requeue: false))
        c.settle(1, .ack)
        c.settle(4, .ack)
        let commands = c.flush()
        #expect(commands == [
            .nack(tag: 2, multiple: false, requeue: true),
            .reject(tag: 3, requeue: false),
            .ack(tag: 4, multiple: true),
        ])
        #expect(c.unsettledCount == 0)
    }

    @Test func doubleSettlementAndUnknownTagsAreDropped() {
        var c = coalescer(delivered: 1...2)
        do { let ok = c.settle(1, .ack); #expect(ok) }
        do { let ok = c.settle(1, .ack); #expect(!ok) }
        do { let ok = c.settle(1, .reject(requeue: false)); #expect(!ok) }
        do { let ok = c.settle(99, .ack); #expect(!ok) }
        #expect(c.flush() == [.ack(tag: 1, multiple: false)])
        do { let ok = c.settle(1, .ack); #expect(!ok) }
        do { let ok = c.settle(2, .nack(requeue: false)); #expect(ok) }
        do { let ok = c.settle(2, .ack); #expect(!ok) }
    }

    @Test func longRunsCompact() {
        var c = AckCoalescer()
        var sent: [AckCoalescer.Command] = []
        for batch in 0..<100 {
            let base = UInt64(batch * 100)
            for tag in base + 1...base + 100 { c.delivered(tag) }
            for tag in base + 1...base + 100 { c.settle(tag, .ack) }
            sent += c.flush()
        }
        #expect(sent.count == 100)
        #expect(sent.last == .ack(tag: 10_000, multiple: true))
        #expect(c.unsettledCount == 0)
    }

    /// Random deliveries (tags with gaps), settlements in any order (acks, nacks, rejects, repeats and
    /// unknown tags) and flushes, against the broker's view: every command settles only tags the
    /// handlers settled, each exactly once, with the settlement the handler chose; once all are
    /// settled and flushed, nothing is outstanding; `unsettledCount` is always right.
    @Test(arguments: [1, 2, 3, 4, 5, 6, 7, 8])
    func randomSettlementsMatchTheBrokersView(seed: UInt64) {
        var random = SplitMix64(state: seed)
        var c = AckCoalescer()
        var next: UInt64 = 1
        var inHandler: [UInt64] = []  // delivered, not yet settled by a handler
        var chosen: [UInt64: AMQPSettlement] = [:]  // settled by a handler, not yet on the wire
        var onWire: Set<UInt64> = []  // outstanding at the broker
        func apply(_ commands: [AckCoalescer.Command]) {
            for command in commands {
                switch command {
                case .ack(let tag, let multiple):
                    let covered = multiple ? onWire.filter { $0 <= tag } : [tag]
                    #expect(onWire.contains(tag), "ack of \(tag) not outstanding")
                    for t in covered {
                        // A multiple ack may cover tags already nacked/rejected (gone from onWire).
                        #expect(chosen[t] == .ack, "tag \(t) acked, the handler chose \(String(describing: chosen[t]))")
                        chosen[t] = nil
                        onWire.remove(t)
                    }
                case .nack(let tag, let multiple, let requeue):
                    #expect(!multiple)
                    #expect(chosen[tag] == .nack(requeue: requeue))
                    chosen[tag] = nil
                    onWire.remove(tag)
                case .reject(let tag, let requeue):
                    #expect(chosen[tag] == .reject(requeue: requeue))
                    chosen[tag] = nil
                    onWire.remove(tag)
                }
            }
        }
        for _ in 0..<20_000 {
            switch random.next() % 10 {
            case 0...2:
                next += random.next() % 8 == 0 ? 1 + random.next() % 3 : 0  // a gap now and then
                c.delivered(next)
                inHandler.append(next)
                onWire.insert(next)
                next += 1
            case 3...6 where !inHandler.isEmpty:
                let tag = inHandler.remove(at: Int(random.next() % UInt64(inHandler.count)))
                let settlement: AMQPSettlement = switch random.next() % 6 {
                case 0: .nack(requeue: random.next() % 2 == 0)
                case 1: .reject(requeue: random.next() % 2 == 0)
                default: .ack
                }
                let accepted = c.settle(tag, settlement)
                #expect(accepted)
                chosen[tag] = settlement
            case 7:
                // Twice, or never delivered: dropped.
                let tag = random.next() % (next + 5)
                if !inHandler.contains(tag) {
                    let accepted = c.settle(tag, .ack)
                    #expect(!accepted)
                }
            default:
                apply(c.flush())
                #expect(chosen.isEmpty, "every settlement reached the wire")
            }
            // A queued nack or reject counts as settled at once, an ack once flushed.
            #expect(c.unsettledCount == inHandler.count + chosen.values.count { $0 == .ack })
        }
        for tag in inHandler { c.settle(tag, .ack); chosen[tag] = .ack }
        apply(c.flush())
        #expect(onWire.isEmpty && chosen.isEmpty && c.unsettledCount == 0)
    }
}

