/// Builds an instruction stream with symbolic jump targets. Every instruction carries
/// the D source line it was generated for, so a verifier rejection at instruction N
/// can be reported against the user's script.
public struct Assembler: Sendable {
    public struct Label: Hashable, Sendable { let id: Int }

    public private(set) var instructions: [BPFInstruction] = []
    /// Source line per instruction (0 when none).
    public private(set) var lines: [Int] = []
    public var currentLine = 0
    var labelCount = 0
    var targets: [Int: Int] = [:]
    var fixups: [(index: Int, label: Int)] = []
    /// LD_IMM64 instructions whose imm must become the fd of map `map` before loading.
    public private(set) var mapRelocations: [MapRelocation] = []

    public init() {}

    public mutating func newLabel() -> Label {
        labelCount += 1
        return Label(id: labelCount)
    }

    public mutating func bind(_ label: Label) { targets[label.id] = instructions.count }

    public mutating func emit(_ insn: BPFInstruction) {
        instructions.append(insn)
        lines.append(currentLine)
    }

    // MARK: ALU

    public mutating func alu(_ op: ALUOp, _ dst: Reg, _ src: Reg) {
        emit(BPFInstruction(code: Op.alu64 | op.rawValue | Op.x, dst: dst.rawValue, src: src.rawValue))
    }

    public mutating func alu(_ op: ALUOp, _ dst: Reg, imm: Int32) {
        emit(BPFInstruction(code: Op.alu64 | op.rawValue | Op.k, dst: dst.rawValue, imm: imm))
    }

    public mutating func mov(_ dst: Reg, _ src: Reg) { alu(.mov, dst, src) }

    /// Loads any 64-bit constant: a 32-bit move when it fits, else the two-slot LD_IMM64.
    public mutating func mov(_ dst: Reg, imm value: Int64) {
        if value >= Int64(Int32.min) && value <= Int64(Int32.max) {
            alu(.mov, dst, imm: Int32(value))
        } else {
            let u = UInt64(bitPattern: value)
            emit(BPFInstruction(code: Op.ld | Op.dw | Op.imm, dst: dst.rawValue, imm: Int32(bitPattern: UInt32(u & 0xffff_ffff))))
            emit(BPFInstruction(code: 0, imm: Int32(bitPattern: UInt32(u >> 32))))
        }
    }

    /// LD_IMM64 with src = BPF_PSEUDO_MAP_FD: the verifier turns the fd into a map pointer.
    public mutating func loadMap(_ dst: Reg, fd: Int32) {
        emit(BPFInstruction(code: Op.ld | Op.dw | Op.imm, dst: dst.rawValue, src: 1, imm: fd))
        emit(BPFInstruction(code: 0))
    }

    /// Like `loadMap(_:fd:)` for a map that does not exist yet: the runtime patches the fd in.
    public mutating func loadMap(_ dst: Reg, map index: Int) {
        mapRelocations.append(MapRelocation(instruction: instructions.count, map: index))
        loadMap(dst, fd: -1)
    }

    public mutating func removeRelocations(where drop: (MapRelocation) -> Bool) {
        mapRelocations.removeAll(where: drop)
    }

    // MARK: Memory

    public mutating func load(_ dst: Reg, _ base: Reg, offset: Int, size: Int = 8) {
        emit(BPFInstruction(code: Op.ldx | Op.mem | Op.size(size), dst: dst.rawValue, src: base.rawValue, offset: Int16(offset)))
    }

    public mutating func store(_ base: Reg, offset: Int, _ src: Reg, size: Int = 8) {
        emit(BPFInstruction(code: Op.stx | Op.mem | Op.size(size), dst: base.rawValue, src: src.rawValue, offset: Int16(offset)))
    }

    public mutating func store(_ base: Reg, offset: Int, imm: Int32, size: Int = 8) {
        emit(BPFInstruction(code: Op.st | Op.mem | Op.size(size), dst: base.rawValue, offset: Int16(offset), imm: imm))
    }

    /// `lock *(u64 *)(base + offset) += src`: shared counters updated from many CPUs.
    public mutating func atomicAdd(_ base: Reg, offset: Int, _ src: Reg) {
        emit(BPFInstruction(code: Op.stx | Op.atomic | Op.dw, dst: base.rawValue, src: src.rawValue, offset: Int16(offset), imm: 0))
    }

    /// `r0 = cmpxchg((u64 *)(base + offset), r0, src)`: stores src when the word equals R0;
    /// R0 gets the old word either way (BPF_CMPXCHG, kernel 5.12).
    public mutating func atomicCompareExchange(_ base: Reg, offset: Int, _ src: Reg) {
        emit(BPFInstruction(code: Op.stx | Op.atomic | Op.dw, dst: base.rawValue, src: src.rawValue, offset: Int16(offset), imm: 0xf1))
    }

    // MARK: Control flow

    public mutating func jump(_ label: Label) { jump(.ja, .r0, imm: 0, label) }

    public mutating func jump(_ op: JumpOp, _ dst: Reg, _ src: Reg, _ label: Label) {
        fixups.append((instructions.count, label.id))
        emit(BPFInstruction(code: Op.jmp | op.rawValue | Op.x, dst: dst.rawValue, src: src.rawValue))
    }

    public mutating func jump(_ op: JumpOp, _ dst: Reg, imm: Int32, _ label: Label) {
        fixups.append((instructions.count, label.id))
        emit(BPFInstruction(code: Op.jmp | op.rawValue | Op.k, dst: dst.rawValue, imm: imm))
    }

    public mutating func call(_ helper: BPFHelper) {
        emit(BPFInstruction(code: Op.jmp | JumpOp.call.rawValue, imm: helper.rawValue))
    }

    public mutating func exit() {
        emit(BPFInstruction(code: Op.jmp | JumpOp.exit.rawValue))
    }

    /// Resolves jumps; fails on an unbound label or an offset beyond 16 bits.
    public func finish() throws(LumosBPFError) -> [BPFInstruction] {
        var out = instructions
        for f in fixups {
            guard let target = targets[f.label] else { throw LumosBPFError("internal error: unbound jump label") }
            let delta = target - f.index - 1
            guard delta >= Int(Int16.min) && delta <= Int(Int16.max) else {
                throw LumosBPFError("program too large: jump of \(delta) instructions")
            }
            out[f.index].offset = Int16(delta)
        }
        return out
    }
}

/// A failure building, loading or attaching BPF objects.
public struct LumosBPFError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ d: String) { description = d }
}

public struct MapRelocation: Equatable, Sendable {
    public var instruction: Int
    public var map: Int
}
