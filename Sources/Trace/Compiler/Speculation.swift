/// Speculative tracing (Dynamic Tracing Guide, "Speculative Tracing"; docs/trace.md):
/// `speculation()` takes an inactive slot of the dt_spec map with a compare-and-swap,
/// `speculate(id)` tags the clause's later records with the slot and its generation,
/// `commit(id)` / `discard(id)` write a record naming that generation and then free the
/// slot (inactive, next generation) with a compare-and-swap. User space holds tagged
/// records per slot and generation until that record, then prints or drops them
/// (TraceSession).

/// A slot's 8-byte state word in dt_spec: bits 0-7 the state, bits 8-15 a generation
/// that commit() and discard() advance when they free the slot, so a record tagged for an
/// earlier use of the slot is never taken for the next one. DTrace's committing and
/// discarding states (which make a slot "busy" until its cleaner has copied the per-CPU
/// buffers) are not needed: the records are already in the one ring buffer, in order.
public enum SpeculationState: UInt64, Sendable {
    case inactive = 0, active = 1
}

/// DTrace's compile-time rules for speculations, checked per clause in statement order
/// (as libdtrace checks each new action against the earlier ones of its clause:
/// dt_cc.c's D_SPEC_*, D_COMM_*, D_AGG_*, D_EXIT_SPEC and D_DREC_COMM errors).
enum SpeculationRules {
    static let recording: Set<String> = ["printf", "trace", "printa", "clear", "trunc", "normalize", "denormalize"]

    static func check(_ clause: Clause) throws(DCompileError) {
        var speculating = false, committed = false, recorded = false
        func visit(_ e: Expr) throws(DCompileError) {
            var fail = { (message: String) in DCompileError(.type, message, at: e.location) }
            if case .assign("=", let lhs, _) = e.kind, isAggregation(lhs) {
                fail = { (message: String) in DCompileError(.type, message, at: lhs.location) }
                if committed { throw fail("aggregating actions may not follow commit( )") }
                if speculating { throw fail("aggregating actions may not follow speculate( )") }
                recorded = true
                return
            }
            guard case .call(let f, let args) = e.kind else { return }
            switch f {
            case "speculate", "commit", "discard":
                guard args.count == 1 else { throw fail("\(f)( ) takes one argument, a speculation identifier") }
            default: break
            }
            switch f {
            case "commit":
                if committed { throw fail("commit( ) may not follow commit( )") }
                if recorded { throw fail("commit( ) may not follow data-recording action(s)") }
                committed = true
            case "speculate":
                if speculating { throw fail("speculate( ) may not follow speculate( )") }
                if committed { throw fail("speculate( ) may not follow commit( )") }
                if recorded { throw fail("speculate( ) may not follow data-recording action(s)") }
                speculating = true
            case "discard":
                break
            case "exit":
                if speculating { throw fail("exit( ) may not follow speculate( )") }
                if committed { throw fail("data-recording actions may not follow commit( )") }
                recorded = true
            default:
                if ClauseGenerator.destructive.contains(f) && speculating {
                    throw fail("destructive actions may not follow speculate( )")
                }
                guard recording.contains(f) else { return }
                if committed { throw fail("data-recording actions may not follow commit( )") }
                // Records after speculate() go to the speculation, not the principal buffer.
                if !speculating { recorded = true }
            }
        }
        func walk(_ list: [Statement]) throws(DCompileError) {
            for s in list {
                switch s.kind {
                case .expression(let e): try visit(e)
                case .ifElse(_, let a, let b):
                    try walk(a)
                    try walk(b)
                }
            }
        }
        try walk(clause.body ?? [])
    }

    static func isAggregation(_ lhs: Expr) -> Bool {
        if case .aggregation = lhs.kind { return true }
        if case .index(let b, _) = lhs.kind, case .aggregation = b.kind { return true }
        return false
    }

    /// Whether a clause calls speculate() (then its records carry the speculation's tag).
    static func speculates(_ clause: Clause) -> Bool {
        (clause.body ?? []).contains { DCompiler.calls("speculate", $0) }
    }

    /// Whether a clause has a data-recording action (else a speculate() alone traces the
    /// default action, the probe's line, speculatively).
    static func records(_ clause: Clause) -> Bool {
        (clause.body ?? []).contains { s in recording.contains { DCompiler.calls($0, s) } }
    }
}

extension DCompiler {
    /// dt_spec, created on first use: slots 1...speculations (0 stays inactive, so id 0
    /// finds nothing, as in DTrace).
    func speculationsMap() -> Int {
        if let m = speculationMap { return m }
        let idx = addMap(MapSpec(name: "dt_spec", kind: .array, keySize: 4, valueSize: 8, maxEntries: speculations + 1))
        speculationMap = idx
        return idx
    }
}

extension ClauseGenerator {
    /// Marks the speculation tag slot: no record of this firing may be written.
    static let droppedSpeculation: Int32 = 1

