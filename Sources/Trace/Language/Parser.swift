/// A recursive-descent parser for D with C operator precedence
/// (Dynamic Tracing Guide, "Types, Operators, and Expressions").
public struct Parser {
    var lexer: Lexer
    var token: Token
    let source: String

    /// Type words that begin a cast or a declaration.
    static let typeWords: Set<String> = [
        "int", "char", "short", "long", "unsigned", "signed", "string", "void",
        "int8_t", "int16_t", "int32_t", "int64_t", "uint8_t", "uint16_t", "uint32_t", "uint64_t",
        "uintptr_t", "intptr_t", "size_t", "ssize_t", "pid_t", "uid_t", "gid_t", "id_t", "uchar_t",
        "ushort_t", "uint_t", "ulong_t", "u_int", "u_long", "off_t", "struct", "const",
    ]

    public static func parse(_ source: String, macros: [String: String] = [:]) throws(DCompileError) -> DProgram {
        var p = try Parser(source, macros: macros)
        return try p.program()
    }

    init(_ source: String, macros: [String: String]) throws(DCompileError) {
        self.source = source
        lexer = Lexer(source, macros: macros)
        token = Token(kind: .eof, location: SourceLocation(line: 1, column: 1), text: "")
    }

    mutating func advance() throws(DCompileError) { token = try lexer.next() }

    func syntaxError(_ near: Token? = nil) -> DCompileError {
        let t = near ?? token
        if case .eof = t.kind { return DCompileError(.syntax, "syntax error near end of input", at: t.location) }
        return DCompileError(.syntax, "syntax error near \"\(t.text)\"", at: t.location)
    }

    func isPunct(_ p: String) -> Bool {
        if case .punct(let q) = token.kind { return q == p }
        return false
    }

    mutating func expect(_ p: String) throws(DCompileError) {
        guard isPunct(p) else { throw syntaxError() }
        try advance()
    }

    static func pragmas(in source: String) -> [(String, String?)] {
        var out: [(String, String?)] = []
        for line in source.split(separator: "\n", omittingEmptySubsequences: false) {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard words.count >= 4, words[0] == "#pragma", words[1] == "D", words[2] == "option" else { continue }
            let opt = words[3]
            if let eq = opt.firstIndex(of: "=") {
                out.append((String(opt[..<eq]), String(opt[opt.index(after: eq)...])))
            } else {
                out.append((String(opt), nil))
            }
        }
        return out
    }

    mutating func program() throws(DCompileError) -> DProgram {
        var clauses: [Clause] = []
        var decls: [Declaration] = []
        while true {
            lexer.skipTrivia()
            if lexer.atEnd { break }
            // Peek: a declaration starts with a type word or `self`/`this` + type word.
            var probe = lexer
            let first = try probe.next()
            if case .identifier(let w) = first.kind, Parser.typeWords.contains(w) || w == "self" || w == "this" || w == "inline" {
                if w == "inline" { throw DCompileError(.syntax, "inline declarations are not supported", at: first.location) }
                if w == "self" || w == "this" {
                    var p2 = probe
                    if case .identifier(let t) = try p2.next().kind, Parser.typeWords.contains(t) {
                        decls.append(try declaration())
                        continue
                    }
                } else {
                    decls.append(try declaration())
                    continue
                }
            }
            clauses.append(try clause())
        }
        return DProgram(clauses: clauses, declarations: decls, pragmas: Parser.pragmas(in: source))
    }

    mutating func declaration() throws(DCompileError) -> Declaration {
        try advance()
        let loc = token.location
        var scope = Declaration.Scope.global
        if case .identifier(let w) = token.kind, w == "self" || w == "this" {
            scope = w == "self" ? .threadLocal : .clauseLocal
            try advance()
        }
        let type = try typeName()
        guard case .identifier(let name) = token.kind else { throw syntaxError() }
        try advance()
        guard isPunct(";") else { throw syntaxError() }
        return Declaration(scope: scope, type: type, name: name, location: loc)
    }

