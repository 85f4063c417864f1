import Testing
import WarrenAMQP
@testable import Warren

@Suite("Retry policy and settlement (pure)")
struct SettlementTests {
    let topology = Topology(queue: "jobs")
    let policy = RetryPolicy(maxAttempts: 5, initialDelay: .seconds(1), maximumDelay: .seconds(5), jitter: 0.2)

    @Test func delaysDoubleUpToTheCapAndNameTheirQueues() {
        #expect((1...6).map { policy.delay(afterFailures: $0) } == [.seconds(1), .seconds(2), .seconds(4), .seconds(5), .seconds(5), .seconds(5)])
        #expect(policy.delays == [.seconds(1), .seconds(2), .seconds(4), .seconds(5)])
        #expect(RetryPolicy(maxAttempts: 1).delays == [.seconds(1)], "the requeue delay exists without retries")
        #expect(topology.retryQueue(delay: .milliseconds(1500)) == "jobs.retry.1500ms")
        #expect(policy.jittered(.seconds(10), random: 0) == .seconds(10))
        #expect(policy.jittered(.seconds(10), random: 0.999) >= .milliseconds(8001))
        #expect(policy.jittered(.seconds(10), random: 0.5) == .seconds(9))
    }

    @Test func aFailureGoesToTheDelayQueueOfItsAttemptWithTheCountUp() {
        let first = Settlement.decide(.retry(reason: "boom"), failures: 0, topology: topology, retry: policy, random: 0)
        #expect(first == .delay(queue: "jobs.retry.1000ms", failures: 1, expiration: .seconds(1), why: .failure, reason: "boom"))
        let third = Settlement.decide(.retry(reason: "boom"), failures: 2, timedOut: true, topology: topology, retry: policy, random: 0)
        #expect(third == .delay(queue: "jobs.retry.4000ms", failures: 3, expiration: .seconds(4), why: .timeout, reason: "boom"))
    }

    @Test func theLastAttemptDeadLettersWithTheCount() {
        let last = Settlement.decide(.retry(reason: "boom"), failures: 4, topology: topology, retry: policy)
        #expect(last == .deadLetter(reason: "gave up after 5 attempts: boom", attempts: 5, why: .exhausted))
        let noRetry = Settlement.decide(.retry(reason: "boom"), failures: 0, topology: topology, retry: RetryPolicy(maxAttempts: 1))
        #expect(noRetry == .deadLetter(reason: "gave up after 1 attempts: boom", attempts: 1, why: .exhausted))
    }

    @Test func aRequeueIsDelayedButNeverAnAttempt() {
        for failures in [0, 3, 4] {
            let settlement = Settlement.decide(.requeue(reason: "postgres down"), failures: failures, topology: topology, retry: policy, random: 0)
            #expect(settlement == .delay(queue: "jobs.retry.1000ms", failures: failures, expiration: .seconds(1), why: .dependency, reason: "postgres down"))
        }
    }

    @Test func invalidMessagesAreDeadLetteredAtOnceAndAcksAreAcks() {
        #expect(Settlement.decide(.deadLetter(reason: "not JSON"), failures: 2, topology: topology, retry: policy)
            == .deadLetter(reason: "not JSON", attempts: 3, why: .invalid))
        #expect(Settlement.decide(.ack, failures: 3, topology: topology, retry: policy) == .ack)
    }

    @Test func theAttemptsHeaderIsReadAndACopyStartsClean() {
        #expect(WarrenHeaders.failures(of: AMQPProperties()) == 0)
        #expect(WarrenHeaders.failures(of: AMQPProperties(headers: ["x-warren-attempts": 3])) == 3)
        #expect(WarrenHeaders.failures(of: AMQPProperties(headers: ["x-warren-attempts": "2"])) == 2)
        #expect(WarrenHeaders.failures(of: AMQPProperties(headers: ["x-warren-attempts": -4])) == 0)
        let original = AMQPProperties(headers: ["x-death": .array([]), "x-delivery-count": 7, "traceparent": "00-abc", "x-warren-attempts": 1],
                                      expiration: "500", messageID: "m-1")
        let first = AMQPDelivery(testing: [], properties: original, deliveryTag: 1, redelivered: false,
                                 exchange: "shop", routingKey: "order.eu.placed")
        let copy = WarrenHeaders.copy(of: first, failures: 2)
        #expect(copy.headers == ["traceparent": "00-abc", "x-warren-attempts": 2,
                                 "x-warren-original-exchange": "shop", "x-warren-original-routing-key": "order.eu.placed"])
        #expect(copy.expiration == nil && copy.messageID == "m-1")
        // Back from a delay queue (default exchange, the queue's name as key): the first routing stays.
        let retried = AMQPDelivery(testing: [], properties: copy, deliveryTag: 2, redelivered: false, exchange: "", routingKey: "jobs")
        #expect(retried.originalExchange == "shop" && retried.originalRoutingKey == "order.eu.placed")
        #expect(WarrenHeaders.copy(of: retried, failures: 3).headers["x-warren-original-routing-key"] == "order.eu.placed")
    }

    @Test func thrownErrorsMapOntoOutcomes() {
        struct Boom: Error {}
        #expect(MessageOutcome(error: DependencyUnavailable("redis", reason: "refused")) == .requeue(reason: "redis unavailable: refused"))
        #expect(MessageOutcome(error: InvalidMessage("bad total")) == .deadLetter(reason: "bad total"))
        if case .retry = MessageOutcome(error: Boom()) {} else { Issue.record("a plain error retries") }
    }
}
