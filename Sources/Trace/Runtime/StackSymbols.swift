/// Turns stack() and ustack() records into DTrace's `module`symbol+0xoff` frames with the
/// probes layer's symbolizers: kernel addresses from /proc/kallsyms, user addresses from
/// the recorded process's mappings and ELF symbols (read once per process, so frames of a
/// process that has since exited still resolve if it was seen alive). Unknown addresses
/// print as hex, as DTrace does.
final class StackSymbols {
    /// /proc/kallsyms costs tens of milliseconds to read; only stacks and %a/%A need it.
    let kernelSymbols = Lazy { KernelSymbols.load() }
    var kernel: KernelSymbols { kernelSymbols.value }
    var processes: [Int32: ProcessSymbols] = [:]

    /// Frames of a stack value: 8 bytes of pid, then up to Layout.stackFrames addresses.
    func frames(_ bytes: some Collection<UInt8>, user: Bool) -> [String] {
        let b = Array(bytes)
        func word(_ i: Int) -> UInt64 {
            var v: UInt64 = 0
            for j in 0..<8 where i + j < b.count { v |= UInt64(b[i + j]) << (8 * UInt64(j)) }
            return v
        }
        let pid = Int32(truncatingIfNeeded: word(0))
        var out: [String] = []
        for i in 0..<Layout.stackFrames {
            let a = word(8 + i * 8)
            if a == 0 { break }
            if user {
                if processes[pid] == nil { processes[pid] = ProcessSymbols(pid: pid) }
                out.append(processes[pid]!.format(a))
            } else {
                out.append(kernel.format(a))
            }
        }
        return out
    }
}

/// A value made on first use, at most once, from any thread: start-up work a program may
/// never need (kallsyms for stacks and %a, the syscall lists) is not done before the first
/// probe fires.
final class Lazy<T>: @unchecked Sendable {
    private let lock = PthreadMutex()
    private var made: T?
    private let make: () -> T

    init(_ make: @escaping () -> T) { self.make = make }

    var value: T {
        lock.locked {
            if let v = made { return v }
            let v = make()
            made = v
            return v
        }
    }
}
