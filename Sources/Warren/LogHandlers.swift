import Glibc
import Logging
import WarrenHealth

/// How log lines look.
public enum LogFormat: String, Sendable, CaseIterable {
    /// One JSON object per line: `{"time":…,"level":…,"label":…,"message":…,"warren.queue":…}`.
    case json
    /// `time level label: message key=value …`, for people.
    case text
}

/// A swift-log handler that writes one line per event to standard error with a single `write(2)`,
/// so lines from different threads never interleave.
public struct LineLogHandler: LogHandler {
    /// Metadata added to every line of this handler.
    public var metadata: Logger.Metadata = [:]
    /// Lines below this level are dropped.
    public var logLevel: Logger.Level
    private let label: String
    private let format: LogFormat

    /// A handler for `label` writing `format` lines at `level` and above to standard error.
    public init(label: String, format: LogFormat, level: Logger.Level) {
        self.label = label
        self.format = format
        self.logLevel = level
    }

    /// One metadata value of this handler.
    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Writes the event as one line, with a single `write(2)` (lines of concurrent tasks never interleave).
    public func log(event: LogEvent) {
        let level = event.level
        let message = event.message
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        let time = WallClock.now().iso8601
        var text: String
        switch format {
        case .json:
            text = "{\"time\":\(JSONText.quote(time)),\"level\":\(JSONText.quote(level.rawValue)),\"label\":\(JSONText.quote(label)),\"message\":\(JSONText.quote("\(message)"))"
            for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
                text += ",\(JSONText.quote(key)):\(JSONText.quote("\(value)"))"
            }
            text += "}\n"
        case .text:
            text = "\(time) \(level.rawValue) \(label): \(message)"
             for (key, value) in merged.sorted(by: { $0.key < $1.key }) { text += " \(key)=\(value)" }
            text += "\n"
        }
        var bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeMutableBytes { write(2, $0.baseAddress! + offset, $0.count - offset) }
            if written <= 0 { break }
            offset += written
        }
    }
}
