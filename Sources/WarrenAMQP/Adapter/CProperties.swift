import CRabbitMQ

/// Basic-properties flag bits (librabbitmq defines them as shift macros).
private enum Flag {
    static let contentType: amqp_flags_t = 1 << 15
    static let contentEncoding: amqp_flags_t = 1 << 14
    static let headers: amqp_flags_t = 1 << 13
    static let deliveryMode: amqp_flags_t = 1 << 12
    static let priority: amqp_flags_t = 1 << 11
    static let correlationID: amqp_flags_t = 1 << 10
    static let replyTo: amqp_flags_t = 1 << 9
    static let expiration: amqp_flags_t = 1 << 8
    static let messageID: amqp_flags_t = 1 << 7
    static let timestamp: amqp_flags_t = 1 << 6
    static let type: amqp_flags_t = 1 << 5
    static let userID: amqp_flags_t = 1 << 4
    static let appID: amqp_flags_t = 1 << 3
}

/// Basic properties to and from librabbitmq's `amqp_basic_properties_t`.
extension AMQPProperties {
    /// The properties of a received message; the content type from `contentTypes` (it repeats).
    init(_ p: amqp_basic_properties_t, contentTypes: inout ReusedString) {
        let flags = p._flags
        func string(_ flag: amqp_flags_t, _ bytes: amqp_bytes_t) -> String? {
            flags & flag != 0 ? CTable.string(bytes) : nil
        }
        self.init(
            contentType: flags & Flag.contentType != 0 ? contentTypes.string(p.content_type) : nil,
            contentEncoding: string(Flag.contentEncoding, p.content_encoding),
            headers: flags & Flag.headers != 0 ? CTable.decode(p.headers) : [:],
            deliveryMode: flags & Flag.deliveryMode != 0 ? p.delivery_mode : nil,
            priority: flags & Flag.priority != 0 ? p.priority : nil,
            correlationID: string(Flag.correlationID, p.correlation_id),
            replyTo: string(Flag.replyTo, p.reply_to),
            expiration: string(Flag.expiration, p.expiration),
            messageID: string(Flag.messageID, p.message_id),
            timestamp: flags & Flag.timestamp != 0 ? p.timestamp : nil,
            type: string(Flag.type, p.type),
            userID: string(Flag.userID, p.user_id),
            appID: string(Flag.appID, p.app_id)
        )
    }

    /// The properties for `basic.publish`, their strings and tables owned by `arena`.
    func cValue(arena: CTable.Arena) -> amqp_basic_properties_t {
        let p = self
        var c = amqp_basic_properties_t()
        var flags: amqp_flags_t = 0
        func set(_ value: String?, _ flag: amqp_flags_t, _ field: inout amqp_bytes_t) {
            guard let value else { return }
            field = arena.bytes(value)
            flags |= flag
        }
        set(p.contentType, Flag.contentType, &c.content_type)
        set(p.contentEncoding, Flag.contentEncoding, &c.content_encoding)
        if !p.headers.isEmpty {
            c.headers = arena.table(p.headers)
            flags |= Flag.headers
        }
        if let mode = p.deliveryMode { c.delivery_mode = mode; flags |= Flag.deliveryMode }
        if let priority = p.priority { c.priority = priority; flags |= Flag.priority }
        set(p.correlationID, Flag.correlationID, &c.correlation_id)
        set(p.replyTo, Flag.replyTo, &c.reply_to)
        set(p.expiration, Flag.expiration, &c.expiration)
        set(p.messageID, Flag.messageID, &c.message_id)
        if let timestamp = p.timestamp { c.timestamp = timestamp; flags |= Flag.timestamp }
        set(p.type, Flag.type, &c.type)
        set(p.userID, Flag.userID, &c.user_id)
        set(p.appID, Flag.appID, &c.app_id)
        c._flags = flags
        return c
    }
}
