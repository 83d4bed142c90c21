import CLinux
import Glibc
import LumosCore

/// An attached program: the perf event or link fd that keeps it attached; closing it detaches.
/// (A minimal attach path of the compiler's own, used until the probes layer's attach
/// code covers a probe kind.)
public final class Attachment: @unchecked Sendable {
    public let fds: [Int32]
    init(fds: [Int32]) { self.fds = fds }
    deinit { for fd in fds { close(fd) } }

    /// Attaches to the kernel tracepoint with this tracefs id.
    public static func tracepoint(id: UInt64, program: BPFProgram, what: String) throws -> Attachment {
        let fd = clinux_bpf_perf_open_tracepoint(id)
        if fd < 0 { throw Errno(errno, "perf_event_open", "tracepoint \(what)") }
        if clinux_bpf_attach_perf_event(fd, program.fd) < 0 {
            let e = errno
            close(fd)
            throw Errno(e, "ioctl(PERF_EVENT_IOC_SET_BPF)", "tracepoint \(what)")
        }
        return Attachment(fds: [fd])
    }

    /// Attaches to a cpu-clock event on each CPU in `cpus` (profile-N: every CPU; tick-N: one).
    public static func cpuClock(cpus: [Int], hz: UInt64? = nil, periodNs: UInt64? = nil, program: BPFProgram) throws -> Attachment {
        var fds: [Int32] = []
        for cpu in cpus {
            let fd = clinux_bpf_perf_open_cpu_clock(Int32(cpu), hz ?? periodNs ?? 1_000_000_000, hz != nil ? 1 : 0)
            if fd < 0 {
                let e = errno
                for f in fds { close(f) }
                // An offline CPU cannot be sampled; skip it as DTrace does.
                if e == ENODEV { continue }
                throw Errno(e, "perf_event_open", "cpu-clock on CPU \(cpu)")
            }
            if clinux_bpf_attach_perf_event(fd, program.fd) < 0 {
                let e = errno
                close(fd)
                for f in fds { close(f) }
                throw Errno(e, "ioctl(PERF_EVENT_IOC_SET_BPF)", "cpu-clock on CPU \(cpu)")
            }
            fds.append(fd)
        }
        return Attachment(fds: fds)
    }
}

/// The tracefs paths the compiler reads: event ids and formats.
public enum TraceFS {
    public static let candidates = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]

    /// The mounted tracefs root, mounting it at /sys/kernel/tracing when needed.
    public static func root() throws -> String {
        for c in candidates where access("\(c)/events", F_OK) == 0 { return c }
        let r = mount("nodev", candidates[0], "tracefs", 0, nil)
        if r < 0 { throw Errno(errno, "mount", "tracefs on \(candidates[0])") }
        return candidates[0]
    }

    public static func read(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { return nil }
        defer { close(fd) }
        return String(decoding: FD.readAll(fd), as: UTF8.self)
    }

    public static func eventID(category: String, name: String) throws -> UInt64 {
        let path = "\(try root())/events/\(category)/\(name)/id"
        guard let text = read(path), let id = UInt64(text.filter { $0.isNumber }) else {
            throw LumosError.notFound("tracepoint \(category):\(name) not found in \(path)")
        }
        return id
    }
}
