/// A health report in the shape of the IETF draft "Health Check Response Format for HTTP APIs"
/// (draft-inadarei-api-health-check), served as `application/health+json`.
public struct HealthReport: Sendable, Equatable {
    /// One measurement under a `"<component>:<measurement>"` key.
    public struct Entry: Sendable, Equatable {
        /// `componentId`: which component the entry measures (e.g. `swift-concurrency`); `nil` omits it.
        public var componentID: String?
        /// `status` of this entry.
        public var status: HealthStatus
        /// `observedValue`, e.g. a response time; `nil` omits it.
        public var observedValue: Double?
        /// `observedUnit` of ``observedValue``, e.g. `ms` or `s`; `nil` omits it.
        public var observedUnit: String?
        /// `time` of the measurement, rendered in UTC as RFC 3339; `nil` omits it.
        public var time: WallClock.Instant?
        /// Only on failure (or warning); never contains secrets.
        public var output: String?

        /// Creates an entry; `output` is dropped when `status` is `pass` (and then not even made: a
        /// liveness probe makes entries for every request).
        public init(componentID: String? = nil, status: HealthStatus, observedValue: Double? = nil,
                    observedUnit: String? = nil, time: WallClock.Instant? = nil, output: @autoclosure () -> String? = nil) {
            self.componentID = componentID
            self.status = status
            self.observedValue = observedValue
            self.observedUnit = observedUnit
            self.time = time
            self.output = status == .pass ? nil : output()
        }
    }

    /// The overall status: the worst of the entries unless set otherwise.
    public var status: HealthStatus
    /// Why the whole report fails when no single check explains it (starting, shutting down).
    public var output: String?
    /// Keyed entries, in a stable order.
    public var checks: [(key: String, entries: [Entry])]
    /// The service's public version (`version`).
    public var version: String?
    /// The release of the service (`releaseId`): a build or deployment id.
    public var releaseId: String?

    /// Creates a report; `output` is dropped when `status` is `pass`.
    public init(status: HealthStatus, output: String? = nil, checks: [(key: String, entries: [Entry])] = [],
                version: String? = nil, releaseId: String? = nil) {
        self.status = status
        self.output = status == .pass ? nil : output
        self.checks = checks
        self.version = version
        self.releaseId = releaseId
    }

    /// The HTTP status for this report: 200 unless it fails (503). `warn` still serves traffic.
    public var httpStatus: Int { status == .fail ? 503 : 200 }

    /// The media type of ``json()``.
    public static let contentType = "application/health+json"

    /// Renders the report as compact JSON.
    public func json() -> String {
        // One string appended to in place: a liveness probe under load renders a report every
        // millisecond, and arrays of fields joined together cost ten times as much.
        var out = "{\"status\":"
        out.reserveCapacity(512)
        JSONText.append(quoting: status.rawValue, to: &out)
        if let version { out += ",\"version\":"; JSONText.append(quoting: version, to: &out) }
        if let releaseId { out += ",\"releaseId\":"; JSONText.append(quoting: releaseId, to: &out) }
        if let output { out += ",\"output\":"; JSONText.append(quoting: output, to: &out) }
        out += ",\"checks\":{"
        for (index, check) in checks.enumerated() {
            if index > 0 { out += "," }
            JSONText.append(quoting: check.key, to: &out)
            out += ":["
            for (index, entry) in check.entries.enumerated() {
                if index > 0 { out += "," }
                entry.appendJSON(to: &out)
            }
            out += "]"
        }
        out += "}}"
        return out
    }

    /// Whether every field is equal, including the keys and entries of ``checks`` in order.
    public static func == (a: HealthReport, b: HealthReport) -> Bool {
        a.status == b.status && a.output == b.output && a.version == b.version && a.releaseId == b.releaseId
            && a.checks.map(\.key) == b.checks.map(\.key)
            && a.checks.map(\.entries) == b.checks.map(\.entries)
    }
}

extension HealthReport.Entry {
    /// The entry as compact JSON.
    var json: String {
        var out = ""
        self.appendJSON(to: &out)
        return out
    }

    func appendJSON(to out: inout String) {
        out += "{"
        if let componentID { out += "\"componentId\":"; JSONText.append(quoting: componentID, to: &out); out += "," }
        out += "\"status\":"
        JSONText.append(quoting: status.rawValue, to: &out)
        if let observedValue { out += ",\"observedValue\":"; out += JSONText.number(observedValue) }
        if let observedUnit { out += ",\"observedUnit\":"; JSONText.append(quoting: observedUnit, to: &out) }
        if let time { out += ",\"time\":\""; out += time.iso8601; out += "\"" }  // digits and separators only
        if let output { out += ",\"output\":"; JSONText.append(quoting: output, to: &out) }
        out += "}"
    }
}

/// Just enough JSON for health reports and log lines: escaped strings and numbers.
public enum JSONText {
    /// `value` as a JSON string literal, quotes included, with `"`, `\` and control characters escaped.
    public static func quote(_ value: String) -> String {
        var text = ""
        append(quoting: value, to: &text)
        return text
    }

    /// Appends `value` as a JSON string literal (see ``quote(_:)``) to `text`.
    public static func append(quoting value: String, to text: inout String) {
        // Nearly every string (names, versions, units) needs no escape: copied whole.
        let needsEscape = value.utf8.contains { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }
        text += "\""
        guard needsEscape else {
            text += value
            text += "\""
            return
        }
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": text += "\\\""
            case "\\": text += "\\\\"
            case "\n": text += "\\n"
            case "\r": text += "\\r"
            case "\t": text += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                text += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: text.unicodeScalars.append(scalar)
            }
        }
        text += "\""
    }

    /// `value` as a JSON number: integral values below 1e15 without a fraction (`12`, not `12.0`), `null` for
    /// NaN and infinities.
    public static func number(_ value: Double) -> String {
        guard value.isFinite else { return "null" }
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }
}
