import LumosCore

/// User addresses of one process to "libc.so.6`malloc+0x10" for %A, usym(), ufunc() and
/// ustack(): the mapping from /proc/PID/maps gives the file and file offset, the file's
/// PT_LOAD segments give the ELF address, and its symbol tables the function. Read when
/// created; a process that exits afterwards still resolves from what was read.
///
/// Public API:
///   ProcessSymbols(pid:)
///   .symbolize(_ address:) -> String?     -- nil when no mapping or symbol covers it
///   .format(_ address:) -> String         -- symbolize, else "module`0x..." or "0x..." as DTrace
public final class ProcessSymbols: @unchecked Sendable {
    struct Mapping: Equatable {
        var start: UInt64
        var end: UInt64
        var offset: UInt64
        var path: String
    }

    public let pid: Int32
    let mappings: [Mapping]
    private var files: [String: ELFFile?] = [:]

    public init(pid: Int32) {
        self.pid = pid
        mappings = ProcessSymbols.readMaps(pid: pid)
    }

    static func readMaps(pid: Int32) -> [Mapping] {
        guard let text = TextFile.read("/proc/\(pid)/maps") else { return [] }
        return parseMaps(text)
    }

    static func parseMaps(_ text: String) -> [Mapping] {
        var out: [Mapping] = []
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
            guard f.count == 6, f[1].contains("x") else { continue }
            let range = f[0].split(separator: "-")
            guard range.count == 2, let s = UInt64(range[0], radix: 16), let e = UInt64(range[1], radix: 16),
                  let off = UInt64(f[2], radix: 16) else { continue }
            let path = String(f[5]).trimmingWhitespace()
            guard path.hasPrefix("/") else { continue }
            out.append(Mapping(start: s, end: e, offset: off, path: path))
        }
        return out
    }

    private func elf(_ path: String) -> ELFFile? {
        if let cached = files[path] { return cached }
        let e = try? ELFFile(path: ProcessMaps.attachPath(pid: pid, path: path))
        files[path] = e
        return e
    }

    public func symbolize(_ address: UInt64) -> String? {
        guard let m = mappings.first(where: { $0.start <= address && address < $0.end }) else { return nil }
        let module = Files.basename(m.path)
        guard let file = elf(m.path) else { return nil }
        let fileOffset = address - m.start + m.offset
        guard let seg = file.segments.first(where: {
            $0.type == ELFFile.ptLoad && $0.offset <= fileOffset && fileOffset < $0.offset + Swift.max($0.fileSize, 1)
        }) else { return nil }
        let vaddr = fileOffset - seg.offset + seg.virtualAddress
        guard let sym = (try? file.symbol(containing: vaddr)) ?? nil else { return nil }
        let off = vaddr - sym.value
        return off == 0 ? "\(module)`\(sym.name)" : "\(module)`\(sym.name)+0x\(String(off, radix: 16))"
    }

    public func format(_ address: UInt64) -> String {
        if let s = symbolize(address) { return s }
        if let m = mappings.first(where: { $0.start <= address && address < $0.end }) {
            return "\(Files.basename(m.path))`0x\(String(address, radix: 16))"
        }
        return "0x" + String(address, radix: 16)
    }
}