    /// `speculation()`: R0 = the first inactive slot, taken with a compare-and-swap to
    /// ACTIVE, or 0 when none is free (counted in drops[2]).
    mutating func speculationCall(_ e: Expr) throws(DCompileError) {
        let m = compiler.speculationsMap()
        let key = try alloc(8, at: e.location)
        let old = try alloc(8, at: e.location)
        let done = asm.newLabel()
        for slot in 1...compiler.speculations {
            let next = asm.newLabel(), take = asm.newLabel()
            fstore(key, imm: Int32(slot), size: 4)
            asm.loadMap(.r1, map: m)
            framePointer(.r2, key)
            asm.call(.mapLookupElem)
            asm.jump(.jeq, .r0, imm: 0, next)
            asm.load(.r1, .r0, offset: 0)
            asm.mov(.r2, .r1)
            asm.alu(.and, .r2, imm: 0xff)
            asm.jump(.jne, .r2, imm: Int32(SpeculationState.inactive.rawValue), next)
            asm.bind(take)
            fstore(old, .r1)
            asm.mov(.r3, .r1)
            asm.alu(.or, .r3, imm: Int32(SpeculationState.active.rawValue))
            asm.mov(.r4, .r0)
            asm.mov(.r0, .r1)
            asm.atomicCompareExchange(.r4, offset: 0, .r3)
            fload(.r1, old)
            // Another CPU took it between the load and the swap: try the next slot.
            asm.jump(.jne, .r0, .r1, next)
            asm.mov(.r0, imm: Int64(slot))
            asm.jump(done)
            asm.bind(next)
        }
        try countDrop(2, at: e.location)
        asm.mov(.r0, imm: 0)
        asm.bind(done)
    }

    /// Loads the state word of speculation R0 into R1 with its map value pointer in R7, or
    /// jumps to `missing` for 0 and slots not ACTIVE (DTrace silently ignores those). An
    /// id above nspec is DTrace's "illegal operation" fault: the clause stops there. The
    /// id is left in `key` (4 bytes).
    mutating func activeSpeculation(key: Int, missing: Assembler.Label, at loc: SourceLocation) throws(DCompileError) {
        let m = compiler.speculationsMap()
        asm.jump(.jeq, .r0, imm: 0, missing)
        let inRange = asm.newLabel()
        asm.jump(.jle, .r0, imm: Int32(compiler.speculations), inRange)
        let value = try alloc(8, at: loc)
        fstore(value, .r0)
        try emitFault(addressSlot: value, illegalOperation: true, at: loc)
        asm.jump(exitLabel)
        asm.bind(inRange)
        fstore(key, .r0, size: 4)
        asm.loadMap(.r1, map: m)
        framePointer(.r2, key)
        asm.call(.mapLookupElem)
        asm.jump(.jeq, .r0, imm: 0, missing)
        asm.mov(.r7, .r0)
        asm.load(.r1, .r7, offset: 0)
        asm.mov(.r2, .r1)
        asm.alu(.and, .r2, imm: 0xff)
        asm.jump(.jne, .r2, imm: Int32(SpeculationState.active.rawValue), missing)
    }

    /// R1 = the header tag (slot << 16 | generation << 24) for state word R1 and the id in `key`.
    mutating func speculationTag(key: Int) {
        asm.alu(.rsh, .r1, imm: 8)
        asm.alu(.and, .r1, imm: 0xff)
        asm.alu(.lsh, .r1, imm: 24)
        fload(.r2, key, size: 4)
        asm.alu(.lsh, .r2, imm: 16)
        asm.alu(.or, .r1, .r2)
    }

    /// `speculate(id)`: the clause's later records carry the speculation's tag; for an id
    /// that is 0, out of range or not active they are not written at all.
    mutating func speculate(_ args: [Expr], at loc: SourceLocation) throws(DCompileError) {
        guard let slot = speculationSlot else { return }
        try intExpr(args[0])
        let key = try alloc(8, at: loc)
        let dropped = asm.newLabel(), done = asm.newLabel()
        try activeSpeculation(key: key, missing: dropped, at: loc)
        speculationTag(key: key)
        fstore(slot, .r1)
        asm.jump(done)
        asm.bind(dropped)
        fstore(slot, imm: Self.droppedSpeculation)
        asm.bind(done)
    }

    /// `commit(id)` / `discard(id)`: a header-only record naming the slot and generation,
    /// then the slot is freed (inactive, next generation) by compare-and-swap. The record
    /// goes first, so any record of the slot's next use comes after it in the ring buffer.
    /// When the ring buffer has no room a drop is counted and the speculation stays active.
    /// Two CPUs that end one speculation at once both write a record; user space acts on
    /// the first and ignores the second, whose generation has ended.
    mutating func endSpeculation(commit: Bool, _ args: [Expr], at loc: SourceLocation) throws(DCompileError) {
        try intExpr(args[0])
        let key = try alloc(8, at: loc)
        let old = try alloc(8, at: loc)
        let r = try alloc(Layout.recordHeader, at: loc)
        let skip = asm.newLabel(), sent = asm.newLabel()
        try activeSpeculation(key: key, missing: skip, at: loc)
        fstore(old, .r1)
        let kind: RecordKind = commit ? .commit : .discard
        let id = compiler.addAction(ActionSpec(kind: kind, format: "", argumentTypes: [], aggregation: nil, location: loc))
        fstore(r, imm: Int32(kind.rawValue), size: 4)
        fstore(r + 4, imm: Int32(id), size: 4)
        asm.call(.getSmpProcessorId)
        fload(.r1, old)
        speculationTag(key: key)
        asm.alu(.or, .r0, .r1)
        fstore(r + 8, .r0, size: 4)
        fstore(r + 12, imm: Int32(probeID), size: 4)
        try ringOutput(r, size: Layout.recordHeader, wake: false, at: loc)
        asm.jump(.jeq, .r0, imm: 0, sent)
        try countDrop(0, at: loc)
        asm.jump(skip)
        asm.bind(sent)
        // Inactive, generation + 1 (8 bits, wrapping); R7 still points at the slot.
        fload(.r1, old)
        asm.mov(.r3, .r1)
        asm.alu(.add, .r3, imm: 0x100)
        asm.alu(.and, .r3, imm: 0xff00)
        asm.mov(.r0, .r1)
        asm.atomicCompareExchange(.r7, offset: 0, .r3)
        asm.bind(skip)
    }
}
