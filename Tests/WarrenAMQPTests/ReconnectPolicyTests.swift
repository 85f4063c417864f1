import Testing
@testable import WarrenAMQP

@Suite("Reconnect backoff")
struct ReconnectPolicyTests {
    @Test func ceilingDoublesAndCaps() {
        let p = ReconnectPolicy(initialDelay: .milliseconds(100), maximumDelay: .seconds(2), jitter: 0.5)
        #expect(p.ceiling(forAttempt: 0) == .milliseconds(100))
        #expect(p.ceiling(forAttempt: 1) == .milliseconds(200))
        #expect(p.ceiling(forAttempt: 3) == .milliseconds(800))
        #expect(p.ceiling(forAttempt: 5) == .seconds(2))
        #expect(p.ceiling(forAttempt: 1000) == .seconds(2))
        #expect(p.ceiling(forAttempt: -3) == .milliseconds(100))
    }

    @Test func jitterStaysInItsBand() {
        let p = ReconnectPolicy(initialDelay: .milliseconds(100), maximumDelay: .seconds(10), jitter: 0.5)
        var rng = SplitMix64(state: 42)
        for attempt in 0..<12 {
            let ceiling = p.ceiling(forAttempt: attempt)
            var seen = Set<Duration>()
            for _ in 0..<50 {
                let d = p.delay(forAttempt: attempt, using: &rng)
                #expect(d <= ceiling)
                #expect(d >= ceiling * 0.5)
                seen.insert(d)
            }
            #expect(seen.count > 1, "jitter must spread attempts")
        }
    }

    @Test func noJitterIsExact() {
        let p = ReconnectPolicy(initialDelay: .seconds(1), maximumDelay: .seconds(4), jitter: 0)
        var rng = SplitMix64(state: 1)
        #expect(p.delay(forAttempt: 0, using: &rng) == .seconds(1))
        #expect(p.delay(forAttempt: 2, using: &rng) == .seconds(4))
        #expect(p.delay(forAttempt: 9, using: &rng) == .seconds(4))
    }
}
