/// Subroutines, actions (records for user space) and aggregations.
extension ClauseGenerator {
    static let destructive: Set<String> = ["system", "raise", "stop", "copyout", "copyoutstr", "panic", "breakpoint", "chill"]

    // MARK: Subroutines with a value

    mutating func function(_ f: String, _ args: [Expr], _ e: Expr, _ dest: Int?) throws(DCompileError) -> Operand {
        switch f {
        case "copyinstr":
            guard args.count == 1 || args.count == 2 else { throw typeError("copyinstr( ) takes an address and an optional length", e) }
            var limit = compiler.stringLimit
            if args.count == 2 {
                guard let n = compiler.constantValue(args[1]), n >= 0 else { throw typeError("copyinstr( ) length must be a constant", e) }
                limit = min(limit, Int(n) + 1)
            }
            try intExpr(args[0])
            let address = try spill(e)
            let d = try stringBuffer(dest, e)
            zero(d, Layout.stringSize)
            fload(.r3, address)
            framePointer(.r1, d)
            asm.mov(.r2, imm: Int64(limit))
            asm.call(.probeReadUserStr)
            let ok = asm.newLabel()
            asm.jump(.jsge, .r0, imm: 0, ok)
            try emitFault(addressSlot: address, at: e.location)
            asm.jump(exitLabel)
            asm.bind(ok)
            return .string(d)
        case "strjoin":
            guard args.count == 2 else { throw typeError("strjoin( ) takes two strings", e) }
            // The result is built in a double-size area so the second string can be copied at a
            // variable offset (the length of the first) without leaving it; then truncated.
            let mark = stackUsed
            let area = try alloc(2 * Layout.stringSize, at: e.location)
            zero(area, 2 * Layout.stringSize)
            _ = try stringExpr(args[0], into: area)
            let second = try stringExpr(args[1])
            let measured = asm.newLabel()
            asm.mov(.r0, imm: 0)
            for i in 0..<(Layout.stringSize - 1) {
                fload(.r1, area + i, size: 1)
                asm.jump(.jeq, .r1, imm: 0, measured)
                asm.alu(.add, .r0, imm: 1)
            }
            asm.bind(measured)
            framePointer(.r1, area)
            asm.alu(.add, .r1, .r0)
            asm.mov(.r2, imm: Int64(Layout.stringSize))
            asm.alu(.sub, .r2, .r0)
            framePointer(.r3, second)
            asm.call(.probeReadKernelStr)
            fstore(area + Layout.stringSize - 1, imm: 0, size: 1)
            if let dest {
                copy(from: area, to: dest, Layout.stringSize)
                // The work area is dead once copied out: later code may reuse it.
                stackUsed = mark
                return .string(dest)
            }
            return .string(area)
        case "lltostr":
            guard args.count == 1 else { throw typeError("lltostr( ) takes one integer", e) }
            try intExpr(args[0])
            // Digits are written right to left at fixed offsets of a 32-byte area (each
            // digit count is its own code path, so every store has a constant offset), then
            // the string is copied out from its variable start with probe_read_kernel_str.
            let mark = stackUsed
            let area = try alloc(32, at: e.location)
            zero(area, 32)
            let d = try stringBuffer(dest, e)
            zero(d, Layout.stringSize)
            asm.mov(.r1, .r0)
            asm.mov(.r5, imm: 0)
            let positive = asm.newLabel(), copy = asm.newLabel()
            asm.jump(.jsge, .r1, imm: 0, positive)
            asm.alu(.neg, .r1, imm: 0)
            asm.mov(.r5, imm: 1)
            asm.bind(positive)
            var ends: [(Int, Assembler.Label)] = []
            for i in 0..<20 {
                if i > 0 {
                    let end = asm.newLabel()
                    ends.append((i, end))
                    asm.jump(.jeq, .r1, imm: 0, end)
                }
                asm.mov(.r2, .r1)
                asm.alu(.mod, .r2, imm: 10)
                asm.alu(.add, .r2, imm: 48)
                fstore(area + 23 - i, .r2, size: 1)
                asm.alu(.div, .r1, imm: 10)
            }
            let end20 = asm.newLabel()
            ends.append((20, end20))
            asm.jump(end20)
            for (digits, label) in ends {
                asm.bind(label)
                asm.mov(.r3, imm: Int64(24 - digits))
                let unsigned = asm.newLabel()
                asm.jump(.jeq, .r5, imm: 0, unsigned)
                fstore(area + 23 - digits, imm: Int32(UInt8(ascii: "-")), size: 1)
                asm.alu(.sub, .r3, imm: 1)
                asm.bind(unsigned)
                asm.jump(copy)
            }
            asm.bind(copy)
            let (areaBase, areaOffset) = frame(area)
            asm.alu(.add, .r3, areaBase)
            asm.alu(.add, .r3, imm: Int32(areaOffset))
            framePointer(.r1, d)
            asm.mov(.r2, imm: Int64(Layout.stringSize))
            asm.call(.probeReadKernelStr)
            if dest != nil { stackUsed = mark }
            return .string(d)
        case "basename", "dirname":
            guard args.count == 1 else { throw typeError("\(f)( ) takes one string", e) }
            let mark = stackUsed
            let src = try stringExpr(args[0])
            let d = try stringBuffer(dest, e)
            zero(d, Layout.stringSize)
            // R4 = index of the last '/', -1 when none. Without branches (a branch per byte
            // makes the verifier walk a path per slash position, too many at 256 bytes): the
            // string is zero-padded, so bytes past the NUL are never slashes, and per byte
            // R1 = (c ^ '/') - 1 >> 63 is 1 for a slash, and R4 += R1 * (i - R4).
            asm.mov(.r4, imm: -1)
            for i in 0..<(Layout.stringSize - 1) {
                fload(.r1, src + i, size: 1)
                asm.alu(.xor, .r1, imm: Int32(UInt8(ascii: "/")))
                asm.alu(.sub, .r1, imm: 1)
                asm.alu(.rsh, .r1, imm: 63)
                asm.mov(.r2, imm: Int64(i))
                asm.alu(.sub, .r2, .r4)
                asm.alu(.mul, .r2, .r1)
                asm.alu(.add, .r4, .r2)
            }
            let done = asm.newLabel()
            // Bounds the verifier can see (the arithmetic above keeps R4 in [-1, 254]).
            asm.jump(.jsgt, .r4, imm: Int32(Layout.stringSize - 2), done)
            asm.jump(.jslt, .r4, imm: -1, done)
            if f == "basename" {
                // Copy from just after the last slash (the whole string when there is none).
                asm.alu(.add, .r4, imm: 1)
                framePointer(.r3, src)
                asm.alu(.add, .r3, .r4)
                framePointer(.r1, d)
                asm.mov(.r2, imm: Int64(Layout.stringSize))
                asm.call(.probeReadKernelStr)
            } else {
                // "." without a slash, "/" for a leading one, else everything before the last.
                let noSlash = asm.newLabel(), root = asm.newLabel()
                asm.jump(.jslt, .r4, imm: 0, noSlash)
                asm.jump(.jeq, .r4, imm: 0, root)
                asm.jump(.jsgt, .r4, imm: Int32(Layout.stringSize - 2), done)
                framePointer(.r1, d)
                asm.mov(.r2, .r4)
                framePointer(.r3, src)
                asm.call(.probeReadKernel)
                asm.jump(done)
                asm.bind(noSlash)
                storeLiteral(".", at: d)
                asm.jump(done)
                asm.bind(root)
                storeLiteral("/", at: d)
            }
            asm.bind(done)
            // With a destination the source copy is dead once the result is written.
            if dest != nil { stackUsed = mark }
            return .string(d)
        case "stringof":
            guard args.count == 1 else { throw typeError("stringof( ) takes one argument", e) }
            return .string(try stringExpr(args[0], into: dest))
        case "speculation":
            guard args.isEmpty else { throw typeError("speculation( ) takes no arguments", e) }
            try speculationCall(e)
            return .integer(.int64)
        case "strlen":
            guard args.count == 1 else { throw typeError("strlen( ) takes one argument", e) }
            let s = try stringExpr(args[0])
            let end = asm.newLabel()
            asm.mov(.r0, imm: 0)
            for i in 0..<(Layout.stringSize - 1) {
                fload(.r1, s + i, size: 1)
                asm.jump(.jeq, .r1, imm: 0, end)
                asm.alu(.add, .r0, imm: 1)
            }
            asm.bind(end)
            return .integer(.uint64)
        default:
            if Self.destructive.contains(f) {
                throw typeError(compiler.destructiveAllowed
                    ? "destructive action \(f)( ) is not supported by this tracer"
                    : "destructive actions are not allowed unless -w is given: \(f)( )", e)
            }
            if ["printf", "trace", "printa", "exit", "clear", "trunc", "normalize", "denormalize", "speculate", "commit", "discard"].contains(f) {
                throw typeError("\(f)( ) is an action and cannot be used in an expression", e)
            }
            if ["stack", "ustack", "jstack"].contains(f) {
                throw typeError("\(f)( ) can only be an aggregation key or the argument of trace( )", e)
            }
            throw typeError("failed to resolve \(f): Unknown function name", e)
        }
    }

