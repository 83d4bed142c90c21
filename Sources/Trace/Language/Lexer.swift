/// Splits D source into tokens on demand. `$target`, `$pid` and `$1`... are macro
/// variables, replaced while lexing as DTrace does (an integer, or a string for `$$1`).
public struct Lexer: Sendable {
    let chars: [UInt8]
    var offset = 0
    var line = 1
    var column = 1
    let macros: [String: String]

    /// Three-character operators first, so the longest match wins.
    static let punctuation: [String] = [
        "<<=", ">>=", "->", "++", "--", "<<", ">>", "<=", ">=", "==", "!=", "&&", "||", "^^",
        "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=",
        "+", "-", "*", "/", "%", "<", ">", "!", "~", "&", "|", "^", "=", "?", ":", ";", ",",
        ".", "(", ")", "[", "]", "{", "}",
    ]

    public init(_ source: String, macros: [String: String] = [:]) {
        chars = Array(source.utf8)
        self.macros = macros
    }

    public var location: SourceLocation { SourceLocation(line: line, column: column) }
    public var atEnd: Bool { offset >= chars.count }

    func peekByte(_ ahead: Int = 0) -> UInt8? {
        offset + ahead < chars.count ? chars[offset + ahead] : nil
    }

    mutating func advance() {
        if chars[offset] == UInt8(ascii: "\n") {
            line += 1
            column = 1
        } else {
            column += 1
        }
        offset += 1
    }

    /// Skips blanks, comments, and preprocessor lines (`#pragma D option` lines are
    /// collected by `Parser` before lexing, so here every `#` line is skipped).
    public mutating func skipTrivia() {
        while let c = peekByte() {
            if c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d {
                advance()
            } else if c == UInt8(ascii: "/"), peekByte(1) == UInt8(ascii: "*") {
                advance(); advance()
                while !atEnd, !(peekByte() == UInt8(ascii: "*") && peekByte(1) == UInt8(ascii: "/")) { advance() }
                if !atEnd { advance(); advance() }
            } else if c == UInt8(ascii: "/"), peekByte(1) == UInt8(ascii: "/") {
                while let d = peekByte(), d != 0x0a { _ = d; advance() }
            } else if c == UInt8(ascii: "#"), column == 1 {
                while let d = peekByte(), d != 0x0a { _ = d; advance() }
            } else {
                return
            }
        }
    }

    /// Reads a probe description's raw text: everything up to blank, `,`, `{`, `/` or `;`.
    public mutating func probeDescriptionText() -> (String, SourceLocation) {
        skipTrivia()
        let start = location
        var bytes: [UInt8] = []
        while let c = peekByte() {
            if c == 0x20 || c == 0x09 || c == 0x0a || c == 0x0d { break }
            if c == UInt8(ascii: ",") || c == UInt8(ascii: "{") || c == UInt8(ascii: ";") { break }
            if c == UInt8(ascii: "/") { break }
            bytes.append(c)
            advance()
        }
        return (expandMacros(String(decoding: bytes, as: UTF8.self)), start)
    }

    /// `$target` and `$1` inside a probe description (e.g. `pid$target:::entry`).
    func expandMacros(_ text: String) -> String {
        guard text.contains("$") else { return text }
        var out = ""
        var i = text.startIndex
        while i < text.endIndex {
            if text[i] == "$" {
                var j = text.index(after: i)
                while j < text.endIndex, text[j].isLetter || text[j].isNumber || text[j] == "_" { j = text.index(after: j) }
                let name = String(text[text.index(after: i)..<j])
                if let v = macros[name] { out += v; i = j; continue }
            }
            out.append(text[i])
            i = text.index(after: i)
        }
        return out
    }

