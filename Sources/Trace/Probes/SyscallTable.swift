import LumosCore

/// The `syscall` provider on this kernel: one entry/return probe pair per system call,
/// derived from tracefs syscalls/sys_enter_<name> and sys_exit_<name> (x86_64 names as the
/// kernel spells them: read, openat, newfstatat, ...), with each call's arguments (name, C
/// type, size, signedness) in order as arg0, arg1, ... and the return value as arg0/arg1 of
/// the return probe, as in DTrace.
///
/// Public API:
///   SyscallTable.names(tracefs:) -> [String]
///   SyscallTable.probe(named:tracefs:) throws -> SyscallProbe
///   SyscallTable.load(tracefs:) throws -> [SyscallProbe]
///   SyscallProbe: name, entry/return TracepointName, entryID/returnID, arguments, returnValue
public struct SyscallArgument: Sendable, Hashable {
    /// Position: arg0, arg1, ...
    public var index: Int
    public var name: String
    public var type: String
    public var size: Int
    public var isSigned: Bool
    /// Byte offset of the argument in the sys_enter_* record (8-byte slots from 16).
    public var recordOffset: Int
}

public struct SyscallProbe: Sendable, Hashable {
    public var name: String
    public var entry: TracepointName
    public var `return`: TracepointName
    public var entryID: UInt32
    public var returnID: UInt32
    public var arguments: [SyscallArgument]
    /// The "ret" field of sys_exit_* (long).
    public var returnValue: TracepointFormat.Field?
}

public enum SyscallTable {
    public static let category = "syscalls"

    /// Syscalls that have both an enter and an exit tracepoint, sorted.
    public static func names(tracefs: Tracefs) -> [String] {
        let events = Set(tracefs.events(in: category))
        return events.compactMap { e -> String? in
            guard e.hasPrefix("sys_enter_") else { return nil }
            let n = String(e.dropFirst("sys_enter_".count))
            return events.contains("sys_exit_" + n) ? n : nil
        }.sorted()
    }

    public static func probe(named name: String, tracefs: Tracefs) throws -> SyscallProbe {
        let entry = TracepointName(category: category, name: "sys_enter_" + name)
        let ret = TracepointName(category: category, name: "sys_exit_" + name)
        guard tracefs.exists(entry), tracefs.exists(ret) else {
            throw LumosError.notFound("system call '\(name)' has no tracepoints in \(tracefs.root)/events/\(category); list them with dtrace -l -n 'syscall:::entry'")
        }
        let enterFormat = try tracefs.format(of: entry)
        let exitFormat = try tracefs.format(of: ret)
        return make(name: name, entryFormat: enterFormat, exitFormat: exitFormat)
    }

    public static func load(tracefs: Tracefs) throws -> [SyscallProbe] {
        try names(tracefs: tracefs).map { try probe(named: $0, tracefs: tracefs) }
    }

    /// Builds a probe from the two formats (unit-testable without tracefs).
    public static func make(name: String, entryFormat: TracepointFormat, exitFormat: TracepointFormat) -> SyscallProbe {
        let args = entryFormat.argumentFields.filter { $0.name != "__syscall_nr" }.enumerated().map { i, f in
            SyscallArgument(index: i, name: f.name, type: f.type, size: f.size, isSigned: f.isSigned, recordOffset: f.offset)
        }
        return SyscallProbe(name: name,
                            entry: TracepointName(category: category, name: entryFormat.name),
                            return: TracepointName(category: category, name: exitFormat.name),
                            entryID: entryFormat.id, returnID: exitFormat.id,
                            arguments: args, returnValue: exitFormat.field(named: "ret"))
    }
}
