import Glibc
import LumosCore
import Testing
@testable import Trace

/// The USDT index (docs/trace.md, "USDT start-up"): a provider pattern is attached from the
/// files the last scan found before this session scans; the scan after attach adds what the
/// index did not know, and rewrites it. The index says only which files to read.
@Suite(.serialized) struct USDTIndexTests {
    /// A private index directory, removed by the caller.
    static func indexDirectory() throws -> String {
        var template = Array("/tmp/lumos-usdt-index-\(getpid())-XXXXXX".utf8CString)
        guard let dir = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else { throw Errno(errno, "mkdtemp") }
        return String(cString: dir)
    }

    static func removeIndex(_ dir: String) {
        for f in Files.list(dir) { unlink(dir + "/" + f) }
        rmdir(dir)
    }

    /// The USDT test program running (and, with `copy`, a copy of it at another path and
    /// inode, running too), and a private index that lists only the program.
    final class Running {
        let prog: TestProgram
        let copy: String
        let dir: String
        var pids: [pid_t] = []

        init(copy withCopy: Bool) throws {
            prog = try TestProgram(TestProgram.usdtSource, name: "usdtprog")
            copy = prog.directory + "/usdtcopy"
            do {
                dir = try USDTIndexTests.indexDirectory()
            } catch {
                prog.remove()
                throw error
            }
            do {
                if withCopy { try Exec.run(["cp", prog.binary, copy]) }
                for binary in withCopy ? [prog.binary, copy] : [prog.binary] { pids.append(try Exec.spawn([binary, "100000", "2"])) }
                USDTIndex(directory: dir).record(try USDT.probes(inFile: prog.binary))
            } catch {
                close()
                throw error
            }
        }

        /// `dtrace -q -n program` with this index (LUMOS_TRACE_CACHE): its status and output.
        func dtrace(_ program: String) throws -> (status: Int32, output: String?) {
            setenv("LUMOS_TRACE_CACHE", dir, 1)
            defer { unsetenv("LUMOS_TRACE_CACHE") }
            let out = dir + "/out"
            defer { unlink(out) }
            var inv = DTraceInvocation()
            inv.quiet = true
            inv.outputPath = out
            inv.sources = [(text: program, file: nil)]
            let status = try DTrace.run(inv)
            return (status, TextFile.read(out))
        }

        func close() {
            for p in pids { kill(p, SIGKILL); _ = Exec.wait(p) }
            pids = []
            USDTIndexTests.removeIndex(dir)
            prog.remove()
        }
    }