    // MARK: Actions

    /// Returns false when `f` is not an action (so the caller treats it as an expression).
    mutating func action(_ f: String, _ args: [Expr], at loc: SourceLocation) throws(DCompileError) -> Bool {
        switch f {
        case "printf":
            guard case .string(let format)? = args.first?.kind else {
                throw DCompileError(.type, "printf( ) requires a constant format string as its first argument", at: loc)
            }
            let rest = Array(args.dropFirst())
            let types = try rest.map { a throws(DCompileError) in try compiler.staticType(a, probe.context) }
            try checkPrintf(format, types, rest, loc)
            let id = compiler.addAction(ActionSpec(kind: .printf, format: format, argumentTypes: types, aggregation: nil, location: loc))
            try emitRecord(kind: .printf, id: id, args: rest, at: loc)
        case "trace":
            guard args.count == 1 else { throw DCompileError(.type, "trace( ) takes one argument", at: loc) }
            let t = try compiler.staticType(args[0], probe.context)
            let id = compiler.addAction(ActionSpec(kind: .trace, format: "", argumentTypes: [t], aggregation: nil, location: loc))
            try emitRecord(kind: .trace, id: id, args: args, at: loc)
        case "exit":
            guard args.count == 1 else { throw DCompileError(.type, "exit( ) takes one argument", at: loc) }
            let id = compiler.addAction(ActionSpec(kind: .exit, format: "", argumentTypes: [.int64], aggregation: nil, location: loc))
            try emitRecord(kind: .exit, id: id, args: args, at: loc)
            try markStopped(loc)
            // Nothing after exit() runs in DTrace's clause either.
            asm.jump(exitLabel)
        case "speculate":
            try speculate(args, at: loc)
        case "commit", "discard":
            try endSpeculation(commit: f == "commit", args, at: loc)
        case "printa", "clear", "trunc", "normalize", "denormalize":
            var format = ""
            var rest = args
            if f == "printa", case .string(let fmt)? = args.first?.kind {
                format = fmt
                rest.removeFirst()
            }
            guard case .aggregation(let name)? = rest.first?.kind else {
                throw DCompileError(.type, "\(f)( ) requires an aggregation argument", at: loc)
            }
            guard compiler.aggregations[name] != nil else {
                throw DCompileError(.type, "@\(name) is used in \(f)( ) but never assigned", at: loc)
            }
            var extra = Array(rest.dropFirst())
            var joined = [name]
            if f == "printa" {
                for a in extra {
                    guard case .aggregation(let other) = a.kind, compiler.aggregations[other] != nil else {
                        throw DCompileError(.type, "printa( ) arguments after the format must be aggregations", at: a.location)
                    }
                    joined.append(other)
                }
                extra = []
            }
            if (f == "normalize") != (extra.count == 1) && f != "trunc" {
                throw DCompileError(.type, "\(f)( ) takes \(f == "normalize" ? "an aggregation and a factor" : "one aggregation")", at: loc)
            }
            let kind: RecordKind = ["printa": .printa, "clear": .clear, "trunc": .trunc, "normalize": .normalize, "denormalize": .denormalize][f]!
            let id = compiler.addAction(ActionSpec(kind: kind, format: format, argumentTypes: extra.map { _ in .int64 }, aggregation: name, location: loc, joined: joined))
            try emitRecord(kind: kind, id: id, args: extra, at: loc)
        default:
            return false
        }
        return true
    }

