// Drains a prefilled queue through WarrenAMQP with manual acks and prints the rate, in the same
// format as bench/c/consumer.c: `consumed N in S s: R msg/s`.
//
// Usage: warren-consume-bench QUEUE N   (AMQP_URL from the environment; prefetch from PREFETCH, default 1000)
import Glibc
import WarrenAMQP

func fail(_ message: String, code: Int32) -> Never {
    let line = message + "\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
    exit(code)
}

let arguments = CommandLine.arguments
guard arguments.count == 3, let count = Int(arguments[2]), count > 0 else {
    fail("usage: warren-consume-bench QUEUE N", code: 2)
}
let queue = arguments[1]
let url = getenv("AMQP_URL").map { String(cString: $0) } ?? "amqp://guest:guest@127.0.0.1:5672/%2F"
let prefetch = getenv("PREFETCH").flatMap { UInt16(String(cString: $0)) } ?? 1000

/// Drains `count` deliveries. A nonisolated function: top-level code runs on the main actor, and
/// iterating from there would hop executors twice per message.
func drain(url: String, queue: String, count: Int, prefetch: UInt16) async throws -> (received: Int, seconds: Double) {
    let connection = try await AMQPConnection.connect(configuration: AMQPConfiguration(url: url, connectionName: "warren-bench"))
    try await connection.setPrefetch(prefetch)
    let deliveries = try await connection.consume(queue: queue)
    let clock = ContinuousClock()
    var received = 0
    var first = clock.now
    for try await delivery in deliveries {
        if received == 0 { first = clock.now }
        delivery.ack()
        received += 1
        if received == count { break }
    }
    await connection.close()  // flushes the last acks
    return (received, (clock.now - first) / .seconds(1))
}

do {
    let (received, seconds) = try await drain(url: url, queue: queue, count: count, prefetch: prefetch)
    print("consumed \(received) in \((seconds * 1000).rounded() / 1000) s: \(Int(Double(received) / seconds)) msg/s")
} catch {
    fail("warren-consume-bench: \(error)", code: 1)
}
