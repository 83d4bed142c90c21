/// Turns stack() and ustack() records into DTrace's `module`symbol+0xoff` frames with the
/// probes layer's symbolizers: kernel addresses from /proc/kallsyms, user addresses from
/// the recorded process's mappings and ELF symbols (read once per process, so frames of a
/// process that has since exited still resolve if it was seen alive). Unknown addresses
/// print as hex, as DTrace does.
final class StackSymbols {
    let kernelSymbols = LazyKernelSymbols()
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

/// /proc/kallsyms, read on first use only: reading it costs tens of milliseconds, and only
/// stacks and %a/%A of kernel addresses need it.
final class LazyKernelSymbols: @unchecked Sendable {
    private let lock = PthreadMutex()
    private var loaded: KernelSymbols?

    var value: KernelSymbols {
        lock.locked {
            if let k = loaded { return k }
            let k = KernelSymbols.load()
            loaded = k
            return k
        }
    }
}