    /// printf's directives must match the argument types (DTrace checks this at compile time).
    func checkPrintf(_ format: String, _ types: [DType], _ args: [Expr], _ loc: SourceLocation) throws(DCompileError) {
        var conversions: [Character] = []
        var chars = Array(format)
        var i = 0
        while i < chars.count {
            if chars[i] == "%" {
                i += 1
                if i < chars.count && chars[i] == "%" { i += 1; continue }
                while i < chars.count, !"diouxXcsaApeEfgGY".contains(chars[i]) { i += 1 }
                if i < chars.count { conversions.append(chars[i]) }
            }
            i += 1
        }
        chars = []
        guard conversions.count == types.count else {
            throw DCompileError(.type, "printf( ) prototype mismatch: \(conversions.count) conversion\(conversions.count == 1 ? "" : "s") but \(types.count) argument\(types.count == 1 ? "" : "s")", at: loc)
        }
        for (n, (c, t)) in zip(conversions, types).enumerated() {
            if (c == "s") != t.isString {
                throw DCompileError(.type, "printf( ) argument #\(n + 2) is incompatible with conversion %\(c): \(t)", at: args[n].location)
            }
        }
    }

    /// Writes a record (header + arguments) on the stack and copies it to the ring buffer.
    mutating func emitRecord(kind: RecordKind, id: Int, args: [Expr], at loc: SourceLocation) throws(DCompileError) {
        let types = try args.map { a throws(DCompileError) in try compiler.staticType(a, probe.context) }
        let size = Layout.recordHeader + types.map(\.storageSize).reduce(0, +)
        let r = try alloc(size, at: loc)
        var off = Layout.recordHeader
        for (a, t) in zip(args, types) {
            if case .stack(let user) = t {
                try emitStack(user: user, into: r + off, a)
            } else if t.isString {
                _ = try stringExpr(a, into: r + off)
            } else {
                try intExpr(a)
                fstore(r + off, .r0)
            }
            off += t.storageSize
        }
        // Header word 0: kind | sequence-in-firing << 16.
        fload(.r1, recordSequenceSlot)
        asm.mov(.r2, .r1)
        asm.alu(.add, .r2, imm: 1)
        fstore(recordSequenceSlot, .r2)
        asm.alu(.lsh, .r1, imm: 16)
        asm.alu(.or, .r1, imm: Int32(kind.rawValue))
        fstore(r, .r1, size: 4)
        fstore(r + 4, imm: Int32(id), size: 4)
        asm.call(.getSmpProcessorId)
        let sent = asm.newLabel()
        if let slot = speculationSlot {
            // Under speculate(): the speculation's tag beside the CPU, or nothing written.
            fload(.r1, slot)
            asm.jump(.jeq, .r1, imm: Self.droppedSpeculation, sent)
            asm.alu(.or, .r0, .r1)
        }
        fstore(r + 8, .r0, size: 4)
        fstore(r + 12, imm: Int32(probeID), size: 4)
        try ringOutput(r, size: size, wake: Self.wakesConsumer(kind), at: loc)
        asm.jump(.jeq, .r0, imm: 0, sent)
        try countDrop(0, at: loc)
        asm.bind(sent)
    }