    /// Reads type words (`unsigned long long`, `struct foo *`) at the current token.
    mutating func typeName() throws(DCompileError) -> TypeName {
        var words: [String] = []
        while case .identifier(let w) = token.kind, Parser.typeWords.contains(w) || words.last == "struct" {
            if w != "const" { words.append(w) }
            try advance()
        }
        guard !words.isEmpty else { throw syntaxError() }
        var depth = 0
        while isPunct("*") { depth += 1; try advance() }
        return TypeName(name: words.joined(separator: " "), pointerDepth: depth)
    }

    mutating func clause() throws(DCompileError) -> Clause {
        var probes: [ProbeDescription] = []
        var start: SourceLocation?
        while true {
            let (text, loc) = lexer.probeDescriptionText()
            if start == nil { start = loc }
            if text.isEmpty {
                try advance()
                throw syntaxError()
            }
            probes.append(try ProbeDescription.parse(text, at: loc))
            lexer.skipTrivia()
            if lexer.peekByte() == UInt8(ascii: ",") {
                _ = try lexer.next()
                continue
            }
            break
        }
        try advance()
        var predicate: Expr?
        if isPunct("/") {
            try advance()
            predicate = try expression(noDivide: true)
            try expect("/")
        }
        var body: [Statement]?
        if isPunct("{") {
            try advance()
            body = try statements(until: "}")
            // The next clause's probe description is scanned raw, so do not lex past `}`.
        } else if case .eof = token.kind {
            // `dtrace -n syscall::read:entry`: a bare description traces with the default action.
        } else if isPunct(";") {
        } else {
            throw syntaxError()
        }
        return Clause(probes: probes, predicate: predicate, body: body, location: start!)
    }

    /// Statements separated by `;` up to the closing brace, which is consumed
    /// without reading the token after it.
    mutating func statements(until close: String) throws(DCompileError) -> [Statement] {
        var out: [Statement] = []
        while true {
            if isPunct(close) { return out }
            if isPunct(";") { try advance(); continue }
            if case .eof = token.kind { throw syntaxError() }
            if case .identifier("if") = token.kind {
                out.append(try ifStatement())
                continue
            }
            let loc = token.location
            let e = try expression()
            out.append(Statement(kind: .expression(e), location: loc))
            if isPunct(";") { try advance(); continue }
            guard isPunct(close) else { throw syntaxError() }
        }
    }

    mutating func ifStatement() throws(DCompileError) -> Statement {
        let loc = token.location
        try advance()
        try expect("(")
        let cond = try expression()
        try expect(")")
        let thenPart = try block()
        var elsePart: [Statement] = []
        if case .identifier("else") = token.kind {
            try advance()
            if case .identifier("if") = token.kind {
                elsePart = [try ifStatement()]
            } else {
                elsePart = try block()
            }
        }
        return Statement(kind: .ifElse(cond, thenPart, elsePart), location: loc)
    }

    mutating func block() throws(DCompileError) -> [Statement] {
        if isPunct("{") {
            try advance()
            let body = try statements(until: "}")
            try advance()
            return body
        }
        let loc = token.location
        let e = try expression()
        try expect(";")
        return [Statement(kind: .expression(e), location: loc)]
    }

    // MARK: Expressions, lowest precedence first.

    /// `noDivide` stops at a top-level `/` so a predicate's closing slash ends it.
    var noDivide = false

    public mutating func expression(noDivide: Bool = false) throws(DCompileError) -> Expr {
        let saved = self.noDivide
        self.noDivide = noDivide
        defer { self.noDivide = saved }
        return try assignment()
    }

    static let assignOps: Set<String> = ["=", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "<<=", ">>="]

    mutating func assignment() throws(DCompileError) -> Expr {
        let lhs = try ternary()
        if case .punct(let op) = token.kind, Parser.assignOps.contains(op) {
            let loc = token.location
            try advance()
            let rhs = try assignment()
            return Expr(.assign(op, lhs, rhs), at: loc)
        }
        return lhs
    }

    mutating func ternary() throws(DCompileError) -> Expr {
        let cond = try binary(0)
        guard isPunct("?") else { return cond }
        let loc = token.location
        try advance()
        let a = try assignment()
        try expect(":")
        let b = try ternary()
        return Expr(.ternary(cond, a, b), at: loc)
    }

