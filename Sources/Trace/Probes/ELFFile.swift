import Glibc
import LumosCore

/// A small ELF64 little-endian reader: enough to place uprobes and find USDT probes.
/// Reads with pread, so a large binary (postgres) is not read whole.
///
/// Public API:
///   ELFFile(path:) throws
///   .type (ET_EXEC 2 / ET_DYN 3), .machine, .sections, .segments
///   .section(named:) -> ELFSection?,  .sectionData(_:) throws -> [UInt8]
///   .symbols() throws -> [ELFSymbol]          -- .symtab + .dynsym, defined ones only
///   .symbol(named:) throws -> ELFSymbol?       -- functions first
///   .symbol(containing address:) throws -> ELFSymbol?
///   .fileOffset(forAddress:) -> UInt64?        -- virtual address → file offset via PT_LOAD,
///                                                what a uprobe's config2 takes
///   .notes(inSection:) throws -> [ELFNote]
public struct ELFSection: Sendable, Hashable {
    public var name: String
    public var type: UInt32
    public var flags: UInt64
    public var address: UInt64
    public var offset: UInt64
    public var size: UInt64
    public var link: UInt32
    public var entrySize: UInt64
}

public struct ELFSegment: Sendable, Hashable {
    public var type: UInt32
    public var flags: UInt32
    public var offset: UInt64
    public var virtualAddress: UInt64
    public var fileSize: UInt64
    public var memorySize: UInt64
}

public struct ELFSymbol: Sendable, Hashable {
    public enum Kind: Sendable, Hashable { case function, object, other(UInt8) }
    public var name: String
    public var value: UInt64
    public var size: UInt64
    public var kind: Kind
    public var isGlobal: Bool
}

public struct ELFNote: Sendable, Hashable {
    public var owner: String
    public var type: UInt32
    public var descriptor: [UInt8]
}

public final class ELFFile: @unchecked Sendable {
    public static let typeExecutable: UInt16 = 2
    public static let typeShared: UInt16 = 3
    static let ptLoad: UInt32 = 1
    static let shtSymtab: UInt32 = 2
    static let shtNote: UInt32 = 7
    static let shtDynsym: UInt32 = 11
    static let shtNobits: UInt32 = 8

    public let path: String
    public let type: UInt16
    public let machine: UInt16
    public let sections: [ELFSection]
    public let segments: [ELFSegment]
    private let fd: Int32
    private var cachedSymbols: [ELFSymbol]?
    private var cachedFunctions: [ELFSymbol]?

