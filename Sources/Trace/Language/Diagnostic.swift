/// A position in D source text, 1-based like DTrace's messages.
public struct SourceLocation: Equatable, Hashable, Sendable, CustomStringConvertible {
    public var line: Int
    public var column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    public var description: String { "line \(line), column \(column)" }
}

/// A D compile error: a syntax, type or probe-matching error at a source position.
/// Rendered the way DTrace words them (`failed to compile script: line N: ...`),
/// with the column added so the user can find the token.
public struct DCompileError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case syntax, type, probe, verifier
    }
    public var kind: Kind
    public var message: String
    public var location: SourceLocation

    public init(_ kind: Kind, _ message: String, at location: SourceLocation) {
        self.kind = kind
        self.message = message
        self.location = location
    }

    /// `line 3: column 7: syntax error near ";"`.
    public var description: String {
        // Verifier errors know the line but not the column.
        location.column > 0 ? "line \(location.line): column \(location.column): \(message)" : "line \(location.line): \(message)"
    }

    /// The full one-line message the `dtrace` command prints after `dtrace: `.
    public func rendered(scriptName: String?) -> String {
        if kind == .probe {
            return "invalid probe description: \(description)"
        }
        let what = scriptName.map { "script \($0)" } ?? "script"
        return "failed to compile \(what): \(description)"
    }
}
