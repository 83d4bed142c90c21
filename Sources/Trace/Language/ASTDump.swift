/// A compact S-expression form of the syntax tree, for golden tests and `-x tree`.
extension Expr: CustomStringConvertible {
    public var description: String {
        switch kind {
        case .integer(let v): return "\(v)"
        case .string(let s): return "\"\(s.split(separator: "\n", omittingEmptySubsequences: false).joined(separator: "\\n"))\""
        case .identifier(let n): return n
        case .aggregation(let n): return "@\(n)"
        case .selfVar(let n): return "self->\(n)"
        case .thisVar(let n): return "this->\(n)"
        case .index(let b, let keys): return "(index \(b)\(keys.map { " \($0)" }.joined()))"
        case .member(let b, let f, let arrow): return "(\(arrow ? "->" : ".") \(b) \(f))"
        case .call(let f, let args): return "(call \(f)\(args.map { " \($0)" }.joined()))"
        case .unary(let op, let e): return "(\(op) \(e))"
        case .postfix(let op, let e): return "(post\(op) \(e))"
        case .binary(let op, let a, let b): return "(\(op) \(a) \(b))"
        case .ternary(let c, let a, let b): return "(? \(c) \(a) \(b))"
        case .assign(let op, let a, let b): return "(\(op) \(a) \(b))"
        case .cast(let t, let e): return "(cast \(t) \(e))"
        }
    }
}

extension Statement: CustomStringConvertible {
    public var description: String {
        switch kind {
        case .expression(let e): return e.description
        case .ifElse(let c, let a, let b):
            return "(if \(c) {\(a.map { " \($0)" }.joined()) } else {\(b.map { " \($0)" }.joined()) })"
        }
    }
}

extension Clause: CustomStringConvertible {
    public var description: String {
        var s = probes.map(\.description).joined(separator: ", ")
        if let predicate { s += " /\(predicate)/" }
        if let body { s += " {\(body.map { " \($0);" }.joined()) }" }
        return s
    }
}