    public init(path: String) throws {
        self.path = path
        fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw Errno(errno, "open", path) }
        do {
            let h = try Self.pread(fd, 0, 64, path)
            guard h.count == 64, h[0] == 0x7f, h[1] == 0x45, h[2] == 0x4c, h[3] == 0x46 else {
                throw LumosError.invalid("\(path) is not an ELF file")
            }
            guard h[4] == 2, h[5] == 1 else {
                throw LumosError.unsupported("\(path) is not a 64-bit little-endian ELF file; only ELF64 LE is supported")
            }
            type = h.u16(16)
            machine = h.u16(18)
            let phoff = h.u64(32), shoff = h.u64(40)
            let phentsize = Int(h.u16(54)), phnum = Int(h.u16(56))
            let shentsize = Int(h.u16(58)), shnum = Int(h.u16(60)), shstrndx = Int(h.u16(62))

            var segs: [ELFSegment] = []
            if phnum > 0, phentsize >= 56 {
                let t = try Self.pread(fd, phoff, phentsize * phnum, path)
                for i in 0..<phnum {
                    let b = i * phentsize
                    guard b + 56 <= t.count else { break }
                    segs.append(ELFSegment(type: t.u32(b), flags: t.u32(b + 4), offset: t.u64(b + 8),
                                           virtualAddress: t.u64(b + 16), fileSize: t.u64(b + 32), memorySize: t.u64(b + 40)))
                }
            }
            segments = segs

            var secs: [ELFSection] = []
            if shnum > 0, shentsize >= 64 {
                let t = try Self.pread(fd, shoff, shentsize * shnum, path)
                var raw: [(UInt32, ELFSection)] = []
                for i in 0..<shnum {
                    let b = i * shentsize
                    guard b + 64 <= t.count else { break }
                    raw.append((t.u32(b), ELFSection(name: "", type: t.u32(b + 4), flags: t.u64(b + 8), address: t.u64(b + 16),
                                                     offset: t.u64(b + 24), size: t.u64(b + 32), link: t.u32(b + 40),
                                                     entrySize: t.u64(b + 56))))
                }
                if shstrndx < raw.count {
                    let strtab = raw[shstrndx].1
                    let names = try Self.pread(fd, strtab.offset, Int(strtab.size), path)
                    for (n, s) in raw {
                        var sec = s
                        sec.name = names.cString(at: Int(n))
                        secs.append(sec)
                    }
                } else {
                    secs = raw.map { $0.1 }
                }
            }
            sections = secs
        } catch {
            close(fd)
            throw error
        }
    }

    deinit { close(fd) }

    public func section(named name: String) -> ELFSection? { sections.first { $0.name == name } }

    public func sectionData(_ s: ELFSection) throws -> [UInt8] {
        if s.type == Self.shtNobits { return [] }
        return try Self.pread(fd, s.offset, Int(s.size), path)
    }

    /// Defined symbols of .symtab and .dynsym (deduplicated by name and value).
    public func symbols() throws -> [ELFSymbol] {
        if let c = cachedSymbols { return c }
        var seen = Set<String>()
        var out: [ELFSymbol] = []
        for s in sections where s.type == Self.shtSymtab || s.type == Self.shtDynsym {
            guard Int(s.link) < sections.count else { continue }
            let data = try sectionData(s)
            let strings = try sectionData(sections[Int(s.link)])
            let n = data.count / 24
            for i in 0..<n {
                let b = i * 24
                let shndx = data.u16(b + 6)
                let value = data.u64(b + 8)
                if shndx == 0 || value == 0 { continue }  // undefined
                let name = strings.cString(at: Int(data.u32(b)))
                if name.isEmpty { continue }
                let key = "\(name)@\(value)"
                if seen.contains(key) { continue }
                seen.insert(key)
                let info = data[b + 4]
                let kind: ELFSymbol.Kind
                switch info & 0xf {
                case 2: kind = .function
                case 1: kind = .object
                default: kind = .other(info & 0xf)
                }
                out.append(ELFSymbol(name: name, value: value, size: data.u64(b + 16), kind: kind, isGlobal: (info >> 4) != 0))
            }
        }
        cachedSymbols = out
        return out
    }

    /// A symbol by exact name, functions preferred.
    public func symbol(named name: String) throws -> ELFSymbol? {
        let all = try symbols().filter { $0.name == name }
        return all.first { $0.kind == .function } ?? all.first
    }

    /// The function symbol whose [value, value+size) holds the address (binary search over
    /// the functions sorted by address; USDT discovery asks this for every probe).
    public func symbol(containing address: UInt64) throws -> ELFSymbol? {
        if cachedFunctions == nil {
            cachedFunctions = try symbols().filter { $0.kind == .function }.sorted { ($0.value, $1.size) < ($1.value, $0.size) }
        }
        let fns = cachedFunctions!
        var lo = 0, hi = fns.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if fns[mid].value <= address { lo = mid + 1 } else { hi = mid }
        }
        // Walk back over symbols starting at or below the address (aliases, nested sizes).
        var i = lo - 1
        while i >= 0 && i >= lo - 8 {
            let f = fns[i]
            if address < f.value + Swift.max(f.size, 1) { return f }
            i -= 1
        }
        return nil
    }

    /// The names of the functions holding each of a few addresses, in one pass over the raw
    /// symbol tables: no symbol name is decoded except the winners', nothing is sorted or
    /// kept. USDT discovery asks this only for the probes a program or listing matched, where
    /// building the whole symbol table (`symbols()`) for every note of every binary cost most
    /// of the start-up. The tables are mapped from the page cache, not read: postgres's are
    /// 460 KB, and copying them into fresh (zeroed) pages was most of this call
    /// (docs/trace.md, "USDT start-up").
    public func functionNames(containing addresses: [UInt64]) throws -> [UInt64: String] {
        var wanted: [UInt64] = []
        for a in addresses.sorted() where wanted.last != a { wanted.append(a) }
        guard let highest = wanted.last else { return [:] }
        // Per address: the best symbol so far (highest start, then smallest size) as
        // (start, size, table index, name offset).
        var best = [(value: UInt64, size: UInt64, table: Int, name: UInt32)?](repeating: nil, count: wanted.count)
        for (ti, s) in sections.enumerated() where s.type == Self.shtSymtab || s.type == Self.shtDynsym {
            guard Int(s.link) < sections.count else { continue }
            try withMapped(s) { data in
                let n = data.count / 24
                for i in 0..<n {
                    let b = i * 24
                    guard data[b + 4] & 0xf == 2, data.le16(b + 6) != 0 else { continue }
                    let value = data.le64(b + 8)
                    if value == 0 || value > highest { continue }
                    let size = Swift.max(data.le64(b + 16), 1)
                    // First wanted address >= value.
                    var lo = 0, hi = wanted.count
                    while lo < hi { let mid = (lo + hi) / 2; if wanted[mid] < value { lo = mid + 1 } else { hi = mid } }
                    var j = lo
                    while j < wanted.count && wanted[j] < value &+ size {
                        if let cur = best[j], cur.value > value || (cur.value == value && cur.size <= size) {
                            j += 1
                            continue
                        }
                        best[j] = (value, size, ti, data.le32(b))
                        j += 1
                    }
                }
            }
        }
        var out: [UInt64: String] = [:]
        for ti in Set(best.compactMap { $0?.table }).sorted() {
            try withMapped(sections[Int(sections[ti].link)]) { strings in
                for (j, a) in wanted.enumerated() {
                    guard let w = best[j], w.table == ti else { continue }
                    out[a] = strings.cString(at: Int(w.name))
                }
            }
        }
        return out
    }

    /// A section's bytes mapped read-only for the body's duration (empty for SHT_NOBITS).
    /// The section must lie inside the file as it is now; a file truncated while mapped
    /// would fault, so nothing is kept mapped past the call.
    func withMapped<T>(_ s: ELFSection, _ body: (UnsafeRawBufferPointer) throws -> T) throws -> T {
        guard s.type != Self.shtNobits, s.size > 0 else { return try body(UnsafeRawBufferPointer(start: nil, count: 0)) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw Errno(errno, "fstat", path) }
        guard s.offset <= UInt64(st.st_size), s.size <= UInt64(st.st_size) - s.offset, s.size < 1 << 30 else {
            throw LumosError(.corrupt, "\(path): section \(s.name) (\(s.size) bytes at \(s.offset)) is outside the file")
        }
        let page = UInt64(sysconf(Int32(_SC_PAGESIZE)))
        let start = s.offset & ~(page - 1)
        let delta = Int(s.offset - start), length = delta + Int(s.size)
        guard let p = mmap(nil, length, PROT_READ, MAP_PRIVATE, fd, off_t(start)), p != MAP_FAILED else {
            throw Errno(errno, "mmap", path)
        }
        defer { munmap(p, length) }
        return try body(UnsafeRawBufferPointer(start: p + delta, count: Int(s.size)))
    }

    /// Virtual address → file offset through the PT_LOAD segment that maps it.
    public func fileOffset(forAddress address: UInt64) -> UInt64? {
        for s in segments where s.type == Self.ptLoad {
            if address >= s.virtualAddress && address < s.virtualAddress + s.memorySize {
                return address - s.virtualAddress + s.offset
            }
        }
        return nil
    }

    /// Notes of one SHT_NOTE section (4-byte aligned name and descriptor).
    public func notes(inSection name: String) throws -> [ELFNote] {
        guard let s = section(named: name), s.type == Self.shtNote else { return [] }
        let d = try sectionData(s)
        var out: [ELFNote] = []
        var i = 0
        func align4(_ x: Int) -> Int { (x + 3) & ~3 }
        while i + 12 <= d.count {
            let namesz = Int(d.u32(i)), descsz = Int(d.u32(i + 4)), type = d.u32(i + 8)
            let nameStart = i + 12
            let descStart = nameStart + align4(namesz)
            guard descStart + descsz <= d.count else { break }
            let owner = d.cString(at: nameStart, limit: nameStart + namesz)
            out.append(ELFNote(owner: owner, type: type, descriptor: Array(d[descStart..<(descStart + descsz)])))
            i = descStart + align4(descsz)
        }
        return out
    }

    static func pread(_ fd: Int32, _ offset: UInt64, _ count: Int, _ path: String) throws -> [UInt8] {
        guard count > 0 else { return [] }
        guard count < 1 << 30 else { throw LumosError(.corrupt, "\(path): section of \(count) bytes is implausible") }
        // Not zeroed first: postgres's symbol table is megabytes, and clearing it cost as
        // much as reading it.
        var failure: Int32 = 0
        let buf = [UInt8](unsafeUninitializedCapacity: count) { b, initialized in
            var done = 0
            while done < count {
                let n = Glibc.pread(fd, b.baseAddress! + done, count - done, off_t(offset) + off_t(done))
                if n < 0 { if errno == EINTR { continue }; failure = errno; break }
                if n == 0 { break }
                done += n
            }
            initialized = failure == 0 ? done : 0
        }
        if failure != 0 { throw Errno(failure, "pread", path) }
        return buf
    }
}

