import Glibc
import WarrenHealth

/// What `warren_build_info` reports.
public enum WarrenBuild {
    /// Warren's version.
    public static let version = "0.1.0"

    /// The Swift compiler that built this binary (major.minor).
    public static var swiftVersion: String {
        #if compiler(>=6.5)
        return "6.5+"
        #elseif compiler(>=6.4)
        return "6.4"
        #elseif compiler(>=6.3)
        return "6.3"
        #elseif compiler(>=6.2)
        return "6.2"
        #elseif compiler(>=6.1)
        return "6.1"
        #else
        return "6.0"
        #endif
    }
}

/// Facts about this process that swift-metrics has no API for.
enum ProcessInfoReader {
    /// When the process started, in seconds since the Unix epoch: from `/proc` on Linux (boot time
    /// plus the process's start tick), else the first time this is read.
    static let startTimeSeconds: Double = procStartTime() ?? {
        let now = WallClock.now()
        return Double(now.seconds) + Double(now.nanoseconds) / 1e9
    }()

    private static func procStartTime() -> Double? {
        #if os(Linux)
        // Field 22 of /proc/self/stat is the start time in clock ticks since boot; the command name
        // (field 2) is in parentheses and may contain spaces, so count fields after the last ')'.
        guard let stat = readSmallFile("/proc/self/stat"), let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state), so field 22 is fields[19].
        guard fields.count > 19, let ticks = Double(fields[19]) else { return nil }
        guard let procStat = readSmallFile("/proc/stat"),
              let line = procStat.split(separator: "\n").first(where: { $0.hasPrefix("btime ") }),
              let bootTime = line.split(separator: " ").last.flatMap({ Double($0) }) else { return nil }
        let hertz = Double(sysconf(Int32(_SC_CLK_TCK)))
        guard hertz > 0 else { return nil }
        return bootTime + ticks / hertz
        #else
        return nil
        #endif
    }

    private static func readSmallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { _ = close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while bytes.count < 1 << 20 {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            bytes.append(contentsOf: chunk[..<n])
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
