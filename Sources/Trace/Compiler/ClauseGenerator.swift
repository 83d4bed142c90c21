/// Generates one BPF program for one clause on one probe.
///
/// Conventions: R6 holds the context for the whole program, R9 the globals map value,
/// R7 is short-lived callee-saved scratch (an aggregation or variable's map value), R8 the
/// per-CPU scratch space. An integer expression leaves its value in R0; intermediate values
/// are spilled to 8-byte stack slots, which the verifier tracks precisely. A string
/// expression fills a zero-padded `Layout.stringSize` buffer in the scratch space.
struct ClauseGenerator {
    let compiler: DCompiler
    let probe: ResolvedProbe
    let probeID: Int
    var asm = Assembler()
    var stackUsed = 0
    var maxStack = 0
    var locals: [String: (offset: Int, type: DType)] = [:]
    var exitLabel: Assembler.Label
    var usesGlobals = false
    var usesScratch = false
    /// A per-firing record counter: the first record of a firing starts DTrace's
    /// "CPU ID FUNCTION:NAME" line, later ones continue it.
    var recordSequenceSlot = 0
    /// The clause statement being generated, 1-based (DTrace's "action #N" in fault reports).
    var actionNumber = 0
    /// In a clause that calls speculate(): the tag its records carry (0 before speculate(),
    /// slot << 16 | generation << 24 after, `droppedSpeculation` when nothing may be written).
    var speculationSlot: Int?

    init(compiler: DCompiler, probe: ResolvedProbe, probeID: Int) {
        self.compiler = compiler
        self.probe = probe
        self.probeID = probeID
        exitLabel = asm.newLabel()
    }

    // MARK: Stack

    /// Frame offsets of buffers of 64 bytes or more (strings, keys, records) are this bias
    /// plus their offset in the per-CPU scratch map value (dt_scratch, base register R8);
    /// smaller slots (integer spills, map keys of integers) are negative offsets from R10.
    static let scratchBias = 1 << 20
    /// Bytes of per-CPU scratch space a clause may use (the map's value size).
    public static let scratchSize = 16384

    /// Bytes in use: the stack's in the low 20 bits, the scratch space's above, so the
    /// `let mark = stackUsed ... stackUsed = mark` pattern releases both.
    var stackBytes: Int { stackUsed & (Self.scratchBias - 1) }
    var scratchBytes: Int { stackUsed >> 20 }

    /// Reserves `size` bytes (rounded to 8) and returns the frame offset: negative on the
    /// 512-byte BPF stack for small slots, scratchBias + n in the per-CPU scratch space for
    /// buffers of 64 bytes or more (docs/trace.md).
    mutating func alloc(_ size: Int, at loc: SourceLocation) throws(DCompileError) -> Int {
        let rounded = (size + 7) & ~7
        if rounded >= 64 {
            let scratch = scratchBytes + rounded
            if scratch > Self.scratchSize {
                throw DCompileError(.type, "clause needs more than the \(Self.scratchSize) bytes of per-CPU string space (too many strings or keys in one statement)", at: loc)
            }
            stackUsed = stackBytes | scratch << 20
            usesScratch = true
            return Self.scratchBias + scratch - rounded
        }
        let stack = stackBytes + rounded
        if stack > 512 {
            throw DCompileError(.type, "clause needs more than the 512 bytes of BPF stack (too many values in one statement)", at: loc)
        }
        stackUsed = stack | scratchBytes << 20
        maxStack = max(maxStack, stack)
        return -stack
    }

    /// The base register and its offset for a frame offset.
    func frame(_ offset: Int) -> (Reg, Int) {
        offset >= Self.scratchBias ? (.r8, offset - Self.scratchBias) : (.r10, offset)
    }

    mutating func fload(_ dst: Reg, _ offset: Int, size: Int = 8) {
        let (b, o) = frame(offset)
        asm.load(dst, b, offset: o, size: size)
    }

    mutating func fstore(_ offset: Int, _ src: Reg, size: Int = 8) {
        let (b, o) = frame(offset)
        asm.store(b, offset: o, src, size: size)
    }

    mutating func fstore(_ offset: Int, imm: Int32, size: Int = 8) {
        let (b, o) = frame(offset)
        asm.store(b, offset: o, imm: imm, size: size)
    }

    mutating func zero(_ offset: Int, _ size: Int) {
        for i in stride(from: 0, to: size, by: 8) { fstore(offset + i, imm: 0) }
    }

