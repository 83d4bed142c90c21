/// One eBPF instruction (linux/bpf.h `struct bpf_insn`): 8 bytes, little-endian.
public struct BPFInstruction: Equatable, Sendable {
    public var code: UInt8
    public var dst: UInt8
    public var src: UInt8
    public var offset: Int16
    public var imm: Int32

    public init(code: UInt8, dst: UInt8 = 0, src: UInt8 = 0, offset: Int16 = 0, imm: Int32 = 0) {
        self.code = code
        self.dst = dst
        self.src = src
        self.offset = offset
        self.imm = imm
    }

    public var bytes: [UInt8] {
        let o = UInt16(bitPattern: offset), i = UInt32(bitPattern: imm)
        return [code, (src << 4) | (dst & 0xf), UInt8(o & 0xff), UInt8(o >> 8),
                UInt8(i & 0xff), UInt8((i >> 8) & 0xff), UInt8((i >> 16) & 0xff), UInt8(i >> 24)]
    }
}

/// eBPF registers: R0 return value, R1–R5 helper arguments (clobbered by calls),
/// R6–R9 callee-saved, R10 the read-only frame pointer.
public enum Reg: UInt8, Sendable {
    case r0 = 0, r1, r2, r3, r4, r5, r6, r7, r8, r9, r10
}

/// Opcode pieces (linux/bpf_common.h, linux/bpf.h).
public enum Op {
    // Classes.
    public static let ld: UInt8 = 0x00, ldx: UInt8 = 0x01, st: UInt8 = 0x02, stx: UInt8 = 0x03
    public static let alu: UInt8 = 0x04, jmp: UInt8 = 0x05, jmp32: UInt8 = 0x06, alu64: UInt8 = 0x07
    // Sizes.
    public static let w: UInt8 = 0x00, h: UInt8 = 0x08, b: UInt8 = 0x10, dw: UInt8 = 0x18
    // Modes.
    public static let imm: UInt8 = 0x00, mem: UInt8 = 0x60, atomic: UInt8 = 0xc0
    // Sources.
    public static let k: UInt8 = 0x00, x: UInt8 = 0x08

    public static func size(_ bytes: Int) -> UInt8 {
        switch bytes {
        case 1: return b
        case 2: return h
        case 4: return w
        default: return dw
        }
    }
}

public enum ALUOp: UInt8, Sendable {
    case add = 0x00, sub = 0x10, mul = 0x20, div = 0x30, or = 0x40, and = 0x50, lsh = 0x60, rsh = 0x70
    case neg = 0x80, mod = 0x90, xor = 0xa0, mov = 0xb0, arsh = 0xc0
}

public enum JumpOp: UInt8, Sendable {
    case ja = 0x00, jeq = 0x10, jgt = 0x20, jge = 0x30, jset = 0x40, jne = 0x50
    case jsgt = 0x60, jsge = 0x70, call = 0x80, exit = 0x90, jlt = 0xa0, jle = 0xb0, jslt = 0xc0, jsle = 0xd0
}

/// Kernel helper function ids (linux/bpf.h `__BPF_FUNC_MAPPER`).
public enum BPFHelper: Int32, Sendable {
    case mapLookupElem = 1, mapUpdateElem = 2, mapDeleteElem = 3, probeRead = 4, ktimeGetNs = 5
    case getSmpProcessorId = 8, getCurrentPidTgid = 14, getCurrentUidGid = 15, getCurrentComm = 16
    case getStackid = 27, getCurrentTask = 35, probeReadStr = 45, getCurrentCgroupId = 80
    case probeReadUser = 112, probeReadKernel = 113, probeReadUserStr = 114, probeReadKernelStr = 115
    case getStack = 67, ringbufOutput = 130, ringbufQuery = 134, getCurrentTaskBTF = 158, taskPtRegs = 175
}
