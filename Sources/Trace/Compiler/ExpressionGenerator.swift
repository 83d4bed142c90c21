/// Expression code: integers into R0, strings into stack buffers.
extension ClauseGenerator {
    enum Operand {
        case integer(DType)
        /// A string buffer at this frame offset.
        case string(Int)
    }

    func typeError(_ m: String, _ e: Expr) -> DCompileError { DCompileError(.type, m, at: e.location) }

    /// Evaluates an integer expression into R0.
    @discardableResult
    mutating func intExpr(_ e: Expr) throws(DCompileError) -> DType {
        // Once the value is in R0 the stack the expression used (string buffers, spills)
        // is dead, so a predicate of many string comparisons fits in 512 bytes.
        let mark = stackUsed
        defer { stackUsed = mark }
        guard case .integer(let t) = try expr(e) else {
            throw typeError("operator requires an integer operand, not a string", e)
        }
        return t
    }

    /// Evaluates a string expression into a buffer (at `dest` when given) and returns its offset.
    mutating func stringExpr(_ e: Expr, into dest: Int? = nil) throws(DCompileError) -> Int {
        guard case .string(let off) = try expr(e, stringDest: dest) else {
            throw typeError("a string is required here, not an integer", e)
        }
        if let dest, dest != off { copy(from: off, to: dest, Layout.stringSize) }
        return dest ?? off
    }

    mutating func stringBuffer(_ dest: Int?, _ e: Expr) throws(DCompileError) -> Int {
        if let dest { return dest }
        return try alloc(Layout.stringSize, at: e.location)
    }

    mutating func spill(_ e: Expr) throws(DCompileError) -> Int {
        let s = try alloc(8, at: e.location)
        fstore(s, .r0)
        return s
    }

    mutating func expr(_ e: Expr, stringDest: Int? = nil) throws(DCompileError) -> Operand {
        switch e.kind {
        case .integer(let v):
            asm.mov(.r0, imm: Int64(bitPattern: v))
            return .integer(v > UInt64(Int64.max) ? .uint64 : .int64)
        case .string(let s):
            let d = try stringBuffer(stringDest, e)
            storeLiteral(s, at: d)
            return .string(d)
        case .identifier(let n):
            return try identifier(n, e, stringDest)
        case .selfVar(let n):
            guard let v = compiler.threadLocals[n] else { throw typeError("self->\(n) is used but never assigned", e) }
            return try loadVariable(v, keys: [], e, stringDest)
        case .thisVar(let n):
            guard let l = locals[n] else { throw typeError("this->\(n) is used before it is assigned in this clause", e) }
            if l.type.isString {
                let d = try stringBuffer(stringDest, e)
                copy(from: l.offset, to: d, Layout.stringSize)
                return .string(d)
            }
            fload(.r0, l.offset)
            return .integer(l.type)
        case .index(let base, let keys):
            if case .identifier("args") = base.kind {
                guard keys.count == 1, let i = compiler.constantValue(keys[0]), i >= 0, i < 10 else {
                    throw typeError("args[ ] requires a constant index from 0 to 9", e)
                }
                return try argument(Int(i), e)
            }
            if case .aggregation = base.kind { throw typeError("aggregations cannot be read in expressions", e) }
            guard case .identifier(let n) = base.kind, let v = compiler.variables[n], case .array = v.storage else {
                throw typeError("\(base) is not an associative array", e)
            }
            return try loadVariable(v, keys: keys, e, stringDest)
        case .member(let base, let field, _):
            guard case .identifier("args") = base.kind else { throw typeError("member access is only supported on args->", e) }
            return try tracepointField(field, e, stringDest)
        case .call(let f, let args):
            return try function(f, args, e, stringDest)
        case .unary(let op, let x):
            return try unary(op, x, e)
        case .postfix(let op, let x):
            let t = try lvalueRead(x)
            let old = try spill(e)
            asm.alu(op == "++" ? .add : .sub, .r0, imm: 1)
            try lvalueWrite(x, .integer(t))
            fload(.r0, old)
            return .integer(t)
        case .binary(let op, let a, let b):
            return try binary(op, a, b, e)
        case .ternary(let c, let a, let b):
            let elseL = asm.newLabel(), end = asm.newLabel()
            try intExpr(c)
            asm.jump(.jeq, .r0, imm: 0, elseL)
            let isString = try compiler.staticType(a, probe.context).isString
            let dest = isString ? try stringBuffer(stringDest, e) : nil
            var ta = Operand.integer(.int64)
            if isString { _ = try stringExpr(a, into: dest) } else { ta = .integer(try intExpr(a)) }
            asm.jump(end)
            asm.bind(elseL)
            if isString { _ = try stringExpr(b, into: dest) } else { try intExpr(b) }
            asm.bind(end)
            if let dest { return .string(dest) }
            return ta
        case .assign(let op, let lhs, let rhs):
            if aggregationTarget(lhs) != nil { throw typeError("aggregations can only be assigned in a statement of their own", e) }
            if op == "=" {
                let v = try expr(rhs)
                try lvalueWrite(lhs, v)
                return v
            }
            let t = try lvalueRead(lhs)
            let s = try spill(e)
            try intExpr(rhs)
            asm.mov(.r1, .r0)
            fload(.r0, s)
            try arithmetic(String(op.dropLast()), signed: t.isSigned, e)
            try lvalueWrite(lhs, .integer(t))
            return .integer(t)
        case .cast(let t, let x):
            let target = DCompiler.type(named: t)
            if target.isString { throw typeError("cannot cast to string; use stringof( ) or copyinstr( )", e) }
            try intExpr(x)
            extend(target)
            return .integer(target)
        case .aggregation(let n):
            throw typeError("@\(n) can only be used with aggregation functions and printa( )", e)
        }
    }

