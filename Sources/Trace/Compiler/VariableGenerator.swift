/// Variables and built-ins.
extension ClauseGenerator {
    // MARK: Built-in variables

    mutating func identifier(_ n: String, _ e: Expr, _ dest: Int?) throws(DCompileError) -> Operand {
        switch n {
        case _ where (n == "pid" || n == "tid") && incomingThread != nil:
            // sched:::on-cpu runs in the outgoing thread's context; D means the incoming one.
            // The tracepoint has its thread id only, so pid is that id too.
            loadField(incomingThread!.pid)
        case "pid":
            asm.call(.getCurrentPidTgid)
            asm.alu(.rsh, .r0, imm: 32)
        case "tid":
            asm.call(.getCurrentPidTgid)
            lower32()
        case "uid":
            asm.call(.getCurrentUidGid)
            lower32()
        case "gid":
            asm.call(.getCurrentUidGid)
            asm.alu(.rsh, .r0, imm: 32)
        case "cpu":
            asm.call(.getSmpProcessorId)
        case "timestamp", "vtimestamp":
            asm.call(.ktimeGetNs)
            return .integer(.uint64)
        case "walltimestamp":
            asm.call(.ktimeGetNs)
            asm.mov(.r1, imm: compiler.wallClockOffset)
            asm.alu(.add, .r0, .r1)
            return .integer(.uint64)
        case "epid", "id":
            asm.mov(.r0, imm: Int64(probeID + 1))
        case "errno":
            guard case .syscall(entry: false, _) = probe.context else {
                asm.mov(.r0, imm: 0)
                break
            }
            let end = asm.newLabel()
            asm.load(.r0, .r6, offset: 16)
            asm.jump(.jsge, .r0, imm: 0, end)
            asm.alu(.neg, .r0, imm: 0)
            let done = asm.newLabel()
            asm.jump(done)
            asm.bind(end)
            asm.mov(.r0, imm: 0)
            asm.bind(done)
        case "execname" where incomingThread != nil:
            return try tracepointField(incomingThread!.comm.name, e, dest)
        case "execname":
            let d = try stringBuffer(dest, e)
            zero(d, Layout.stringSize)
            framePointer(.r1, d)
            asm.mov(.r2, imm: 16)
            asm.call(.getCurrentComm)
            return .string(d)
        case "probeprov", "probemod", "probename":
            let d = try stringBuffer(dest, e)
            storeLiteral(n == "probeprov" ? probe.provider : n == "probemod" ? probe.module : probe.name, at: d)
            return .string(d)
        case "probefunc":
            let d = try stringBuffer(dest, e)
            guard case .allSyscalls = probe.attach else {
                storeLiteral(probe.function, at: d)
                return .string(d)
            }
            // Under a syscall group the function is the syscall's name, looked up by number.
            zero(d, Layout.stringSize)
            let key = try alloc(8, at: e.location)
            asm.load(.r0, .r6, offset: 8)
            fstore(key, .r0, size: 4)
            asm.loadMap(.r1, map: compiler.syscallNamesMap())
            framePointer(.r2, key)
            asm.call(.mapLookupElem)
            let missing = asm.newLabel()
            asm.jump(.jeq, .r0, imm: 0, missing)
            for i in stride(from: 0, to: Layout.stringSize, by: 8) {
                asm.load(.r1, .r0, offset: i)
                fstore(d + i, .r1)
            }
            asm.bind(missing)
            return .string(d)
        case "zonename":
            let d = try stringBuffer(dest, e)
            let key = try alloc(8, at: e.location)
            asm.call(.getCurrentCgroupId)
            fstore(key, .r0)
            asm.loadMap(.r1, map: compiler.zoneNamesMap())
            framePointer(.r2, key)
            asm.call(.mapLookupElem)
            let global = asm.newLabel(), end = asm.newLabel()
            asm.jump(.jeq, .r0, imm: 0, global)
            for i in stride(from: 0, to: Layout.stringSize, by: 8) {
                asm.load(.r1, .r0, offset: i)
                fstore(d + i, .r1)
            }
            asm.jump(end)
            asm.bind(global)
            storeLiteral("global", at: d)
            asm.bind(end)
            return .string(d)
        case "ppid":
            // curthread->real_parent->tgid, with offsets from kernel BTF.
            guard let (parentOff, tgidOff) = compiler.parentOffsets else {
                throw typeError("ppid is not available: the kernel's BTF (/sys/kernel/btf/vmlinux) lacks task_struct", e)
            }
            let slot = try alloc(8, at: e.location)
            fstore(slot, imm: 0)
            asm.call(.getCurrentTask)
            asm.mov(.r3, .r0)
            asm.alu(.add, .r3, imm: Int32(parentOff))
            framePointer(.r1, slot)
            asm.mov(.r2, imm: 8)
            asm.call(.probeReadKernel)
            fload(.r3, slot)
            fstore(slot, imm: 0)
            asm.alu(.add, .r3, imm: Int32(tgidOff))
            framePointer(.r1, slot)
            asm.mov(.r2, imm: 4)
            asm.call(.probeReadKernel)
            fload(.r0, slot, size: 4)
        case "curthread":
            throw typeError("curthread is not available: kernel structures cannot be dereferenced in D here", e)
        default:
            if n.hasPrefix("arg"), let i = Int(n.dropFirst(3)), i >= 0, i < 10 {
                return try argument(i, e)
            }
            if n == "args" { throw typeError("args requires an index (args[0]) or a member (args->field)", e) }
            guard let v = compiler.variables[n] else {
                throw typeError("failed to resolve \(n): Unknown variable name", e)
            }
            guard case .global = v.storage else { throw typeError("\(n) is an associative array and needs a key", e) }
            return try loadVariable(v, keys: [], e, dest)
        }
        return .integer(Builtins.type(n) ?? .int64)
    }

