/// A value in an AMQP field table: message headers and declare arguments such as
/// `x-dead-letter-exchange` or `x-queue-type`.
public enum AMQPFieldValue: Sendable, Hashable {
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case bytes([UInt8])
    case timestamp(UInt64)
    case table([String: AMQPFieldValue])
    case array([AMQPFieldValue])
    case void

    /// The value as a string, when it is one (AMQP long strings are bytes; UTF-8 is assumed).
    public var stringValue: String? {
        switch self {
        case .string(let s): s
        case .bytes(let b): String(validating: b, as: UTF8.self)
        default: nil
        }
    }

    /// The value as an integer, when it is one.
    public var intValue: Int64? {
        if case .int(let i) = self { return i }
        return nil
    }
}

extension AMQPFieldValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int64) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
}

/// An AMQP field table.
public typealias AMQPTable = [String: AMQPFieldValue]
