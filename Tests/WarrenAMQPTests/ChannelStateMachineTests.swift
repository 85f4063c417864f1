import Testing
@testable import WarrenAMQP

/// Consumers, settlements and publisher confirms of a channel, through the connection's state
/// machine as the adapter drives it; no sockets.
@Suite("Channel state machine")
struct ChannelStateMachineTests {
    private func open() -> ConnectionStateMachine {
        ConnectionStateMachineTests.open()
    }

    // MARK: Consumers

    @Test func registeredConsumerGetsItsDeliveries() throws {
        var machine = open()
        let id = try machine.consumer("amq.ctag-1")
        #expect(machine.isConsumerRegistered(channel: 1, tag: "amq.ctag-1"))
        #expect(machine.delivered(channel: 1, deliveryTag: 1, consumerTag: "amq.ctag-1") == .handOver(id))
        #expect(machine.delivered(channel: 1, deliveryTag: 2, consumerTag: "amq.ctag-1") == .handOver(id))
        #expect(machine.flushSettlements() == [], "handed over, not settled")
    }

    @Test func consumersAreTrackedByIdAndTag() throws {
        var machine = open()
        let a = try machine.consumer("a")
        let b = try machine.consumer("b")
        #expect(a != b)
        #expect(machine.delivered(channel: 1, deliveryTag: 1, consumerTag: "b") == .handOver(b))
        #expect(machine.delivered(channel: 1, deliveryTag: 2, consumerTag: "a") == .handOver(a))
        // A tag reused after a cancel is a new consumer.
        machine.cancelRequested(channel: 1, tag: "a")
        #expect(machine.cancelOk(channel: 1, tag: "a") == .init(id: a, error: nil))
        let again = try machine.consumer("a")
        #expect(again != a)
    }

    @Test func deliveryForNoConsumerIsRequeued() {
        var machine = open()
        #expect(machine.delivered(channel: 1, deliveryTag: 7, consumerTag: "gone") == .requeue)
        #expect(machine.flushSettlements() == [.init(channel: 1, command: .nack(tag: 7, multiple: false, requeue: true))])
        // On a channel that is not open, nothing can be settled: the broker requeues with the channel.
        #expect(machine.delivered(channel: 2, deliveryTag: 1, consumerTag: "c") == .requeue)
        #expect(machine.flushSettlements() == [])
    }

    // MARK: Cancel

    @Test func cancelHandsOverWhatCameBeforeCancelOkThenEndsNormally() throws {
        var machine = open()
        let id = try machine.consumer("c")
        machine.cancelRequested(channel: 1, tag: "c")
        #expect(!machine.isConsumerRegistered(channel: 1, tag: "c"), "being cancelled")
        // Sent by the broker before it saw basic.cancel: still the consumer's.
        #expect(machine.delivered(channel: 1, deliveryTag: 1, consumerTag: "c") == .handOver(id))
        #expect(machine.cancelOk(channel: 1, tag: "c") == .init(id: id, error: nil))
        #expect(!machine.isConsumerRegistered(channel: 1, tag: "c"))
        // Its delivery is still outstanding and can be acked.
        let settled = machine.settle(channel: 1, deliveryTag: 1, .ack)
        #expect(settled)
        #expect(machine.flushSettlements() == [.init(channel: 1, command: .ack(tag: 1, multiple: false))])
        // Anything later has no consumer.
        #expect(machine.delivered(channel: 1, deliveryTag: 2, consumerTag: "c") == .requeue)
        #expect(machine.cancelOk(channel: 1, tag: "c") == nil)
    }

    @Test func cancelOfAnUnknownConsumerEndsNothing() {
        var machine = open()
        machine.cancelRequested(channel: 1, tag: "nobody")
        #expect(machine.cancelOk(channel: 1, tag: "nobody") == nil)
    }

    // MARK: Broker-initiated cancel

    @Test func brokerCancelEndsTheConsumerWithConsumerCancelledByBroker() throws {
        var machine = open()
        let id = try machine.consumer("c")
        #expect(machine.delivered(channel: 1, deliveryTag: 1, consumerTag: "c") == .handOver(id))
        let cancelled = machine.brokerCancelled(channel: 1, tag: "c")
        let end = try #require(cancelled)
        #expect(end.id == id)
        #expect(end.error?.code == .consumerCancelledByBroker)
        #expect(end.error?.message.contains("'c'") == true)
        #expect(!machine.isConsumerRegistered(channel: 1, tag: "c"))
        #expect(machine.delivered(channel: 1, deliveryTag: 2, consumerTag: "c") == .requeue)
        // Our own cancel racing the broker's finds nothing left to end.
        #expect(machine.cancelOk(channel: 1, tag: "c") == nil)
        #expect(machine.brokerCancelled(channel: 1, tag: "c") == nil)
        #expect(machine.isOpen, "a cancelled consumer is not a broken connection")
    }

    // MARK: Settlements

