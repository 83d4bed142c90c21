/// The output of the compiler: programs to load and attach, maps to create, and the
/// tables user space needs to decode records and print aggregations.
public struct CompiledProgram: Sendable {
    public var probe: ResolvedProbe
    /// Index into `CompiledScript.probes` (the probe id printed in default output).
    public var probeID: Int
    public var clause: Int
    public var kind: BPFProgram.Kind
    public var instructions: [BPFInstruction]
    /// D source line per instruction, for verifier errors.
    public var lines: [Int]
    public var mapRelocations: [MapRelocation]
}

/// Initial contents of a map (syscall filters, syscall names).
public struct MapEntry: Equatable, Sendable {
    public var key: [UInt8]
    public var value: [UInt8]
}

/// dt_unwind and dt_unwind_pids, and the table the session refreshes them from.
public struct UnwindMaps: Sendable {
    public var table: Int
    public var pids: Int
    /// Rows in dt_unwind's one value (a power of two: the search's steps are its log2).
    public var capacity: Int
    public var source: UserUnwindTable
}

public struct CompiledScript: Sendable {
    public var programs: [CompiledProgram]
    public var maps: [MapSpec]
    public var mapContents: [Int: [MapEntry]]
    public var aggregations: [AggregationSpec]
    public var actions: [ActionSpec]
    /// Each probe description with the number of probes it matched, in source order.
    public var matched: [(description: String, count: Int)]
    /// Every distinct probe, indexed by probe id.
    public var probes: [ResolvedProbe]
    public var pragmas: [(String, String?)]
    /// Well-known maps.
    public var ringBufferMap: Int
    public var dropsMap: Int
    /// dt_state: [0] non-zero once tracing stopped (exit() or the end of the session).
    public var stateMap: Int
    /// The zonename map (cgroup id -> name) the runtime fills, when the script uses zonename.
    public var zoneNameMap: Int?
    /// dt_spec: one 8-byte state word per speculation slot (index 0 unused), when the
    /// script uses speculations (SpeculationState).
    public var speculationMap: Int?
    /// The .eh_frame table ustack() walks for the target, when a clause uses ustack().
    public var unwind: UnwindMaps?
    /// Whether a clause without actions exists (DTrace prints the default probe line).
    public var hasBEGIN: Bool { programs.contains { $0.probe.attach == .begin } }
}
