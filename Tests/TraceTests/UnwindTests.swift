import Glibc
import LumosCore
import Testing
@testable import Trace

/// ustack() walked by .eh_frame in BPF (UserUnwindTable, ActionGenerator.emitUnwind) on a
/// program built without frame pointers: bpf_get_stack's frame-pointer walk loses the callers
/// there, so these stacks have them only if the table walk works.
@Suite(.serialized) struct UnwindTests {
    static let flags = ["-O2", "-fomit-frame-pointer", "-fasynchronous-unwind-tables"]

    func tempFile() -> String { "/tmp/lumos-unwind-out-\(getpid())-\(UInt32.random(in: 0...UInt32.max))" }

    /// The stacks of a printa of one stack aggregation: frames of each record, trimmed.
    static func stacks(_ text: String) -> [[String]] {
        text.components(separatedBy: "\n\n").map { block in
            block.split(separator: "\n").map { $0.split(separator: " ").joined(separator: " ") }.filter { $0.contains("`") }
        }.filter { !$0.isEmpty }
    }

    /// Whether `frames`, in order and adjacent, start with functions named `names`.
    static func hasChain(_ stack: [String], _ names: [String]) -> Bool {
        guard stack.count >= names.count else { return false }
        for start in 0...(stack.count - names.count) {
            if zip(stack[start...], names).allSatisfy({ f, n in f == n || f.hasPrefix(n + "+") }) { return true }
        }
        return false
    }

    /// `dtrace -q -p PID` counting ustack() at profile-197 for a second: its output.
    func profile(_ pid: pid_t) throws -> String {
        let out = tempFile()
        defer { unlink(out) }
        var inv = DTraceInvocation()
        inv.sources = [(text: "profile-197 /pid == $target/ { @[ustack()] = count(); } tick-1s { exit(0); }", file: nil)]
        inv.pid = pid
        inv.quiet = true
        inv.outputPath = out
        #expect(try DTrace.run(inv) == 0)
        return TextFile.read(out) ?? ""
    }

    /// profile-N on -p: the sampled process is in user mode, so the walk starts at the
    /// interrupted registers.
    @Test(.enabled(if: isRoot, "needs root")) func profileOfAProcessWithoutFramePointers() throws {
        let prog = try TestProgram([EHFrameTests.unwindSource], name: "nofp", flags: Self.flags)
        defer { prog.remove() }
        let child = try Exec.spawn([prog.binary, "2000"])
        defer { kill(child, SIGKILL); _ = Exec.wait(child) }
        usleep(100_000)
        let text = try profile(child)
        let stacks = Self.stacks(text)
        #expect(stacks.contains { Self.hasChain($0, ["nofp`leaf", "nofp`middle", "nofp`outer", "nofp`main"]) }, "\(text)")
        // Every walk that reaches main goes on into libc's start-up, and ends there.
        let toMain = stacks.filter { $0.contains { $0.hasPrefix("nofp`main+") } }
        #expect(!toMain.isEmpty && toMain.allSatisfy { $0.last?.hasPrefix("nofp`main") == false }, "\(text)")
    }

