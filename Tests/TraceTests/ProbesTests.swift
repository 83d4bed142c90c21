import Glibc
import LumosCore
import Testing
@testable import Trace

@Suite struct TracepointFormatTests {
    static let switchFormat = """
    name: sched_switch
    ID: 372
    format:
    \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
    \tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
    \tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
    \tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

    \tfield:char prev_comm[16];\toffset:8;\tsize:16;\tsigned:0;
    \tfield:pid_t prev_pid;\toffset:24;\tsize:4;\tsigned:1;
    \tfield:long prev_state;\toffset:32;\tsize:8;\tsigned:1;
    \tfield:__data_loc char[] filename;\toffset:56;\tsize:4;\tsigned:0;
    \tfield:const char * name;\toffset:64;\tsize:8;\tsigned:0;
    \tfield:unsigned long args[];\toffset:72;\tsize:0;\tsigned:0;

    print fmt: "prev_comm=%s", REC->prev_comm
    """

    @Test func parsesFields() throws {
        let f = try TracepointFormat.parse(Self.switchFormat)
        #expect(f.name == "sched_switch")
        #expect(f.id == 372)
        #expect(f.fields.count == 10)
        #expect(f.argumentFields.map(\.name) == ["prev_comm", "prev_pid", "prev_state", "filename", "name", "args"])
        let comm = try #require(f.field(named: "prev_comm"))
        #expect(comm.type == "char" && comm.arrayLength == 16 && comm.offset == 8 && comm.size == 16 && comm.isString)
        let pid = try #require(f.field(named: "prev_pid"))
        #expect(pid.type == "pid_t" && pid.isSigned && pid.size == 4 && pid.arrayLength == nil)
        let file = try #require(f.field(named: "filename"))
        #expect(file.isDataLocation && file.type == "char" && file.isString && file.size == 4)
        let name = try #require(f.field(named: "name"))
        #expect(name.type == "const char *" && name.isPointer && !name.isString)
        let args = try #require(f.field(named: "args"))
        #expect(args.arrayLength == 0 && args.type == "unsigned long")
        #expect(f.field(named: "common_pid")?.isCommon == true)
    }

    @Test func syscallTableFromFormats() throws {
        let enter = try TracepointFormat.parse("""
        name: sys_enter_read
        ID: 842
        format:
        \tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
        \tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
        \tfield:unsigned int fd;\toffset:16;\tsize:8;\tsigned:0;
        \tfield:char * buf;\toffset:24;\tsize:8;\tsigned:0;
        \tfield:size_t count;\toffset:32;\tsize:8;\tsigned:0;
        """)
        let exit = try TracepointFormat.parse("""
        name: sys_exit_read
        ID: 841
        format:
        \tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
        \tfield:long ret;\toffset:16;\tsize:8;\tsigned:1;
        """)
        let p = SyscallTable.make(name: "read", entryFormat: enter, exitFormat: exit)
        #expect(p.entryID == 842 && p.returnID == 841)
        #expect(p.arguments.map(\.name) == ["fd", "buf", "count"])
        #expect(p.arguments.map(\.index) == [0, 1, 2])
        #expect(p.arguments.map(\.recordOffset) == [16, 24, 32])
        #expect(p.arguments[1].type == "char *")
        #expect(p.returnValue?.offset == 16)
        #expect(p.entry.description == "syscalls:sys_enter_read")
    }

    @Test func mountTable() {
        let t = MountTable.parse("""
        sysfs /sys sysfs rw 0 0
        cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
        nodev /sys/kernel/trac\\040ing tracefs rw 0 0
        """)
        #expect(t.mountPoint(ofType: "cgroup2") == "/sys/fs/cgroup/unified")
        #expect(t.mountPoint(ofType: "tracefs") == "/sys/kernel/trac ing")
        #expect(t.mountPoint(ofType: "nfs") == nil)
    }

    @Test(.enabled(if: isRoot, "needs root to read tracefs"))
    func realTracefsHasSyscalls() throws {
        let tfs = try Tracefs.locate()
        let names = SyscallTable.names(tracefs: tfs)
        #expect(names.contains("read") && names.contains("openat"))
        let read = try SyscallTable.probe(named: "read", tracefs: tfs)
        #expect(read.arguments.map(\.name) == ["fd", "buf", "count"])
        #expect(try tfs.id(of: read.entry) == read.entryID)
        #expect(tfs.allEvents().contains(TracepointName(category: "sched", name: "sched_switch")))
        #expect(throws: LumosError.self) { try SyscallTable.probe(named: "no_such_call", tracefs: tfs) }
    }
}

