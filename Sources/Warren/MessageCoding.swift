import FoundationEssentials
import WarrenAMQP

/// Turns a message body into the type a handler takes. The default is ``JSONMessageDecoder``; plug in
/// another (Protocol Buffers, MessagePack, a JSON decoder with other strategies) per subscription.
public protocol MessageDecoder: Sendable {
    /// Decodes `body`; a thrown error dead-letters the message with the error as its reason, and the
    /// handler never runs.
    func decode<Message: Decodable>(_ type: Message.Type, from body: [UInt8], properties: AMQPProperties) throws -> Message
}

/// Turns a value a handler publishes into a body, and says its content type.
public protocol MessageEncoder: Sendable {
    /// The `content-type` property of what this encoder makes.
    var contentType: String { get }
    func encode<Message: Encodable>(_ message: Message) throws -> [UInt8]
}

/// JSON with Foundation's `JSONDecoder` (FoundationEssentials: no ICU is mapped into the worker).
public struct JSONMessageDecoder: MessageDecoder {
    private let configure: @Sendable (JSONDecoder) -> Void

    /// - Parameter configure: sets the decoder's strategies (dates, keys) before each decode.
    public init(configure: @escaping @Sendable (JSONDecoder) -> Void = { _ in }) {
        self.configure = configure
    }

    /// Decodes `body` as JSON, whatever its content type says.
    public func decode<Message: Decodable>(_ type: Message.Type, from body: [UInt8], properties: AMQPProperties) throws -> Message {
        let decoder = JSONDecoder()
        configure(decoder)
        return try decoder.decode(type, from: Data(body))
    }
}

/// JSON with Foundation's `JSONEncoder`.
public struct JSONMessageEncoder: MessageEncoder {
    private let configure: @Sendable (JSONEncoder) -> Void

    /// - Parameter configure: sets the encoder's strategies (dates, keys, formatting) before each encode.
    public init(configure: @escaping @Sendable (JSONEncoder) -> Void = { _ in }) {
        self.configure = configure
    }

    /// `application/json`.
    public var contentType: String { "application/json" }

    /// `message` as JSON bytes.
    public func encode<Message: Encodable>(_ message: Message) throws -> [UInt8] {
        let encoder = JSONEncoder()
        configure(encoder)
        return Array(try encoder.encode(message))
    }
}

extension MessageDecoder where Self == JSONMessageDecoder {
    /// JSON, with default strategies.
    public static var json: JSONMessageDecoder { JSONMessageDecoder() }
}

extension MessageEncoder where Self == JSONMessageEncoder {
    /// JSON, with default strategies.
    public static var json: JSONMessageEncoder { JSONMessageEncoder() }
}

/// Says why a decoding error happened in words a log reader can act on: the path to the field and
/// what was wrong, not Foundation's nested debug description.
func describe(decodingError error: any Error) -> String {
    guard let error = error as? DecodingError else { return "\(error)" }
    func path(_ context: DecodingError.Context) -> String {
        let keys = context.codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
        return keys.isEmpty ? "the body" : String(keys.drop { $0 == "." })
    }
    switch error {
    case .typeMismatch(let type, let context):
        return "not decodable: \(path(context)) is not \(type) (\(context.debugDescription))"
    case .valueNotFound(let type, let context):
        return "not decodable: \(path(context)) is null, expected \(type)"
    case .keyNotFound(let key, let context):
        let parent = path(context)
        return "not decodable: missing key '\(key.stringValue)'" + (parent == "the body" ? "" : " in \(parent)")
    case .dataCorrupted(let context):
        return "not decodable: \(path(context)): \(context.debugDescription)"
    @unknown default:
        return "not decodable: \(error)"
    }
}