    /// Records that end tracing or act on aggregations wake the consumer at once; the rest
    /// (printf, trace, speculative output) wait for its next read at the switch rate, as in
    /// DTrace, unless the ring is a quarter full.
    static func wakesConsumer(_ kind: RecordKind) -> Bool {
        switch kind {
        case .exit, .printa, .clear, .trunc, .normalize, .denormalize: return true
        default: return false
        }
    }

    /// bpf_ringbuf_output of the record at frame offset `r`; R0 is its result. Without
    /// `wake`, the kernel is told not to wake the consumer (BPF_RB_NO_WAKEUP) while less
    /// than a quarter of the ring is unread (bpf_ringbuf_query, BPF_RB_AVAIL_DATA), so a
    /// busy probe does not cost a wakeup of the consumer per record (docs/trace.md).
    mutating func ringOutput(_ r: Int, size: Int, wake: Bool, at loc: SourceLocation) throws(DCompileError) {
        let flags = try alloc(8, at: loc)
        fstore(flags, imm: Self.forceWakeup)
        if !wake {
            let filling = asm.newLabel()
            asm.loadMap(.r1, map: compiler.ringBufferMap)
            asm.mov(.r2, imm: 0)
            asm.call(.ringbufQuery)
            asm.jump(.jge, .r0, imm: Int32(compiler.ringBufferBytes / 4), filling)
            fstore(flags, imm: Self.noWakeup)
            asm.bind(filling)
        }
        asm.loadMap(.r1, map: compiler.ringBufferMap)
        framePointer(.r2, r)
        asm.mov(.r3, imm: Int64(size))
        fload(.r4, flags)
        asm.call(.ringbufOutput)
    }

    static let noWakeup: Int32 = 1, forceWakeup: Int32 = 2

    /// A fault record: header (id names the action and its clause) + the bad address.
    /// `illegalOperation`: DTrace's "illegal operation" (DTRACEFLT_ILLOP), printed without
    /// the value, instead of "invalid address".
    mutating func emitFault(addressSlot: Int, illegalOperation: Bool = false, at loc: SourceLocation) throws(DCompileError) {
        let id = compiler.addAction(ActionSpec(kind: .fault, format: illegalOperation ? "illegal operation" : "invalid address", argumentTypes: [.uint64],
                                               aggregation: nil, location: loc, joined: [], actionNumber: actionNumber,
                                               faultCode: illegalOperation ? 3 : 1))
        let r = try alloc(Layout.recordHeader + 8, at: loc)
        fload(.r1, addressSlot)
        fstore(r + Layout.recordHeader, .r1)
        fstore(r, imm: Int32(RecordKind.fault.rawValue), size: 4)
        fstore(r + 4, imm: Int32(id), size: 4)
        asm.call(.getSmpProcessorId)
        fstore(r + 8, .r0, size: 4)
        fstore(r + 12, imm: Int32(probeID), size: 4)
        try ringOutput(r, size: Layout.recordHeader + 8, wake: false, at: loc)
    }

    /// drops[index] += 1 on this CPU (reported by user space as DTrace's drop notices).
    mutating func countDrop(_ index: Int32, at loc: SourceLocation) throws(DCompileError) {
        let slot = try alloc(8, at: loc)
        fstore(slot, imm: index, size: 4)
        asm.loadMap(.r1, map: compiler.dropsMap)
        framePointer(.r2, slot)
        asm.call(.mapLookupElem)
        let skip = asm.newLabel()
        asm.jump(.jeq, .r0, imm: 0, skip)
        asm.load(.r1, .r0, offset: 0)
        asm.alu(.add, .r1, imm: 1)
        asm.store(.r0, offset: 0, .r1)
        asm.bind(skip)
    }