    /// Truncates R0 to the type's size, sign- or zero-extending as the type says.
    mutating func extend(_ t: DType) {
        guard case .integer(let signed, let size) = t, size < 8 else { return }
        let shift = Int32(64 - size * 8)
        asm.alu(.lsh, .r0, imm: shift)
        asm.alu(signed ? .arsh : .rsh, .r0, imm: shift)
    }

    mutating func storeLiteral(_ s: String, at d: Int) {
        let bytes = paddedString(s)
        for i in stride(from: 0, to: Layout.stringSize, by: 8) {
            var w: UInt64 = 0
            for j in 0..<8 { w |= UInt64(bytes[i + j]) << (8 * UInt64(j)) }
            if w == 0 {
                fstore(d + i, imm: 0)
            } else {
                asm.mov(.r1, imm: Int64(bitPattern: w))
                fstore(d + i, .r1)
            }
        }
    }

    // MARK: Operators

    mutating func unary(_ op: String, _ x: Expr, _ e: Expr) throws(DCompileError) -> Operand {
        switch op {
        case "-":
            let t = try intExpr(x)
            asm.alu(.neg, .r0, imm: 0)
            return .integer(t)
        case "+":
            return .integer(try intExpr(x))
        case "~":
            let t = try intExpr(x)
            asm.alu(.xor, .r0, imm: -1)
            return .integer(t)
        case "!":
            try intExpr(x)
            let yes = asm.newLabel(), end = asm.newLabel()
            asm.jump(.jeq, .r0, imm: 0, yes)
            asm.mov(.r0, imm: 0)
            asm.jump(end)
            asm.bind(yes)
            asm.mov(.r0, imm: 1)
            asm.bind(end)
            return .integer(.int64)
        case "++", "--":
            let t = try lvalueRead(x)
            asm.alu(op == "++" ? .add : .sub, .r0, imm: 1)
            try lvalueWrite(x, .integer(t))
            return .integer(t)
        case "sizeof":
            if case .cast(let t, _) = x.kind {
                let dt = DCompiler.type(named: t)
                asm.mov(.r0, imm: Int64(dt.isString ? Layout.stringSize : { if case .integer(_, let s) = dt { return s }; return 8 }()))
                return .integer(.uint64)
            }
            let t = try compiler.staticType(x, probe.context)
            var size = 8
            if case .integer(_, let s) = t { size = s } else { size = Layout.stringSize }
            asm.mov(.r0, imm: Int64(size))
            return .integer(.uint64)
        default:
            throw typeError("operator \(op) is not supported: kernel memory cannot be dereferenced here", e)
        }
    }

    mutating func binary(_ op: String, _ a: Expr, _ b: Expr, _ e: Expr) throws(DCompileError) -> Operand {
        if op == "&&" || op == "||" {
            // &&: any zero operand gives 0; ||: any non-zero operand gives 1.
            let decided = asm.newLabel(), end = asm.newLabel()
            let jump: JumpOp = op == "&&" ? .jeq : .jne
            try intExpr(a)
            asm.jump(jump, .r0, imm: 0, decided)
            try intExpr(b)
            asm.jump(jump, .r0, imm: 0, decided)
            asm.mov(.r0, imm: op == "&&" ? 1 : 0)
            asm.jump(end)
            asm.bind(decided)
            asm.mov(.r0, imm: op == "&&" ? 0 : 1)
            asm.bind(end)
            return .integer(.int64)
        }
        let ta = try compiler.staticType(a, probe.context), tb = try compiler.staticType(b, probe.context)
        if ta.isString || tb.isString {
            guard ta.isString && tb.isString else {
                throw typeError("operator \(op) operands have incompatible types: \(ta) and \(tb)", e)
            }
            return try stringCompare(op, a, b, e)
        }
        if op == "^^" {
            try intExpr(a)
            try normalizeBool()
            let s = try spill(e)
            try intExpr(b)
            try normalizeBool()
            fload(.r1, s)
            asm.alu(.xor, .r0, .r1)
            return .integer(.int64)
        }
        try intExpr(a)
        let s = try spill(e)
        try intExpr(b)
        asm.mov(.r1, .r0)
        fload(.r0, s)
        let signed = ta.isSigned && tb.isSigned
        if let j = comparison(op, signed: signed) {
            let yes = asm.newLabel(), end = asm.newLabel()
            asm.jump(j, .r0, .r1, yes)
            asm.mov(.r0, imm: 0)
            asm.jump(end)
            asm.bind(yes)
            asm.mov(.r0, imm: 1)
            asm.bind(end)
            return .integer(.int64)
        }
        try arithmetic(op, signed: signed, e)
        return .integer(signed ? .int64 : .uint64)
    }

