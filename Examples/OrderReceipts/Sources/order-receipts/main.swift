import Glibc
import Logging
import OrderReceipts
import Warren
import WarrenAMQP

// AMQP_URL, else the local broker of Warren's scripts/services.
let url = getenv("AMQP_URL").map { String(cString: $0) } ?? "amqp://guest:guest@127.0.0.1:5672/%2F"
let worker = Worker(configuration: WorkerConfiguration(amqp: try AMQPConfiguration(url: url)),
                    subscription: receipts, logger: Logger(label: "order-receipts"))
try await worker.runUntilSignalled()  // probes on :8080; SIGTERM drains and exits