    mutating func lower32() {
        asm.alu(.lsh, .r0, imm: 32)
        asm.alu(.rsh, .r0, imm: 32)
    }

    /// argN / args[N] for the probe's context.
    mutating func argument(_ i: Int, _ e: Expr) throws(DCompileError) -> Operand {
        switch probe.context {
        case .syscall(let entry, _):
            if entry ? i < 6 : i < 2 {
                asm.load(.r0, .r6, offset: entry ? 16 + 8 * i : 16)
            } else {
                asm.mov(.r0, imm: 0)
            }
        case .tracepoint(let fields):
            let ints = fields.filter { !$0.isCharArray && !$0.isDataLocString }
            guard i < fields.count, let f = ints.first(where: { $0.name == fields[i].name }) else {
                asm.mov(.r0, imm: 0)
                return .integer(.int64)
            }
            loadField(f)
            return .integer(.integer(signed: f.isSigned, size: min(8, f.size)))
        case .perfEvent:
            // x86-64 pt_regs: ip at 128, cs at 136; arg0 is the kernel PC, arg1 the user PC.
            let user = asm.newLabel(), end = asm.newLabel()
            asm.load(.r1, .r6, offset: 136)
            asm.load(.r0, .r6, offset: 128)
            asm.alu(.and, .r1, imm: 3)
            asm.jump(.jne, .r1, imm: 0, user)
            if i != 0 { asm.mov(.r0, imm: 0) }
            asm.jump(end)
            asm.bind(user)
            if i != 1 { asm.mov(.r0, imm: 0) }
            asm.bind(end)
            if i > 1 { asm.mov(.r0, imm: 0) }
        case .none:
            // ERROR runs with DTrace's arguments in its context: arg1 the enabled probe id,
            // arg2 the action number, arg4 the fault type, arg5 the faulting address.
            if probe.attach == .error && i < 6 {
                asm.load(.r0, .r6, offset: 8 * i)
            } else {
                asm.mov(.r0, imm: 0)
            }
        case .userFunction(let isReturn):
            // x86-64 pt_regs: rdi 112, rsi 104, rdx 96, rcx 88, r8 72, r9 64; rax 80.
            let registers = [112, 104, 96, 88, 72, 64]
            if isReturn {
                if i == 1 { asm.load(.r0, .r6, offset: 80) } else { asm.mov(.r0, imm: 0) }
            } else if i < registers.count {
                asm.load(.r0, .r6, offset: registers[i])
            } else {
                asm.mov(.r0, imm: 0)
            }
        case .usdt(let args, let symbolOffsets):
            guard i < args.count else {
                asm.mov(.r0, imm: 0)
                return .integer(.int64)
            }
            return .integer(try usdtArgument(args[i], symbolOffsets, e))
        }
        return .integer(.int64)
    }

