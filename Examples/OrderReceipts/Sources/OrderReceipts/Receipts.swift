import Warren

/// What the shop publishes when an order is placed (routing key `order.<region>.placed`).
public struct OrderPlaced: Codable, Sendable {
    public var id: String
    public var cents: Int
    public init(id: String, cents: Int) { self.id = id; self.cents = cents }
}

/// What this worker publishes for each order (routing key `receipt.created`).
public struct Receipt: Codable, Sendable, Equatable {
    public var order: String
    public var total: String
    public init(order: String, total: String) { self.order = order; self.total = total }
}

/// Every placed order, from any region, becomes a receipt on the same exchange. A receipt is
/// confirmed by the broker before the order is acked; if the publish fails, the order is retried.
public let receipts = Subscription(
    Topology(queue: "receipts", queueType: .quorum, bindings: [.topic("shop", "order.*.placed")]),
    options: SubscriptionOptions(prefetch: 50, concurrency: 8)
) { (order: OrderPlaced, context: MessageContext) in
    guard order.cents >= 0 else { throw InvalidMessage("negative amount") }  // → receipts.dead
    let total = "\(order.cents / 100).\(String(order.cents % 100).leftPadded(to: 2))"
    try await context.publish(Receipt(order: order.id, total: total), to: "shop", routingKey: "receipt.created")
    context.logger.info("receipt sent")
}

extension String {
    func leftPadded(to width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
