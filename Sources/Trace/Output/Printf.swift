import Glibc
import LumosCore

/// DTrace's printf()/printa() format strings (DTrace guide, "Output Formatting"; libdtrace
/// dt_printf.c): C printf conversions plus %a/%A (kernel/user symbol), %C and %S (escaped
/// char/string), %k (stack), %T (RFC 822 time), %Y (walltimestamp as "2026 Nov 25 09:07:54"),
/// %@ (the aggregation value in printa), %? (pointer-wide width) and size prefixes
/// h, l, ll, L, w. Every conversion runs through vsnprintf with the same format DTrace
/// builds, so widths, flags and precision behave byte for byte as in C.
///
/// Public API:
///   TraceValue                         -- a traced datum: .integer(v, size:, signed:), .string, .stack
///   PrintfFormat(_ format:) throws     -- parse once at compile time
///     .conversions / .valueArgumentCount  -- what the compiler must record per firing
///     .render(_ args:, aggregation:, normal:, symbols:) -> String
///     .renderAggregation(_ aggregation:, symbols:) -> String    -- printa("fmt", @a)
///     .renderAggregations(_ joined:, symbols:) -> String        -- printa("fmt", @a, @b)
public enum TraceValue: Sendable, Hashable {
    /// An integer of a D type: `size` in bytes and whether the type is signed decide how
    /// %d and %x print it (a 4-byte -1 is ffffffff under %x, as in DTrace).
    case integer(Int64, size: Int = 8, signed: Bool = true)
    case string(String)
    /// Symbolized frames, innermost first.
    case stack([String])
}

/// Resolves an address to "module`symbol+0x10" for %a/%A; nil falls back to "0x..." as DTrace.
public typealias AddressSymbolizer = @Sendable (UInt64) -> String?