    /// Reads a USDT argument as its note describes it ("-4@%ebx", "8@-16(%rbp)", "4@$5").
    mutating func usdtArgument(_ a: USDTArgument, _ symbolOffsets: [String: Int64], _ e: Expr) throws(DCompileError) -> DType {
        let size = [1, 2, 4, 8].contains(a.size) ? a.size : 8
        let type = DType.integer(signed: a.isSigned, size: size)
        switch a.location {
        case .constant(let v):
            asm.mov(.r0, imm: v)
            return type
        case .register(let r):
            asm.load(.r0, .r6, offset: r.ptRegsOffset)
            if r.isHighByte { asm.alu(.rsh, .r0, imm: 8) }
        case .memory(let base, let index, let scale, let offset, let symbol):
            let slot = try alloc(8, at: e.location)
            fstore(slot, imm: 0)
            if let symbol {
                // At the uprobe, pt_regs ip is the probe's runtime address.
                guard let delta = symbolOffsets[symbol] else {
                    throw typeError("USDT argument \(a.spec) names symbol \(symbol), which the binary's symbol table lacks", e)
                }
                asm.load(.r3, .r6, offset: 128)
                asm.mov(.r1, imm: delta)
                asm.alu(.add, .r3, .r1)
            } else if let base, base.canonical != "rip" {
                asm.load(.r3, .r6, offset: base.ptRegsOffset)
            } else {
                asm.mov(.r3, imm: 0)
            }
            if let index {
                asm.load(.r1, .r6, offset: index.ptRegsOffset)
                if scale > 1 { asm.alu(.mul, .r1, imm: Int32(scale)) }
                asm.alu(.add, .r3, .r1)
            }
            if offset != 0 {
                asm.mov(.r1, imm: offset)
                asm.alu(.add, .r3, .r1)
            }
            framePointer(.r1, slot)
            asm.mov(.r2, imm: Int64(size))
            asm.call(.probeReadUser)
            fload(.r0, slot)
        }
        extend(type)
        return type
    }

    mutating func loadField(_ f: TracepointField) {
        let size = [1, 2, 4, 8].contains(f.size) ? f.size : 8
        asm.load(.r0, .r6, offset: f.offset, size: size)
        if f.isSigned { extend(.integer(signed: true, size: size)) }
    }

