import Glibc
import LumosCore

/// The `zonename` map: cgroup id → zone name, for the kernel map `zonename` reads.
///
/// Contract with the zones module: every Lumos zone has a cgroup v2 directory
/// `<cgroup2 mount>/lumos/<uuid>` (the cgroup2 mount is found in /proc/mounts:
/// /sys/fs/cgroup/unified on hybrid hosts, /sys/fs/cgroup on pure v2 hosts); its cgroup id
/// is the inode number of that directory, which is what bpf_get_current_cgroup_id()
/// returns for tasks in it. The zone's name is the "alias" of
/// `$LUMOS_ROOT/zones/<uuid>/manifest.json`, else the uuid. Cgroups below a zone's
/// directory (a zone may create its own) map to the same zone. Tasks in no zone's cgroup
/// are in the global zone ("global"), as in SmartOS.
///
/// Public API:
///   ZoneNameMap.load(stateRoot:mounts:) -> [UInt64: String]       -- the live map
///   ZoneNameMap.load(cgroupParent:zonesDirectory:) -> [UInt64: String]
///   ZoneNameMap.cgroupParent(mounts:) -> String?                   -- "<cgroup2>/lumos"
///   ZoneNameMap.cgroupID(ofDirectory:) -> UInt64?
///   ZoneNameMap.names(zonesDirectory:) -> [String: String]          -- uuid → alias or uuid
///   ZoneNameMap.globalZoneName                                     -- "global"
public enum ZoneNameMap {
    public static let globalZoneName = "global"
    /// How deep below a zone's directory nested cgroups are followed.
    static let maxDepth = 4

    public static func cgroupParent(mounts: MountTable = .read()) -> String? {
        mounts.mountPoint(ofType: "cgroup2").map { $0 + "/lumos" }
    }

    public static func load(stateRoot: StateRoot = .resolve(flag: nil), mounts: MountTable = .read()) -> [UInt64: String] {
        guard let parent = cgroupParent(mounts: mounts) else { return [:] }
        return load(cgroupParent: parent, zonesDirectory: stateRoot.sub("zones"))
    }

    public static func load(cgroupParent: String, zonesDirectory: String) -> [UInt64: String] {
        var out: [UInt64: String] = [:]
        for uuid in Files.list(cgroupParent) {
            let dir = cgroupParent + "/" + uuid
            guard Files.isDirectory(dir) else { continue }
            let name = alias(manifestPath: "\(zonesDirectory)/\(uuid)/manifest.json") ?? uuid
            walk(dir, depth: 0) { out[$0] = name }
        }
        return out
    }

    /// Every zone of a state root's `zones` directory: uuid → its alias, else its uuid.
    public static func names(zonesDirectory: String) -> [String: String] {
        var out: [String: String] = [:]
        for uuid in Files.list(zonesDirectory) where Files.exists("\(zonesDirectory)/\(uuid)/manifest.json") {
            out[uuid] = alias(manifestPath: "\(zonesDirectory)/\(uuid)/manifest.json") ?? uuid
        }
        return out
    }

    public static func cgroupID(ofDirectory path: String) -> UInt64? {
        var st = stat()
        guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { return nil }
        return UInt64(st.st_ino)
    }

    private static func walk(_ dir: String, depth: Int, _ add: (UInt64) -> Void) {
        guard let id = cgroupID(ofDirectory: dir) else { return }
        add(id)
        guard depth < maxDepth else { return }
        for child in Files.list(dir) where Files.isDirectory(dir + "/" + child) {
            walk(dir + "/" + child, depth: depth + 1, add)
        }
    }

    static func alias(manifestPath: String) -> String? {
        guard let text = TextFile.read(manifestPath) else { return nil }
        return topLevelString("alias", inJSON: text).flatMap { $0.isEmpty ? nil : $0 }
    }

    /// The string value of a key of the top-level JSON object (other values are skipped
    /// structurally, so a nested "alias" does not count). Avoids Foundation in the tracer.
    static func topLevelString(_ key: String, inJSON text: String) -> String? {
        var s = JSONScanner(Array(text.utf8))
        s.skipSpace()
        guard s.take(0x7b) else { return nil }  // {
        while true {
            s.skipSpace()
            if s.take(0x7d) { return nil }       // }
            guard let k = s.string() else { return nil }
            s.skipSpace()
            guard s.take(0x3a) else { return nil }  // :
            s.skipSpace()
            if k == key { return s.peek == 0x22 ? s.string() : nil }
            guard s.skipValue() else { return nil }
            s.skipSpace()
            if s.take(0x2c) { continue }         // ,
            return nil
        }
    }
}

/// Just enough JSON to find a top-level string.
struct JSONScanner {
    let b: [UInt8]
    var i = 0

    init(_ bytes: [UInt8]) { b = bytes }

    var peek: UInt8? { i < b.count ? b[i] : nil }

    mutating func skipSpace() {
        while let c = peek, c == 0x20 || c == 0x0a || c == 0x0d || c == 0x09 { i += 1 }
    }

    mutating func take(_ c: UInt8) -> Bool {
        if peek == c { i += 1; return true }
        return false
    }

    mutating func string() -> String? {
        guard take(0x22) else { return nil }
        var out: [UInt8] = []
        while let c = peek {
            i += 1
            switch c {
            case 0x22: return String(decoding: out, as: UTF8.self)
            case 0x5c:
                guard let e = peek else { return nil }
                i += 1
                switch e {
                case 0x6e: out.append(0x0a)
                case 0x74: out.append(0x09)
                case 0x72: out.append(0x0d)
                case 0x62: out.append(0x08)
                case 0x66: out.append(0x0c)
                case 0x75:
                    guard i + 4 <= b.count, let v = UInt32(String(decoding: b[i..<(i + 4)], as: UTF8.self), radix: 16) else { return nil }
                    i += 4
                    out.append(contentsOf: Array(String(Unicode.Scalar(v).map(Character.init) ?? "?").utf8))
                default: out.append(e)
                }
            default: out.append(c)
            }
        }
        return nil
    }

    /// Skips any value: string, number, literal, object or array.
    mutating func skipValue() -> Bool {
        guard let c = peek else { return false }
        if c == 0x22 { return string() != nil }
        if c == 0x7b || c == 0x5b {
            var depth = 0
            while let d = peek {
                if d == 0x22 { if string() == nil { return false }; continue }
                i += 1
                if d == 0x7b || d == 0x5b { depth += 1 }
                if d == 0x7d || d == 0x5d { depth -= 1; if depth == 0 { return true } }
            }
            return false
        }
        while let d = peek, d != 0x2c, d != 0x7d, d != 0x5d, d != 0x20, d != 0x0a, d != 0x0d, d != 0x09 { i += 1 }
        return true
    }
}