    @Test func settlementsCoalesceIntoOneMultipleAck() throws {
        var machine = open()
        let id = try machine.consumer("c")
        for tag in UInt64(1)...100 {
            #expect(machine.delivered(channel: 1, deliveryTag: tag, consumerTag: "c") == .handOver(id))
        }
        for tag in UInt64(1)...100 {
            let settled = machine.settle(channel: 1, deliveryTag: tag, .ack)
            #expect(settled)
        }
        #expect(machine.flushSettlements() == [.init(channel: 1, command: .ack(tag: 100, multiple: true))])
        #expect(machine.flushSettlements() == [])
    }

    @Test func nacksRejectsAndLoneAcksStaySingle() throws {
        var machine = open()
        _ = try machine.consumer("c")
        for tag in UInt64(1)...4 { _ = machine.delivered(channel: 1, deliveryTag: tag, consumerTag: "c") }
        let settled = [
            machine.settle(channel: 1, deliveryTag: 2, .reject(requeue: false)),
            machine.settle(channel: 1, deliveryTag: 3, .nack(requeue: true)),
            machine.settle(channel: 1, deliveryTag: 4, .ack),
        ]
        #expect(settled == [true, true, true])
        #expect(machine.flushSettlements().map(\.command) == [
            .reject(tag: 2, requeue: false), .nack(tag: 3, multiple: false, requeue: true), .ack(tag: 4, multiple: false),
        ])
    }

    @Test func settlingTwiceOrAnUnknownTagIsDropped() throws {
        var machine = open()
        _ = try machine.consumer("c")
        _ = machine.delivered(channel: 1, deliveryTag: 1, consumerTag: "c")
        let settled = machine.settle(channel: 1, deliveryTag: 1, .ack)
        #expect(settled)
        #expect(machine.settle(channel: 1, deliveryTag: 1, .ack) == false)
        #expect(machine.settle(channel: 1, deliveryTag: 99, .ack) == false)
        #expect(machine.settle(channel: 2, deliveryTag: 1, .ack) == false, "no channel 2")
        #expect(machine.flushSettlements().count == 1)
    }

    @Test func aBatchNobodyTookIsRequeued() throws {
        var machine = open()
        _ = try machine.consumer("c")
        for tag in UInt64(1)...3 { _ = machine.delivered(channel: 1, deliveryTag: tag, consumerTag: "c") }
        machine.handOverRefused(channel: 1, deliveryTags: [1, 2, 3])
        #expect(machine.flushSettlements().map(\.command) == [
            .nack(tag: 1, multiple: false, requeue: true), .nack(tag: 2, multiple: false, requeue: true),
            .nack(tag: 3, multiple: false, requeue: true),
        ])
    }

    // MARK: Publisher confirms

    @Test func publishesAreNumberedFromOne() {
        var machine = open()
        #expect(machine.published(channel: 1) == ConfirmID(channel: 1, sequence: 1))
        #expect(machine.published(channel: 1) == ConfirmID(channel: 1, sequence: 2))
        #expect(machine.published(channel: 2) == nil, "no channel 2")
    }

    @Test func singleAndMultipleAcksSettleTheRightConfirms() {
        var machine = open()
        for _ in 1...5 { _ = machine.published(channel: 1) }
        #expect(machine.acked(channel: 1, sequence: 2, multiple: false) == .init(channel: 1, sequences: [2], error: nil))
        #expect(machine.acked(channel: 1, sequence: 4, multiple: true) == .init(channel: 1, sequences: [1, 3, 4], error: nil))
        #expect(machine.acked(channel: 1, sequence: 4, multiple: false).sequences == [], "already confirmed")
        #expect(machine.acked(channel: 1, sequence: 9, multiple: true).sequences == [5])
        #expect(machine.acked(channel: 1, sequence: 9, multiple: true).sequences == [])
    }

    @Test func nackFailsTheConfirmsWithPublishNacked() {
        var machine = open()
        for _ in 1...3 { _ = machine.published(channel: 1) }
        let refused = machine.nacked(channel: 1, sequence: 2, multiple: true)
        #expect(refused.sequences == [1, 2])
        #expect(refused.error?.code == .publishNacked)
        #expect(machine.acked(channel: 1, sequence: 3, multiple: false).sequences == [3])
    }

    @Test func unconfirmedPublishesFailWithTheConnection() {
        var machine = open()
        for _ in 1...3 { _ = machine.published(channel: 1) }
        _ = machine.acked(channel: 1, sequence: 2, multiple: false)
        let shutdown = machine.failed(AMQPError(.socketError, "gone"))
        #expect(shutdown?.confirms == [ConfirmID(channel: 1, sequence: 1), ConfirmID(channel: 1, sequence: 3)])
        #expect(shutdown?.requestError.code == .socketError)
    }
}

extension ConnectionStateMachine {
    /// Registers consumer `tag` on channel 1 (its `consume-ok`); the test fails when the machine refuses.
    mutating func consumer(_ tag: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> ConsumerID {
        let id = consumeOk(channel: 1, tag: tag)
        return try #require(id, sourceLocation: sourceLocation)
    }
}