    mutating func copy(from src: Int, to dst: Int, _ size: Int) {
        for i in stride(from: 0, to: size, by: 8) {
            fload(.r1, src + i)
            fstore(dst + i, .r1)
        }
    }

    /// Points `reg` at a frame offset.
    mutating func framePointer(_ reg: Reg, _ offset: Int) {
        let (b, o) = frame(offset)
        asm.mov(reg, b)
        asm.alu(.add, reg, imm: Int32(o))
    }

    // MARK: Program

    mutating func generate(_ clause: Clause) throws(DCompileError) -> [BPFInstruction] {
        asm.currentLine = clause.location.line
        asm.mov(.r6, .r1)
        try stoppedCheck(clause.location)
        // R8 = this CPU's scratch space; skipped (patched below) when nothing uses it.
        let scratchStart = asm.instructions.count
        let scratchKey = try alloc(8, at: clause.location)
        fstore(scratchKey, imm: 0)
        asm.loadMap(.r1, map: compiler.scratchMap)
        framePointer(.r2, scratchKey)
        asm.call(.mapLookupElem)
        asm.jump(.jeq, .r0, imm: 0, exitLabel)
        asm.mov(.r8, .r0)
        let scratchEnd = asm.instructions.count
        // Globals are looked up once; programs that do not use them skip this (patched below).
        let globalsStart = asm.instructions.count
        let keySlot = try alloc(8, at: clause.location)
        fstore(keySlot, imm: 0)
        asm.loadMap(.r1, map: compiler.globalsMap)
        framePointer(.r2, keySlot)
        asm.call(.mapLookupElem)
        asm.jump(.jeq, .r0, imm: 0, exitLabel)
        asm.mov(.r9, .r0)
        let globalsEnd = asm.instructions.count
        try syscallFilter(clause.location)
        try declareLocals(clause)
        recordSequenceSlot = try alloc(8, at: clause.location)
        fstore(recordSequenceSlot, imm: 0)
        let speculates = SpeculationRules.speculates(clause)
        if speculates {
            let slot = try alloc(8, at: clause.location)
            fstore(slot, imm: 0)
            speculationSlot = slot
        }
        if let p = clause.predicate {
            asm.currentLine = p.location.line
            let mark = stackUsed
            try intExpr(p)
            asm.jump(.jeq, .r0, imm: 0, exitLabel)
            stackUsed = mark
        }
        if let body = clause.body {
            for (i, s) in body.enumerated() {
                actionNumber = i + 1
                try statement(s)
            }
            // A clause with only speculate() traces the default action speculatively.
            if speculates && !SpeculationRules.records(clause) {
                try emitRecord(kind: .probeFired, id: 0, args: [], at: clause.location)
            }
        } else {
            try emitRecord(kind: .probeFired, id: 0, args: [], at: clause.location)
        }
        asm.bind(exitLabel)
        asm.mov(.r0, imm: 0)
        asm.exit()
        var code: [BPFInstruction]
        do { code = try asm.finish() } catch {
            throw DCompileError(.type, error.description, at: clause.location)
        }
        if !usesScratch {
            for i in scratchStart..<scratchEnd { code[i] = BPFInstruction(code: Op.jmp | JumpOp.ja.rawValue) }
            asm.dropRelocation(at: scratchStart + 1)
        }
        if !usesGlobals {
            // Replace the globals lookup with no-ops (ja +0) so offsets stay valid.
            for i in globalsStart..<globalsEnd { code[i] = BPFInstruction(code: Op.jmp | JumpOp.ja.rawValue) }
            asm.dropRelocation(at: globalsStart + 1)
        }
        return code
    }

