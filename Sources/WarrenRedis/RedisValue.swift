/// A reply from Redis, as returned by ``RedisClient/command(_:)``.
public enum RedisValue: Sendable, Hashable {
    /// A simple status reply such as `OK` or `PONG`.
    case status(String)
    /// A bulk string: raw bytes, binary-safe.
    case bulkString([UInt8])
    /// An integer reply.
    case integer(Int)
    /// The nil reply (a missing key, a failed `SET NX`).
    case null
    /// An array reply.
    case array([RedisValue])
    /// An error reply nested in an array (e.g. inside `EXEC`); top-level error replies throw
    /// ``RedisError/Code/commandFailed`` instead.
    case error(String)

    /// The value as text: bulk strings decoded as UTF-8 (invalid bytes become U+FFFD), status
    /// replies as they are; `nil` for other replies.
    public var string: String? {
        switch self {
        case .status(let text): text
        case .bulkString(let bytes): String(decoding: bytes, as: UTF8.self)
        default: nil
        }
    }
}
