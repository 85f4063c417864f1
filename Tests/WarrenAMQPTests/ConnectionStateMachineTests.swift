import Testing
@testable import WarrenAMQP

/// The connection's lifecycle, heartbeat deadline, close and failure, in every state; no sockets.
@Suite("Connection state machine")
struct ConnectionStateMachineTests {
    static let second: UInt64 = 1_000_000_000
    static let lost = AMQPError(.socketError, "read from the broker: a socket error occurred")

    /// An open connection with channel 1 and the given heartbeat, opened at time 0.
    static func open(heartbeat: Int = 0) -> ConnectionStateMachine {
        var machine = ConnectionStateMachine()
        #expect(machine.opened(heartbeatSeconds: heartbeat, channels: [1], at: 0) == .ready)
        return machine
    }

    /// A machine in `state`, with a consumer and an unconfirmed publish when it was ever open.
    static func machine(in state: String) -> ConnectionStateMachine {
        var machine = ConnectionStateMachine()
        guard state != "connecting" else { return machine }
        machine = open()
        _ = machine.consumeOk(channel: 1, tag: "c")
        _ = machine.published(channel: 1)
        switch state {
        case "open": break
        case "closing": _ = machine.closeRequested()
        case "closed": _ = machine.closeRequested(); _ = machine.closeCompleted()
        case "failed": _ = machine.failed(lost)
        default: Issue.record("no state \(state)")
        }
        return machine
    }

    // MARK: Opening

    @Test func opensAfterLogin() {
        var machine = ConnectionStateMachine()
        #expect(machine.state == .connecting)
        #expect(!machine.isOpen)
        #expect(machine.opened(heartbeatSeconds: 10, channels: [1], at: 0) == .ready)
        #expect(machine.state == .open)
        #expect(machine.isOpen)
    }

    @Test func requestsWaitForOpen() {
        var machine = ConnectionStateMachine()
        #expect(machine.consumeOk(channel: 1, tag: "c") == nil)
        #expect(machine.published(channel: 1) == nil)
        #expect(machine.settle(channel: 1, deliveryTag: 1, .ack) == false)
        #expect(machine.flushSettlements() == [])
    }

    // MARK: Heartbeat

    @Test func withoutHeartbeatPollsAtMostEvery100ms() {
        let machine = Self.open(heartbeat: 0)
        #expect(machine.poll(at: 3600 * Self.second) == .poll(milliseconds: 100))
    }

    @Test func pollTimeoutShrinksToTheHeartbeatDeadline() {
        var machine = Self.open(heartbeat: 2)
        #expect(machine.poll(at: Self.second) == .poll(milliseconds: 100))
        // 50 ms before the deadline: sleep 51 ms (just past it), not 100.
        #expect(machine.poll(at: 2 * Self.second - 50_000_000) == .poll(milliseconds: 51))
        machine.received(at: 2 * Self.second - 50_000_000)
        #expect(machine.poll(at: 2 * Self.second) == .poll(milliseconds: 100))
    }

    @Test func silenceLongerThanTheHeartbeatTimeoutIsFatal() {
        var machine = Self.open(heartbeat: 2)
        machine.received(at: Self.second)
        #expect(machine.poll(at: 3 * Self.second) == .poll(milliseconds: 1))
        guard case .heartbeatTimeout(let error) = machine.poll(at: 3 * Self.second + 1) else {
            Issue.record("no heartbeat timeout")
            return
        }
        #expect(error.code == .heartbeatTimeout)
        #expect(error.message.contains("heartbeat timeout 2 s"))
    }

    @Test func anyInboundTrafficMovesTheDeadline() {
        // Frames, RPC replies and a readable socket all report `received`: an idle worker doing
        // only readiness round trips (no heartbeats from the broker then) stays alive.
        var machine = Self.open(heartbeat: 2)
        for t in stride(from: UInt64(0), through: 10 * Self.second, by: Int(Self.second / 3)) {
            machine.received(at: t)
            if case .heartbeatTimeout = machine.poll(at: t + Self.second / 3) { Issue.record("timed out at \(t)") }
        }
    }

    @Test func clockBehindTheLastInboundIsNotSilence() {
        var machine = Self.open(heartbeat: 1)
        machine.received(at: 5 * Self.second)
        #expect(machine.poll(at: 4 * Self.second) == .poll(milliseconds: 100))
    }

    // MARK: Close, in every state

    @Test func closeWhileConnectingClosesOnceOpen() {
        var machine = ConnectionStateMachine()
        #expect(machine.closeRequested() == .closeWhenOpen)
        #expect(machine.opened(heartbeatSeconds: 10, channels: [1], at: 0) == .closeConnection(channels: [1]))
        #expect(machine.state == .closing)
        #expect(machine.closeCompleted() == .init(reason: nil, consumers: [], confirms: []))
        #expect(machine.state == .closed(nil))
    }

