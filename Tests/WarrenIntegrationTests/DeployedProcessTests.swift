import Foundation
import Testing
import WarrenAMQP
import WarrenTestSupport

/// The worker as deploy/ runs it: uid 10001, every capability dropped (WorkerProcess.launch), and
/// the command line and signals a user or the kubelet gives it.
extension Integration {
    @Suite("event-worker as deployed")
    struct DeployedProcessTests {
        /// The fields of /proc/PID/status that say who a process runs as.
        static func credentials(of pid: pid_t) throws -> [String: String] {
            let text = try String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)
            var fields: [String: String] = [:]
            for line in text.split(separator: "\n") {
                guard let colon = line.firstIndex(of: ":") else { continue }
                fields[String(line[..<colon])] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
            return fields
        }

        /// Linux 6.12 or later: a thread's `sched_runtime` sets its EEVDF slice.
        static func kernelHasCustomSlices() throws -> Bool {
            let release = try String(contentsOfFile: "/proc/sys/kernel/osrelease", encoding: .utf8)
            let numbers = release.split(whereSeparator: { !$0.isNumber }).prefix(2).compactMap { Int($0) }
            return numbers.count == 2 && (numbers[0], numbers[1]) >= (6, 12)
        }

        /// `se.slice` (ns) of each NIO event loop thread of `pid` (the side port's), from
        /// /proc/PID/task/TID/sched.
        static func eventLoopSlices(of pid: pid_t) throws -> [Int] {
            let tasks = "/proc/\(pid)/task"
            return try FileManager.default.contentsOfDirectory(atPath: tasks).sorted().compactMap { tid in
                let name = try String(contentsOfFile: "\(tasks)/\(tid)/comm", encoding: .utf8)
                guard name.hasPrefix("NIO-ELT") else { return nil }
                let sched = try String(contentsOfFile: "\(tasks)/\(tid)/sched", encoding: .utf8)
                let line = sched.split(separator: "\n").first { $0.hasPrefix("se.slice") }
                return line.flatMap { Int($0.split(separator: ":").last?.trimmingCharacters(in: .whitespaces) ?? "") }
            }
        }

        /// On the main of issue 10 this failed: as uid 10001 without CAP_NET_ADMIN, setting SO_DEBUG
        /// (the mistaken `.socketOption(.tcp_nodelay)`) reset every accepted connection.
        @Test func answersProbesAsUid10001WithoutCapabilities() async throws {
            try #require(getuid() == 0, "needs root to start the worker as uid 10001 (CI runs as root)")
            let queue = uniqueName("deployed")
            let worker = try WorkerProcess(environment: ["QUEUE": queue, "HANDLER": "noop"])
            defer { Task { await worker.terminate() } }
            let ready = await worker.waitForStatus("/internal/ready", 200, timeout: 15)
            #expect(ready != nil, "ready as uid 10001: \(worker.output.suffix(2000))")
            let status = try Self.credentials(of: worker.pid)
            #expect(status["Uid"]?.split(separator: "\t").allSatisfy { $0 == "10001" } == true, "\(status["Uid"] ?? "?")")
            #expect(status["Gid"]?.split(separator: "\t").allSatisfy { $0 == "10001" } == true, "\(status["Gid"] ?? "?")")
            #expect(status["Groups"] == "", "no supplementary groups: \(status["Groups"] ?? "?")")
            for capabilities in ["CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb"] {
                #expect(status[capabilities] == "0000000000000000", "\(capabilities) \(status[capabilities] ?? "?")")
            }
            #expect(status["NoNewPrivs"] == "1")
            if try Self.kernelHasCustomSlices() {
                // The side port's loop thread asked for a 100 µs slice (sched_setattr) without capabilities.
                #expect(try Self.eventLoopSlices(of: worker.pid) == [100_000])
            }
            for path in ["/internal/alive", "/internal/started", "/internal/ready", "/metrics"] {
                #expect(await worker.probe(path)?.status == 200, "\(path)")
            }
            let port = ["HEALTH_PORT": String(worker.healthPort)]
            #expect(try await WorkerProcess.runToEnd(["healthcheck", "--probe", "started"], environment: port).status == 0)
            worker.signal(SIGTERM)
            #expect(await worker.waitForExit(timeout: 25) == 0)
            await Self.deleteTopology(of: queue)
        }

        @Test(arguments: [["--help"], ["run", "--help"], ["healthcheck", "--help"], ["publish", "--help"], ["help", "run"]])
        func helpPrintsUsageAndExitsZero(_ arguments: [String]) async throws {
            let (status, output) = try await WorkerProcess.runToEnd(arguments)
            #expect(status == 0)
            #expect(output.contains("USAGE: event-worker"), "\(arguments): \(output)")
        }

        /// Kubernetes may stop a pod at any moment: before it ever reached the broker, while a
        /// start-up task (the migration) keeps failing, or while it waits to reconnect.
        @Test(arguments: [SIGTERM, SIGINT])
        func signalBeforeTheFirstConnectionExitsZero(_ signal: Int32) async throws {
            // Nothing listens on port 1: every connect is refused and the worker keeps retrying.
            let worker = try WorkerProcess(environment: ["AMQP_URL": "amqp://guest:guest@127.0.0.1:1/%2F", "HANDLER": "noop"])
            defer { Task { await worker.terminate() } }
            #expect(try await Self.until(10) { worker.output.contains("could not connect to the broker") }, "\(worker.output)")
            // The side port is bound by its own service, concurrently with the first connect: on a
            // loaded machine the refused connect can be logged before the port listens.
            #expect(await worker.waitForStatus("/internal/alive", 200, timeout: 5) != nil)
            worker.signal(signal)
            #expect(await worker.waitForExit(timeout: 5) == 0, "\(worker.output.suffix(2000))")
            #expect(!worker.output.contains("CancellationError"), "\(worker.output.suffix(2000))")
        }

        @Test(arguments: [SIGTERM, SIGINT])
        func signalDuringAFailingStartupTaskExitsZero(_ signal: Int32) async throws {
            let queue = uniqueName("deployed")
            let worker = try WorkerProcess(environment: [
                "QUEUE": queue, "HANDLER": "ingest", "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/postgres",
            ])
            defer { Task { await worker.terminate() } }
            #expect(try await Self.until(15) { worker.output.contains("start-up task failed") }, "\(worker.output)")
            #expect(await worker.waitForStatus("/internal/started", 503, timeout: 5) != nil)
            worker.signal(signal)
            #expect(await worker.waitForExit(timeout: 5) == 0, "\(worker.output.suffix(2000))")
            #expect(!worker.output.contains("CancellationError"), "\(worker.output.suffix(2000))")
            await Self.deleteTopology(of: queue)
        }

        /// Removes what the worker declared for `queue`.
        static func deleteTopology(of queue: String) async {
            guard let amqp = try? await AMQPConnection.connect(configuration: try AMQPConfiguration(url: Servers.amqpURL)) else { return }
            await amqp.deleteTopology(of: queue)
            await amqp.close()
        }

        static func until(_ timeout: Double, _ condition: () -> Bool) async throws -> Bool {
            let start = monotonicSeconds()
            while monotonicSeconds() - start < timeout {
                if condition() { return true }
                try await Task.sleep(for: .milliseconds(50))
            }
            return condition()
        }
    }
}
