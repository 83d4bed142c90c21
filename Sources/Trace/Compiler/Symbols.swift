/// D types as the code generator sees them: every integer lives in a 64-bit register,
/// every string in a zero-padded buffer of `stringSize` bytes (so equal strings are equal
/// byte-for-byte and can be map keys).
public enum DType: Equatable, Sendable, CustomStringConvertible {
    case integer(signed: Bool, size: Int)
    case string
    /// stack() / ustack(): the process id (for symbolizing user frames) and up to
    /// `Layout.stackFrames` return addresses, zero-padded. Only a key or traced value.
    case stack(user: Bool)

    public static let int64 = DType.integer(signed: true, size: 8)
    public static let uint64 = DType.integer(signed: false, size: 8)

    public var isString: Bool { self == .string }
    public var isSigned: Bool { if case .integer(let s, _) = self { return s }; return false }

    public var description: String {
        switch self {
        case .string: return "string"
        case .integer(let s, let size): return (s ? "int" : "uint") + "\(size * 8)_t"
        case .stack(let user): return user ? "ustack" : "stack"
        }
    }

    public var isStack: Bool { if case .stack = self { return true }; return false }

    /// Bytes this type takes in a map key, value or event record.
    public var storageSize: Int {
        switch self {
        case .string: return Layout.stringSize
        case .stack: return 8 + Layout.stackFrames * 8
        case .integer: return 8
        }
    }
}

/// Sizes of values in maps and records.
public enum Layout {
    /// DTrace's default strsize: every string is held in a zero-padded buffer of 256 bytes
    /// (in per-CPU scratch space, not on the 512-byte BPF stack); `-x strsize=N` cuts
    /// strings read from memory shorter (docs/trace.md).
    public static let stringSize = 256
    public static let recordHeader = 16
    /// DTrace's default stackframes and ustackframes.
    public static let stackFrames = 20
}

/// The aggregating functions (Dynamic Tracing Guide, "Aggregations").
public enum AggregatingFunction: String, Sendable, CaseIterable {
    case count, sum, avg, min, max, stddev, quantize, lquantize, llquantize
}

/// A map the program uses, created by the runtime before loading.
public struct MapSpec: Equatable, Sendable {
    public var name: String
    public var kind: BPFMap.Kind
    public var keySize: Int
    public var valueSize: Int
    public var maxEntries: Int
}

/// An aggregation: its map, key types and function with parameters.
public struct AggregationSpec: Equatable, Sendable {
    public var name: String
    public var map: Int
    public var keyTypes: [DType]
    public var function: AggregatingFunction
    /// lquantize (low, high, step) or llquantize (factor, low, high, steps).
    public var parameters: [Int64]
    public var valueSize: Int
}

/// A variable kept in a map: a global scalar (in the globals map), an associative
/// array (a hash keyed by the tuple), or a thread-local (a hash keyed by thread id).
struct VariableSpec: Equatable {
    enum Storage: Equatable {
        case global(offset: Int)
        case array(map: Int, keyTypes: [DType])
        case threadLocal(map: Int)
    }
    var type: DType
    var storage: Storage
}

/// printf/trace/printa... records sent through the ring buffer.
public enum RecordKind: UInt32, Sendable {
    case printf = 1, trace = 2, exit = 3, printa = 4, clear = 5, trunc = 6, probeFired = 7
    case normalize = 8, denormalize = 9
    /// A run-time fault (copyinstr of a bad address): the clause is abandoned, dtrace
    /// reports it and the ERROR clauses run, as in DTrace.
    case fault = 10
    /// commit(id) / discard(id): the speculation named in the header's word 8 is printed or
    /// thrown away by user space, which then frees its slot (docs/trace.md).
    case commit = 11, discard = 12
}

/// The user-space half of an action: what a record with this id holds.
public struct ActionSpec: Equatable, Sendable {
    public var kind: RecordKind
    /// printf format, or printa's format ("" for the default layout).
    public var format: String
    public var argumentTypes: [DType]
    /// The aggregation printa/clear/trunc/normalize name.
    public var aggregation: String?
    public var location: SourceLocation
    /// printa(@a, @b, ...): every aggregation printed side by side (first is `aggregation`).
    public var joined: [String] = []
    /// For faults: the clause statement (1-based) that faulted.
    public var actionNumber: Int = 0
    /// For faults: DTrace's fault code (DTRACEFLT_BADADDR 1, DTRACEFLT_ILLOP 3).
    public var faultCode: Int = 1
}
