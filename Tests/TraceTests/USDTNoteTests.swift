import Glibc
import LumosCore
import Testing
@testable import Trace

/// USDT probes read from real ELF files: a program built here with <sys/sdt.h>, and
/// Debian's PostgreSQL server when it is installed.
@Suite struct USDTNoteTests {
    @Test(.enabled(if: Exec.which("cc") != nil, "needs a C compiler"))
    func notesOfTestProgram() throws {
        let prog = try TestProgram(TestProgram.usdtSource)
        defer { prog.remove() }
        let probes = try USDT.probes(inFile: prog.binary)
        #expect(Set(probes.map(\.name)) == ["tick", "guarded", "begin__work"])
        #expect(probes.allSatisfy { $0.provider == "lumostest" })

        let tick = try #require(probes.first { $0.name == "tick" })
        #expect(tick.arguments.count == 3)
        #expect(tick.arguments[0].size == 8 && tick.arguments[0].isSigned)
        #expect(tick.arguments[1].size == 4 && tick.arguments[1].isSigned)
        #expect(tick.arguments[2].size == 8)  // volatile long counter: a memory operand or register
        #expect(tick.semaphoreOffset == nil)
        #expect(tick.function == "work")

        let guarded = try #require(probes.first { $0.name == "guarded" })
        let sema = try #require(guarded.semaphoreOffset)
        // The semaphore offset is the file offset of the lumostest_guarded_semaphore variable.
        let elf = try ELFFile(path: prog.binary)
        let symbol = try #require(try elf.symbol(named: "lumostest_guarded_semaphore"))
        #expect(elf.fileOffset(forAddress: symbol.value) == sema)

        let begin = try #require(probes.first { $0.name == "begin__work" })
        #expect(begin.arguments.isEmpty)
        #expect(begin.dtraceName == "begin-work")
        #expect(begin.function == "main")

        // The file offset holds the nop that sdt.h places at the probe site.
        let fd = open(prog.binary, O_RDONLY)
        defer { close(fd) }
        var byte: UInt8 = 0
        #expect(pread(fd, &byte, 1, off_t(tick.fileOffset)) == 1)
        #expect(byte == 0x90)
    }

    @Test(.enabled(if: Exec.which("cc") != nil, "needs a C compiler"))
    func symbolsAndOffsets() throws {
        let prog = try TestProgram(TestProgram.usdtSource)
        defer { prog.remove() }
        let elf = try ELFFile(path: prog.binary)
        #expect(elf.section(named: ".text") != nil)
        let work = try #require(try elf.symbol(named: "work"))
        #expect(work.kind == .function && work.size > 0)
        let off = try #require(elf.fileOffset(forAddress: work.value))
        #expect(try elf.symbol(containing: work.value + 1)?.name == "work")
        // The function's bytes at that offset are its code: the same bytes as in .text.
        let text = try #require(elf.section(named: ".text"))
        #expect(off >= text.offset && off < text.offset + text.size)
        #expect(throws: LumosError.self) { try ELFFile(path: "/proc/self/status") }
    }

    @Test(.enabled(if: Files.exists("/usr/lib/postgresql/15/bin/postgres"), "needs Debian's postgresql-15"))
    func postgresqlServerProbes() throws {
        let probes = try USDT.probes(inFile: "/usr/lib/postgresql/15/bin/postgres")
        #expect(probes.allSatisfy { $0.provider == "postgresql" })
        let names = Set(probes.map(\.dtraceName))
        for n in ["query-start", "query-done", "transaction-start", "transaction-commit"] { #expect(names.contains(n)) }
        let start = try #require(probes.first { $0.name == "query__start" })
        #expect(start.arguments.count == 1 && start.arguments[0].size == 8)
        #expect(start.semaphoreOffset != nil)
        #expect(start.fileOffset > 0)
    }

    @Test func processMapsOfSelf() throws {
        let files = ProcessMaps.mappedFiles(pid: getpid())
        #expect(files.contains { $0.contains("libc.so") })
        #expect(ProcessMaps.attachPath(pid: getpid(), path: files[0]) == files[0])
        #expect(ProcessMaps.resolveCommand("sh") != nil)
        #expect(ProcessMaps.resolveCommand("no-such-command-lumos") == nil)
    }
}
