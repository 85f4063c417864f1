import Foundation
import Synchronization
import Testing
import Warren
import WarrenAMQP
import WarrenPostgres
import WarrenTestSupport

extension Integration {
    /// The acceptance test of broker failover: a worker given the three nodes of a real RabbitMQ
    /// cluster (`scripts/services cluster up`) loses the node it consumes from mid-drain (stopped,
    /// killed or frozen, and kept away until the queue is drained),
    /// and carries on from another node without losing, duplicating or dead-lettering an event, and
    /// without its liveness ever failing.
    @Suite("RabbitMQ cluster failover")
    struct ClusterFailoverTests {
        static let events = 20_000

        /// How the worker's node goes away.
        enum Fault: String, CustomStringConvertible, Sendable {
            /// `rabbitmqctl stop`: the node closes its connections (connection.close, 320
            /// CONNECTION_FORCED), then its VM exits.
            case stop
            /// SIGKILL on the node's VM: a crash; the worker learns of it from its socket alone.
            case kill
            /// SIGSTOP on the node's VM, kept frozen: a hung node; no FIN, no RST, no answer. Only the
            /// AMQP heartbeat tells the worker.
            case freeze

            var description: String { rawValue }
        }

        @Test(.enabled(if: Servers.amqpClusterURL != nil,
                       "AMQP_CLUSTER_URL is not set: run `scripts/services cluster up` and `eval \"$(scripts/services cluster env)\"` (scripts/test does)"),
              .timeLimit(.minutes(6)), arguments: [Fault.stop, .kill, .freeze])
        func workerMovesToAnotherNodeWhenItsNodeGoesAndLosesNothing(_ fault: Fault) async throws {
            let clusterURL = try #require(Servers.amqpClusterURL)
            let nodes = Servers.Cluster.nodes(in: clusterURL)
            try #require(nodes.count == 3, "AMQP_CLUSTER_URL must list the three nodes: \(clusterURL)")
            let clock = ContinuousClock()
            let began = clock.now

            let f = try await Self.fixture(clusterURL)
            var worker: WorkerProcess?
            var stoppedNode: Int?
            do {
                // All events in first, so that the queue's leader election after the stop cannot
                // overlap a publish; then the worker drains them and loses its node midway.
                let published = await timed { try await f.publishEvents(Self.events) }
                try #require(published.error == nil, "publishing: \(String(describing: published.error))")
                print("cluster failover (\(fault)): published \(Self.events) events to quorum queue \(f.queue) in \(published.elapsed)")

                let w = try WorkerProcess(environment: f.environment.merging(["AMQP_URL": clusterURL]) { $1 })
                worker = w
                // Liveness is watched from the moment the side port answers (before that, no answer
                // is not a failure).
                let up = await w.waitForStatus("/internal/alive", 200, timeout: 10)
                try #require(up != nil, "the worker's side port did not answer within 10 s: \(w.output.suffix(3000))")
                let probes = ProbeRecorder(w)
                let recording = Task { await probes.record() }
                defer { recording.cancel() }

                let started = try await f.until(60) { try await f.rows() >= 2_000 }
                if !started {
                    let summary = await f.describe()
                    Issue.record("the worker did not store 2,000 events within 60 s: \(summary)\n\(w.output.suffix(3000))")
                    throw Servers.Failure("no progress before the failover")
                }
                let before = Self.brokers(in: w.output)
                let endpoint = try #require(before.last, "the worker's log names no broker: \(w.output.suffix(3000))")
                let node = try #require(Self.port(of: endpoint).flatMap { nodes[$0] },
                                        "the worker is connected to \(endpoint), which is not in AMQP_CLUSTER_URL")
                let rowsAtStop = try await f.rows()

                // Take the worker's node away for real (stopped or killed: its VM exits; frozen: it
                // stays, silent) and keep it away. A stopping node closes its connections early in
                // its shutdown, so the worker may well have moved before `cluster stop` returns:
                // watch for that while it runs.
                let stopAt = monotonicSeconds()
                stoppedNode = node
                async let stopping: Void = Self.inflict(fault, on: node)
                // Moved: connected to another node and consuming there (by the log), and ready (a
                // readiness probe alone could answer from a check made before the loss).
                // A frozen node is not written off by the others until Erlang's net_ticktime (60 s):
                // when it led the quorum queue, consuming elsewhere waits for the new leader, so
                // the freeze gets the net tick time on top.
                let moved = await Self.waitUntil(fault == .freeze ? 120 : 60) {
                    guard Self.consumingElsewhere(in: w.output, than: endpoint, after: before.count) else { return false }
                    return await w.probe("/internal/ready")?.status == 200
                }
                let readyBack = monotonicSeconds() - stopAt
                try await stopping
                let stopTook = monotonicSeconds() - stopAt
                let after = Self.brokers(in: w.output)
                let window = probes.notReadyWindow(after: stopAt)
                let gap = Self.consumerGap(in: w.output)
                print("""
                    cluster failover (\(fault)): node \(node) (\(endpoint)) went after \(rowsAtStop) of \(Self.events) events stored; \
                    `cluster \(fault)` took \(String(format: "%.1f", stopTook)) s; the worker moved to \(after.last ?? "?") and \
                    /internal/ready was 200 again \(String(format: "%.2f", readyBack)) s after the stop began \
                    (not ready for \(String(format: "%.2f", window)) s as probed); by its log, \
                    \(gap.map { String(format: "%.3f", $0) } ?? "?") s from losing the connection to consuming again
                    """)
                try #require(moved, "within \(fault == .freeze ? 120 : 60) s of losing node \(node) (\(endpoint)) the worker was not ready on another node; brokers logged: \(after); \(w.output.suffix(3000))")
                #expect(rowsAtStop < Self.events, "the node must go away mid-drain (all \(Self.events) were stored already)")
                // Readiness names the broker now in use (the rabbitmq check's componentId), not the lost one.
                let named = await Self.waitUntil(5) {
                    let body = await w.probe("/internal/ready/rabbitmq")?.bodyText ?? ""
                    return body.contains("\"componentId\":\"\(after.last ?? "?")\"") && !body.contains(endpoint)
                }
                let readiness = await w.probe("/internal/ready/rabbitmq")?.bodyText ?? "no answer"
                #expect(named, "readiness names \(after.last ?? "?"): \(readiness)")
                // A hung node is only noticed when a request to it times out (the readiness check's
                // round trip, 10 s; the AMQP heartbeat at the latest), and when it led the quorum
                // queue, consuming resumes once the others elect a new leader (net_ticktime, 60 s).
                let bound: Double = fault == .freeze ? 100 : 15
                #expect(readyBack < bound, "ready again within seconds: \(readyBack) s")
                #expect(gap.map { $0 < bound } == true, "consuming again within seconds of the loss: \(gap.map { "\($0) s" } ?? "not in the log")")

                // The rest drains through another node while the stopped one stays down; look through
                // a connection to the surviving nodes (the fixture's own may have been on the stopped one).
                let g = try await f.reconnected(to: clusterURL)
                let drainStart = monotonicSeconds()
                let drained = try await g.until(120) { try await g.state(rows: Self.events) }
                let drainTook = monotonicSeconds() - drainStart
                let (stored, distinct) = try await g.storedAndDistinct()
                let dead = try await g.dead()
                let summary = await g.describe()
                #expect(drained, "not drained within 120 s of the failover: \(summary)")
                #expect(stored == Self.events && distinct == Self.events,
                        "every event stored exactly once: \(stored) rows, \(distinct) distinct ids, \(Self.events) published")
                #expect(dead == 0, "a lost broker never dead-letters: \(dead) in \(f.topology.deadLetterQueue)")
                let alive = probes.livenessFailures()
                #expect(alive.isEmpty, "/internal/alive failed \(alive.count) of \(probes.count) probes: \(alive.prefix(5))")
                #expect(!Self.brokers(in: w.output).dropFirst(before.count).contains(endpoint),
                        "the worker never went back to the stopped node")
                #expect(w.isRunning, "the worker is still running: \(w.output.suffix(3000))")
                recording.cancel()