    mutating func tracepointField(_ name: String, _ e: Expr, _ dest: Int?) throws(DCompileError) -> Operand {
        guard case .tracepoint(let fields) = probe.context else {
            if case .syscall = probe.context { throw typeError("args-> is for tracepoints; use args[N] or argN on syscall probes", e) }
            throw typeError("args-> is not available on probe \(probe.fullName)", e)
        }
        guard let f = fields.first(where: { $0.name == name }) else {
            throw typeError("\(name) is not a member of args for \(probe.fullName) (fields: \(fields.map(\.name).joined(separator: ", ")))", e)
        }
        if f.isCharArray || f.isDataLocString {
            let d = try stringBuffer(dest, e)
            zero(d, Layout.stringSize)
            framePointer(.r1, d)
            if f.isDataLocString {
                asm.load(.r3, .r6, offset: f.offset, size: 4)
                asm.alu(.and, .r3, imm: 0xffff)
                asm.alu(.add, .r3, .r6)
                asm.mov(.r2, imm: Int64(Layout.stringSize))
                asm.call(.probeReadKernelStr)
            } else {
                asm.mov(.r3, .r6)
                asm.alu(.add, .r3, imm: Int32(f.offset))
                asm.mov(.r2, imm: Int64(min(f.size, Layout.stringSize - 1)))
                asm.call(.probeReadKernel)
            }
            return .string(d)
        }
        loadField(f)
        return .integer(.integer(signed: f.isSigned, size: min(8, f.size)))
    }

    // MARK: Map-held variables

    /// Builds a tuple key on the stack and returns its offset.
    mutating func buildKey(_ keys: [Expr], types: [DType], size: Int, _ e: Expr) throws(DCompileError) -> Int {
        guard keys.count == types.count else {
            throw typeError("\(keys.count) keys given where \(types.count) are expected", e)
        }
        let k = try alloc(size, at: e.location)
        if keys.isEmpty { fstore(k, imm: 0) }
        var off = 0
        for (key, t) in zip(keys, types) {
            if case .stack(let user) = t {
                try emitStack(user: user, into: k + off, key)
            } else if t.isString {
                _ = try stringExpr(key, into: k + off)
            } else {
                let kt = try intExpr(key)
                _ = kt
                fstore(k + off, .r0)
            }
            off += t.storageSize
        }
        // Pad to the map's key size (at least 8 bytes).
        for pad in stride(from: off, to: size, by: 8) where !keys.isEmpty { fstore(k + pad, imm: 0) }
        return k
    }

    mutating func threadKey(_ e: Expr) throws(DCompileError) -> Int {
        let k = try alloc(8, at: e.location)
        if let incoming = incomingThread {
            loadField(incoming.pid)
        } else {
            asm.call(.getCurrentPidTgid)
            lower32()
        }
        fstore(k, .r0)
        return k
    }

    /// For sched:::on-cpu (sched_switch, which fires while the outgoing thread still runs):
    /// the incoming thread's fields, so tid, execname and self-> name the thread going on CPU.
    var incomingThread: (pid: TracepointField, comm: TracepointField)? {
        guard probe.provider == "sched", probe.name == "on-cpu", case .tracepoint(let fields) = probe.context,
              let pid = fields.first(where: { $0.name == "next_pid" }),
              let comm = fields.first(where: { $0.name == "next_comm" }) else { return nil }
        return (pid, comm)
    }

    func mapAndKeySize(_ v: VariableSpec) -> (Int, Int, [DType])? {
        switch v.storage {
        case .array(let m, let types): return (m, compiler.maps[m].keySize, types)
        case .threadLocal(let m): return (m, 8, [])
        case .global: return nil
        }
    }

    mutating func loadVariable(_ v: VariableSpec, keys: [Expr], _ e: Expr, _ dest: Int?) throws(DCompileError) -> Operand {
        if case .global(let off) = v.storage {
            usesGlobals = true
            if v.type.isString {
                let d = try stringBuffer(dest, e)
                for i in stride(from: 0, to: Layout.stringSize, by: 8) {
                    asm.load(.r1, .r9, offset: off + i)
                    fstore(d + i, .r1)
                }
                return .string(d)
            }
            asm.load(.r0, .r9, offset: off)
            return .integer(v.type)
        }
        let (m, keySize, types) = mapAndKeySize(v)!
        let key: Int
        if case .threadLocal = v.storage { key = try threadKey(e) } else { key = try buildKey(keys, types: types, size: keySize, e) }
        let d = v.type.isString ? try stringBuffer(dest, e) : 0
        asm.loadMap(.r1, map: m)
        framePointer(.r2, key)
        asm.call(.mapLookupElem)
        let missing = asm.newLabel(), end = asm.newLabel()
        if v.type.isString {
            asm.jump(.jeq, .r0, imm: 0, missing)
            for i in stride(from: 0, to: Layout.stringSize, by: 8) {
                asm.load(.r1, .r0, offset: i)
                fstore(d + i, .r1)
            }
            asm.jump(end)
            asm.bind(missing)
            zero(d, Layout.stringSize)
            asm.bind(end)
            return .string(d)
        }
        asm.jump(.jeq, .r0, imm: 0, end)
        asm.load(.r0, .r0, offset: 0)
        asm.bind(end)
        return .integer(v.type)
    }

