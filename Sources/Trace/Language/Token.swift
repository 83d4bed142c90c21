/// One D token. Probe descriptions are not tokens: the parser scans them as raw text,
/// because `*`, `?`, `[`, `-` and `:` in a description mean globs, not operators.
public enum TokenKind: Equatable, Sendable {
    case identifier(String)
    case integer(UInt64)
    case string(String)
    /// `@name`, or `@` alone (the anonymous aggregation, name "").
    case aggregation(String)
    /// Operators and punctuation, e.g. `->`, `+=`, `{`.
    case punct(String)
    case eof
}

public struct Token: Equatable, Sendable {
    public var kind: TokenKind
    public var location: SourceLocation
    /// The source text of the token, used in `syntax error near "..."` messages.
    public var text: String
}