    /// bpf_get_stack into buffer+8 (the kernel zero-fills unused frames); buffer+0 holds
    /// the process id so user frames can be symbolized later.
    mutating func emitStack(user: Bool, into buffer: Int, _ e: Expr) throws(DCompileError) {
        if case .call(_, let args) = e.kind, !args.isEmpty {
            throw typeError("stack( ) frame counts are not supported; \(Layout.stackFrames) frames are recorded", e)
        }
        let done = asm.newLabel()
        if user {
            asm.call(.getCurrentPidTgid)
            asm.alu(.rsh, .r0, imm: 32)
            fstore(buffer, .r0)
            if let unwind = compiler.userUnwindMaps() {
                try emitUnwind(unwind, into: buffer, done: done, e)
            }
        } else {
            fstore(buffer, imm: 0)
        }
        asm.mov(.r1, .r6)
        framePointer(.r2, buffer + 8)
        asm.mov(.r3, imm: Int64(Layout.stackFrames * 8))
        asm.mov(.r4, imm: user ? 1 << 8 : 0)  // BPF_F_USER_STACK
        asm.call(.getStack)
        asm.bind(done)
    }

    /// ustack() by the target's .eh_frame table (UserUnwindTable; docs/trace.md "ustack()
    /// and .eh_frame"), for the processes in dt_unwind_pids; others fall through to
    /// bpf_get_stack's frame pointers. The user registers come from bpf_task_pt_regs, so a
    /// probe that fires in the kernel walks the user stack from its entry into the kernel.
    ///
    /// Each frame: a branch-free binary search (log2(capacity) steps) for the last row at or
    /// below the pc (the return address - 1 above frame 0), the CFA from that row's rule,
    /// the return address at CFA-8 and the caller's rbp where the row says it was saved. The
    /// walk ends at a row that says so (_start), at a failed read, a zero return address or
    /// a CFA that does not move up the stack.
    mutating func emitUnwind(_ u: UnwindMaps, into buffer: Int, done: Assembler.Label, _ e: Expr) throws(DCompileError) {
        let mark = stackUsed
        defer { stackUsed = mark }
        let key = try alloc(8, at: e.location), pc = try alloc(8, at: e.location), sp = try alloc(8, at: e.location)
        let bp = try alloc(8, at: e.location), rbpAt = try alloc(8, at: e.location)
        let fallback = asm.newLabel(), stop = asm.newLabel()
        let cap = Int32(u.capacity)
        // In the set? (r0 still holds the tgid)
        fstore(key, .r0)
        asm.loadMap(.r1, map: u.pids)
        framePointer(.r2, key)
        asm.call(.mapLookupElem)
        asm.jump(.jeq, .r0, imm: 0, fallback)
        fstore(key, imm: 0)
        asm.loadMap(.r1, map: u.table)
        framePointer(.r2, key)
        asm.call(.mapLookupElem)
        asm.jump(.jeq, .r0, imm: 0, fallback)
        asm.mov(.r7, .r0)
        // The user registers (struct pt_regs on x86-64: bp at 32, ip at 128, sp at 152).
        asm.call(.getCurrentTaskBTF)
        asm.mov(.r1, .r0)
        asm.call(.taskPtRegs)
        asm.load(.r1, .r0, offset: 128)
        fstore(pc, .r1)
        fstore(buffer + 8, .r1)
        asm.load(.r1, .r0, offset: 152)
        fstore(sp, .r1)
        asm.load(.r1, .r0, offset: 32)
        fstore(bp, .r1)
        for i in 1..<Layout.stackFrames { fstore(buffer + 8 + 8 * i, imm: 0) }
        for frame in 1..<Layout.stackFrames {
            // r1 = the address to look up; r2 = lo, r3 = hi (rows[lo] <= r1 < rows[hi]).
            fload(.r1, pc)
            if frame > 1 { asm.alu(.sub, .r1, imm: 1) }
            asm.mov(.r2, imm: 0)
            asm.mov(.r3, imm: Int64(cap))
            for _ in 0..<u.capacity.trailingZeroBitCount {
                asm.mov(.r4, .r2)
                asm.alu(.add, .r4, .r3)
                asm.alu(.rsh, .r4, imm: 1)
                asm.jump(.jge, .r4, imm: cap, stop)
                asm.mov(.r5, .r4)
                asm.alu(.lsh, .r5, imm: 4)
                asm.alu(.add, .r5, .r7)
                asm.load(.r5, .r5, offset: 0)
                // r0 = all ones when rows[mid] <= r1 (addresses and the padding are < 2^63).
                asm.mov(.r0, .r1)
                asm.alu(.sub, .r0, .r5)
                asm.alu(.rsh, .r0, imm: 63)
                asm.alu(.sub, .r0, imm: 1)
                asm.mov(.r5, .r2)
                asm.alu(.xor, .r5, .r4)
                asm.alu(.and, .r5, .r0)
                asm.alu(.xor, .r2, .r5)
                asm.alu(.xor, .r0, imm: -1)
                asm.mov(.r5, .r3)
                asm.alu(.xor, .r5, .r4)
                asm.alu(.and, .r5, .r0)
                asm.alu(.xor, .r3, .r5)
            }
            asm.jump(.jge, .r2, imm: cap, stop)
            asm.alu(.lsh, .r2, imm: 4)
            asm.alu(.add, .r2, .r7)
            asm.load(.r0, .r2, offset: 12, size: 1)   // rule
            asm.load(.r3, .r2, offset: 8, size: 4)    // CFA offset, sign-extended
            asm.alu(.lsh, .r3, imm: 32)
            asm.alu(.arsh, .r3, imm: 32)
            asm.load(.r4, .r2, offset: 13, size: 1)   // rbp saved?
            asm.load(.r5, .r2, offset: 14, size: 2)   // rbp offset, sign-extended
            asm.alu(.lsh, .r5, imm: 48)
            asm.alu(.arsh, .r5, imm: 48)
            let noRBP = asm.newLabel(), haveRBP = asm.newLabel()
            asm.jump(.jeq, .r4, imm: 0, noRBP)
            fstore(rbpAt, .r5)
            asm.jump(haveRBP)
            asm.bind(noRBP)
            fstore(rbpAt, imm: 0)
            asm.bind(haveRBP)
            // r3 = CFA by the rule in r0.
            let viaRSP = asm.newLabel(), viaRBP = asm.newLabel(), viaPLT = asm.newLabel(), viaFP = asm.newLabel()
            let haveCFA = asm.newLabel()
            asm.jump(.jeq, .r0, imm: Int32(EHFrame.Rule.rsp.rawValue), viaRSP)
            asm.jump(.jeq, .r0, imm: Int32(EHFrame.Rule.rbp.rawValue), viaRBP)
            asm.jump(.jeq, .r0, imm: Int32(EHFrame.Rule.plt.rawValue), viaPLT)
            asm.jump(.jeq, .r0, imm: Int32(EHFrame.Rule.none.rawValue), viaFP)
            asm.jump(stop)
            asm.bind(viaRSP)
            fload(.r1, sp)
            asm.alu(.add, .r3, .r1)
            asm.jump(haveCFA)
            asm.bind(viaRBP)
            fload(.r1, bp)
            asm.alu(.add, .r3, .r1)
            asm.jump(haveCFA)
            asm.bind(viaPLT)
            // CFA = rsp + 8, + 8 past the entry's push ((rip & 15) >= 11)
            fload(.r3, sp)
            asm.alu(.add, .r3, imm: 8)
            fload(.r1, pc)
            asm.alu(.and, .r1, imm: 15)
            asm.jump(.jlt, .r1, imm: 11, haveCFA)
            asm.alu(.add, .r3, imm: 8)
            asm.jump(haveCFA)
            asm.bind(viaFP)
            // No row: the frame pointer chain (CFA = rbp + 16, the caller's rbp at rbp).
            fload(.r3, bp)
            asm.jump(.jeq, .r3, imm: 0, stop)
            asm.alu(.add, .r3, imm: 16)
            fstore(rbpAt, imm: -16)
            asm.bind(haveCFA)
            // The CFA is above the stack pointer it was found from.
            fload(.r1, sp)
            asm.jump(.jle, .r3, .r1, stop)
            fstore(sp, .r3)
            // The return address, into pc.
            framePointer(.r1, pc)
            asm.mov(.r2, imm: 8)
            asm.alu(.sub, .r3, imm: 8)
            asm.call(.probeReadUser)
            asm.jump(.jne, .r0, imm: 0, stop)
            // The caller's rbp, where it was saved.
            let keepRBP = asm.newLabel()
            fload(.r3, rbpAt)
            asm.jump(.jeq, .r3, imm: 0, keepRBP)
            fload(.r1, sp)
            asm.alu(.add, .r3, .r1)
            framePointer(.r1, bp)
            asm.mov(.r2, imm: 8)
            asm.call(.probeReadUser)
            asm.bind(keepRBP)
            fload(.r1, pc)
            asm.jump(.jeq, .r1, imm: 0, stop)
            fstore(buffer + 8 + 8 * frame, .r1)
        }
        asm.bind(stop)
        asm.jump(done)
        asm.bind(fallback)
    }