    /// Reads an integer lvalue into R0 (for ++, --, +=).
    mutating func lvalueRead(_ x: Expr) throws(DCompileError) -> DType {
        switch x.kind {
        case .identifier, .selfVar, .thisVar, .index:
            return try intExpr(x)
        default:
            throw typeError("operator requires a modifiable lvalue", x)
        }
    }

    /// Stores `value` (R0, or a string buffer) into an lvalue.
    mutating func lvalueWrite(_ x: Expr, _ value: Operand) throws(DCompileError) {
        var isString = false
        var src = 0
        if case .string(let off) = value { isString = true; src = off }
        switch x.kind {
        case .thisVar(let n):
            guard let l = locals[n] else { throw typeError("this->\(n) is not declared in this clause", x) }
            guard l.type.isString == isString else { throw typeError("this->\(n) changes type: \(l.type) vs \(isString ? "string" : "integer")", x) }
            if isString { copy(from: src, to: l.offset, Layout.stringSize) } else { fstore(l.offset, .r0) }
        case .identifier(let n):
            guard let v = compiler.variables[n], case .global(let off) = v.storage else {
                throw typeError("\(n) cannot be assigned", x)
            }
            guard v.type.isString == isString else { throw typeError("\(n) is \(v.type) and cannot be assigned \(isString ? "a string" : "an integer")", x) }
            usesGlobals = true
            if isString {
                for i in stride(from: 0, to: Layout.stringSize, by: 8) {
                    fload(.r1, src + i)
                    asm.store(.r9, offset: off + i, .r1)
                }
            } else {
                asm.store(.r9, offset: off, .r0)
            }
        case .selfVar, .index:
            var v: VariableSpec?
            var keys: [Expr] = []
            if case .selfVar(let n) = x.kind { v = compiler.threadLocals[n] }
            if case .index(let b, let k) = x.kind, case .identifier(let n) = b.kind { v = compiler.variables[n]; keys = k }
            guard let v, let (m, keySize, types) = mapAndKeySize(v) else { throw typeError("\(x) cannot be assigned", x) }
            guard v.type.isString == isString else { throw typeError("\(x) is \(v.type) and cannot be assigned \(isString ? "a string" : "an integer")", x) }
            let valueSlot = isString ? src : try spill(x)
            let key: Int
            if case .threadLocal = v.storage { key = try threadKey(x) } else { key = try buildKey(keys, types: types, size: keySize, x) }
            let done = asm.newLabel()
            if !isString {
                // D frees a dynamic variable assigned zero.
                let store = asm.newLabel()
                fload(.r0, valueSlot)
                asm.jump(.jne, .r0, imm: 0, store)
                asm.loadMap(.r1, map: m)
                framePointer(.r2, key)
                asm.call(.mapDeleteElem)
                asm.jump(done)
                asm.bind(store)
            }
            asm.loadMap(.r1, map: m)
            framePointer(.r2, key)
            framePointer(.r3, valueSlot)
            asm.mov(.r4, imm: 0)
            asm.call(.mapUpdateElem)
            asm.bind(done)
            if !isString { fload(.r0, valueSlot) }
        default:
            throw typeError("operator = requires a modifiable lvalue", x)
        }
    }
}