    @Test func closeWhileOpenFlushesSettlementsThenClosesTheChannels() throws {
        var machine = Self.open()
        let consumer = try machine.consumer("c")
        for tag in UInt64(1)...3 { _ = machine.delivered(channel: 1, deliveryTag: tag, consumerTag: "c") }
        let settled = (UInt64(1)...3).map { machine.settle(channel: 1, deliveryTag: $0, .ack) }
        #expect(settled == [true, true, true])
        let published = machine.published(channel: 1)
        let confirm = try #require(published)
        #expect(machine.closeRequested() == .closeConnection(
            settlements: [.init(channel: 1, command: .ack(tag: 3, multiple: true))], channels: [1]))
        #expect(machine.state == .closing)
        // Settlements that arrive after the final flush are dropped: the broker requeues those messages.
        #expect(machine.settle(channel: 1, deliveryTag: 3, .ack) == false)
        let shutdown = machine.closeCompleted()
        #expect(shutdown == .init(reason: nil, consumers: [consumer], confirms: [confirm]))
        #expect(shutdown?.consumerError == nil, "consumers end normally")
        #expect(shutdown?.requestError.code == .connectionClosed)
        #expect(machine.state == .closed(nil))
    }

    @Test func closeWhileClosingOrClosedDoesNothing() {
        for state in ["closing", "closed", "failed"] {
            var machine = Self.machine(in: state)
            let before = machine.state
            #expect(machine.closeRequested() == .none, "\(state)")
            #expect(machine.state == before, "\(state)")
        }
    }

    @Test func closeCompletesOnce() {
        var machine = Self.machine(in: "closing")
        #expect(machine.closeCompleted() != nil)
        #expect(machine.closeCompleted() == nil)
        #expect(machine.failed(Self.lost) == nil)
        #expect(machine.state == .closed(nil))
    }

    // MARK: Failure, in every state

    @Test func failureWhileConnectingEndsWithTheError() {
        var machine = ConnectionStateMachine()
        let refused = AMQPError(.connectFailed, "could not connect")
        #expect(machine.failed(refused) == .init(reason: refused, consumers: [], confirms: []))
        #expect(machine.state == .closed(refused))
    }

    @Test func failureWhileOpenEndsConsumersAndConfirmsWithTheError() throws {
        var machine = Self.open()
        let consumer = try machine.consumer("c")
        let published = machine.published(channel: 1)
        let confirm = try #require(published)
        let closedByBroker = AMQPError(.connectionClosedByBroker, "CONNECTION_FORCED", replyCode: 320)
        let failed = machine.failed(closedByBroker)
        let shutdown = try #require(failed)
        #expect(shutdown.consumers == [consumer])
        #expect(shutdown.confirms == [confirm])
        #expect(shutdown.consumerError == AMQPError(.connectionClosedByBroker, "consumer stopped: CONNECTION_FORCED", replyCode: 320))
        #expect(shutdown.requestError == AMQPError(.connectionClosedByBroker, "connection closed: CONNECTION_FORCED", replyCode: 320))
        #expect(machine.state == .closed(closedByBroker))
        // Nothing is left to end twice, and late settlements are dropped.
        #expect(machine.failed(Self.lost) == nil)
        #expect(machine.settle(channel: 1, deliveryTag: 1, .ack) == false)
        #expect(machine.flushSettlements() == [])
        #expect(machine.published(channel: 1) == nil)
        #expect(machine.delivered(channel: 1, deliveryTag: 1, consumerTag: "c") == .requeue)
    }

    @Test func failureWhileClosingStillEndsAsACleanClose() throws {
        var machine = Self.machine(in: "closing")
        let failed = machine.failed(Self.lost)
        let shutdown = try #require(failed)
        #expect(shutdown.reason == nil)
        #expect(shutdown.consumers.count == 1)
        #expect(shutdown.confirms.count == 1)
        #expect(machine.state == .closed(nil))
    }

    @Test func failureWhenClosedDoesNothing() {
        for state in ["closed", "failed"] {
            var machine = Self.machine(in: state)
            let before = machine.state
            #expect(machine.failed(AMQPError(.heartbeatTimeout, "late")) == nil, "\(state)")
            #expect(machine.state == before, "\(state)")
        }
    }

    @Test func pollAfterCloseNeverTimesOut() {
        var machine = Self.open(heartbeat: 1)
        _ = machine.failed(Self.lost)
        #expect(machine.poll(at: 100 * Self.second) == .poll(milliseconds: 100))
    }

    // MARK: Acks waiting for more

    static let millisecond: UInt64 = 1_000_000

    /// An open connection with a consumer "c" on channel 1, `prefetch` set, and deliveries 1...n.
    static func consuming(prefetch: UInt16?, deliveries n: UInt64) -> ConnectionStateMachine {
        var machine = open()
        _ = machine.consumeOk(channel: 1, tag: "c")
        if let prefetch { machine.prefetchSet(channel: 1, count: prefetch) }
        for tag in 1...n { _ = machine.delivered(channel: 1, deliveryTag: tag, consumerTag: "c") }
        return machine
    }

    @Test func acksWaitUpTo2msForMore() {
        var machine = Self.consuming(prefetch: 1000, deliveries: 300)
        for tag in 1...10 as ClosedRange<UInt64> { #expect(machine.settle(channel: 1, deliveryTag: tag, .ack) == true) }
        let t0 = 5 * Self.second
        #expect(machine.dueSettlements(at: t0) == [], "10 acks of a 1000 window wait")
        #expect(machine.poll(at: t0) == .poll(milliseconds: 2), "the owner wakes when they are due")
        #expect(machine.poll(at: t0 + Self.millisecond / 2) == .poll(milliseconds: 2), "rounded up")
        for tag in 11...20 as ClosedRange<UInt64> { #expect(machine.settle(channel: 1, deliveryTag: tag, .ack) == true) }
        #expect(machine.dueSettlements(at: t0 + Self.millisecond) == [], "the wait runs from the first")
        #expect(machine.poll(at: t0 + 2 * Self.millisecond) == .poll(milliseconds: 0))
        #expect(machine.dueSettlements(at: t0 + 2 * Self.millisecond) == [.init(channel: 1, command: .ack(tag: 20, multiple: true))])
        #expect(machine.poll(at: t0 + 2 * Self.millisecond) == .poll(milliseconds: 100), "nothing waits")
        #expect(machine.dueSettlements(at: t0 + 9 * Self.millisecond) == [])
    }

    @Test func acksGoAtOnceWhenTheyHoldAQuarterOfThePrefetchWindow() {
        var machine = Self.consuming(prefetch: 100, deliveries: 100)
        for tag in 1...24 as ClosedRange<UInt64> { #expect(machine.settle(channel: 1, deliveryTag: tag, .ack) == true) }
        #expect(machine.dueSettlements(at: 0) == [])
        #expect(machine.settle(channel: 1, deliveryTag: 25, .ack) == true)
        #expect(machine.dueSettlements(at: 0) == [.init(channel: 1, command: .ack(tag: 25, multiple: true))])
        // A window of one (or of three) never waits: the broker sends nothing more until the ack.
        for prefetch: UInt16 in [1, 3] {
            var small = Self.consuming(prefetch: prefetch, deliveries: 1)
            #expect(small.settle(channel: 1, deliveryTag: 1, .ack) == true)
            #expect(small.dueSettlements(at: 0) == [.init(channel: 1, command: .ack(tag: 1, multiple: false))], "prefetch \(prefetch)")
        }
        // No prefetch (unlimited): 256 acks go at once.
        var unlimited = Self.consuming(prefetch: nil, deliveries: 300)
        for tag in 1...255 as ClosedRange<UInt64> { #expect(unlimited.settle(channel: 1, deliveryTag: tag, .ack) == true) }
        #expect(unlimited.dueSettlements(at: 0) == [])
        #expect(unlimited.settle(channel: 1, deliveryTag: 256, .ack) == true)
        #expect(unlimited.dueSettlements(at: 0) == [.init(channel: 1, command: .ack(tag: 256, multiple: true))])
    }

    @Test func aNackOrRejectTakesTheWaitingAcksWithIt() {
        for settlement in [AMQPSettlement.nack(requeue: false), .reject(requeue: true)] {
            var machine = Self.consuming(prefetch: 1000, deliveries: 10)
            #expect(machine.settle(channel: 1, deliveryTag: 1, .ack) == true)
            #expect(machine.dueSettlements(at: 0) == [])
            #expect(machine.settle(channel: 1, deliveryTag: 2, settlement) == true)
            let expected: AckCoalescer.Command = switch settlement {
            case .nack(let requeue): .nack(tag: 2, multiple: false, requeue: requeue)
            case .reject(let requeue): .reject(tag: 2, requeue: requeue)
            case .ack: .ack(tag: 2, multiple: false)
            }
            #expect(machine.dueSettlements(at: 0).map(\.command) == [expected, .ack(tag: 1, multiple: false)], "\(settlement)")
        }
    }

    @Test func aCleanCloseSendsTheWaitingAcks() {
        var machine = Self.consuming(prefetch: 1000, deliveries: 10)
        #expect(machine.settle(channel: 1, deliveryTag: 1, .ack) == true)
        #expect(machine.dueSettlements(at: 0) == [])
        guard case .closeConnection(let settlements, _) = machine.closeRequested() else {
            Issue.record("no close")
            return
        }
        #expect(settlements == [.init(channel: 1, command: .ack(tag: 1, multiple: false))])
    }
}