                // The node comes back and rejoins (its mnesia directory remembers the cluster). A
                // frozen node is thawed and restarted: its peers may have written it off meanwhile.
                let restartStart = monotonicSeconds()
                if fault == .freeze { try await Servers.Cluster.stop(node) }
                try await Servers.Cluster.start(node)
                let restartTook = monotonicSeconds() - restartStart
                stoppedNode = nil
                let running = await Servers.Cluster.runningNodes()
                #expect(running == 3, "node \(node) rejoined: \(running.map(String.init) ?? "?") of 3 nodes running")

                w.signal(SIGTERM)
                #expect(await w.waitForExit(timeout: 25) == 0, "\(w.output.suffix(3000))")
                await g.cleanUp()
                await f.close()
                print("""
                    cluster failover (\(fault)): the rest drained in \(String(format: "%.1f", drainTook)) s after the move; \
                    node \(node) back in the cluster in \(String(format: "%.1f", restartTook)) s; test took \(clock.now - began)
                    """)
            } catch {
                await worker?.terminate()
                if let stoppedNode {
                    if fault == .freeze { try? await Servers.Cluster.stop(stoppedNode) }
                    try? await Servers.Cluster.start(stoppedNode)
                }
                if let g = try? await f.reconnected(to: clusterURL) { await g.cleanUp() }
                await f.close()
                throw error
            }
        }

        static func inflict(_ fault: Fault, on node: Int) async throws {
            switch fault {
            case .stop: try await Servers.Cluster.stop(node)
            case .kill: try await Servers.Cluster.kill(node)
            case .freeze: try await Servers.Cluster.signal(node, SIGSTOP)
            }
        }

        /// A quorum queue on the cluster, declared through a connection to any of its nodes.
        static func fixture(_ clusterURL: String) async throws -> IngestFixture {
            let amqp = try await AMQPConnection.connect(configuration: try AMQPConfiguration(url: clusterURL))
            let postgres = PostgresClient(configuration: try PostgresConfiguration(url: Servers.databaseURL))
            _ = try await postgres.execute("""
                CREATE TABLE IF NOT EXISTS events (id uuid PRIMARY KEY, type text NOT NULL, payload jsonb NOT NULL,
                received_at timestamptz NOT NULL DEFAULT now())
                """, [])
            let fixture = IngestFixture(queue: uniqueName("failover"), queueType: .quorum, amqp: amqp, postgres: postgres)
            try await fixture.topology.declare(on: amqp, retry: IngestFixture.retry)
            return fixture
        }

        /// The brokers the worker connected to, in order, from its "connected to the broker" log lines.
        static func brokers(in output: String) -> [String] {
            output.split(separator: "\n").compactMap { line in
                guard line.contains("connected to the broker"),
                      let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      object["message"] as? String == "connected to the broker"
                else { return nil }
                return object["warren.amqp.endpoint"] as? String
            }
        }

        /// Seconds from the worker's first "AMQP connection lost" to the next "consuming", by its
        /// log's timestamps (milliseconds); nil if the log does not show both.
        static func consumerGap(in output: String) -> Double? {
            let format = ISO8601DateFormatter()
            format.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            var lost: Date?
            for line in output.split(separator: "\n") {
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      let message = object["message"] as? String,
                      let time = (object["time"] as? String).flatMap({ format.date(from: $0) })
                else { continue }
                if lost == nil, message == "AMQP connection lost" { lost = time }
                if let lost, message == "consuming" { return time.timeIntervalSince(lost) }
            }
            return nil
        }

        /// After the first `skip` connections, the worker connected to a broker other than `endpoint`
        /// and registered a consumer there.
        static func consumingElsewhere(in output: String, than endpoint: String, after skip: Int) -> Bool {
            var connections = 0
            var elsewhere = false
            for line in output.split(separator: "\n") {
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      let message = object["message"] as? String
                else { continue }
                if message == "connected to the broker" {
                    connections += 1
                    elsewhere = connections > skip && object["warren.amqp.endpoint"] as? String != endpoint
                } else if message == "consuming", elsewhere {
                    return true
                }
            }
            return false
        }

        static func port(of endpoint: String) -> Int? {
            endpoint.split(separator: ":").last.flatMap { Int($0) }
        }

        /// Polls `condition` every 50 ms; false after `timeout` seconds.
        static func waitUntil(_ timeout: Double, _ condition: () async -> Bool) async -> Bool {
            let start = monotonicSeconds()
            while monotonicSeconds() - start < timeout {
                if await condition() { return true }
                try? await Task.sleep(for: .milliseconds(50))
            }
            return await condition()
        }
    }
}