    /// A process whose binary exists only in its own mount namespace (as a zone's does): its
    /// unwind table and its symbols are read through /proc/PID/root, so the stacks are as
    /// complete and as named as on the host.
    @Test(.enabled(if: isRoot && Exec.which("unshare") != nil, "needs root and unshare"))
    func profileOfAProcessInItsOwnMountNamespace() throws {
        let prog = try TestProgram([EHFrameTests.unwindSource], name: "nofp", flags: Self.flags)
        defer { prog.remove() }
        let mountPoint = "/tmp/lumos-unwind-ns-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        #expect(mkdir(mountPoint, 0o755) == 0)
        defer { rmdir(mountPoint) }
        let child = try Exec.spawn(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                                    "mount --bind \(prog.directory) \(mountPoint) && exec \(mountPoint)/nofp 2000"])
        defer { kill(child, SIGKILL); _ = Exec.wait(child) }
        for _ in 0..<200 where !ProcessMaps.mappedFiles(pid: child).contains("\(mountPoint)/nofp") { usleep(10_000) }
        #expect(ProcessMaps.mappedFiles(pid: child).contains("\(mountPoint)/nofp"))
        #expect(!Files.exists("\(mountPoint)/nofp"), "the binary should not be visible on the host")
        let text = try profile(child)
        #expect(Self.stacks(text).contains { Self.hasChain($0, ["nofp`leaf", "nofp`middle", "nofp`outer", "nofp`main"]) }, "\(text)")
    }

    /// A syscall probe fires in the kernel: the walk starts from the user registers saved at
    /// the syscall (bpf_task_pt_regs).
    @Test(.enabled(if: isRoot, "needs root")) func syscallProbeOnAProcessWithoutFramePointers() throws {
        let prog = try TestProgram([EHFrameTests.unwindSource], name: "nofp", flags: Self.flags)
        defer { prog.remove() }
        let child = try Exec.spawn([prog.binary, "10", "sys"])
        defer { kill(child, SIGKILL); _ = Exec.wait(child) }
        usleep(100_000)
        let out = tempFile()
        defer { unlink(out) }
        var inv = DTraceInvocation()
        inv.sources = [(text: "syscall::getppid:entry /pid == $target/ { @[ustack()] = count(); } tick-1s { exit(0); }", file: nil)]
        inv.pid = child
        inv.quiet = true
        inv.outputPath = out
        #expect(try DTrace.run(inv) == 0)
        let text = TextFile.read(out) ?? ""
        #expect(Self.stacks(text).contains {
            ($0.first?.hasPrefix("libc.so.6`") ?? false) && Self.hasChain(Array($0.dropFirst()), ["nofp`leaf", "nofp`middle", "nofp`outer", "nofp`main"])
        }, "\(text)")
    }

    /// With -c, the table is made for the gate shell and made again after the exec. The
    /// command has exited when the stacks are printed, so they are addresses (symbols are
    /// read from a live process): at least main's five frames below getppid, where frame
    /// pointers give one.
    @Test(.enabled(if: isRoot, "needs root")) func commandIsWalkedAfterItsExec() throws {
        let prog = try TestProgram([EHFrameTests.unwindSource], name: "nofp", flags: Self.flags)
        defer { prog.remove() }
        let out = tempFile()
        defer { unlink(out) }
        var inv = DTraceInvocation()
        inv.sources = [(text: "syscall::getppid:entry /pid == $target/ { @[ustack()] = count(); }", file: nil)]
        inv.command = "\(prog.binary) 10 sys 1500"
        inv.quiet = true
        inv.outputPath = out
        #expect(try DTrace.run(inv) == 0)
        let text = TextFile.read(out) ?? ""
        let deep = text.components(separatedBy: "\n\n").filter { $0.split(separator: "\n").filter { $0.contains("0x") }.count >= 6 }
        #expect(!deep.isEmpty, "\(text)")
    }

    /// The table for a process: rows at its mapped addresses, sorted, the padding above.
    @Test func tableOfAProcess() throws {
        let prog = try TestProgram([EHFrameTests.unwindSource], name: "nofp", flags: Self.flags)
        defer { prog.remove() }
        let child = try Exec.spawn([prog.binary, "2000"])
        defer { kill(child, SIGKILL); _ = Exec.wait(child) }
        usleep(100_000)
        let table = UserUnwindTable(pid: child)
        #expect(table.rowCount > 1000)
        #expect(table.capacity >= table.rowCount && table.capacity & (table.capacity - 1) == 0)
        #expect(table.pids.first == child)
        var last: UInt64 = 0
        for i in 0..<table.capacity {
            let a = table.bytes.u64(i * UserUnwindTable.rowSize)
            if i >= table.rowCount {
                #expect(a == UInt64(Int64.max))
                break
            }
            #expect(i == 0 || a > last)
            last = a
        }
        #expect(table.warning == nil)
    }
}
