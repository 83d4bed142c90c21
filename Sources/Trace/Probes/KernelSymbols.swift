import LumosCore

/// Kernel addresses to "module`symbol+0x10" for %a, sym(), func() and stack() output,
/// from /proc/kallsyms (text symbols only; module symbols carry their "[module]" name,
/// the kernel itself is "vmlinux"). Addresses read as zero without root (kptr_restrict),
/// in which case nothing resolves and callers print the hex address as DTrace does.
///
/// Public API:
///   KernelSymbols.load(path:) -> KernelSymbols
///   KernelSymbols.parse(_ text:) -> KernelSymbols
///   .lookup(_ address:) -> (module: String, name: String, offset: UInt64)?
///   .symbolize(_ address:) -> String?       -- "vmlinux`do_sys_openat2+0x5c", nil if unknown
///   .format(_ address:) -> String           -- symbolize, else "0x..."
public struct KernelSymbols: Sendable {
    /// Names stay in the file's bytes until looked up: kallsyms has over 100k lines and
    /// making a String of each would cost more than the whole lookup table.
    struct Entry: Sendable {
        var address: UInt64
        var nameStart: Int32
        var nameLength: Int32
        var moduleStart: Int32
        var moduleLength: Int32
    }

    let bytes: [UInt8]
    let entries: [Entry]

    public static func load(path: String = "/proc/kallsyms") -> KernelSymbols {
        parse(bytes: TextFile.readBytes(path) ?? [])
    }

    public static func parse(_ text: String) -> KernelSymbols {
        parse(bytes: Array(text.utf8))
    }

    static func parse(bytes b: [UInt8]) -> KernelSymbols {
        var out: [Entry] = []
        out.reserveCapacity(b.count / 40)
        var i = 0
        let n = b.count
        func hexValue(_ c: UInt8) -> UInt64? {
            switch c {
            case 0x30...0x39: return UInt64(c - 0x30)
            case 0x61...0x66: return UInt64(c - 0x61 + 10)
            case 0x41...0x46: return UInt64(c - 0x41 + 10)
            default: return nil
            }
        }
        while i < n {
            var addr: UInt64 = 0
            while i < n, let v = hexValue(b[i]) { addr = addr << 4 | v; i += 1 }
            while i < n && (b[i] == 0x20 || b[i] == 0x09) { i += 1 }
            let type = i < n ? b[i] : 0
            i += 1
            while i < n && (b[i] == 0x20 || b[i] == 0x09) { i += 1 }
            let nameStart = i
            while i < n && b[i] != 0x20 && b[i] != 0x09 && b[i] != 0x0a { i += 1 }
            let nameEnd = i
            var modStart = 0, modLen = 0
            while i < n && (b[i] == 0x20 || b[i] == 0x09) { i += 1 }
            if i < n && b[i] == 0x5b {
                modStart = i + 1
                while i < n && b[i] != 0x5d && b[i] != 0x0a { i += 1 }
                modLen = i - modStart
            }
            while i < n && b[i] != 0x0a { i += 1 }
            i += 1
            // Text symbols only (t, T, w, W); zero addresses mean kptr_restrict hid them.
            guard addr != 0, type == 0x74 || type == 0x54 || type == 0x77 || type == 0x57, nameEnd > nameStart else { continue }
            out.append(Entry(address: addr, nameStart: Int32(nameStart), nameLength: Int32(nameEnd - nameStart),
                             moduleStart: Int32(modStart), moduleLength: Int32(modLen)))
        }
        out.sort { $0.address < $1.address }
        return KernelSymbols(bytes: b, entries: out)
    }

    public var count: Int { entries.count }

    /// The symbol at or below the address (the nearest preceding text symbol).
    public func lookup(_ address: UInt64) -> (module: String, name: String, offset: UInt64)? {
        var lo = 0, hi = entries.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if entries[mid].address <= address { lo = mid + 1 } else { hi = mid }
        }
        guard lo > 0 else { return nil }
        let e = entries[lo - 1]
        let name = String(decoding: bytes[Int(e.nameStart)..<Int(e.nameStart + e.nameLength)], as: UTF8.self)
        let module = e.moduleLength == 0 ? "vmlinux"
            : String(decoding: bytes[Int(e.moduleStart)..<Int(e.moduleStart + e.moduleLength)], as: UTF8.self)
        return (module, name, address - e.address)
    }

    /// DTrace's form: "module`symbol+0xoff", or "module`symbol" at the symbol's start.
    public func symbolize(_ address: UInt64) -> String? {
        guard let s = lookup(address) else { return nil }
        return s.offset == 0 ? "\(s.module)`\(s.name)" : "\(s.module)`\(s.name)+0x\(String(s.offset, radix: 16))"
    }

    public func format(_ address: UInt64) -> String {
        symbolize(address) ?? "0x" + String(address, radix: 16)
    }
}
