import CLinux
import Glibc
import LumosCore

/// A loaded BPF program; closed on deinit.
public final class BPFProgram: @unchecked Sendable {
    public enum Kind: UInt32, Sendable {
        case kprobe = 2, tracepoint = 5, perfEvent = 7, rawTracepoint = 17
    }

    public let fd: Int32
    public let kind: Kind
    public let name: String

    /// A verifier rejection: the kernel's log and the instruction it stopped at.
    public struct Rejected: Error, CustomStringConvertible, Sendable {
        public var errno: Int32
        public var log: String
        /// The instruction index of the last instruction the verifier printed.
        public var instruction: Int?
        /// The verifier's own reason: the last non-empty log line that is not a statistic.
        public var reason: String

        public var description: String { "BPF program rejected by the kernel verifier: \(reason)" }
    }

    public init(_ kind: Kind, name: String, instructions: [BPFInstruction], logSize: Int = 1 << 20) throws {
        self.kind = kind
        self.name = name
        let bytes = instructions.flatMap(\.bytes)
        // First try without a log (fast path); on failure reload with level 1 to explain it
        // (the 1 MiB log buffer is only allocated then).
        var r = bytes.withUnsafeBytes { clinux_bpf_prog_load(kind.rawValue, $0.baseAddress, UInt32(instructions.count), "GPL", nil, 0, 0, name) }
        if r < 0 {
            let first = errno
            if first == EPERM {
                throw LumosError(.permission, "cannot load BPF program \(name): permission denied; run dtrace as root", errno: first)
            }
            var log = [CChar](repeating: 0, count: logSize)
            r = bytes.withUnsafeBytes { b in
                log.withUnsafeMutableBufferPointer { clinux_bpf_prog_load(kind.rawValue, b.baseAddress, UInt32(instructions.count), "GPL", $0.baseAddress, UInt32(logSize), 1, name) }
            }
            if r < 0 {
                let e = errno
                let text = String(decoding: log.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
                throw BPFProgram.rejection(errno: e, log: text)
            }
        }
        fd = r
    }

    deinit { close(fd) }

    static func rejection(errno: Int32, log: String) -> Rejected {
        let lines = log.split(separator: "\n").map(String.init)
        var instruction: Int?
        for line in lines {
            // Instruction lines look like "12: (85) call bpf_map_lookup_elem#1".
            if let colon = line.firstIndex(of: ":"), let n = Int(line[..<colon]), line[line.index(after: colon)...].hasPrefix(" (") {
                instruction = n
            }
        }
        // Checks made before the walk ("unreachable insn 9", "jump out of range from insn 3")
        // name the instruction in the message instead.
        if instruction == nil {
            for line in lines {
                let words = line.split(separator: " ")
                if let i = words.firstIndex(of: "insn"), i + 1 < words.count, let n = Int(words[i + 1].prefix(while: { $0.isNumber })) {
                    instruction = n
                }
            }
        }
        let stats = ["processed ", "verification time", "stack depth", "max_states", "peak_states", "mark_read"]
        let reason = lines.last(where: { l in !l.isEmpty && !stats.contains(where: { l.hasPrefix($0) }) && Int(l.prefix(while: { $0 != ":" })) == nil })
            ?? String(cString: strerror(errno))
        return Rejected(errno: errno, log: log, instruction: instruction, reason: reason)
    }

    /// Runs the program once in this task (BPF_PROG_TEST_RUN); used for BEGIN, END and ERROR.
    @discardableResult
    public func testRun(context: [UInt8]) throws -> UInt32 {
        var ret: UInt32 = 0
        let r = context.withUnsafeBytes { clinux_bpf_prog_test_run(fd, $0.baseAddress, UInt32(context.count), &ret) }
        if r < 0 { throw Errno(errno, "bpf(BPF_PROG_TEST_RUN)", name) }
        return ret
    }
}
