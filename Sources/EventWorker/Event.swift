import FoundationEssentials

/// An event message: `{"id": "<uuid>", "type": "<non-empty string>", "payload": {…}}`.
///
/// Parsed with FoundationEssentials only: full Foundation would map ICU into every worker for nothing.
struct Event: Sendable, Equatable {
    /// Lower-case canonical UUID.
    var id: String
    var type: String
    /// The payload object, re-serialized as JSON text for a `jsonb` column.
    var payloadJSON: String

    /// Why a body is not an event: becomes the dead-letter reason.
    struct Invalid: Error, CustomStringConvertible {
        var description: String
    }

    static func parse(_ body: [UInt8]) throws(Invalid) -> Event {
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: Data(body))
        } catch {
            throw Invalid(description: "body is not JSON")
        }
        guard case .object(let fields) = value else { throw Invalid(description: "body is not a JSON object") }
        guard case .string(let rawID)? = fields["id"] else { throw Invalid(description: "field 'id' is missing or not a string") }
        guard let uuid = UUID(uuidString: rawID) else { throw Invalid(description: "field 'id' is not a UUID") }
        guard case .string(let type)? = fields["type"] else { throw Invalid(description: "field 'type' is missing or not a string") }
        guard type.contains(where: { !$0.isWhitespace }) else { throw Invalid(description: "field 'type' is empty") }
        // PostgreSQL stores no NUL character in text or jsonb: such an event can never be stored.
        guard !type.unicodeScalars.contains("\u{0}") else {
            throw Invalid(description: "field 'type' contains a NUL character, which PostgreSQL cannot store")
        }
        guard case .object? = fields["payload"], let payload = fields["payload"] else {
            throw Invalid(description: "field 'payload' is missing or not an object")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let payloadData = try? encoder.encode(payload) else {
            throw Invalid(description: "field 'payload' cannot be stored as JSON")
        }
        guard !payload.containsNUL else {
            throw Invalid(description: "field 'payload' contains a NUL character (\\u0000), which PostgreSQL cannot store")
        }
        return Event(id: uuid.uuidString.lowercased(), type: type, payloadJSON: String(decoding: payloadData, as: UTF8.self))
    }

    /// An example event, as `event-worker publish` sends.
    static func example(_ n: Int) -> [UInt8] {
        let id = UUID().uuidString.lowercased()
        return Array(#"{"id":"\#(id)","type":"example","payload":{"n":\#(n),"source":"event-worker publish"}}"#.utf8)
    }
}

/// Any JSON value, decoded and re-encoded as it came (numbers keep their integer or decimal form).
enum JSONValue: Codable, Equatable, Sendable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() { self = .null }
        else if let value = try? container.decode(Bool.self) { self = .bool(value) }
        else if let value = try? container.decode(Int64.self) { self = .int(value) }
        else if let value = try? container.decode(Double.self) { self = .double(value) }
        else if let value = try? container.decode(String.self) { self = .string(value) }
        else if let value = try? container.decode([JSONValue].self) { self = .array(value) }
        else { self = .object(try container.decode([String: JSONValue].self)) }
    }

    /// True when a string or key anywhere inside holds a NUL character (jsonb refuses `\u0000`).
    var containsNUL: Bool {
        switch self {
        case .string(let value): value.unicodeScalars.contains("\u{0}")
        case .array(let values): values.contains { $0.containsNUL }
        case .object(let fields): fields.contains { $0.key.unicodeScalars.contains("\u{0}") || $0.value.containsNUL }
        case .null, .bool, .int, .double: false
        }
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .double(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}
