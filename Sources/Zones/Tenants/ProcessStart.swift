import Foundation
import Glibc
import LumosCore

/// When a process started, from the kernel (vmadm's boot_timestamp is when the zone's init
/// started): /proc/<pid>/stat's starttime in clock ticks after boot, plus /proc/stat's btime.
enum ProcessStart {
    static func date(_ pid: pid_t) -> Date? {
        guard let stat = try? FD.readText("/proc/\(pid)/stat"), let close = stat.lastIndex(of: ")") else { return nil }
        // Fields after the command name (which may contain spaces); starttime is field 22.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let ticks = Double(fields[19]) else { return nil }
        guard let text = try? FD.readText("/proc/stat"),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("btime ") }),
              let boot = Double(line.split(separator: " ")[1]) else { return nil }
        let hz = Double(sysconf(Int32(_SC_CLK_TCK)))
        return Date(timeIntervalSince1970: boot + ticks / hz)
    }

    static func timestamp(_ pid: pid_t) -> String? {
        guard let d = date(pid) else { return nil }
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.string(from: d)
    }
}
