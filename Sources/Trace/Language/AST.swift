/// The syntax tree of a D program (Dynamic Tracing Guide, "Program Structure").

/// `provider:module:function:name`, each part possibly a glob; missing leading parts are
/// empty (match anything), as DTrace fills a short description from the right.
public struct ProbeDescription: Equatable, Sendable, CustomStringConvertible {
    public var provider: String
    public var module: String
    public var function: String
    public var name: String
    public var location: SourceLocation

    public var description: String { "\(provider):\(module):\(function):\(name)" }

    public init(provider: String, module: String, function: String, name: String, location: SourceLocation) {
        self.provider = provider
        self.module = module
        self.function = function
        self.name = name
        self.location = location
    }

    /// Splits text like `syscall::read:entry`, `BEGIN`, `tick-1s` or `a:b:c:d`.
    public static func parse(_ text: String, at location: SourceLocation) throws(DCompileError) -> ProbeDescription {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard !text.isEmpty, parts.count <= 4 else {
            throw DCompileError(.probe, "invalid probe description \"\(text)\": too many fields", at: location)
        }
        let padded = Array(repeating: "", count: 4 - parts.count) + parts
        return ProbeDescription(provider: padded[0], module: padded[1], function: padded[2], name: padded[3], location: location)
    }
}

/// A type name written in a cast or declaration, e.g. `int`, `unsigned long`, `string`.
public struct TypeName: Equatable, Sendable, CustomStringConvertible {
    public var name: String
    public var pointerDepth: Int
    public var description: String { name + String(repeating: "*", count: pointerDepth) }
}

public indirect enum ExprKind: Equatable, Sendable {
    case integer(UInt64)
    case string(String)
    /// A built-in variable (pid, execname, ...) or a global variable or array.
    case identifier(String)
    /// `@name` ("" for the anonymous `@`).
    case aggregation(String)
    case selfVar(String)
    case thisVar(String)
    /// `base[k1, k2]`: an associative array, `args[n]`, or a keyed aggregation.
    case index(Expr, [Expr])
    /// `base->field` or `base.field`.
    case member(Expr, String, arrow: Bool)
    case call(String, [Expr])
    /// Prefix operators `-`, `+`, `!`, `~`, `*`, `&`, `++`, `--`, and `sizeof`.
    case unary(String, Expr)
    /// Postfix `++` / `--`.
    case postfix(String, Expr)
    case binary(String, Expr, Expr)
    case ternary(Expr, Expr, Expr)
    /// `=` or a compound assignment such as `+=`.
    case assign(String, Expr, Expr)
    case cast(TypeName, Expr)
}

public struct Expr: Equatable, Sendable {
    public var kind: ExprKind
    public var location: SourceLocation

    public init(_ kind: ExprKind, at location: SourceLocation) {
        self.kind = kind
        self.location = location
    }
}

public indirect enum StatementKind: Equatable, Sendable {
    case expression(Expr)
    case ifElse(Expr, [Statement], [Statement])
}

public struct Statement: Equatable, Sendable {
    public var kind: StatementKind
    public var location: SourceLocation
}

/// `probe[, probe...] /predicate/ { statements }`. A clause without braces has
/// `body == nil`: DTrace then traces the probe with its default output.
public struct Clause: Equatable, Sendable {
    public var probes: [ProbeDescription]
    public var predicate: Expr?
    public var body: [Statement]?
    public var location: SourceLocation
}

/// `[self|this] type name;` at the top of a program.
public struct Declaration: Equatable, Sendable {
    public enum Scope: String, Sendable { case global, threadLocal = "self", clauseLocal = "this" }
    public var scope: Scope
    public var type: TypeName
    public var name: String
    public var location: SourceLocation
}

public struct DProgram: Equatable, Sendable {
    public var clauses: [Clause]
    public var declarations: [Declaration]
    /// `#pragma D option name[=value]` lines, in order.
    public var pragmas: [(String, String?)]

    public static func == (a: DProgram, b: DProgram) -> Bool {
        a.clauses == b.clauses && a.declarations == b.declarations
            && a.pragmas.map { $0.0 + "=" + ($0.1 ?? "") } == b.pragmas.map { $0.0 + "=" + ($0.1 ?? "") }
    }
}