    mutating func normalizeBool() throws(DCompileError) {
        let z = asm.newLabel()
        asm.jump(.jeq, .r0, imm: 0, z)
        asm.mov(.r0, imm: 1)
        asm.bind(z)
    }

    func comparison(_ op: String, signed: Bool) -> JumpOp? {
        switch op {
        case "==": return .jeq
        case "!=": return .jne
        case "<": return signed ? .jslt : .jlt
        case "<=": return signed ? .jsle : .jle
        case ">": return signed ? .jsgt : .jgt
        case ">=": return signed ? .jsge : .jge
        default: return nil
        }
    }

    /// R0 = R0 op R1. Division by zero yields 0 in BPF instead of DTrace's error.
    mutating func arithmetic(_ op: String, signed: Bool, _ e: Expr) throws(DCompileError) {
        switch op {
        case "+": asm.alu(.add, .r0, .r1)
        case "-": asm.alu(.sub, .r0, .r1)
        case "*": asm.alu(.mul, .r0, .r1)
        case "/", "%":
            // BPF v4 (Linux 6.6+): offset 1 selects signed division.
            asm.emit(BPFInstruction(code: Op.alu64 | (op == "/" ? ALUOp.div : ALUOp.mod).rawValue | Op.x, dst: 0, src: 1, offset: signed ? 1 : 0))
        case "&": asm.alu(.and, .r0, .r1)
        case "|": asm.alu(.or, .r0, .r1)
        case "^": asm.alu(.xor, .r0, .r1)
        case "<<": asm.alu(.lsh, .r0, .r1)
        case ">>": asm.alu(signed ? .arsh : .rsh, .r0, .r1)
        default: throw typeError("operator \(op) is not supported", e)
        }
    }

    /// Strings are zero-padded, so == compares 8-byte words; < and > compare bytes.
    mutating func stringCompare(_ op: String, _ a: Expr, _ b: Expr, _ e: Expr) throws(DCompileError) -> Operand {
        let sa = try stringExpr(a)
        var words = Layout.stringSize / 8
        // Against a literal only the words up to its terminating NUL can differ.
        if case .string(let lit) = b.kind { words = min(words, lit.utf8.count / 8 + 1) }
        if case .string(let lit) = a.kind { words = min(words, lit.utf8.count / 8 + 1) }
        let sb = try stringExpr(b)
        let differ = asm.newLabel(), end = asm.newLabel()
        switch op {
        case "==", "!=":
            for i in 0..<words {
                fload(.r1, sa + i * 8)
                fload(.r2, sb + i * 8)
                asm.jump(.jne, .r1, .r2, differ)
            }
            asm.mov(.r0, imm: op == "==" ? 1 : 0)
            asm.jump(end)
            asm.bind(differ)
            asm.mov(.r0, imm: op == "==" ? 0 : 1)
            asm.bind(end)
        case "<", "<=", ">", ">=":
            // First differing byte decides; equal strings compare equal.
            let less = asm.newLabel(), greater = asm.newLabel()
            for i in 0..<Layout.stringSize {
                let next = asm.newLabel()
                fload(.r1, sa + i, size: 1)
                fload(.r2, sb + i, size: 1)
                asm.jump(.jlt, .r1, .r2, less)
                asm.jump(.jgt, .r1, .r2, greater)
                asm.jump(.jeq, .r1, imm: 0, differ)
                asm.bind(next)
            }
            asm.bind(differ)  // equal
            asm.mov(.r0, imm: op == "<=" || op == ">=" ? 1 : 0)
            asm.jump(end)
            asm.bind(less)
            asm.mov(.r0, imm: op.hasPrefix("<") ? 1 : 0)
            asm.jump(end)
            asm.bind(greater)
            asm.mov(.r0, imm: op.hasPrefix(">") ? 1 : 0)
            asm.bind(end)
        default:
            throw typeError("operator \(op) cannot be applied to strings", e)
        }
        return .integer(.int64)
    }
}

