import Foundation

/// An event message: `{"id": "<uuid>", "type": "<non-empty string>", "payload": {…}}`.
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
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(body), options: [])
        } catch {
            throw Invalid(description: "body is not JSON")
        }
        guard let fields = object as? [String: Any] else { throw Invalid(description: "body is not a JSON object") }
        guard let rawID = fields["id"] as? String else { throw Invalid(description: "field 'id' is missing or not a string") }
        guard let uuid = UUID(uuidString: rawID) else { throw Invalid(description: "field 'id' is not a UUID") }
        guard let type = fields["type"] as? String else { throw Invalid(description: "field 'type' is missing or not a string") }
        guard !type.trimmingCharacters(in: .whitespaces).isEmpty else { throw Invalid(description: "field 'type' is empty") }
        guard let payload = fields["payload"] as? [String: Any] else {
            throw Invalid(description: "field 'payload' is missing or not an object")
        }
        let payloadData: Data
        do {
            payloadData = try JSONSerialization.data(withJSONObject: payload, options: [.sortedKeys])
        } catch {
            throw Invalid(description: "field 'payload' cannot be stored as JSON")
        }
        return Event(id: uuid.uuidString.lowercased(), type: type, payloadJSON: String(decoding: payloadData, as: UTF8.self))
    }

    /// An example event, as `event-worker publish` sends.
    static func example(_ n: Int) -> [UInt8] {
        let id = UUID().uuidString.lowercased()
        return Array(#"{"id":"\#(id)","type":"example","payload":{"n":\#(n),"source":"event-worker publish"}}"#.utf8)
    }
}