    /// this-> variables live for the whole clause, so their slots are reserved up front.
    mutating func declareLocals(_ clause: Clause) throws(DCompileError) {
        func walk(_ e: Expr, _ out: inout [(String, Expr)]) {
            switch e.kind {
            case .assign(_, let l, let r):
                if case .thisVar(let n) = l.kind { out.append((n, r)) }
                walk(r, &out)
            case .binary(_, let a, let b): walk(a, &out); walk(b, &out)
            case .ternary(let c, let a, let b): walk(c, &out); walk(a, &out); walk(b, &out)
            case .call(_, let args): for a in args { walk(a, &out) }
            case .unary(_, let x), .postfix(_, let x), .cast(_, let x): walk(x, &out)
            default: break
            }
        }
        func statements(_ list: [Statement], _ out: inout [(String, Expr)]) {
            for s in list {
                switch s.kind {
                case .expression(let e): walk(e, &out)
                case .ifElse(let c, let a, let b): walk(c, &out); statements(a, &out); statements(b, &out)
                }
            }
        }
        var found: [(String, Expr)] = []
        statements(clause.body ?? [], &found)
        for (name, rhs) in found where locals[name] == nil {
            let t = try compiler.staticType(rhs, probe.context)
            let off = try alloc(t.storageSize, at: rhs.location)
            locals[name] = (off, t)
        }
    }

    /// Once exit() ran (or the session is ending), a probe does nothing: END sees the
    /// aggregations as they were when tracing stopped. BEGIN, END and ERROR always run.
    mutating func stoppedCheck(_ loc: SourceLocation) throws(DCompileError) {
        guard compiler.usesExit else { return }
        switch probe.attach {
        case .begin, .end, .error: return
        default: break
        }
        let slot = try alloc(8, at: loc)
        fstore(slot, imm: 0)
        asm.loadMap(.r1, map: compiler.stateMap)
        framePointer(.r2, slot)
        asm.call(.mapLookupElem)
        asm.jump(.jeq, .r0, imm: 0, exitLabel)
        asm.load(.r0, .r0, offset: 0)
        asm.jump(.jne, .r0, imm: 0, exitLabel)
    }

    /// Sets dt_state[0]: no probe runs its clauses from now on.
    mutating func markStopped(_ loc: SourceLocation) throws(DCompileError) {
        let slot = try alloc(8, at: loc)
        fstore(slot, imm: 0)
        asm.loadMap(.r1, map: compiler.stateMap)
        framePointer(.r2, slot)
        asm.call(.mapLookupElem)
        let skip = asm.newLabel()
        asm.jump(.jeq, .r0, imm: 0, skip)
        asm.store(.r0, offset: 0, imm: 1)
        asm.bind(skip)
    }

    /// Under a syscall group attached to raw_syscalls, only the matched numbers pass.
    mutating func syscallFilter(_ loc: SourceLocation) throws(DCompileError) {
        guard case .allSyscalls(_, let numbers?) = probe.attach else { return }
        let m = compiler.syscallFilterMap(numbers)
        let slot = try alloc(8, at: loc)
        asm.load(.r0, .r6, offset: 8)
        asm.jump(.jgt, .r0, imm: 1023, exitLabel)
        fstore(slot, .r0, size: 4)
        asm.loadMap(.r1, map: m)
        framePointer(.r2, slot)
        asm.call(.mapLookupElem)
        asm.jump(.jeq, .r0, imm: 0, exitLabel)
        asm.load(.r0, .r0, offset: 0)
        asm.jump(.jeq, .r0, imm: 0, exitLabel)
    }

    // MARK: Statements

    mutating func statement(_ s: Statement) throws(DCompileError) {
        asm.currentLine = s.location.line
        let mark = stackUsed
        defer { stackUsed = mark }
        switch s.kind {
        case .expression(let e):
            try topLevel(e)
        case .ifElse(let c, let a, let b):
            let elseLabel = asm.newLabel(), end = asm.newLabel()
            try intExpr(c)
            asm.jump(.jeq, .r0, imm: 0, elseLabel)
            for x in a { try statement(x) }
            asm.jump(end)
            asm.bind(elseLabel)
            for x in b { try statement(x) }
            asm.bind(end)
        }
    }

    mutating func topLevel(_ e: Expr) throws(DCompileError) {
        if case .assign("=", let lhs, let rhs) = e.kind, let (name, keys) = aggregationTarget(lhs) {
            try aggregate(name, keys, rhs)
            return
        }
        if case .call(let f, let args) = e.kind, try action(f, args, at: e.location) {
            return
        }
        _ = try expr(e)
    }

    func aggregationTarget(_ lhs: Expr) -> (String, [Expr])? {
        if case .aggregation(let n) = lhs.kind { return (n, []) }
        if case .index(let b, let keys) = lhs.kind, case .aggregation(let n) = b.kind { return (n, keys) }
        return nil
    }
}

extension Assembler {
    mutating func dropRelocation(at instruction: Int) {
        removeRelocations { $0.instruction == instruction }
    }
}