extension UnsafeRawBufferPointer {
    /// Little-endian fields at a byte offset the caller has bounds-checked.
    func le16(_ o: Int) -> UInt16 { UInt16(littleEndian: loadUnaligned(fromByteOffset: o, as: UInt16.self)) }
    func le32(_ o: Int) -> UInt32 { UInt32(littleEndian: loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
    func le64(_ o: Int) -> UInt64 { UInt64(littleEndian: loadUnaligned(fromByteOffset: o, as: UInt64.self)) }
}

extension Array where Element == UInt8 {
    func u16(_ o: Int) -> UInt16 { o + 2 <= count ? UInt16(self[o]) | UInt16(self[o + 1]) << 8 : 0 }
    func u32(_ o: Int) -> UInt32 {
        guard o + 4 <= count else { return 0 }
        var v: UInt32 = 0
        for i in 0..<4 { v |= UInt32(self[o + i]) << (8 * UInt32(i)) }
        return v
    }
    func u64(_ o: Int) -> UInt64 {
        guard o + 8 <= count else { return 0 }
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(self[o + i]) << (8 * UInt64(i)) }
        return v
    }
}

extension RandomAccessCollection where Element == UInt8, Index == Int {
    /// The NUL-terminated string at an offset (a byte array read from a file, or a mapped
    /// section), ending at `limit` or the end at most.
    func cString(at o: Int, limit: Int? = nil) -> String {
        let end = Swift.min(limit ?? endIndex, endIndex)
        guard o >= startIndex, o < end else { return "" }
        var e = o
        while e < end && self[e] != 0 { e += 1 }
        return String(decoding: self[o..<e], as: UTF8.self)
    }
}