    static let levels: [[String]] = [
        ["||"], ["^^"], ["&&"], ["|"], ["^"], ["&"], ["==", "!="], ["<", "<=", ">", ">="],
        ["<<", ">>"], ["+", "-"], ["*", "/", "%"],
    ]

    mutating func binary(_ level: Int) throws(DCompileError) -> Expr {
        if level == Parser.levels.count { return try unary() }
        var lhs = try binary(level + 1)
        while case .punct(let op) = token.kind, Parser.levels[level].contains(op) {
            if op == "/" && noDivide { break }
            let loc = token.location
            try advance()
            let rhs = try binary(level + 1)
            lhs = Expr(.binary(op, lhs, rhs), at: loc)
        }
        return lhs
    }

    mutating func unary() throws(DCompileError) -> Expr {
        let loc = token.location
        if case .punct(let op) = token.kind, ["-", "+", "!", "~", "*", "&", "++", "--"].contains(op) {
            try advance()
            let operand = try unary()
            return Expr(.unary(op, operand), at: loc)
        }
        if case .identifier("sizeof") = token.kind {
            try advance()
            try expect("(")
            if case .identifier(let w) = token.kind, Parser.typeWords.contains(w) {
                let t = try typeName()
                try expect(")")
                return Expr(.unary("sizeof", Expr(.cast(t, Expr(.integer(0), at: loc)), at: loc)), at: loc)
            }
            let e = try expression()
            try expect(")")
            return Expr(.unary("sizeof", e), at: loc)
        }
        if isPunct("(") {
            var look = lexer
            if case .identifier(let w) = try look.next().kind, Parser.typeWords.contains(w) {
                try advance()
                let t = try typeName()
                try expect(")")
                let operand = try unary()
                return Expr(.cast(t, operand), at: loc)
            }
        }
        return try postfix()
    }

    mutating func postfix() throws(DCompileError) -> Expr {
        var e = try primary()
        while true {
            let loc = token.location
            if isPunct("[") {
                try advance()
                var keys: [Expr] = []
                if !isPunct("]") {
                    keys.append(try expression())
                    while isPunct(",") { try advance(); keys.append(try expression()) }
                }
                try expect("]")
                e = Expr(.index(e, keys), at: e.location)
            } else if isPunct("->") || isPunct(".") {
                let arrow = isPunct("->")
                try advance()
                guard case .identifier(let field) = token.kind else { throw syntaxError() }
                try advance()
                e = Expr(.member(e, field, arrow: arrow), at: e.location)
            } else if isPunct("++") || isPunct("--") {
                guard case .punct(let op) = token.kind else { break }
                try advance()
                e = Expr(.postfix(op, e), at: loc)
            } else {
                return e
            }
        }
        return e
    }

    mutating func primary() throws(DCompileError) -> Expr {
        let t = token
        switch t.kind {
        case .integer(let v):
            try advance()
            return Expr(.integer(v), at: t.location)
        case .string(let s):
            try advance()
            // Adjacent string literals concatenate, as in C.
            var text = s
            while case .string(let more) = token.kind { text += more; try advance() }
            return Expr(.string(text), at: t.location)
        case .aggregation(let name):
            try advance()
            return Expr(.aggregation(name), at: t.location)
        case .identifier(let name):
            try advance()
            if (name == "self" || name == "this") && isPunct("->") {
                try advance()
                guard case .identifier(let v) = token.kind else { throw syntaxError() }
                try advance()
                return Expr(name == "self" ? .selfVar(v) : .thisVar(v), at: t.location)
            }
            if isPunct("(") {
                try advance()
                var args: [Expr] = []
                if !isPunct(")") {
                    args.append(try expression())
                    while isPunct(",") { try advance(); args.append(try expression()) }
                }
                try expect(")")
                return Expr(.call(name, args), at: t.location)
            }
            return Expr(.identifier(name), at: t.location)
        case .punct("("):
            try advance()
            let e = try expression()
            try expect(")")
            return e
        default:
            throw syntaxError()
        }
    }
}
