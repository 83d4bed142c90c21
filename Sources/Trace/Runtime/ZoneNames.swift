import Glibc
import LumosCore

/// cgroup v2 id -> zone name, for `zonename`. A minimal reader of the compiler's own
/// until the probes layer's zone map is merged: every directory under the Lumos cgroup v2
/// parents is a zone named by its directory (its alias or uuid); the cgroup id is the
/// directory's inode number (what bpf_get_current_cgroup_id returns).
public enum ZoneNames {
    public static let parents = ["/sys/fs/cgroup/unified/lumos", "/sys/fs/cgroup/lumos"]

    public static func current(parents: [String] = ZoneNames.parents) -> [UInt64: String] {
        var out: [UInt64: String] = [:]
        for parent in parents {
            for name in Files.list(parent) {
                var st = stat()
                guard stat("\(parent)/\(name)", &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { continue }
                out[UInt64(st.st_ino)] = name
            }
        }
        return out
    }
}