extension IngestFixture {
    /// The same queue and rows, seen through a new connection to the cluster (any node that answers).
    func reconnected(to clusterURL: String) async throws -> IngestFixture {
        IngestFixture(queue: queue, queueType: queueType, run: run,
                      amqp: try await AMQPConnection.connect(configuration: try AMQPConfiguration(url: clusterURL)),
                      postgres: postgres)
    }

    /// This test's rows and their distinct event ids.
    func storedAndDistinct() async throws -> (rows: Int, distinct: Int) {
        let result = try await postgres.execute(
            "SELECT count(*), count(DISTINCT id) FROM events WHERE payload->>'run' = $1", [run])
        let row = result.rows.first
        let rows = row.flatMap { $0.first ?? nil }.flatMap { Int($0) } ?? -1
        let distinct = row.flatMap { $0.count > 1 ? $0[1] : nil }.flatMap { Int($0) } ?? -1
        return (rows, distinct)
    }

    /// Closes this fixture's broker connection only (the Postgres client is shared with the
    /// reconnected fixture, whose cleanUp shuts it down).
    func close() async { await amqp.close() }
}

/// Probes `/internal/alive` and `/internal/ready` every 50 ms and keeps what they answered, so that
/// the test can say whether liveness ever failed and how long readiness did.
final class ProbeRecorder: Sendable {
    struct Sample: Sendable {
        var at: Double
        var alive: Int?
        var ready: Int?
    }