    /// Two running copies of a USDT program, the index knowing only the first: the first is
    /// attached at compile without a scan; the scan after attach finds the second and its
    /// late program counts its probes under its own module; the index then lists both.
    @Test(.enabled(if: isRoot, "needs root")) func indexedFilesFirstThenTheScanAddsTheRest() throws {
        let r = try Running(copy: true)
        defer { r.close() }
        let (prog, copy) = (r.prog, r.copy)
        let index = USDTIndex(directory: r.dir)
        #expect(index.entries().map(\.path) == [prog.binary])
        #expect(index.files(providerMatching: "lumos*").count == 1 && index.files(providerMatching: "postgresql*").isEmpty)

        let catalog = try KernelProbeCatalog()
        catalog.usdtIndex = index
        let compiler = DCompiler(catalog: catalog, syscallNumbers: catalog.syscallNumbers)
        let script = try compiler.compile(try Parser.parse("lumostest*:::tick { @ticks[probemod] = count(); }"))
        #expect(script.matched.map(\.count) == [1])
        #expect(!catalog.usdt.hasScannedHost, "the index should have spared the scan")
        #expect(catalog.deferredUSDT.count == 1)

        var options = TraceOptions()
        options.quiet = true
        let session = try TraceSession(script: script, options: options, output: open("/dev/null", O_WRONLY | O_CLOEXEC))
        try session.load()
        try session.attach()
        let found = catalog.completeUSDTDiscovery()
        #expect(catalog.usdt.hasScannedHost && catalog.deferredUSDT.isEmpty)
        #expect(found.count == 1 && found.first?.probes.count == 2, "\(found)")
        let late = try #require(try compiler.compileLate(found))
        #expect(late.programs.count == 1 && late.programs.first?.probe.module == "usdtcopy")
        try session.attachLate(late)
        #expect(try compiler.compileLate(found) == nil, "nothing is new the second time")
        usleep(300_000)
        session.detach()
        let ticks = session.snapshot("ticks").records
        for module in ["usdtprog", "usdtcopy"] {
            let n = ticks.first { $0.keys == [.string(module)] }?.value
            if case .count(let c)? = n { #expect(c > 5, "\(module): \(c)") } else { Issue.record("no ticks of \(module): \(ticks)") }
        }
        #expect(Set(index.entries().map(\.path)).isSuperset(of: [prog.binary, copy]))
    }

    /// Function names are looked up only when something shows them: a -q program without
    /// probefunc resolves its probes with none (no pass over the symbol table); probefunc,
    /// the default output or a function pattern get the name the symbol table gives.
    @Test(.enabled(if: isRoot, "needs root")) func functionNamesOnlyWhenShown() throws {
        let r = try Running(copy: false)
        defer { r.close() }
        let named = try USDT.probes(inFile: r.prog.binary).first { $0.name == "tick" }
        #expect(named?.function == "work")
        func resolve(_ function: String, shown: Bool) throws -> (functions: [String], passes: Int) {
            let catalog = try KernelProbeCatalog()
            catalog.usdtIndex = USDTIndex(directory: r.dir)
            catalog.usdtFunctionsShown = shown
            let d = ProbeDescription(provider: "lumostest*", module: "", function: function, name: "tick", location: SourceLocation(line: 1, column: 1))
            let (probes, _) = try catalog.resolve(d)
            return (probes.map(\.function), catalog.usdt.functionPasses)
        }
        let hidden = try resolve("", shown: false)
        #expect(hidden.functions == [""] && hidden.passes == 0, "\(hidden)")
        #expect(try resolve("", shown: true) == (["work"], 1))
        #expect(try resolve("wo*", shown: false) == (["work"], 1), "a function pattern needs the names")
        #expect(try resolve("main", shown: false).functions.isEmpty)
        // Through dtrace -q: probefunc in the program is the function's name.
        let run = try r.dtrace(#"lumostest*:::tick { printf("%s:%s\n", probefunc, probename); exit(0); }"#)
        #expect(run.status == 0 && run.output == "work:tick\n", "\(run)")
    }

    /// The same through `dtrace` (DTrace.run, the index in LUMOS_TRACE_CACHE): a clause that
    /// only the unindexed copy's probe can satisfy prints, so the late attach happened.
    @Test(.enabled(if: isRoot, "needs root")) func dtraceAttachesWhatTheScanFoundLate() throws {
        let r = try Running(copy: true)
        defer { r.close() }
        let run = try r.dtrace(#"lumostest*:::tick /probemod == "usdtcopy"/ { printf("late %s\n", probemod); exit(0); } tick-5s { exit(1); }"#)
        #expect(run.status == 0)
        #expect(run.output == "late usdtcopy\n")
        #expect(USDTIndex(directory: r.dir).entries().contains { $0.path == r.copy })
    }

    /// Uprobes opened ahead (UprobeOpener, in `dtrace`) keep DTrace's clause order: the
    /// middle clause sees what the first set and the third has not cleared yet, on every
    /// firing; in reverse order it would never print.
    @Test(.enabled(if: isRoot, "needs root")) func uprobesOpenedAheadRunClausesInProgramOrder() throws {
        let r = try Running(copy: false)
        defer { r.close() }
        let run = try r.dtrace("""
            lumostest*:::tick { self->x = 1; }
            lumostest*:::tick /self->x/ { printf("ordered\\n"); exit(0); }
            lumostest*:::tick { self->x = 0; }
            tick-5s { exit(1); }
            """)
        #expect(run.status == 0)
        #expect(run.output == "ordered\n")
    }

    /// A file replaced since it was indexed (another inode at the path) is not read from
    /// the index: the description is resolved by the scan at compile, nothing is deferred.
    @Test(.enabled(if: isRoot, "needs root")) func aReplacedFileIsScannedNotTrusted() throws {
        let prog = try TestProgram(TestProgram.usdtSource, name: "usdtprog")
        defer { prog.remove() }
        let dir = try Self.indexDirectory()
        defer { Self.removeIndex(dir) }
        let index = USDTIndex(directory: dir)
        index.record(try USDT.probes(inFile: prog.binary))
        try Exec.run(["cp", prog.binary, prog.binary + ".new"])
        #expect(rename(prog.binary + ".new", prog.binary) == 0)
        let pid = try Exec.spawn([prog.binary, "100000", "2"])
        defer { kill(pid, SIGKILL); _ = Exec.wait(pid) }
        usleep(50_000)

        let catalog = try KernelProbeCatalog()
        catalog.usdtIndex = index
        let script = try DCompiler(catalog: catalog, syscallNumbers: catalog.syscallNumbers)
            .compile(try Parser.parse("lumostest*:::tick { @ticks = count(); }"))
        #expect(script.matched.map(\.count) == [1])
        #expect(catalog.usdt.hasScannedHost && catalog.deferredUSDT.isEmpty)
        #expect(catalog.completeUSDTDiscovery().isEmpty)
        #expect(index.entries().first { $0.path == prog.binary }?.id == FileID(path: prog.binary))
    }

    /// An index that is malformed, or that another user could have written, counts as empty.
    @Test func untrustedOrMalformedIndexesAreEmpty() throws {
        let dir = try Self.indexDirectory()
        defer { Self.removeIndex(dir) }
        let index = USDTIndex(directory: dir)
        let good = "2049\t12345\tpostgresql\t/usr/lib/postgresql/15/bin/postgres\n"
        try Files.writeAtomically(index.path, good, mode: 0o600)
        #expect(index.files(providerMatching: "postgresql*").map(\.id) == [FileID(device: 2049, inode: 12345)])
        #expect(index.files(providerMatching: "mysql*").isEmpty)
        for bad in ["2049\t12345\tpostgresql\n", "x\t1\tp\t/a\n", "1\t2\t\t/a\n", "1\t2\tp\trelative\n", good + "garbage\n"] {
            try Files.writeAtomically(index.path, bad, mode: 0o600)
            #expect(index.entries().isEmpty, "\(bad)")
        }
        try Files.writeAtomically(index.path, good, mode: 0o600)
        chmod(index.path, 0o666)
        #expect(index.entries().isEmpty, "a world-writable index is not trusted")
        chmod(index.path, 0o600)
        chmod(dir, 0o777)
        #expect(index.entries().isEmpty, "an index in a world-writable directory is not trusted")
        chmod(dir, 0o700)
        #expect(index.entries().count == 1)
    }
}
