import Audit
import Glibc
import Hummingbird
import Logging
import ServiceLifecycle
import Warren
import WarrenAMQP

func environment(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }

let logger = Logger(label: "health-on-hummingbird")
let counter = AuditCounter()
// AMQP_URL, else the local broker of Warren's scripts/services. No side port (healthPort: nil):
// the app's own server below answers the probes.
let amqp = try AMQPConfiguration(url: environment("AMQP_URL") ?? "amqp://guest:guest@127.0.0.1:5672/%2F")
let worker = Worker(configuration: WorkerConfiguration(amqp: amqp, healthPort: nil),
                    subscription: auditSubscription(counting: counter), logger: logger)
let port = environment("PORT").flatMap { Int($0) } ?? 8080
let app = Application(router: makeRouter(worker: worker, counter: counter),
                      configuration: .init(address: .hostname("0.0.0.0", port: port)), logger: logger)
// One group, one signal handler. On SIGTERM the group shuts down in reverse order: the worker first
// (readiness 503, consumers cancelled, in-flight handlers drained) while the server still answers,
// then the server.
try await ServiceGroup(configuration: ServiceGroupConfiguration(
    services: [.init(service: app), .init(service: worker)],
    gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)).run()
