import CLinux
import Glibc
import LumosCore
import Testing
@testable import Trace

/// A hand-assembled BPF program that counts its runs in a one-slot array map (or stores
/// the cgroup id of the task it last ran in).
final class CounterProgram {
    let map: Int32
    let program: Int32

    init(type: Int32, storeCgroupID: Bool = false) throws {
        map = clinux_perf_selftest_counter_map()
        if map < 0 { throw Errno(errno, "bpf(BPF_MAP_CREATE)") }
        var log = [CChar](repeating: 0, count: 65536)
        program = clinux_perf_selftest_counter_prog(UInt32(type), map, storeCgroupID ? 1 : 0, &log, UInt32(log.count))
        if program < 0 {
            let e = errno
            close(map)
            throw Errno(e, "bpf(BPF_PROG_LOAD)", String(decoding: log.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
        }
    }

    deinit {
        close(program)
        close(map)
    }

    var count: UInt64 {
        var v: UInt64 = 0
        _ = clinux_perf_selftest_counter_read(map, &v)
        return v
    }
}

/// Probes attached for real (root): each test runs a workload whose number of probe
/// firings it knows and reads the count the kernel program kept.
@Suite(.serialized) struct AttachTests {
    @Test(.enabled(if: isRoot, "needs root for bpf(2) and perf_event_open"))
    func tracepointFiresAndDetaches() throws {
        let tfs = try Tracefs.locate()
        let counter = try CounterProgram(type: Int32(CLINUX_BPF_PROG_TYPE_TRACEPOINT))
        // sched_get_priority_max is a system call nothing else on the host makes.
        let tp = TracepointName(category: "syscalls", name: "sys_enter_sched_get_priority_max")
        let link = try ProbeAttach.tracepoint(tp, program: counter.program, tracefs: tfs)
        for _ in 0..<5 { _ = sched_get_priority_max(SCHED_OTHER) }
        link.detach()
        let seen = counter.count
        #expect(seen >= 5)
        for _ in 0..<5 { _ = sched_get_priority_max(SCHED_OTHER) }
        #expect(counter.count == seen)
    }

    @Test(.enabled(if: isRoot, "needs root for bpf(2) and perf_event_open"))
    func wrongProgramTypeIsReported() throws {
        let tfs = try Tracefs.locate()
        let counter = try CounterProgram(type: Int32(CLINUX_BPF_PROG_TYPE_PERF_EVENT))
        let tp = TracepointName(category: "syscalls", name: "sys_enter_sched_get_priority_max")
        #expect(throws: LumosError.self) { try ProbeAttach.tracepoint(tp, program: counter.program, tracefs: tfs) }
        #expect(throws: LumosError.self) { try ProbeAttach.tracepoint(TracepointName(category: "nope", name: "nope"), program: counter.program, tracefs: tfs) }
    }

    @Test(.enabled(if: isRoot, "needs root for bpf(2) and perf_event_open"))
    func profileSamplesEveryCPU() throws {
        let counter = try CounterProgram(type: Int32(CLINUX_BPF_PROG_TYPE_PERF_EVENT))
        let cpus = OnlineCPUs.list()
        let link = try ProbeAttach.profile(.hertz(99), program: counter.program)
        #expect(link.descriptors.count == cpus.count)
        usleep(300_000)
        link.detach()
        let n = counter.count
        // About 99 per second per CPU; only bounds that cannot depend on load are asserted.
        #expect(n > 0)
        #expect(n < 99 * UInt64(cpus.count) * 10)
    }

    @Test(.enabled(if: isRoot, "needs root for bpf(2) and perf_event_open"))
    func tickFiresOnOneCPU() throws {
        let counter = try CounterProgram(type: Int32(CLINUX_BPF_PROG_TYPE_PERF_EVENT))
        let link = try ProbeAttach.tick(try ProbeRate.parse(rate: "10ms"), program: counter.program)
        #expect(link.descriptors.count == 1)
        usleep(200_000)
        link.detach()
        #expect(counter.count > 0)
    }

    @Test(.enabled(if: isRoot && Exec.which("cc") != nil, "needs root and a C compiler"))
    func uprobeAndUretprobeOnFunction() throws {
        let prog = try TestProgram(TestProgram.usdtSource)
        defer { prog.remove() }
        let elf = try ELFFile(path: prog.binary)
        let work = try #require(try elf.symbol(named: "work"))
        let offset = try #require(elf.fileOffset(forAddress: work.value))
        let entry = try CounterProgram(type: Int32(CLINUX_BPF_PROG_TYPE_KPROBE))
        let ret = try CounterProgram(type: Int32(CLINUX_BPF_PROG_TYPE_KPROBE))
        let l1 = try ProbeAttach.uprobe(path: prog.binary, offset: offset, program: entry.program)
        let l2 = try ProbeAttach.uprobe(path: prog.binary, offset: offset, returnProbe: true, program: ret.program)
        try Exec.run([prog.binary, "4"], check: false)
        #expect(entry.count == 4)
        #expect(ret.count == 4)
        l1.detach()
        l2.detach()
        try Exec.run([prog.binary, "2"], check: false)
        #expect(entry.count == 4)
    }

    @Test(.enabled(if: isRoot && Exec.which("cc") != nil, "needs root and a C compiler"))
    func usdtProbeAndSemaphore() throws {
        let prog = try TestProgram(TestProgram.usdtSource)
        defer { prog.remove() }
        let probes = try USDT.probes(inFile: prog.binary)
        let tick = try #require(probes.first { $0.name == "tick" })
        let guarded = try #require(probes.first { $0.name == "guarded" })
        let ticks = try CounterProgram(type: Int32(CLINUX_BPF_PROG_TYPE_KPROBE))
        let guards = try CounterProgram(type: Int32(CLINUX_BPF_PROG_TYPE_KPROBE))
        // Without the probe attached the semaphore is 0 and the guarded probe never runs;
        // attached, the kernel raises the semaphore and it fires once per loop.
        let l1 = try ProbeAttach.usdt(tick, program: ticks.program)
        let l2 = try ProbeAttach.usdt(guarded, program: guards.program)
        defer { l1.detach(); l2.detach() }
        try Exec.run([prog.binary, "3"], check: false)
        #expect(ticks.count == 3)
        #expect(guards.count == 3)
    }

    @Test(.enabled(if: isRoot && Exec.which("cc") != nil, "needs root and a C compiler"))
    func usdtInRunningProcess() throws {
        let prog = try TestProgram(TestProgram.usdtSource)
        defer { prog.remove() }
        // 50 turns, 20 ms apart: about a second of work to attach to.
        let pid = try Exec.spawn([prog.binary, "50", "20"])
        var reaped = false
        defer { if !reaped { kill(pid, SIGKILL); _ = Exec.wait(pid) } }
        var probes: [USDTProbe] = []
        for _ in 0..<100 where probes.isEmpty {
            probes = (try? USDT.probes(inProcess: pid))?.filter { $0.provider == "lumostest" } ?? []
            if probes.isEmpty { usleep(10_000) }
        }
        let tick = try #require(probes.first { $0.name == "tick" })
        #expect(tick.pid == pid)
        #expect(tick.dtraceProvider == "lumostest\(pid)")
        #expect(tick.module == "prog")
        let counter = try CounterProgram(type: Int32(CLINUX_BPF_PROG_TYPE_KPROBE))
        let link = try ProbeAttach.usdt(tick, program: counter.program)
        defer { link.detach() }
        let status = Exec.wait(pid)
        reaped = true
        #expect(status == 0)
        // Attached while running: some of the 50 turns were seen, never more than 50.
        #expect(counter.count > 0)
        #expect(counter.count <= 50)
    }

    @Test(.enabled(if: isRoot, "needs root for bpf(2)"))
    func rawTracepoint() throws {
        let counter = try CounterProgram(type: Int32(CLINUX_BPF_PROG_TYPE_RAW_TRACEPOINT))
        let link = try ProbeAttach.rawTracepoint("sys_enter", program: counter.program)
        for _ in 0..<3 { _ = getppid() }
        #expect(counter.count >= 3)
        link.detach()
        #expect(throws: LumosError.self) { try ProbeAttach.rawTracepoint("no_such_tracepoint_lumos", program: counter.program) }
    }

    @Test func onlineCPUsParse() {
        #expect(OnlineCPUs.parse("0-3,6") == [0, 1, 2, 3, 6])
        #expect(OnlineCPUs.parse("0") == [0])
        #expect(!OnlineCPUs.list().isEmpty)
        #expect(UprobePMU.firstBit("config:32-63") == 32)
        #expect(UprobePMU.firstBit("config:0") == 0)
    }
}

/// A process whose binary is visible only in its own mount namespace (as in a zone): its
/// USDT probes are found and attached through /proc/PID/root.
@Suite struct USDTNamespaceTests {
    @Test(.enabled(if: isRoot && Exec.which("cc") != nil && Exec.which("unshare") != nil, "needs root, cc and unshare"))
    func probesOfProcessInOtherMountNamespace() throws {
        let prog = try TestProgram(TestProgram.usdtSource)
        defer { prog.remove() }
        let mountPoint = "/tmp/lumos-trace-ns-\(getpid())"
        #expect(mkdir(mountPoint, 0o755) == 0)
        defer { rmdir(mountPoint) }
        // Inside: bind the build directory over the empty mount point and run from there.
        let pid = try Exec.spawn(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                                  "mount --bind \(prog.directory) \(mountPoint) && exec \(mountPoint)/prog 100 10"])
        var reaped = false
        defer { if !reaped { kill(pid, SIGKILL); _ = Exec.wait(pid) } }
        var probes: [USDTProbe] = []
        for _ in 0..<200 where probes.isEmpty {
            probes = (try? USDT.probes(inProcess: pid))?.filter { $0.provider == "lumostest" } ?? []
            if probes.isEmpty { usleep(10_000) }
        }
        let tick = try #require(probes.first { $0.name == "tick" })
        #expect(tick.path == "\(mountPoint)/prog")
        #expect(tick.attachPath == "/proc/\(pid)/root\(mountPoint)/prog")
        let counter = try CounterProgram(type: Int32(CLINUX_BPF_PROG_TYPE_KPROBE))
        let link = try ProbeAttach.usdt(tick, program: counter.program)
        defer { link.detach() }
        let status = Exec.wait(pid)
        reaped = true
        #expect(status == 0)
        #expect(counter.count > 0 && counter.count <= 100)
    }
}