public struct PrintfFormat: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case signed        // d i (follows the argument's signedness, like pfcheck_dint)
        case unsigned      // u o x X
        case pointer       // p: hex without 0x
        case character     // c
        case escapedCharacter // C
        case float         // e E f g G
        case string        // s
        case escapedString // S
        case kernelSymbol  // a
        case userSymbol    // A
        case stack         // k
        case rfc822Time    // T
        case wallTime      // Y
        case percent       // %%
    }

    public struct Conversion: Sendable, Equatable {
        /// The conversion as written without flags, e.g. "lld", "s", "@d" is name "d" + aggregation.
        public var name: String
        public var kind: Kind
        public var flags: String
        public var width: Int
        public var precision: Int?
        public var dynamicWidth: Bool
        public var dynamicPrecision: Bool
        /// %@...: consumes the aggregation value, not an argument.
        public var aggregation: Bool
    }

    public enum Piece: Sendable, Equatable {
        case literal(String)
        case conversion(Conversion)
    }

    public let format: String
    public let pieces: [Piece]

    public var conversions: [Conversion] {
        pieces.compactMap { if case let .conversion(c) = $0 { return c } else { return nil } }
    }

    /// Arguments consumed from the printf() argument list (dynamic widths/precisions
    /// included; %@ and %% excluded).
    public var valueArgumentCount: Int {
        conversions.reduce(0) { n, c in
            n + (c.dynamicWidth ? 1 : 0) + (c.dynamicPrecision ? 1 : 0)
                + ((c.aggregation || c.kind == .percent) ? 0 : 1)
        }
    }

    private static let names: [String: Kind] = [
        "a": .kernelSymbol, "A": .userSymbol, "c": .character, "C": .escapedCharacter,
        "d": .signed, "i": .signed, "e": .float, "E": .float, "f": .float, "g": .float, "G": .float,
        "hd": .signed, "hi": .signed, "ho": .unsigned, "hu": .unsigned, "hx": .unsigned, "hX": .unsigned,
        "k": .stack, "lc": .character, "ld": .signed, "li": .signed, "lo": .unsigned, "lu": .unsigned,
        "ls": .string, "lx": .unsigned, "lX": .unsigned, "lld": .signed, "lli": .signed, "llo": .unsigned,
        "llu": .unsigned, "llx": .unsigned, "llX": .unsigned, "Le": .float, "LE": .float, "Lf": .float,
        "Lg": .float, "LG": .float, "o": .unsigned, "p": .pointer, "s": .string, "S": .escapedString,
        "T": .rfc822Time, "u": .unsigned, "wc": .character, "ws": .string, "x": .unsigned, "X": .unsigned,
        "Y": .wallTime, "%": .percent,
    ]

    /// Parses a D format string; errors read like DTrace's ("format conversion #2 is
    /// undefined: %z").
    public init(_ format: String) throws {
        self.format = format
        var pieces: [Piece] = []
        let chars = Array(format.unicodeScalars)
        var literal = ""
        var i = 0
        var number = 0
        while i < chars.count {
            let ch = chars[i]
            if ch != "%" {
                literal.unicodeScalars.append(ch)
                i += 1
                continue
            }
            number += 1
            if !literal.isEmpty { pieces.append(.literal(literal)); literal = "" }
            i += 1
            var flags = ""
            var width = 0
            var precision: Int? = nil
            var dot = false
            var dynW = false, dynP = false, agg = false
            var name = ""
            scan: while true {
                guard i < chars.count else {
                    throw LumosError.invalid("format conversion #\(number) name expected before end of format string")
                }
                let c = chars[i]
                switch c {
                case "0" where !dot && width == 0:
                    if !flags.contains("0") { flags.removeAll { $0 == "-" }; flags += "0" }
                    i += 1
                case "0"..."9":
                    var n = 0
                    while i < chars.count, chars[i].value >= 0x30, chars[i].value <= 0x39 {
                        n = n * 10 + Int(chars[i].value - 0x30)
                        i += 1
                    }
                    if dot { precision = n } else { width = n }
                case "#", "+", " ", "'":
                    flags.unicodeScalars.append(c)
                    i += 1
                case "-":
                    flags.removeAll { $0 == "0" }
                    if !flags.contains("-") { flags += "-" }
                    i += 1
                case "*":
                    if dot {
                        if dynP { throw LumosError.invalid("format conversion #\(number) has more than one '*' specified for the output precision") }
                        dynP = true
                    } else {
                        if dynW { throw LumosError.invalid("format conversion #\(number) has more than one '*' specified for the output width") }
                        dynW = true
                    }
                    i += 1
                case ".":
                    if dot { throw LumosError.invalid("format conversion #\(number) has more than one '.' specified") }
                    dot = true
                    precision = 0
                    i += 1
                case "?":
                    width = 16  // LP64 pointer width
                    i += 1
                case "@":
                    agg = true
                    i += 1
                case "$":
                    throw LumosError.invalid("format conversion #\(number) uses unsupported positional format (%n$)")
                case "h", "l", "L", "w":
                    name.unicodeScalars.append(c)
                    i += 1
                case "%":
                    if chars[i - 1] != "%" {
                        throw LumosError.invalid("format conversion #\(number) cannot be combined with other format flags: %%")
                    }
                    name += "%"
                    i += 1
                    break scan
                default:
                    name.unicodeScalars.append(c)
                    i += 1
                    break scan
                }
            }
            guard let kind = Self.names[name] else {
                throw LumosError.invalid("format conversion #\(number) is undefined: %\(name)")
            }
            pieces.append(.conversion(Conversion(name: name, kind: kind, flags: flags, width: width, precision: precision,
                                                 dynamicWidth: dynW, dynamicPrecision: dynP, aggregation: agg)))
        }
        if !literal.isEmpty { pieces.append(.literal(literal)) }
        self.pieces = pieces
    }

    /// Formats one printf() firing. `aggregation` is the value for %@ conversions (printa).
    public func render(_ args: [TraceValue], aggregation: AggregationValue? = nil, normal: Int64 = 1,
                       symbols: AddressSymbolizer? = nil) -> String {
        render(args, aggregations: aggregation.map { [$0] } ?? [], normals: [normal], symbols: symbols)
    }

    func render(_ args: [TraceValue], aggregations: [AggregationValue], normals: [Int64],
                symbols: AddressSymbolizer?) -> String {
        var out = ""
        var next = 0
        var currentAgg = 0
        func take() -> TraceValue? {
            defer { next += 1 }
            return next < args.count ? args[next] : nil
        }
        for piece in pieces {
            switch piece {
            case let .literal(s):
                out += s
            case let .conversion(c):
                if c.kind == .percent { out += "%"; continue }
                var width = c.width
                var precision = c.precision
                var flags = c.flags
                if c.dynamicWidth, case let .integer(w, _, _)? = take() {
                    width = Int(Int32(truncatingIfNeeded: w))
                    if width < 0 { width = -width; if !flags.contains("-") { flags += "-" } }
                }
                if c.dynamicPrecision, case let .integer(p, _, _)? = take() { precision = Int(Int32(truncatingIfNeeded: p)) }
                if c.aggregation {
                    guard !aggregations.isEmpty else { continue }
                    let idx = Swift.min(currentAgg, aggregations.count - 1)
                    if currentAgg < aggregations.count - 1 { currentAgg += 1 }
                    out += Self.aggregationDatum(aggregations[idx], c, flags: flags, width: width, precision: precision,
                                                 normal: idx < normals.count ? normals[idx] : 1)
                    continue
                }
                guard let v = take() else { continue }
                out += Self.datum(v, c, flags: flags, width: width, precision: precision, symbols: symbols)
            }
        }
        return out
    }

    /// printa("format", @a): every record in DTrace order, keys feeding the conversions
    /// in turn and %@ the value.
    public func renderAggregation(_ aggregation: Aggregation, symbols: AddressSymbolizer? = nil) -> String {
        aggregation.sorted().map { r in
            render(r.keys.map(\.traceValue), aggregations: [r.value], normals: [aggregation.normal], symbols: symbols)
        }.joined()
    }

    /// printa("format", @a, @b, ...): successive %@ conversions take successive aggregations.
    public func renderAggregations(_ joined: [Aggregation], symbols: AddressSymbolizer? = nil) -> String {
        if joined.count == 1 { return renderAggregation(joined[0], symbols: symbols) }
        return AggregationText.joinedBundles(joined).map { b in
            render(b.keys.map(\.traceValue), aggregations: b.values, normals: joined.map(\.normal), symbols: symbols)
        }.joined()
    }

    // MARK: - one conversion

    private static func spec(_ flags: String, _ width: Int, _ precision: Int?, _ conv: String) -> String {
        var f = "%"
        // Same flag order as libdtrace builds them: # 0 - + ' space.
        for fl in ["#", "0", "-", "+", "'", " "] where flags.contains(fl) { f += fl }
        if width != 0 { f += String(width) }
        if let p = precision { f += "." + String(p) }
        return f + conv
    }

    private static func lastChar(_ name: String) -> String { String(name.last ?? "d") }

    static func datum(_ v: TraceValue, _ c: Conversion, flags: String, width: Int, precision: Int?,
                      symbols: AddressSymbolizer?) -> String {
        let str: (String) -> String = { CText.format(spec(flags, width, precision, "s"), string: $0) }
        switch (c.kind, v) {
        case let (.signed, .integer(x, size, signed)):
            if signed { return CText.format(spec(flags, width, precision, "lld"), IntegerSize.signed(x, size: size)) }
            return CText.format(spec(flags, width, precision, "llu"), IntegerSize.unsigned(x, size: size))
        case let (.unsigned, .integer(x, size, _)):
            return CText.format(spec(flags, width, precision, "ll" + lastChar(c.name)), IntegerSize.unsigned(x, size: size))
        case let (.pointer, .integer(x, size, _)):
            return CText.format(spec(flags, width, precision, "llx"), IntegerSize.unsigned(x, size: size))
        case let (.character, .integer(x, _, _)):
            return CText.format(spec(flags, width, precision, "c"), Int32(Int8(truncatingIfNeeded: x)))
        case let (.escapedCharacter, .integer(x, _, _)):
            return str(Escaping.escape([UInt8(truncatingIfNeeded: x)]))
        case let (.float, .integer(x, _, signed)):
            let d = signed ? Double(x) : Double(UInt64(bitPattern: x))
            return CText.format(spec(flags, width, precision, lastChar(c.name)), d)
        case let (.string, .string(s)):
            return str(s)
        case let (.escapedString, .string(s)):
            return str(Escaping.escape(Array(s.utf8)))
        case let (.kernelSymbol, .integer(x, _, _)), let (.userSymbol, .integer(x, _, _)):
            let a = UInt64(bitPattern: x)
            return str(symbols?(a) ?? CText.format("0x%llx", a))
        case let (.wallTime, .integer(x, _, _)):
            return str(TimeText.walltime(x))
        case let (.rfc822Time, .integer(x, _, _)):
            return str(TimeText.rfc822(x))
        case let (.stack, .stack(frames)):
            // A left-aligned width sets the stack indent (pfprint_stack); the frames are
            // otherwise printed one per line.
            return StackText.frames(frames, indent: flags.contains("-") ? width : 0)
        case let (_, .stack(frames)):
            return StackText.frames(frames)
        case let (_, .string(s)):
            return str(s)
        case let (_, .integer(x, size, signed)):
            // A type the compiler should have rejected; print the number rather than nothing.
            return signed ? CText.format(spec(flags, width, precision, "lld"), IntegerSize.signed(x, size: size))
                : CText.format(spec(flags, width, precision, "llu"), IntegerSize.unsigned(x, size: size))
        }
    }

    static func aggregationDatum(_ v: AggregationValue, _ c: Conversion, flags: String, width: Int, precision: Int?,
                                 normal: Int64) -> String {
        let n = Swift.max(normal, 1)
        let conv: String
        switch c.kind {
        case .unsigned, .pointer: conv = "ll" + (c.kind == .pointer ? "x" : lastChar(c.name))
        case .float: conv = lastChar(c.name)
        default: conv = "lld"
        }
        func number(_ x: Int64) -> String {
            if c.kind == .float { return CText.format(spec(flags, width, precision, conv), Double(x)) }
            return CText.format(spec(flags, width, precision, conv), x)
        }
        switch v {
        case let .count(x), let .sum(x), let .min(x), let .max(x): return number(x / n)
        case let .avg(cnt, t): return number(cnt == 0 ? 0 : t / n / cnt)
        case let .stddev(cnt, t, s):
            return number(Int64(bitPattern: Statistics.stddev(count: cnt, total: t, sumOfSquares: s, normal: n)))
        case let .quantize(b): return DistributionText.quantize(b, normal: n)
        case let .lquantize(l, b): return DistributionText.lquantize(l, b, normal: n)
        case let .llquantize(l, b): return DistributionText.llquantize(l, b, normal: n)
        }
    }
}

