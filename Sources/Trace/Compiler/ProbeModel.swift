/// What a probe description resolved to, and how the compiler reaches its data.

/// One field of a kernel tracepoint record (tracefs `events/<cat>/<name>/format`).
public struct TracepointField: Equatable, Sendable {
    public var name: String
    public var cType: String
    public var offset: Int
    public var size: Int
    public var isSigned: Bool

    public init(name: String, cType: String, offset: Int, size: Int, isSigned: Bool) {
        self.name = name
        self.cType = cType
        self.offset = offset
        self.size = size
        self.isSigned = isSigned
    }

    /// `char comm[16]`: a fixed-size string inside the record.
    public var isCharArray: Bool { cType.hasPrefix("char") && cType.hasSuffix("]") }
    /// `__data_loc char[] name`: a 32-bit (length << 16 | offset) pointing into the record.
    public var isDataLocString: Bool { cType.hasPrefix("__data_loc char") }

    /// The argument fields of a tracefs format file (the probes layer parses it).
    public static func parseFormat(_ text: String) -> [TracepointField] {
        guard let format = try? TracepointFormat.parse(text) else { return [] }
        return format.argumentFields.map { f in
            var cType = f.type
            if f.isDataLocation { cType = "__data_loc " + f.type + "[]" }
            else if let n = f.arrayLength { cType += "[\(n)]" }
            return TracepointField(name: f.name, cType: cType, offset: f.offset, size: f.size, isSigned: f.isSigned)
        }
    }
}

extension Substring {
    var trimmingBlanks: String {
        String(drop(while: { $0 == " " || $0 == "\t" }).reversed().drop(while: { $0 == " " || $0 == "\t" }).reversed())
    }
}

/// How a probe is reached in the kernel.
public enum ProbeAttachPoint: Hashable, Sendable {
    case begin, end, error
    /// A kernel tracepoint, by tracefs category and name.
    case tracepoint(category: String, name: String)
    /// Every syscall entry (or return) through raw_syscalls:sys_enter/sys_exit, filtered
    /// in the kernel to the matched syscall numbers (nil: all of them). One program
    /// instead of hundreds when a description like `syscall:::entry` matches them all.
    case allSyscalls(entry: Bool, numbers: [Int]?)
    /// profile-N: a cpu-clock event at N Hz on every CPU.
    case profile(hz: UInt64)
    /// tick-N: a cpu-clock event with this period on one CPU.
    case tick(periodNs: UInt64)
    /// A uprobe at a file offset (USDT probe or pid-provider function), in one process or
    /// (pid nil) every process mapping the file; the semaphore is raised while attached.
    case uprobe(path: String, offset: UInt64, pid: Int32?, isReturn: Bool, semaphore: UInt64?)
}

/// The data layout a program sees, which decides how arguments are read.
public enum ProbeContext: Equatable, Sendable {
    /// No arguments (BEGIN, END, ERROR run by BPF_PROG_TEST_RUN).
    case none
    /// A syscall tracepoint record: number at 8, arguments (or the return value) from 16.
    case syscall(entry: Bool, function: String?)
    /// A tracepoint record with typed fields.
    case tracepoint([TracepointField])
    /// bpf_perf_event_data: pt_regs first.
    case perfEvent
    /// A USDT probe: pt_regs, arguments located as the stapsdt note says. A RIP-relative
    /// argument (`8@counter(%rip)`) is found from the probe's own address at run time:
    /// symbolOffsets holds symbol value minus the note's pc, so PIE load bases cancel out.
    case usdt([USDTArgument], symbolOffsets: [String: Int64])
    /// A user function's entry (arguments in the x86-64 argument registers) or return
    /// (arg1 the return value, as in DTrace's pid provider).
    case userFunction(isReturn: Bool)
}

/// A probe as DTrace names it, plus where it attaches.
public struct ResolvedProbe: Equatable, Sendable {
    public var provider: String
    public var module: String
    public var function: String
    public var name: String
    public var attach: ProbeAttachPoint
    public var context: ProbeContext

    public init(provider: String, module: String = "", function: String = "", name: String, attach: ProbeAttachPoint, context: ProbeContext) {
        self.provider = provider
        self.module = module
        self.function = function
        self.name = name
        self.attach = attach
        self.context = context
    }

    public var fullName: String { "\(provider):\(module):\(function):\(name)" }
}

/// Resolves probe descriptions; the real one reads tracefs, tests use a fixed list.
public protocol ProbeCatalog: Sendable {
    /// The probes a description matches (empty when none), each with its attach point.
    /// The second value counts the DTrace-visible probes for "matched N probes"
    /// (a group of syscalls attached once still counts each syscall).
    func resolve(_ description: ProbeDescription) throws -> (probes: [ResolvedProbe], matched: Int)
}

/// Shell-style glob match of one probe-description field (`*`, `?`, `[...]`); empty matches all.
public func globMatch(_ pattern: String, _ text: String) -> Bool {
    if pattern.isEmpty || pattern == "*" { return true }
    // Most fields are a name or a name and one trailing `*` (postgresql*): compared in place
    // (USDT resolution matches every note of a file against each field).
    var stars = 0, otherMeta = false
    for c in pattern.utf8 {
        if c == UInt8(ascii: "*") { stars += 1 } else if c == UInt8(ascii: "?") || c == UInt8(ascii: "[") { otherMeta = true }
    }
    if !otherMeta {
        if stars == 0 { return pattern.utf8.elementsEqual(text.utf8) }
        if stars == 1, pattern.utf8.last == UInt8(ascii: "*") { return text.utf8.starts(with: pattern.utf8.dropLast()) }
    }
    let p = Array(pattern.utf8), t = Array(text.utf8)
    func match(_ i: Int, _ j: Int) -> Bool {
        if i == p.count { return j == t.count }
        switch p[i] {
        case UInt8(ascii: "*"):
            var k = j
            while true {
                if match(i + 1, k) { return true }
                if k == t.count { return false }
                k += 1
            }
        case UInt8(ascii: "?"):
            return j < t.count && match(i + 1, j + 1)
        case UInt8(ascii: "["):
            guard j < t.count, let close = p[(i + 1)...].firstIndex(of: UInt8(ascii: "]")) else { return false }
            var k = i + 1, ok = false
            let negate = p[k] == UInt8(ascii: "!")
            if negate { k += 1 }
            while k < close {
                if k + 2 < close, p[k + 1] == UInt8(ascii: "-") {
                    if t[j] >= p[k] && t[j] <= p[k + 2] { ok = true }
                    k += 3
                } else {
                    if t[j] == p[k] { ok = true }
                    k += 1
                }
            }
            return ok != negate && match(close + 1, j + 1)
        default:
            return j < t.count && p[i] == t[j] && match(i + 1, j + 1)
        }
    }
    return match(0, 0)
}
