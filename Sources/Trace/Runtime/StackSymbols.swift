import Glibc
import LumosCore

/// Turns stack() and ustack() addresses into DTrace's `module`symbol+0xoff` frames:
/// kernel addresses from /proc/kallsyms, user addresses from the process's mappings and
/// the ELF symbols of the mapped file. Unknown addresses print as hex, as DTrace does.
final class StackSymbols {
    struct KernelSymbol { var address: UInt64; var name: String; var module: String }
    struct Mapping { var start: UInt64; var end: UInt64; var offset: UInt64; var path: String }

    lazy var kernel: [KernelSymbol] = {
        var out: [KernelSymbol] = []
        guard let text = TextFile.read("/proc/kallsyms") else { return out }
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ", maxSplits: 3)
            guard f.count >= 3, let a = UInt64(f[0], radix: 16), a != 0, "tTwW".contains(f[1]) else { continue }
            var module = "vmlinux"
            if f.count == 4, let open = f[3].firstIndex(of: "["), let close = f[3].firstIndex(of: "]") {
                module = String(f[3][f[3].index(after: open)..<close])
            }
            out.append(KernelSymbol(address: a, name: String(f[2]), module: module))
        }
        return out.sorted { $0.address < $1.address }
    }()

    var mappings: [UInt64: [Mapping]] = [:]
    var elfSymbols: [String: (ELFFile, [ELFSymbol])?] = [:]

    func frames(_ bytes: some Collection<UInt8>, user: Bool) -> [String] {
        let b = Array(bytes)
        func word(_ i: Int) -> UInt64 {
            var v: UInt64 = 0
            for j in 0..<8 where i + j < b.count { v |= UInt64(b[i + j]) << (8 * UInt64(j)) }
            return v
        }
        let pid = word(0)
        var out: [String] = []
        for i in 0..<Layout.stackFrames {
            let a = word(8 + i * 8)
            if a == 0 { break }
            out.append(user ? userFrame(pid: pid, a) : kernelFrame(a))
        }
        return out
    }

    func kernelFrame(_ a: UInt64) -> String {
        let syms = kernel
        var lo = 0, hi = syms.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if syms[mid].address <= a { lo = mid + 1 } else { hi = mid }
        }
        guard lo > 0 else { return "0x" + String(a, radix: 16) }
        let s = syms[lo - 1]
        return "\(s.module)`\(s.name)+0x\(String(a - s.address, radix: 16))"
    }

    func userFrame(pid: UInt64, _ a: UInt64) -> String {
        if mappings[pid] == nil { mappings[pid] = readMappings(pid) }
        guard let m = mappings[pid]?.first(where: { a >= $0.start && a < $0.end }) else { return "0x" + String(a, radix: 16) }
        let module = Files.basename(m.path)
        let fileOffset = a - m.start + m.offset
        if elfSymbols[m.path] == nil {
            let path = Files.exists("/proc/\(pid)/root\(m.path)") ? "/proc/\(pid)/root\(m.path)" : m.path
            if let elf = try? ELFFile(path: path), let syms = try? elf.symbols() {
                elfSymbols[m.path] = (elf, syms.filter { $0.kind == .function && $0.value != 0 })
            } else {
                elfSymbols[m.path] = .some(nil)
            }
        }
        guard let entry = elfSymbols[m.path], let (elf, syms) = entry else { return "\(module)`0x\(String(fileOffset, radix: 16))" }
        // File offset -> link-time address through the PT_LOAD segment holding it.
        guard let seg = elf.segments.first(where: { $0.type == 1 && fileOffset >= $0.offset && fileOffset < $0.offset + $0.fileSize }) else {
            return "\(module)`0x\(String(fileOffset, radix: 16))"
        }
        let vaddr = fileOffset - seg.offset + seg.virtualAddress
        guard let s = syms.last(where: { $0.value <= vaddr && ($0.size == 0 || vaddr < $0.value + $0.size) }) ?? nil else {
            return "\(module)`0x\(String(vaddr, radix: 16))"
        }
        return "\(module)`\(s.name)+0x\(String(vaddr - s.value, radix: 16))"
    }

    func readMappings(_ pid: UInt64) -> [Mapping] {
        guard let text = TextFile.read("/proc/\(pid)/maps") else { return [] }
        var out: [Mapping] = []
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
            guard f.count == 6, f[1].contains("x") else { continue }
            let range = f[0].split(separator: "-")
            guard range.count == 2, let s = UInt64(range[0], radix: 16), let e = UInt64(range[1], radix: 16),
                  let off = UInt64(f[2], radix: 16) else { continue }
            out.append(Mapping(start: s, end: e, offset: off, path: String(f[5]).trimmingCharactersBlank))
        }
        return out
    }
}

extension String {
    var trimmingCharactersBlank: String { Substring(self).trimmingBlanks }
}
