import Glibc
import LumosCore

/// /proc/mounts, to find where tracefs and the cgroup v2 hierarchy live on this host
/// (tracefs at /sys/kernel/tracing or /sys/kernel/debug/tracing; cgroup2 at
/// /sys/fs/cgroup/unified on hybrid hosts and /sys/fs/cgroup on pure v2 hosts).
///
/// Public API:
///   MountTable.read(path:) -> MountTable;  .entries;  .mountPoint(ofType:) -> String?
public struct MountTable: Sendable {
    public struct Entry: Sendable, Equatable {
        public var source: String
        public var mountPoint: String
        public var type: String
        public var options: String
    }

    public var entries: [Entry]

    public init(entries: [Entry]) { self.entries = entries }

    public static func read(path: String = "/proc/mounts") -> MountTable {
        parse(TextFile.read(path) ?? "")
    }

    public static func parse(_ text: String) -> MountTable {
        var out: [Entry] = []
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard f.count >= 4 else { continue }
            out.append(Entry(source: unescape(f[0]), mountPoint: unescape(f[1]), type: f[2], options: f[3]))
        }
        return MountTable(entries: out)
    }

    /// The first mount point of a file system type ("tracefs", "cgroup2").
    public func mountPoint(ofType type: String) -> String? {
        entries.first { $0.type == type }?.mountPoint
    }

    /// /proc/mounts writes space, tab, newline and backslash as \040 \011 \012 \134.
    static func unescape(_ s: String) -> String {
        guard s.contains("\\") else { return s }
        var out: [UInt8] = []
        let b = Array(s.utf8)
        var i = 0
        while i < b.count {
            if b[i] == 0x5c, i + 3 < b.count, let v = UInt8(String(decoding: b[(i + 1)...(i + 3)], as: UTF8.self), radix: 8) {
                out.append(v)
                i += 4
            } else {
                out.append(b[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Small whole-file reads of /proc and /sys files (their size is not known in advance).
enum TextFile {
    static func read(_ path: String) -> String? {
        guard let bytes = readBytes(path) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func readBytes(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; return nil }
            if n == 0 { break }
            out.append(contentsOf: buf[0..<n])
        }
        return out
    }

    static func trimmed(_ path: String) -> String? {
        guard let s = read(path) else { return nil }
        return s.trimmingWhitespace()
    }
}

extension String {
    func trimmingWhitespace() -> String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\n" || c == "\t" || c == "\r" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\n" || c == "\t" || c == "\r" { s.removeLast() }
        return String(s)
    }
}