extension AggregationKey {
    /// The key as a printf argument (printa formats consume keys like printf arguments).
    public var traceValue: TraceValue {
        switch self {
        case let .integer(v, size): return .integer(v, size: size, signed: true)
        case let .string(s): return .string(s)
        case let .stack(f): return .stack(f)
        }
    }
}

/// %S / %C escaping (libdtrace strchr2esc): C escapes for the usual control characters,
/// octal for other unprintable bytes.
enum Escaping {
    static func escape(_ bytes: [UInt8]) -> String {
        var out = ""
        for b in bytes {
            if b == 0 { break }
            switch b {
            case 0x07: out += "\\a"
            case 0x08: out += "\\b"
            case 0x0c: out += "\\f"
            case 0x0a: out += "\\n"
            case 0x0d: out += "\\r"
            case 0x09: out += "\\t"
            case 0x0b: out += "\\v"
            case 0x5c: out += "\\\\"
            case 0x22: out += "\\\""
            case 0x27: out += "\\'"
            case 0x20...0x7e: out.unicodeScalars.append(Unicode.Scalar(b))
            default: out += CText.format("\\%03o", UInt32(b))
            }
        }
        return out
    }
}

/// Wall-clock renderings of a nanosecond timestamp, in local time as DTrace prints them.
public enum TimeText {
    /// %Y: ctime(3) rearranged to "2026 Nov 25 09:07:54" (year first, day space-padded).
    public static func walltime(_ nanoseconds: Int64) -> String {
        var t = time_t(nanoseconds / 1_000_000_000)
        var buf = [CChar](repeating: 0, count: 32)
        guard ctime_r(&t, &buf) != nil else { return "" }
        let s = buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }
        guard s.count >= 24 else { return "" }
        return String(decoding: s[20..<24], as: UTF8.self) + String(decoding: s[3..<19], as: UTF8.self)
    }

    /// %T: RFC 822 ("Wed, 25 Nov 2026 09:07:54 UTC").
    public static func rfc822(_ nanoseconds: Int64) -> String {
        var t = time_t(nanoseconds / 1_000_000_000)
        var tmv = tm()
        localtime_r(&t, &tmv)
        var buf = [CChar](repeating: 0, count: 64)
        let n = strftime(&buf, buf.count, "%a, %d %b %G %T %Z", &tmv)
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
