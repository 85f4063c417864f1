import Foundation

/// The 3-node RabbitMQ cluster of `scripts/services cluster`, and the means to take a node away for
/// real (its VM exits) and bring it back.
extension Servers {
    public enum Cluster {
        /// The node numbers (1...3) by AMQP port, from `AMQP_CLUSTER_URL` (listed in node order).
        public static func nodes(in clusterURL: String) -> [Int: Int] {
            var nodes: [Int: Int] = [:]
            for (index, url) in clusterURL.split(separator: ",").enumerated() {
                if let port = URLComponents(string: String(url))?.port { nodes[port] = index + 1 }
            }
            return nodes
        }

        /// Stops node `n` (`rabbitmqctl stop`: the node closes its connections and its VM exits);
        /// returns once its ports are free.
        public static func stop(_ n: Int) async throws { _ = try await services("cluster", "stop", String(n)) }

        /// Kills node `n`'s VM (SIGKILL: a crash, no goodbye to clients or peers).
        public static func kill(_ n: Int) async throws { _ = try await services("cluster", "kill", String(n)) }

        /// Sends `signal` to node `n`'s VM (SIGSTOP freezes it; `stop` resumes it before stopping).
        public static func signal(_ n: Int, _ signal: Int32) async throws {
            let out = try await services("cluster", "pid", String(n)).trimmingCharacters(in: .whitespacesAndNewlines)
            guard let pid = pid_t(out) else { throw Failure("scripts/services cluster pid \(n): got '\(out)'") }
            guard Foundation.kill(pid, signal) == 0 else { throw Failure("kill(\(pid), \(signal)) failed: errno \(errno)") }
        }

        /// Starts node `n` again; returns once it is back in the cluster with the other two.
        public static func start(_ n: Int) async throws { _ = try await services("cluster", "start", String(n)) }

        /// How many nodes run in the cluster, as `scripts/services cluster status` reports it.
        public static func runningNodes() async -> Int? {
            // status exits 3 when a node is down; its output is what we want either way.
            let out = try? await run("/bin/bash", ["-c", "\"$0\" cluster status || true",
                                                   root.appendingPathComponent("scripts/services").path])
            guard let line = out?.split(separator: "\n").first(where: { $0.hasPrefix("cluster: ") }) else { return nil }
            return Int(line.dropFirst("cluster: ".count).prefix { $0.isNumber })
        }
    }
}