    private let worker: WorkerProcess
    private let samples = Mutex<[Sample]>([])

    init(_ worker: WorkerProcess) { self.worker = worker }

    func record() async {
        while !Task.isCancelled {
            let at = monotonicSeconds()
            async let alive = worker.probe("/internal/alive")
            async let ready = worker.probe("/internal/ready")
            let sample = Sample(at: at, alive: await alive?.status, ready: await ready?.status)
            samples.withLock { $0.append(sample) }
            try? await Task.sleep(for: .milliseconds(50))
        }
    }

    var count: Int { samples.withLock { $0.count } }

    /// The liveness probes that did not answer 200 (no answer counts as a failure).
    func livenessFailures() -> [String] {
        samples.withLock { $0 }.filter { $0.alive != 200 }
            .map { "at \(String(format: "%.2f", $0.at)): \($0.alive.map(String.init) ?? "no answer")" }
    }

    /// Seconds from the first readiness probe after `start` that did not answer 200 to the next that
    /// did; 0 if none failed.
    func notReadyWindow(after start: Double) -> Double {
        let later = samples.withLock { $0 }.filter { $0.at >= start }
        guard let first = later.firstIndex(where: { $0.ready != 200 }) else { return 0 }
        guard let back = later[first...].firstIndex(where: { $0.ready == 200 }) else {
            return (later.last?.at ?? later[first].at) - later[first].at
        }
        return later[back].at - later[first].at
    }
}