    // MARK: Aggregations

    mutating func aggregate(_ name: String, _ keys: [Expr], _ rhs: Expr) throws(DCompileError) {
        guard let spec = compiler.aggregations[name], case .call(_, let args) = rhs.kind else {
            throw typeError("@\(name): unknown aggregation", rhs)
        }
        // The value and the increment first: evaluating them may call helpers.
        var valueSlot = 0, incrementSlot = 0
        let fixed: Int
        switch spec.function {
        case .count: fixed = 0
        case .lquantize: fixed = 4
        case .llquantize: fixed = 5
        default: fixed = 1
        }
        if fixed > 0 {
            try intExpr(args[0])
            valueSlot = try spill(rhs)
        }
        if args.count > fixed {
            try intExpr(args[fixed])
            incrementSlot = try spill(rhs)
        }
        let keySize = compiler.maps[spec.map].keySize
        let key = try buildKey(keys, types: spec.keyTypes, size: keySize, rhs)
        // Find or create this key's per-CPU value, then update it in place.
        let have = asm.newLabel()
        asm.loadMap(.r1, map: spec.map)
        framePointer(.r2, key)
        asm.call(.mapLookupElem)
        asm.jump(.jne, .r0, imm: 0, have)
        let zeroKey = try alloc(8, at: rhs.location)
        fstore(zeroKey, imm: 0)
        asm.loadMap(.r1, map: compiler.zeroMap)
        framePointer(.r2, zeroKey)
        asm.call(.mapLookupElem)
        asm.jump(.jeq, .r0, imm: 0, exitLabel)
        asm.mov(.r3, .r0)
        asm.loadMap(.r1, map: spec.map)
        framePointer(.r2, key)
        asm.mov(.r4, imm: 1)  // BPF_NOEXIST: another CPU may have created it meanwhile.
        asm.call(.mapUpdateElem)
        asm.loadMap(.r1, map: spec.map)
        framePointer(.r2, key)
        asm.call(.mapLookupElem)
        asm.jump(.jne, .r0, imm: 0, have)
        // The aggregation's map is full: count an aggregation drop.
        try countDrop(1, at: rhs.location)
        asm.jump(exitLabel)
        asm.bind(have)
        asm.mov(.r7, .r0)
        func loadValue(_ g: inout ClauseGenerator, _ reg: Reg) { g.fload(reg, valueSlot) }
        func addAt(_ g: inout ClauseGenerator, _ offset: Int, _ reg: Reg) {
            g.asm.load(.r2, .r7, offset: offset)
            g.asm.alu(.add, .r2, reg)
            g.asm.store(.r7, offset: offset, .r2)
        }
        switch spec.function {
        case .count:
            asm.mov(.r1, imm: 1)
            addAt(&self, 0, .r1)
        case .sum:
            loadValue(&self, .r1)
            addAt(&self, 0, .r1)
        case .avg:
            asm.mov(.r1, imm: 1)
            addAt(&self, 0, .r1)
            loadValue(&self, .r1)
            addAt(&self, 8, .r1)
        case .stddev:
            asm.mov(.r1, imm: 1)
            addAt(&self, 0, .r1)
            loadValue(&self, .r1)
            addAt(&self, 8, .r1)
            // Sum of squares in 128 bits (low word at 16, high at 24), as DTrace keeps it:
            // with |v| = h·2^32 + l, v² = h²·2^64 + hl·2^33 + l².
            loadValue(&self, .r1)
            let positive = asm.newLabel()
            asm.jump(.jsge, .r1, imm: 0, positive)
            asm.alu(.neg, .r1, imm: 0)
            asm.bind(positive)
            asm.mov(.r2, .r1)
            asm.alu(.rsh, .r2, imm: 32)          // h
            asm.alu(.lsh, .r1, imm: 32)
            asm.alu(.rsh, .r1, imm: 32)          // l
            asm.mov(.r3, .r1)
            asm.alu(.mul, .r3, .r1)              // lo = l²
            asm.mov(.r4, .r2)
            asm.alu(.mul, .r4, .r2)              // hi = h²
            asm.mov(.r5, .r1)
            asm.alu(.mul, .r5, .r2)              // hl
            asm.mov(.r0, .r5)
            asm.alu(.rsh, .r0, imm: 31)
            asm.alu(.add, .r4, .r0)              // hi += hl >> 31
            asm.alu(.lsh, .r5, imm: 33)
            asm.alu(.add, .r3, .r5)              // lo += hl << 33
            let noCarry1 = asm.newLabel()
            asm.jump(.jge, .r3, .r5, noCarry1)
            asm.alu(.add, .r4, imm: 1)
            asm.bind(noCarry1)
            asm.load(.r1, .r7, offset: 16)
            asm.alu(.add, .r1, .r3)
            asm.store(.r7, offset: 16, .r1)
            let noCarry2 = asm.newLabel()
            asm.jump(.jge, .r1, .r3, noCarry2)
            asm.alu(.add, .r4, imm: 1)
            asm.bind(noCarry2)
            addAt(&self, 24, .r4)
        case .min, .max:
            let store = asm.newLabel(), skip = asm.newLabel()
            loadValue(&self, .r1)
            asm.load(.r2, .r7, offset: 0)
            asm.jump(.jeq, .r2, imm: 0, store)
            asm.load(.r2, .r7, offset: 8)
            asm.jump(spec.function == .min ? .jsge : .jsle, .r1, .r2, skip)
            asm.bind(store)
            asm.store(.r7, offset: 0, imm: 1)
            asm.store(.r7, offset: 8, .r1)
            asm.bind(skip)
        case .quantize:
            loadValue(&self, .r1)
            powerOfTwoBucket()
            try bumpBucket(count: 127, incrementSlot: args.count > fixed ? incrementSlot : nil)
        case .lquantize:
            let (low, high, step) = (spec.parameters[0], spec.parameters[1], spec.parameters[2])
            let levels = (high - low) / step
            let under = asm.newLabel(), over = asm.newLabel(), done = asm.newLabel()
            loadValue(&self, .r1)
            asm.mov(.r2, imm: low)
            asm.jump(.jslt, .r1, .r2, under)
            asm.mov(.r2, imm: low + levels * step)
            asm.jump(.jsge, .r1, .r2, over)
            asm.mov(.r2, imm: low)
            asm.alu(.sub, .r1, .r2)
            asm.mov(.r2, imm: step)
            asm.alu(.div, .r1, .r2)
            asm.alu(.add, .r1, imm: 1)
            asm.jump(done)
            asm.bind(under)
            asm.mov(.r1, imm: 0)
            asm.jump(done)
            asm.bind(over)
            asm.mov(.r1, imm: levels + 1)
            asm.bind(done)
            try bumpBucket(count: Int(levels) + 2, incrementSlot: args.count > fixed ? incrementSlot : nil)
        case .llquantize:
            let layout = try LogLinearLayout(parameters: spec.parameters, at: rhs.location)
            let done = asm.newLabel()
            loadValue(&self, .r1)
            let notUnder = asm.newLabel()
            asm.mov(.r2, imm: layout.lowest)
            asm.jump(.jsge, .r1, .r2, notUnder)
            asm.mov(.r1, imm: 0)
            asm.jump(done)
            asm.bind(notUnder)
            for o in layout.orders {
                let next = asm.newLabel()
                asm.mov(.r2, imm: o.this)
                asm.jump(.jsge, .r1, .r2, next)
                asm.mov(.r2, imm: o.last)
                asm.alu(.sub, .r1, .r2)
                asm.mov(.r2, imm: o.width)
                asm.alu(.div, .r1, .r2)
                asm.alu(.add, .r1, imm: Int32(o.base))
                asm.jump(done)
                asm.bind(next)
            }
            asm.mov(.r1, imm: Int64(layout.bucketCount - 1))
            asm.bind(done)
            try bumpBucket(count: layout.bucketCount, incrementSlot: args.count > fixed ? incrementSlot : nil)
        }
    }

