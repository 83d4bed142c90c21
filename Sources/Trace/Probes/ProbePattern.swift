import LumosCore

/// A probe-description pattern `provider:module:function:name` (DTrace guide, "Probe
/// Descriptions"): with fewer than four fields the given ones are the rightmost
/// (`BEGIN` is a name, `read:entry` a function and name); an empty field matches anything;
/// fields are shell globs with `*`, `?` and `[...]` sets (`[!...]` negated).
///
/// Public API:
///   ProbePattern(parsing:) throws;  .provider/.module/.function/.name
///   ProbePattern.matches(_ probe: ProbeIdentity) -> Bool
///   ProbeIdentity(provider:module:function:name:)   -- a concrete probe
///   Glob.matches(_ pattern:, _ text:) -> Bool
public struct ProbeIdentity: Sendable, Hashable, CustomStringConvertible {
    public var provider: String
    public var module: String
    public var function: String
    public var name: String

    public init(provider: String, module: String = "", function: String = "", name: String) {
        self.provider = provider
        self.module = module
        self.function = function
        self.name = name
    }

    public var description: String { "\(provider):\(module):\(function):\(name)" }
}

public struct ProbePattern: Sendable, Hashable, CustomStringConvertible {
    public var provider: String
    public var module: String
    public var function: String
    public var name: String

    public init(provider: String = "", module: String = "", function: String = "", name: String = "") {
        self.provider = provider
        self.module = module
        self.function = function
        self.name = name
    }

    public init(parsing text: String) throws {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard parts.count <= 4 else {
            throw LumosError.invalid("invalid probe description '\(text)': more than four fields (provider:module:function:name)")
        }
        let padded = [String](repeating: "", count: 4 - parts.count) + parts
        self.init(provider: padded[0], module: padded[1], function: padded[2], name: padded[3])
    }

    public var description: String { "\(provider):\(module):\(function):\(name)" }

    public func matches(_ p: ProbeIdentity) -> Bool {
        Self.field(provider, p.provider) && Self.field(module, p.module)
            && Self.field(function, p.function) && Self.field(name, p.name)
    }

    /// True when a field has no glob characters (it names one thing exactly).
    public static func isLiteral(_ field: String) -> Bool {
        !field.isEmpty && !field.contains { $0 == "*" || $0 == "?" || $0 == "[" }
    }

    static func field(_ pattern: String, _ value: String) -> Bool {
        pattern.isEmpty || Glob.matches(pattern, value)
    }
}

public enum Glob {
    /// fnmatch(3)-style matching of *, ? and [set] over Unicode scalars.
    public static func matches(_ pattern: String, _ text: String) -> Bool {
        match(Array(pattern.unicodeScalars), 0, Array(text.unicodeScalars), 0)
    }

    private static func match(_ p: [Unicode.Scalar], _ pi: Int, _ t: [Unicode.Scalar], _ ti: Int) -> Bool {
        var pi = pi, ti = ti
        var starP = -1, starT = -1
        while ti < t.count {
            if pi < p.count {
                switch p[pi] {
                case "*":
                    starP = pi
                    starT = ti
                    pi += 1
                    continue
                case "?":
                    pi += 1
                    ti += 1
                    continue
                case "[":
                    if let (ok, next) = set(p, pi, t[ti]), ok {
                        pi = next
                        ti += 1
                        continue
                    } else if set(p, pi, t[ti]) == nil, p[pi] == t[ti] {
                        pi += 1
                        ti += 1
                        continue
                    }
                case "\\" where pi + 1 < p.count:
                    if p[pi + 1] == t[ti] {
                        pi += 2
                        ti += 1
                        continue
                    }
                default:
                    if p[pi] == t[ti] {
                        pi += 1
                        ti += 1
                        continue
                    }
                }
            }
            if starP >= 0 {
                pi = starP + 1
                starT += 1
                ti = starT
                continue
            }
            return false
        }
        while pi < p.count && p[pi] == "*" { pi += 1 }
        return pi == p.count
    }

    /// Matches a [...] set at p[pi]; nil when the bracket is not closed (then it is literal).
    private static func set(_ p: [Unicode.Scalar], _ pi: Int, _ c: Unicode.Scalar) -> (Bool, Int)? {
        var i = pi + 1
        var negate = false
        if i < p.count && (p[i] == "!" || p[i] == "^") { negate = true; i += 1 }
        var matched = false
        var first = true
        while i < p.count && (p[i] != "]" || first) {
            first = false
            if i + 2 < p.count && p[i + 1] == "-" && p[i + 2] != "]" {
                if p[i].value <= c.value && c.value <= p[i + 2].value { matched = true }
                i += 3
            } else {
                if p[i] == c { matched = true }
                i += 1
            }
        }
        guard i < p.count else { return nil }
        return (matched != negate, i + 1)
    }
}