@Suite struct ProbeRateTests {
    @Test func units() throws {
        #expect(try ProbeRate.parse("profile-99") == .init(kind: .profile, rate: .hertz(99)))
        #expect(try ProbeRate.parse("tick-1s")?.rate == .period(nanoseconds: 1_000_000_000))
        #expect(try ProbeRate.parse("tick-10ms")?.rate.periodNanoseconds == 10_000_000)
        #expect(try ProbeRate.parse("profile-4999hz")?.rate.frequency == 4999)
        #expect(try ProbeRate.parse("profile-500us")?.rate.frequency == 2000)
        #expect(try ProbeRate.parse("tick-1sec")?.rate.frequency == 1)
        #expect(try ProbeRate.parse("tick-5nsec")?.rate.periodNanoseconds == 5)
        #expect(try ProbeRate.parse("tick-2min")?.rate.periodNanoseconds == 120_000_000_000)
        #expect(try ProbeRate.parse("tick-1h")?.rate.periodNanoseconds == 3_600_000_000_000)
        #expect(try ProbeRate.parse("tick-1day")?.rate.periodNanoseconds == 86_400_000_000_000)
        #expect(try ProbeRate.parse("profile-10usec")?.rate.periodNanoseconds == 10_000)
        #expect(try ProbeRate.parse("entry") == nil)
        #expect(throws: LumosError.self) { try ProbeRate.parse("profile-abc") }
        #expect(throws: LumosError.self) { try ProbeRate.parse("tick-5parsecs") }
        #expect(throws: LumosError.self) { try ProbeRate.parse("tick-0") }
    }
}

@Suite struct ProbePatternTests {
    @Test func fieldsFillFromTheRight() throws {
        #expect(try ProbePattern(parsing: "BEGIN") == ProbePattern(name: "BEGIN"))
        #expect(try ProbePattern(parsing: "read:entry") == ProbePattern(function: "read", name: "entry"))
        #expect(try ProbePattern(parsing: "syscall::read:entry")
                == ProbePattern(provider: "syscall", function: "read", name: "entry"))
        #expect(throws: LumosError.self) { try ProbePattern(parsing: "a:b:c:d:e") }
    }

    @Test func globs() throws {
        let read = ProbeIdentity(provider: "syscall", function: "read", name: "entry")
        let readv = ProbeIdentity(provider: "syscall", function: "readv", name: "entry")
        let pg = ProbeIdentity(provider: "postgresql1234", module: "postgres", function: "exec_simple_query", name: "query-start")
        #expect(try ProbePattern(parsing: "syscall:::entry").matches(read))
        #expect(try ProbePattern(parsing: "syscall::read:entry").matches(read))
        #expect(try !ProbePattern(parsing: "syscall::read:entry").matches(readv))
        #expect(try ProbePattern(parsing: "syscall::read*:").matches(readv))
        #expect(try ProbePattern(parsing: "syscall::rea?:entry").matches(read))
        #expect(try !ProbePattern(parsing: "syscall::rea?:entry").matches(readv))
        #expect(try ProbePattern(parsing: "syscall::read[v]:entry").matches(readv))
        #expect(try ProbePattern(parsing: "syscall::read[!v]*:entry").matches(read) == false)
        #expect(try ProbePattern(parsing: "postgresql*:::query-start").matches(pg))
        #expect(try ProbePattern(parsing: "postgresql1234:::query-start").matches(pg))
        #expect(try !ProbePattern(parsing: "postgresql99:::query-start").matches(pg))
        #expect(try ProbePattern(parsing: "*:postgres::").matches(pg))
        #expect(Glob.matches("*", ""))
        #expect(Glob.matches("a*b*c", "aXbYc"))
        #expect(!Glob.matches("a*b*c", "aXbY"))
        #expect(Glob.matches("[a-c]x", "bx"))
        #expect(ProbePattern.isLiteral("read") && !ProbePattern.isLiteral("read*"))
    }
}

@Suite struct USDTArgumentTests {
    @Test func parsesSdtOperands() throws {
        let args = try USDTArgument.parseList("-4@%ebx 8@-16(%rbp) 8@$5 -8@$-3 4@counter+4(%rip) 8@(%rax,%rdx,8) 1@%ah 2@%r9w")
        #expect(args.count == 8)
        #expect(args[0].size == 4 && args[0].isSigned)
        #expect(args[0].location == .register(X86Register.named("ebx")!))
        #expect(X86Register.named("ebx")?.canonical == "rbx" && X86Register.named("ebx")?.ptRegsOffset == 40)
        guard case let .memory(base, index, _, offset, symbol) = args[1].location else { Issue.record("not memory"); return }
        #expect(base?.canonical == "rbp" && base?.ptRegsOffset == 32 && index == nil && offset == -16 && symbol == nil)
        #expect(args[2].location == .constant(5) && !args[2].isSigned)
        #expect(args[3].location == .constant(-3) && args[3].isSigned)
        guard case let .memory(b4, _, _, o4, s4) = args[4].location else { Issue.record("not memory"); return }
        #expect(b4?.canonical == "rip" && o4 == 4 && s4 == "counter")
        guard case let .memory(b5, i5, sc5, _, _) = args[5].location else { Issue.record("not memory"); return }
        #expect(b5?.canonical == "rax" && i5?.canonical == "rdx" && sc5 == 8)
        #expect(X86Register.named("ah")?.isHighByte == true)
        #expect(X86Register.named("r9w")?.ptRegsOffset == 64)
        #expect(X86Register.named("rdi")?.ptRegsOffset == 112)
        #expect(X86Register.named("rsp")?.ptRegsOffset == 152)
        #expect(X86Register.named("rip")?.ptRegsOffset == 128)
    }

