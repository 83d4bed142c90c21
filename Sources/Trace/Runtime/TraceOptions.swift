import LumosCore

/// dtrace -x options and flags that shape a session (DTrace guide, "Options and Tunables").
public struct TraceOptions: Sendable {
    public var quiet = false
    /// Ring buffer bytes for printf/trace records (bufsize; DTrace's default is 4m).
    public var bufferSize = 4 << 20
    /// Entries per aggregation map (aggsize, in bytes in DTrace; here divided by 256, a
    /// string key's size, to size the kernel hash). DTrace's default aggsize is 4m: 16384.
    public var aggregationEntries = 16384
    /// strsize: bytes (with the NUL) a string read from memory keeps, 2...Layout.stringSize.
    public var stringSize = Layout.stringSize
    /// How often the event buffer is read (switchrate; default 1hz in DTrace, faster here).
    public var switchRateHz = 10.0
    /// How often aggregations are snapshotted (aggrate); accepted for compatibility.
    public var aggRateHz = 1.0
    public var destructive = false
    /// Print each record's CPU/ID/FUNCTION:NAME columns (off under -q).
    public var flowIndent = false
    /// The command as invoked, prefixing notices (drops, errors): "dtrace" or "lumos trace".
    public var programName = "dtrace"
    /// nspec: speculation buffers that can be active at once (DTrace's default 1, at most
    /// `maxSpeculations`; docs/trace.md, "Speculative tracing").
    public var speculations = 1
    /// specsize: bytes of records one speculation holds until commit() or discard()
    /// (DTrace's default 4m, at most `maxSpeculationSize`); records past it are
    /// speculative drops.
    public var speculationSize = 4 << 20
    public static let maxSpeculations = 64
    public static let maxSpeculationSize = 64 << 20

    public init() {}

    /// Applies one `-x name[=value]` or `#pragma D option`.
    public mutating func set(_ name: String, _ value: String?) throws {
        switch name {
        case "quiet", "q": quiet = true
        case "destructive", "w": destructive = true
        case "bufsize":
            bufferSize = try Self.bytes(name, value)
        case "aggsize":
            aggregationEntries = max(64, try Self.bytes(name, value) / 256)
        case "switchrate":
            switchRateHz = try Self.rate(name, value)
        case "aggrate":
            aggRateHz = try Self.rate(name, value)
        case "flowindent": flowIndent = true
        case "strsize":
            let n = try Self.bytes(name, value)
            guard n >= 2 && n <= Layout.stringSize else {
                throw LumosError.invalid("option strsize: \(n) is out of range; this tracer holds strings of at most \(Layout.stringSize) bytes (2 to \(Layout.stringSize))")
            }
            stringSize = n
        case "nspec":
            guard let v = value, let n = Int(v), n >= 1, n <= Self.maxSpeculations else {
                throw LumosError.invalid("option nspec: \(value ?? "(none)") is out of range; give 1 to \(Self.maxSpeculations) speculation buffers")
            }
            speculations = n
        case "specsize":
            let n = try Self.bytes(name, value)
            guard n <= Self.maxSpeculationSize else {
                throw LumosError.invalid("option specsize: \(n) is out of range; a speculation holds at most \(Self.maxSpeculationSize >> 20)m")
            }
            speculationSize = n
        case "dynvarsize", "cleanrate", "stackframes", "ustackframes", "bufpolicy", "bufresize", "statusrate", "cpu", "zdefs", "aggsortkey", "aggsortrev", "aggsortpos", "aggsortkeypos", "stackindent", "defaultargs":
            // Accepted; these do not change what this tracer does.
            break
        default:
            throw LumosError.invalid("unknown option \(name); known: bufsize, aggsize, switchrate, aggrate, quiet, destructive, strsize, nspec, specsize")
        }
    }

    /// Sizes like 4m, 512k, 1g (DTrace's suffixes).
    static func bytes(_ name: String, _ value: String?) throws -> Int {
        guard let v = value?.lowercased(), !v.isEmpty else { throw LumosError.invalid("option \(name) needs a value, e.g. -x \(name)=4m") }
        let mult: [Character: Int] = ["k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40]
        var digits = v
        var m = 1
        if let last = v.last, let f = mult[last] { m = f; digits = String(v.dropLast()) }
        guard let n = Int(digits), n > 0 else { throw LumosError.invalid("option \(name): invalid size \(value ?? "")") }
        return n * m
    }

    /// Rates like 10hz, 100ms, 1s, or a bare number of Hz.
    static func rate(_ name: String, _ value: String?) throws -> Double {
        guard let v = value?.lowercased(), !v.isEmpty else { throw LumosError.invalid("option \(name) needs a value, e.g. -x \(name)=10hz") }
        let units: [(String, Double)] = [("hz", -1), ("ns", 1e-9), ("us", 1e-6), ("ms", 1e-3), ("sec", 1), ("s", 1), ("min", 60), ("m", 60)]
        for (suffix, scale) in units where v.hasSuffix(suffix) {
            guard let n = Double(v.dropLast(suffix.count)), n > 0 else { break }
            return scale < 0 ? n : 1 / (n * scale)
        }
        if let n = Double(v), n > 0 { return n }
        throw LumosError.invalid("option \(name): invalid rate \(v); use e.g. 10hz or 100ms")
    }
}
