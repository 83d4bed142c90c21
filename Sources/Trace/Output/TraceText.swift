/// The rest of dtrace(1M)'s output: the per-firing heading and probe column, trace()'s
/// datum layout, the "matched N probes" notice and the `dtrace -l` listing (illumos
/// cmd/dtrace/dtrace.c and libdtrace dt_consume.c).
///
/// Public API:
///   TraceText.heading                          -- "CPU     ID                    FUNCTION:NAME\n"
///   TraceText.probeColumn(cpu:id:function:name:) -- "  0  12345                   read:entry "
///   TraceText.endOfFiring                      -- "\n" after the records, unless -q
///   TraceText.trace(_:quiet:)                  -- one trace() datum
///   TraceText.matched(description:count:)      -- "dtrace: description 'syscall:::entry ' matched 1 probe\n"
///   TraceText.matched(script:count:)           -- "dtrace: script 'x.d' matched 3 probes\n"
///   ProbeListText.header / .row(...)           -- `dtrace -l`
public enum TraceText {
    /// Printed once, before the first firing, unless quiet ("%3s %6s %32s\n").
    public static let heading = CText.pad("CPU", 3) + " " + CText.pad("ID", 6) + " " + CText.pad("FUNCTION:NAME", 32) + "\n"

    /// The columns that start each firing's line unless quiet ("%3d %6d %32s ").
    public static func probeColumn(cpu: Int, id: Int, function: String, name: String) -> String {
        CText.format("%3d %6d ", Int32(truncatingIfNeeded: cpu), Int32(truncatingIfNeeded: id))
            + CText.pad(function + ":" + name, 32) + " "
    }

    /// Ends a firing's line when not quiet.
    public static let endOfFiring = "\n"

    /// trace(expr): integers by size (" %16lld", " %8d", " %5d", " %3d"), strings as
    /// "  %-33s", nothing extra when quiet.
    public static func trace(_ value: TraceValue, quiet: Bool) -> String {
        switch value {
        case let .integer(v, size, signed):
            let shown = signed ? IntegerSize.signed(v, size: size) : Int64(bitPattern: IntegerSize.unsigned(v, size: size))
            if size < 8 {
                // libdtrace prints the narrow types with %d of the 32-bit value.
                let narrow = Int32(truncatingIfNeeded: shown)
                if quiet { return CText.format("%d", narrow) }
                return CText.format(" %*d", AggregationText.width(forSize: size), narrow)
            }
            return quiet ? CText.format("%lld", shown) : CText.format(" %16lld", shown)
        case let .string(s):
            return quiet ? s : "  " + CText.pad(s, -33)
        case let .stack(frames):
            return StackText.frames(frames)
        }
    }

    /// The notice for `-n`: DTrace names the program by its text up to the first '{', '/'
    /// or ';' (so `-n 'syscall:::entry { ... }'` reports 'syscall:::entry ').
    public static func matched(description program: String, count: Int, programName: String = "dtrace") -> String {
        var name = program
        if let i = name.firstIndex(where: { $0 == "{" || $0 == "/" || $0 == ";" }) { name = String(name[..<i]) }
        return "\(programName): description '\(name)' matched \(count) probe\(count == 1 ? "" : "s")\n"
    }

    /// The notice for `-s FILE`.
    public static func matched(script path: String, count: Int, programName: String = "dtrace") -> String {
        "\(programName): script '\(path)' matched \(count) probe\(count == 1 ? "" : "s")\n"
    }
}

/// `dtrace -l`: "%5s %10s %17s %33s %s" header and rows.
public enum ProbeListText {
    public static let header = CText.pad("ID", 5) + " " + CText.pad("PROVIDER", 10) + " " + CText.pad("MODULE", 17) + " "
        + CText.pad("FUNCTION", 33) + " NAME\n"

    public static func row(id: Int, provider: String, module: String, function: String, name: String) -> String {
        CText.format("%5d ", Int32(truncatingIfNeeded: id)) + CText.pad(provider, 10) + " " + CText.pad(module, 17) + " "
            + CText.pad(function, 33) + " " + name + "\n"
    }
}
