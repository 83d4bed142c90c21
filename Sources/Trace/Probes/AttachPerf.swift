import CLinux
import Glibc
import LumosCore

/// Attaching a loaded BPF program to the probe kinds this kernel allows (docs/architecture.md
/// "Tracing"): tracepoints and cpu-clock samples through perf_event_open, uprobes through
/// the uprobe PMU (USDT probes are uprobes at the note's file offset, with the semaphore as
/// the uprobe's reference counter), and raw tracepoints through bpf(BPF_RAW_TRACEPOINT_OPEN).
/// The program type must match: TRACEPOINT for tracepoints, PERF_EVENT for profile/tick,
/// KPROBE for uprobes, RAW_TRACEPOINT for raw tracepoints.
///
/// Public API:
///   ProbeAttach.tracepoint(id:program:what:) / .tracepoint(_:program:tracefs:)
///   ProbeAttach.profile(_ rate:program:cpus:)     -- profile-N: one cpu-clock event per online CPU
///   ProbeAttach.tick(_ rate:program:cpu:)         -- tick-N: one cpu-clock event on one CPU
///   ProbeAttach.uprobe(path:offset:returnProbe:program:pid:semaphoreOffset:)
///   ProbeAttach.usdt(_ probe:program:)            -- a USDTProbe from USDT.probes(...)
///   ProbeAttach.rawTracepoint(_ name:program:)
///   ProbeLink: the fds that keep a program attached; detach() (or deinit) closes them
///   UprobePMU.current() throws; OnlineCPUs.list()
public final class ProbeLink: @unchecked Sendable {
    public private(set) var descriptors: [Int32]
    /// What was attached, for messages ("tracepoint sched:sched_switch").
    public let what: String

    init(descriptors: [Int32], what: String) {
        self.descriptors = descriptors
        self.what = what
    }

    deinit { detach() }

    /// Stops the events without detaching (perf events only).
    public func disable() {
        for fd in descriptors { _ = clinux_perf_disable(fd) }
    }

    public func enable() {
        for fd in descriptors { _ = clinux_perf_enable(fd) }
    }

    /// Closes every descriptor; the kernel detaches the program when the last one goes.
    public func detach() {
        for fd in descriptors { close(fd) }
        descriptors = []
    }
}

public enum ProbeAttach {
    /// A kernel tracepoint by its tracefs id. One event (pid -1, cpu 0) is enough: a BPF
    /// program attached to a tracepoint runs on every CPU.
    public static func tracepoint(id: UInt32, program: Int32, what: String = "") throws -> ProbeLink {
        let name = what.isEmpty ? "tracepoint id \(id)" : "tracepoint \(what)"
        let fd = try open(name) {
            clinux_perf_open(UInt32(CLINUX_PERF_TYPE_TRACEPOINT), UInt64(id), nil, 0, 1, 0, -1, 0)
        }
        return try link([fd], program: program, what: name)
    }

    public static func tracepoint(_ tp: TracepointName, program: Int32, tracefs: Tracefs) throws -> ProbeLink {
        try tracepoint(id: try tracefs.id(of: tp), program: program, what: tp.description)
    }

    /// profile-N: a cpu-clock sampling event on every online CPU (or `cpus`).
    public static func profile(_ rate: ProbeRate, program: Int32, cpus: [Int]? = nil) throws -> ProbeLink {
        var fds: [Int32] = []
        let what = "profile-\(rate.frequency)hz"
        do {
            for cpu in cpus ?? OnlineCPUs.list() {
                fds.append(try cpuClock(rate, cpu: cpu, what: what))
            }
            return try link(fds, program: program, what: what)
        } catch {
            for fd in fds { close(fd) }
            throw error
        }
    }

    /// tick-N: a cpu-clock event on one CPU, firing at the rate whatever runs there.
    public static func tick(_ rate: ProbeRate, program: Int32, cpu: Int = 0) throws -> ProbeLink {
        let what = "tick-\(rate.periodNanoseconds)ns"
        return try link([try cpuClock(rate, cpu: cpu, what: what)], program: program, what: what)
    }

    static func cpuClock(_ rate: ProbeRate, cpu: Int, what: String) throws -> Int32 {
        try open("\(what) on CPU \(cpu)") {
            switch rate {
            case let .hertz(h):
                return clinux_perf_open(UInt32(CLINUX_PERF_TYPE_SOFTWARE), UInt64(CLINUX_PERF_COUNT_SW_CPU_CLOCK),
                                        nil, 0, h, 1, -1, Int32(cpu))
            case let .period(ns):
                // cpu-clock counts nanoseconds, so the period is the sample period.
                return clinux_perf_open(UInt32(CLINUX_PERF_TYPE_SOFTWARE), UInt64(CLINUX_PERF_COUNT_SW_CPU_CLOCK),
                                        nil, 0, ns, 0, -1, Int32(cpu))
            }
        }
    }

    /// A uprobe (or uretprobe) at a file offset. pid -1 traces every process that maps the
    /// file; a pid limits it to that process. A semaphore offset makes the kernel raise the
    /// USDT semaphore in each traced process while the probe is attached.
    public static func uprobe(path: String, offset: UInt64, returnProbe: Bool = false, program: Int32,
                              pid: Int32 = -1, semaphoreOffset: UInt64? = nil) throws -> ProbeLink {
        let fd = try openUprobe(path: path, offset: offset, returnProbe: returnProbe, pid: pid, semaphoreOffset: semaphoreOffset)
        return try link([fd], program: program, what: uprobeName(path: path, offset: offset, returnProbe: returnProbe))
    }