    @Test func rejectsNonsense() {
        #expect(throws: (any Error).self) { try USDTArgument.parse("3@%eax") }
        #expect(throws: (any Error).self) { try USDTArgument.parse("4@%xyz") }
        #expect(throws: (any Error).self) { try USDTArgument.parse("4@$zz") }
    }
}

/// Tracefs over a directory laid out like the real one (no root needed).
@Suite struct FakeTracefsTests {
    @Test func layoutAndLookups() throws {
        var template = Array("/tmp/lumos-fake-tracefs-XXXXXX".utf8CString)
        let root = String(cString: try #require(template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }))
        defer { _ = try? Exec.run(["rm", "-rf", root]) }
        for (cat, name, id) in [("syscalls", "sys_enter_getpid", 10), ("syscalls", "sys_exit_getpid", 11),
                                ("syscalls", "sys_enter_only", 12), ("sched", "sched_switch", 372)] {
            try Files.makeDirectories("\(root)/events/\(cat)/\(name)")
            try Files.writeAtomically("\(root)/events/\(cat)/\(name)/id", "\(id)\n")
            try Files.writeAtomically("\(root)/events/\(cat)/\(name)/format",
                                      "name: \(name)\nID: \(id)\nformat:\n\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n")
        }
        let tfs = Tracefs(root: root)
        #expect(tfs.categories() == ["sched", "syscalls"])
        // No available_events file: the directory walk gives the same list.
        #expect(tfs.allEvents().map(\.description) == ["sched:sched_switch", "syscalls:sys_enter_getpid",
                                                       "syscalls:sys_enter_only", "syscalls:sys_exit_getpid"])
        #expect(try tfs.id(of: TracepointName("sched:sched_switch")!) == 372)
        #expect(SyscallTable.names(tracefs: tfs) == ["getpid"])
        let p = try SyscallTable.probe(named: "getpid", tracefs: tfs)
        #expect(p.entryID == 10 && p.returnID == 11 && p.arguments.isEmpty)
        #expect(throws: LumosError.self) { try SyscallTable.probe(named: "only", tracefs: tfs) }
        #expect(throws: LumosError.self) { try tfs.id(of: TracepointName(category: "x", name: "y")) }
        #expect(throws: LumosError.self) { try tfs.format(of: TracepointName(category: "x", name: "y")) }
    }

    @Test func locateFromMounts() throws {
        let t = try Tracefs.locate(mountIfNeeded: false, mounts: MountTable.parse("nodev /srv/trace tracefs rw 0 0\n"))
        #expect(t.root == "/srv/trace")
        #expect(throws: LumosError.self) { try Tracefs.locate(mountIfNeeded: false, mounts: MountTable.parse("")) }
        #expect(TracepointName("sched/sched_switch") == TracepointName(category: "sched", name: "sched_switch"))
        #expect(TracepointName("nocolon") == nil)
    }

    /// Probe-description globs: the in-place paths (a name, a name and one trailing `*`) and
    /// the general matcher give DTrace's answers; `__` in a USDT name reads as `-`.
    @Test func globsAndUSDTNames() {
        let cases: [(String, String, Bool)] = [
            ("", "anything", true), ("*", "", true), ("query-start", "query-start", true),
            ("query-start", "query-start2", false), ("query-start", "query-star", false),
            ("postgresql*", "postgresql", true), ("postgresql*", "postgresql1234", true),
            ("postgresql*", "postgres", false), ("postgresql*", "xpostgresql", false),
            ("*start", "query-start", true), ("*start", "start-query", false),
            ("q*-st*t", "query-start", true), ("query-?tart", "query-start", true),
            ("query-[rs]tart", "query-start", true), ("query-[!s]tart", "query-start", false),
            ("é*", "etat", false), ("é*", "élan", true), ("élan", "élan", true),
        ]
        for (pattern, text, expected) in cases {
            #expect(globMatch(pattern, text) == expected, "\(pattern) ~ \(text)")
        }
        func probe(_ name: String) -> USDTProbe {
            USDTProbe(provider: "p", name: name, path: "/x", attachPath: "/x", address: 0, fileOffset: 0, arguments: [], function: "")
        }
        #expect(probe("query__start").dtraceName == "query-start")
        #expect(probe("a___b").dtraceName == "a-_b")
        #expect(probe("plain_name").dtraceName == "plain_name")
        #expect(probe("__").dtraceName == "-")
        #expect(probe("_").dtraceName == "_")
    }
}