    /// R1 = quantize bucket of R1: 63 for 0, 64 + floor(log2 v) for v > 0, 62 - floor(log2 -v) below.
    mutating func powerOfTwoBucket() {
        let negative = asm.newLabel(), zero = asm.newLabel(), done = asm.newLabel()
        asm.jump(.jeq, .r1, imm: 0, zero)
        asm.jump(.jslt, .r1, imm: 0, negative)
        log2(.r1)
        asm.alu(.add, .r1, imm: 64)
        asm.jump(done)
        asm.bind(negative)
        asm.alu(.neg, .r1, imm: 0)
        log2(.r1)
        asm.mov(.r2, imm: 62)
        asm.alu(.sub, .r2, .r1)
        asm.mov(.r1, .r2)
        asm.jump(done)
        asm.bind(zero)
        asm.mov(.r1, imm: 63)
        asm.bind(done)
    }

    /// reg = floor(log2(reg)) for reg > 0 (as unsigned), by binary search over the bits.
    mutating func log2(_ reg: Reg) {
        asm.mov(.r3, imm: 0)
        for shift in [32, 16, 8, 4, 2, 1] {
            let skip = asm.newLabel()
            asm.mov(.r4, reg)
            asm.alu(.rsh, .r4, imm: Int32(shift))
            asm.jump(.jeq, .r4, imm: 0, skip)
            asm.mov(reg, .r4)
            asm.alu(.add, .r3, imm: Int32(shift))
            asm.bind(skip)
        }
        asm.mov(reg, .r3)
    }

    /// values[R1] += increment (1 by default), with R1 clamped so the verifier sees the bound.
    mutating func bumpBucket(count: Int, incrementSlot: Int?) throws(DCompileError) {
        let ok = asm.newLabel(), nonNegative = asm.newLabel()
        asm.jump(.jsge, .r1, imm: 0, nonNegative)
        asm.mov(.r1, imm: 0)
        asm.bind(nonNegative)
        asm.jump(.jle, .r1, imm: Int32(count - 1), ok)
        asm.mov(.r1, imm: Int64(count - 1))
        asm.bind(ok)
        asm.alu(.lsh, .r1, imm: 3)
        asm.alu(.add, .r1, .r7)
        if let incrementSlot { fload(.r3, incrementSlot) } else { asm.mov(.r3, imm: 1) }
        asm.load(.r2, .r1, offset: 0)
        asm.alu(.add, .r2, .r3)
        asm.store(.r1, offset: 0, .r2)
    }
}

extension DCompiler {
    func addAction(_ a: ActionSpec) -> Int {
        actions.append(a)
        return actions.count - 1
    }
}