    /// A uprobe opened ahead by UprobeOpener, given its program now.
    public static func uprobe(opened fd: Int32, path: String, offset: UInt64, returnProbe: Bool = false, program: Int32) throws -> ProbeLink {
        try link([fd], program: program, what: uprobeName(path: path, offset: offset, returnProbe: returnProbe))
    }

    static func uprobeName(path: String, offset: UInt64, returnProbe: Bool) -> String {
        "\(returnProbe ? "uretprobe" : "uprobe") \(path)+0x\(String(offset, radix: 16))"
    }

    /// The uprobe's perf event, without a program. Opening it registers the uprobe, which
    /// is the slow part: the kernel waits for an RCU grace period (docs/trace.md).
    public static func openUprobe(path: String, offset: UInt64, returnProbe: Bool = false,
                                  pid: Int32 = -1, semaphoreOffset: UInt64? = nil) throws -> Int32 {
        let pmu = try UprobePMU.current()
        var config: UInt64 = returnProbe ? (UInt64(1) << UInt64(pmu.retprobeBit)) : 0
        if let s = semaphoreOffset {
            guard let shift = pmu.refCounterShift else {
                throw LumosError.unsupported("this kernel's uprobes have no reference counter; USDT probes with semaphores in \(path) cannot be enabled")
            }
            config |= s << UInt64(shift)
        }
        return try open(uprobeName(path: path, offset: offset, returnProbe: returnProbe)) {
            path.withCString { p in
                clinux_perf_open(pmu.type, config, p, offset, 1, 0, pid, pid == -1 ? 0 : -1)
            }
        }
    }

    /// A USDT probe found by USDT.probes(...): a uprobe at its offset, in its process if it
    /// was found in one, with its semaphore.
    public static func usdt(_ probe: USDTProbe, program: Int32) throws -> ProbeLink {
        try uprobe(path: probe.attachPath, offset: probe.fileOffset, program: program, pid: probe.pid ?? -1,
                   semaphoreOffset: probe.semaphoreOffset)
    }

    /// A raw tracepoint by name ("sys_enter", "sched_switch"); no tracefs needed.
    public static func rawTracepoint(_ name: String, program: Int32) throws -> ProbeLink {
        let fd = try open("raw tracepoint \(name)") { name.withCString { clinux_perf_raw_tp_open($0, program) } }
        return ProbeLink(descriptors: [fd], what: "raw tracepoint \(name)")
    }

    private static func open(_ what: String, _ body: () -> Int32) throws -> Int32 {
        let fd = body()
        if fd < 0 {
            let e = errno
            throw LumosError(e == EACCES || e == EPERM ? .permission : .failed,
                             "cannot attach to \(what): \(String(cString: strerror(e)))\(e == EACCES || e == EPERM ? "; run as root" : "")",
                             errno: e)
        }
        return fd
    }

    private static func link(_ fds: [Int32], program: Int32, what: String) throws -> ProbeLink {
        for fd in fds {
            if clinux_perf_set_bpf(fd, program) != 0 || clinux_perf_enable(fd) != 0 {
                let e = errno
                for f in fds { close(f) }
                throw LumosError(.failed, "cannot attach the program to \(what): \(String(cString: strerror(e)))"
                                 + (e == EINVAL ? " (wrong program type for this probe?)" : ""), errno: e)
            }
        }
        return ProbeLink(descriptors: fds, what: what)
    }
}

/// The uprobe PMU's dynamic type and config layout from sysfs.
public struct UprobePMU: Sendable, Equatable {
    public var type: UInt32
    public var retprobeBit: Int
    /// Where the reference-counter offset goes in `config` (32 on current kernels).
    public var refCounterShift: Int?

    static let directory = "/sys/bus/event_source/devices/uprobe"

    public static func current() throws -> UprobePMU {
        guard let t = TextFile.trimmed(directory + "/type"), let type = UInt32(t) else {
            throw LumosError.unsupported("this kernel has no uprobe PMU (\(directory)); user-space probes need CONFIG_UPROBE_EVENTS")
        }
        let retprobe = TextFile.trimmed(directory + "/format/retprobe").flatMap(firstBit) ?? 0
        let ref = TextFile.trimmed(directory + "/format/ref_ctr_offset").flatMap(firstBit)
        return UprobePMU(type: type, retprobeBit: retprobe, refCounterShift: ref)
    }

    /// "config:0" → 0, "config:32-63" → 32.
    static func firstBit(_ format: String) -> Int? {
        guard let colon = format.firstIndex(of: ":") else { return nil }
        return Int(format[format.index(after: colon)...].prefix { $0.isNumber })
    }
}

public enum OnlineCPUs {
    /// /sys/devices/system/cpu/online, e.g. "0-3,6".
    public static func list() -> [Int] {
        parse(TextFile.trimmed("/sys/devices/system/cpu/online") ?? "0")
    }

    public static func parse(_ text: String) -> [Int] {
        var out: [Int] = []
        for part in text.split(separator: ",") {
            let r = part.split(separator: "-").compactMap { Int($0.trimmingWhitespace()) }
            if r.count == 2, r[0] <= r[1] { out += Array(r[0]...r[1]) } else if r.count == 1 { out.append(r[0]) }
        }
        return out
    }
}

extension Substring {
    fileprivate func trimmingWhitespace() -> String { String(self).trimmingWhitespace() }
}
