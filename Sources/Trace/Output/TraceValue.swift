/// A traced datum as the consumer decodes it from a record, for trace(), printf() and
/// printa() keys.
///
/// Public API:
///   TraceValue: .integer(v, size:, signed:), .string, .stack(frames)
///   AddressSymbolizer: address -> "module`symbol+0x10" for %a/%A (nil: print hex)
///   AggregationKey.traceValue
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
