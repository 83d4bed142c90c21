import CLinux
import Glibc
import LumosCore
import Testing
@testable import Trace

@Suite struct ProbeListTests {
    @Test func renderNumbersAllAndFilters() throws {
        let probes = [
            ProbeIdentity(provider: "dtrace", name: "BEGIN"),
            ProbeIdentity(provider: "syscall", function: "read", name: "entry"),
            ProbeIdentity(provider: "syscall", function: "read", name: "return"),
        ]
        let all = ProbeList.render(probes)
        #expect(all.split(separator: "\n").count == 4)
        let only = ProbeList.render(probes, matching: [try ProbePattern(parsing: "syscall::read:return")])
        #expect(only == ProbeListText.header
                + "    3    syscall                                                read return\n")
    }

    /// A plain syscall name is looked up with one access(2); a glob reads the list. Both
    /// must agree with the tracefs listing, and a name is never a path.
    @Test(.enabled(if: isRoot, "needs root to read tracefs"))
    func syscallNamesAndGlobsResolveAlike() throws {
        let catalog = try KernelProbeCatalog()
        #expect(catalog.syscalls(matching: "getppid") == ["getppid"])
        #expect(catalog.syscalls(matching: "no_such_syscall").isEmpty)
        #expect(catalog.syscalls(matching: "../syscalls/sys_enter_read").isEmpty)
        let reads = catalog.syscalls(matching: "read*")
        #expect(reads.contains("read") && reads.contains("readv") && reads.allSatisfy { $0.hasPrefix("read") })
        #expect(catalog.syscalls(matching: "*").count == catalog.syscalls.count)
        #expect(catalog.syscalls.count > 200)
        #expect(catalog.syscallNumbers["getppid"] == 110)
        let (one, matched) = try catalog.resolve(ProbeDescription(provider: "syscall", module: "", function: "getppid", name: "entry", location: SourceLocation(line: 1, column: 1)))
        #expect(matched == 1 && one.count == 1)
        #expect(Tracefs.isTracefs(try Tracefs.locate().root))
    }

    @Test(.enabled(if: isRoot, "needs root to read tracefs"))
    func kernelProbes() throws {
        let probes = ProbeList.kernel(tracefs: try Tracefs.locate())
        #expect(probes.first == ProbeIdentity(provider: "dtrace", name: "BEGIN"))
        #expect(probes.contains(ProbeIdentity(provider: "syscall", function: "openat", name: "return")))
        #expect(probes.contains(ProbeIdentity(provider: "sched", name: "sched_switch")))
        #expect(probes.contains(ProbeIdentity(provider: "proc", name: "exec")))
        #expect(probes.contains(ProbeIdentity(provider: "profile", name: "profile-997")))
        #expect(Set(probes).count == probes.count)
    }

    @Test func functionSitesInOwnProcess() throws {
        let sites = try FunctionProbes.sites(pid: getpid(), module: "libc.so*", function: "malloc")
        let malloc = try #require(sites.first)
        #expect(malloc.function == "malloc" && malloc.module.hasPrefix("libc.so"))
        #expect(malloc.fileOffset > 0)
        #expect(throws: LumosError.self) { try FunctionProbes.sites(pid: Int32.max, function: "main") }
    }

    @Test(.enabled(if: isRoot && Exec.which("cc") != nil, "needs root and a C compiler"))
    func functionEntryAndReturnFire() throws {
        let prog = try TestProgram(TestProgram.usdtSource)
        defer { prog.remove() }
        let sites = try FunctionProbes.sites(file: prog.binary, function: "w*")
        #expect(sites.map(\.function) == ["work"])
        let work = try #require(sites.first)
        let entry = try CounterProgram(type: Int32(CLINUX_BPF_PROG_TYPE_KPROBE))
        let link = try ProbeAttach.uprobe(path: work.attachPath, offset: work.fileOffset, program: entry.program)
        defer { link.detach() }
        try Exec.run([prog.binary, "6"], check: false)
        #expect(entry.count == 6)
    }

    @Test(.enabled(if: Exec.which("cc") != nil, "needs a C compiler"))
    func usdtListingOfProcess() throws {
        let prog = try TestProgram(TestProgram.usdtSource)
        defer { prog.remove() }
        let pid = try Exec.spawn([prog.binary, "100", "10"])
        defer { kill(pid, SIGKILL); _ = Exec.wait(pid) }
        var listed: [ProbeIdentity] = []
        for _ in 0..<100 where listed.isEmpty {
            listed = ProbeList.usdt(pids: [pid])
            if listed.isEmpty { usleep(10_000) }
        }
        #expect(listed.contains(ProbeIdentity(provider: "lumostest\(pid)", module: "prog", function: "main", name: "begin-work")))
        #expect(listed.contains(ProbeIdentity(provider: "lumostest\(pid)", module: "prog", function: "work", name: "tick")))
    }
}
