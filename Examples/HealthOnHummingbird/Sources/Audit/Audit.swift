import Hummingbird
import Synchronization
import Warren

/// What other services publish to the fanout exchange `audit`.
public struct AuditEvent: Codable, Sendable {
    public var actor: String
    public var action: String
    public init(actor: String, action: String) { self.actor = actor; self.action = action }
}

/// Audit events handled so far (the app's API reports it).
public final class AuditCounter: Sendable {
    private let count = Atomic(0)
    public init() {}
    public var value: Int { count.load(ordering: .relaxed) }
    func increment() -> Int { count.add(1, ordering: .relaxed).newValue }
}

/// Queue `audit`, bound to the fanout exchange `audit`: every event is logged and counted; one
/// without an action is dead-lettered (to `audit.dead`).
public func auditSubscription(counting counter: AuditCounter) -> Subscription {
    Subscription(Topology(queue: "audit", bindings: [.fanout("audit")])) { (event: AuditEvent, context: MessageContext) in
        guard !event.action.isEmpty else { throw InvalidMessage("no action") }
        let count = counter.increment()
        context.logger.info("audit", metadata: ["actor": "\(event.actor)", "action": "\(event.action)", "count": "\(count)"])
    }
}

/// The app's routes: its own API (`GET /audit/count`) and the worker's health routes under
/// `/internal` (alive, ready, ready/<check>, started), answered from `worker.healthEndpoints`.
/// HEAD is generated from GET, as Hummingbird does it.
public func makeRouter(worker: Worker, counter: AuditCounter) -> Router<BasicRequestContext> {
    let router = Router(options: .autoGenerateHeadEndpoints)
    router.get("/audit/count") { _, _ in "\(counter.value)\n" }
    let health = worker.healthEndpoints
    router.get("/internal/**") { request, _ in
        let answer = health.respond(path: request.uri.path, query: request.uri.query) ?? .notFound
        return Response(status: .init(code: answer.status),
                        headers: [.contentType: answer.contentType, .cacheControl: "no-store"],
                        body: .init(byteBuffer: ByteBuffer(bytes: answer.body)))
    }
    return router
}
