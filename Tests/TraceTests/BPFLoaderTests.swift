import Glibc
import Testing
@testable import Trace


struct BPFEncodingTests {
    @Test func instructionBytes() {
        // r1 = r10 (mov64 x): code 0xbf, dst 1, src 10.
        #expect(BPFInstruction(code: 0xbf, dst: 1, src: 10).bytes == [0xbf, 0xa1, 0, 0, 0, 0, 0, 0])
        // *(u64 *)(r10 - 8) = 5: code 0x7a, off -8 as little-endian 0xfff8.
        var a = Assembler()
        a.store(.r10, offset: -8, imm: 5)
        #expect(a.instructions[0].bytes == [0x7a, 0x0a, 0xf8, 0xff, 5, 0, 0, 0])
    }

    @Test func wideConstantsUseTwoSlots() {
        var a = Assembler()
        a.mov(.r1, imm: 0x1_0000_0002)
        #expect(a.instructions.count == 2)
        #expect(a.instructions[0].bytes == [0x18, 0x01, 0, 0, 2, 0, 0, 0])
        #expect(a.instructions[1].bytes == [0, 0, 0, 0, 1, 0, 0, 0])
    }

    @Test func labelsResolveForwardAndBackward() throws {
        var a = Assembler()
        let top = a.newLabel(), out = a.newLabel()
        a.bind(top)
        a.jump(.jeq, .r1, imm: 0, out)
        a.alu(.sub, .r1, imm: 1)
        a.jump(top)
        a.bind(out)
        a.exit()
        let code = try a.finish()
        #expect(code[0].offset == 2)
        #expect(code[2].offset == -3)
    }

    @Test func verifierReasonIsExtracted() {
        let log = "0: R1=ctx() R10=fp0\n0: (79) r0 = *(u64 *)(r10 -8)\ninvalid read from stack off -8+0 size 8\nprocessed 1 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0\n"
        let r = BPFProgram.rejection(errno: EACCES, log: log)
        #expect(r.instruction == 0)
        #expect(r.reason == "invalid read from stack off -8+0 size 8")
    }
}

@Suite(.serialized) struct BPFKernelTests {
    /// A hand-assembled tracepoint program counts getppid() calls by this process into an
    /// array map with an atomic add; the count must equal the calls made.
    @Test(.enabled(if: isRoot, "needs root")) func tracepointCountsIntoMap() throws {
        let map = try BPFMap(.array, name: "test_count", keySize: 4, valueSize: 8, maxEntries: 1)
        let me = getpid()
        var a = Assembler()
        let done = a.newLabel()
        a.call(.getCurrentPidTgid)
        a.alu(.rsh, .r0, imm: 32)
        a.jump(.jne, .r0, imm: me, done)
        a.store(.r10, offset: -4, imm: 0, size: 4)
        a.loadMap(.r1, fd: map.fd)
        a.mov(.r2, .r10)
        a.alu(.add, .r2, imm: -4)
        a.call(.mapLookupElem)
        a.jump(.jeq, .r0, imm: 0, done)
        a.mov(.r1, imm: 1)
        a.atomicAdd(.r0, offset: 0, .r1)
        a.bind(done)
        a.mov(.r0, imm: 0)
        a.exit()
        let prog = try BPFProgram(.tracepoint, name: "test_getppid", instructions: try a.finish())
        let id = try TraceFS.eventID(category: "syscalls", name: "sys_enter_getppid")
        let attachment = try Attachment.tracepoint(id: id, program: prog, what: "syscalls:sys_enter_getppid")
        for _ in 0..<137 { _ = getppid() }
        withExtendedLifetime(attachment) {}
        let value = map.lookup([0, 0, 0, 0])?.first ?? []
        let count = value.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        #expect(count == 137)
    }

    @Test(.enabled(if: isRoot, "needs root")) func verifierRejectionCarriesLog() throws {
        var a = Assembler()
        // Reading R2 before anything wrote it.
        a.mov(.r0, .r2)
        a.exit()
        let e = #expect(throws: BPFProgram.Rejected.self) {
            _ = try BPFProgram(.tracepoint, name: "test_bad", instructions: try a.finish())
        }
        #expect(e?.instruction == 0)
        #expect(e?.reason.contains("R2 !read_ok") == true)
    }
}
