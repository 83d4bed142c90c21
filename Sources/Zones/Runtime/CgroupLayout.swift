import Glibc
import LumosCore

/// Where this host mounts its cgroup hierarchies. Hybrid hosts (like this one) hold the
/// controllers in v1 hierarchies and mount an empty cgroup2 for kill/freeze/populated; pure v2
/// hosts hold everything in one cgroup2 tree. Each resource goes to v1 when a v1 hierarchy has
/// its controller, else to v2 when v2 offers it (docs/architecture.md: support both).
public struct CgroupLayout: Sendable, Equatable {
    /// v1 controller name → mount point (co-mounted controllers share a path).
    public var v1: [String: String]
    /// The cgroup2 mount point, if any.
    public var v2: String?
    /// Controllers the cgroup2 root offers (its cgroup.controllers).
    public var v2Controllers: Set<String>

    public init(v1: [String: String], v2: String?, v2Controllers: Set<String>) {
        self.v1 = v1
        self.v2 = v2
        self.v2Controllers = v2Controllers
    }

    /// The v1 controllers a zone uses. cpuset sets no limit: lxcfs finds the CPU quota it turns
    /// into a CPU count at the reader's *cpuset* cgroup path (docs/architecture.md, "Views of a
    /// zone's limits"), so a zone must be at the same path there as in cpu.
    static let v1Wanted = ["memory", "cpu", "cpuacct", "pids", "blkio", "freezer", "cpuset"]

    /// Reads /proc/self/mountinfo and the cgroup2 root's controllers.
    public static func current() throws -> CgroupLayout {
        var layout = parse(mountinfo: try FD.readText("/proc/self/mountinfo"))
        if let v2 = layout.v2, let text = try? FD.readText("\(v2)/cgroup.controllers") {
            layout.v2Controllers = Set(text.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init))
        }
        if layout.v1.isEmpty && layout.v2 == nil {
            throw LumosError.unsupported("no cgroup file system is mounted; mount cgroup2 on /sys/fs/cgroup")
        }
        return layout
    }

    /// Parses mountinfo(5): "id parent maj:min root mountpoint opts [tags] - fstype source superopts".
    public static func parse(mountinfo: String) -> CgroupLayout {
        var v1: [String: String] = [:]
        var v2: String?
        for line in mountinfo.split(separator: "\n") {
            // The optional tags before " - " vary in number; split the fields at the lone "-".
            let fields = line.split(separator: " ")
            guard let dash = fields.firstIndex(of: "-") else { continue }
            let left = fields[..<dash]
            let right = Array(fields[(dash + 1)...])
            guard left.count >= 5, right.count >= 3 else { continue }
            let mountpoint = unescape(String(left[left.startIndex + 4]))
            switch right[0] {
            case "cgroup2":
                if v2 == nil { v2 = mountpoint }
            case "cgroup":
                for option in right[2].split(separator: ",") where v1Wanted.contains(String(option)) {
                    if v1[String(option)] == nil { v1[String(option)] = mountpoint }
                }
            default:
                continue
            }
        }
        return CgroupLayout(v1: v1, v2: v2, v2Controllers: [])
    }

    /// mountinfo escapes space, tab, newline and backslash as \ooo.
    static func unescape(_ text: String) -> String {
        guard text.contains("\\") else { return text }
        var out: [UInt8] = []
        let bytes = Array(text.utf8)
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "\\"), i + 3 < bytes.count {
                let digits = bytes[(i + 1)...(i + 3)]
                if let v = UInt8(String(decoding: digits, as: UTF8.self), radix: 8) {
                    out.append(v)
                    i += 4
                    continue
                }
            }
            out.append(bytes[i])
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Which hierarchy holds a resource: "v1" path, or the v2 mount when v2 offers it.
    public enum Holder: Sendable, Equatable {
        case v1(String)
        case v2
        case none
    }

    public func holder(_ controller: String) -> Holder {
        if let path = v1[controller] { return .v1(path) }
        let v2Name = controller == "blkio" ? "io" : controller
        if v2 != nil && v2Controllers.contains(v2Name) { return .v2 }
        return .none
    }

    /// True on hosts with only the unified hierarchy.
    public var isPureV2: Bool { v1.isEmpty && v2 != nil }
}