    public mutating func next() throws(DCompileError) -> Token {
        skipTrivia()
        let start = location
        guard let c = peekByte() else { return Token(kind: .eof, location: start, text: "") }
        let begin = offset
        func text(_ lexer: Lexer) -> String { String(decoding: lexer.chars[begin..<lexer.offset], as: UTF8.self) }

        if isIdentStart(c) {
            while let d = peekByte(), isIdentStart(d) || isDigit(d) { advance() }
            return Token(kind: .identifier(text(self)), location: start, text: text(self))
        }
        if isDigit(c) {
            return try number(start: start, begin: begin)
        }
        if c == UInt8(ascii: "\"") {
            return try stringLiteral(start: start, begin: begin)
        }
        if c == UInt8(ascii: "'") {
            advance()
            var value: UInt64 = 0
            while let d = peekByte(), d != UInt8(ascii: "'") {
                var b = d
                if d == UInt8(ascii: "\\") { advance(); b = try escape() } else { advance() }
                value = value << 8 | UInt64(b)
            }
            if atEnd { throw DCompileError(.syntax, "unterminated character constant", at: start) }
            advance()
            return Token(kind: .integer(value), location: start, text: text(self))
        }
        if c == UInt8(ascii: "@") {
            advance()
            while let d = peekByte(), isIdentStart(d) || isDigit(d) { advance() }
            let name = String(text(self).dropFirst())
            return Token(kind: .aggregation(name), location: start, text: text(self))
        }
        if c == UInt8(ascii: "$") {
            advance()
            var stringForm = false
            if peekByte() == UInt8(ascii: "$") { advance(); stringForm = true }
            while let d = peekByte(), isIdentStart(d) || isDigit(d) { advance() }
            let full = text(self)
            let name = String(full.drop(while: { $0 == "$" }))
            guard let value = macros[name] else {
                // DTrace: an unset positional macro is an error naming it.
                throw DCompileError(.syntax, "macro argument \(full) is not defined", at: start)
            }
            if stringForm { return Token(kind: .string(value), location: start, text: full) }
            if let n = parseInteger(value) { return Token(kind: .integer(n), location: start, text: full) }
            // A non-numeric $1 is an identifier, as in DTrace (`$1` expands to its text).
            return Token(kind: .identifier(value), location: start, text: full)
        }
        for p in Lexer.punctuation where matches(p) {
            for _ in 0..<p.utf8.count { advance() }
            return Token(kind: .punct(p), location: start, text: p)
        }
        advance()
        throw DCompileError(.syntax, "invalid character \"\(text(self))\"", at: start)
    }

    func matches(_ p: String) -> Bool {
        var i = 0
        for b in p.utf8 {
            guard peekByte(i) == b else { return false }
            i += 1
        }
        return true
    }

    mutating func number(start: SourceLocation, begin: Int) throws(DCompileError) -> Token {
        while let d = peekByte(), isIdentStart(d) || isDigit(d) { advance() }
        let raw = String(decoding: chars[begin..<offset], as: UTF8.self)
        // Integer suffixes u, l, ul, ull are accepted and ignored: all D integers here are 64-bit.
        guard let v = parseInteger(raw) else {
            throw DCompileError(.syntax, "invalid integer constant \(raw)", at: start)
        }
        return Token(kind: .integer(v), location: start, text: raw)
    }

    mutating func stringLiteral(start: SourceLocation, begin: Int) throws(DCompileError) -> Token {
        advance()
        var bytes: [UInt8] = []
        while true {
            guard let d = peekByte(), d != 0x0a else {
                throw DCompileError(.syntax, "unterminated string constant", at: start)
            }
            if d == UInt8(ascii: "\"") { advance(); break }
            if d == UInt8(ascii: "\\") {
                advance()
                bytes.append(try escape())
            } else {
                bytes.append(d)
                advance()
            }
        }
        let raw = String(decoding: chars[begin..<offset], as: UTF8.self)
        return Token(kind: .string(String(decoding: bytes, as: UTF8.self)), location: start, text: raw)
    }

    /// One C escape after the backslash.
    mutating func escape() throws(DCompileError) -> UInt8 {
        guard let e = peekByte() else { throw DCompileError(.syntax, "unterminated escape", at: location) }
        advance()
        switch e {
        case UInt8(ascii: "n"): return 0x0a
        case UInt8(ascii: "t"): return 0x09
        case UInt8(ascii: "r"): return 0x0d
        case UInt8(ascii: "0"): return 0
        case UInt8(ascii: "a"): return 0x07
        case UInt8(ascii: "b"): return 0x08
        case UInt8(ascii: "f"): return 0x0c
        case UInt8(ascii: "v"): return 0x0b
        default: return e
        }
    }

    func isIdentStart(_ c: UInt8) -> Bool {
        (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c == UInt8(ascii: "_") || c == UInt8(ascii: "`")
    }

    func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
}

/// Parses a C integer constant (decimal, 0x hex, 0 octal), ignoring u/l suffixes.
func parseInteger(_ text: String) -> UInt64? {
    var t = Substring(text)
    let isHex = t.hasPrefix("0x") || t.hasPrefix("0X")
    while let last = t.last, "uUlL".contains(last) { t = t.dropLast() }
    if isHex { return UInt64(t.dropFirst(2), radix: 16) }
    if t.count > 1, t.hasPrefix("0") { return UInt64(t.dropFirst(), radix: 8) }
    return UInt64(t)
}
