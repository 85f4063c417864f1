import Foundation
import Testing
import Warren
import WarrenHealth
import WarrenTestSupport

extension Integration {
    @Suite("Health probes against real servers")
    struct HealthProbeTests {
        @Test func rabbitmqCheckTellsTheTruthThroughStopFreezeAndRestart() async throws {
            let harness = try await HealthHarness()
            defer { Task { await harness.stop() } }
            #expect(try await harness.waitForStatus("/internal/ready/rabbitmq", 200, timeout: 3) != nil)
            #expect(try await harness.probe("/internal/ready").response.status == 200)

            // Frozen broker: probes keep answering fast, the failure shows within 2 s.
            try await Servers.signal(.rabbitmq, SIGSTOP)
            let frozenFor = try await harness.waitForStatus("/internal/ready/rabbitmq", 503, timeout: 2)
            let stillAlive = try await harness.probe("/internal/alive")
            try await Servers.signal(.rabbitmq, SIGCONT)
            #expect(frozenFor != nil, "a SIGSTOPped broker must fail readiness within 2 s")
            #expect(stillAlive.response.status == 200, "liveness never depends on the broker")
            #expect(stillAlive.seconds < 1)
            #expect(try await harness.waitForStatus("/internal/ready/rabbitmq", 200, timeout: 4) != nil)

            // Stopped broker: fails within 1 s; back within 2 s of the restart.
            try await Servers.stop(.rabbitmq)
            let stoppedFor = try await harness.waitForStatus("/internal/ready/rabbitmq", 503, timeout: 1)
            #expect(try await harness.probe("/internal/alive").response.status == 200)
            try await Servers.start(.rabbitmq)
            let recovered = try await harness.waitForStatus("/internal/ready/rabbitmq", 200, timeout: 2)
            #expect(stoppedFor != nil, "a stopped broker must fail readiness within 1 s")
            #expect(recovered != nil, "readiness must pass within 2 s of the broker's recovery")
            #expect(try await harness.probe("/internal/alive").response.status == 200)
        }

        @Test func readinessRoutesShapes() async throws {
            let harness = try await HealthHarness(extraChecks: [
                HealthCheck(name: "always-down", timeout: .milliseconds(100), interval: .milliseconds(100)) {
                    throw CheckFailure("down on purpose")
                },
            ])
            defer { Task { await harness.stop() } }
            #expect(try await harness.waitForStatus("/internal/ready/rabbitmq", 200, timeout: 3) != nil)
            let ready = try await harness.probe("/internal/ready").response
            #expect(ready.status == 503)
            #expect(ready.header("content-type") == "application/health+json")
            let body = try JSONSerialization.jsonObject(with: Data(ready.body)) as! [String: Any]
            #expect(body["status"] as? String == "fail")
            let checks = try #require(body["checks"] as? [String: [[String: Any]]])
            #expect(checks["rabbitmq:responseTime"]?.first?["status"] as? String == "pass")
            #expect(checks["rabbitmq:responseTime"]?.first?["output"] == nil)
            #expect(checks["always-down:responseTime"]?.first?["output"] as? String == "down on purpose")
            #expect(try await harness.probe("/internal/ready?exclude=always-down").response.status == 200)
            #expect(try await harness.probe("/internal/ready/always-down").response.status == 503)
            #expect(try await harness.probe("/internal/ready/nope").response.status == 404)
            let head = try await harness.probe("/internal/ready?exclude=always-down", method: "HEAD").response
            #expect(head.status == 200)
            #expect(head.body.isEmpty)
            #expect(try await harness.probe("/internal/started").response.status == 200)
            #expect(try await harness.probe("/internal/alive", method: "POST").response.header("allow") == "GET, HEAD")
            harness.registry.markShuttingDown()
            let shutting = try await harness.probe("/internal/ready?exclude=always-down").response
            #expect(shutting.status == 503)
            #expect(shutting.bodyText.contains("shutting down"))
        }

        @Test func livenessFailsWhileTheCooperativePoolIsBlocked() async throws {
            let harness = try await HealthHarness(stallThreshold: .milliseconds(500))
            defer { Task { await harness.stop() } }
            #expect(try await harness.waitForStatus("/internal/alive", 200, timeout: 2) != nil)
            let port = harness.port
            // Probe from a thread of our own while every cooperative thread is blocked.
            let prober = BackgroundThread<[Int]> {
                var statuses: [Int] = []
                let start = monotonicSeconds()
                while monotonicSeconds() - start < 3 {
                    if let response = try? RawConnection.exchange(port: port, get("/internal/alive"), timeout: 1) {
                        statuses.append(response.status)
                    }
                    usleep(50_000)
                }
                return statuses
            }
            // More blockers than pool threads, all ending at one deadline: the pool is stuck until then.
            let width = ProcessInfo.processInfo.activeProcessorCount + 2
            let deadline = monotonicSeconds() + 1.5
            let blockers = (0..<width).map { _ in
                Task.detached {
                    while monotonicSeconds() < deadline { usleep(10_000) }  // deliberately blocks its thread
                }
            }
            for blocker in blockers { await blocker.value }
            let statuses = try await prober.value()
            #expect(statuses.contains(503), "liveness must fail while the pool is stuck: \(statuses)")
            #expect(statuses.last == 200, "and pass again after: \(statuses)")
        }
    }
}
