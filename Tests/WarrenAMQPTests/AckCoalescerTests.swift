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
}
