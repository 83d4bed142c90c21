import Glibc
import LumosCore

/// The table ustack() walks in BPF for the traced process (-p PID or -c CMD): the
/// .eh_frame rows (EHFrame) of every file it maps executable, moved to the addresses they
/// are mapped at, sorted, in one array-map value the program binary-searches (docs/trace.md,
/// "ustack() and .eh_frame"). Code built without frame pointers (Debian's, -O2) is walked
/// as a debugger would; a process outside the table's set, or an address no row covers,
/// falls back to frame pointers.
///
/// The set is the target and its descendants with the same executable mappings (the
/// backends a server forks); `refresh()` re-reads them, so the libraries a -c command maps
/// after its exec, a dlopen, and children forked later are picked up.
///
/// Row layout, 16 bytes little-endian: address u64, CFA offset i32, rule u8 (EHFrame.Rule),
/// rbp saved u8 (0/1), rbp offset from the CFA i16. Unused rows have address Int64.max (above every user address, and
/// the search compares by the sign of a difference).
///
/// Public API:
///   UserUnwindTable(pid:capacity:)
///   .capacity, .searchSteps, .bytes, .rowCount, .pids, .warning
///   .refresh() -> Bool                 -- true when the rows or the set changed
///   UserUnwindTable.encode(_ rows:, capacity:) -> [UInt8]
public final class UserUnwindTable: @unchecked Sendable {
    public static let rowSize = 16
    /// 4 MiB: the largest value an array map takes (KMALLOC_MAX_SIZE on x86-64).
    public static let maxRows = 1 << 18
    /// The most processes the set holds (the pid map's size).
    public static let maxPids = 1024

    public let pid: Int32
    /// Rows the map value holds, a power of two.
    public let capacity: Int
    public private(set) var bytes: [UInt8] = []
    public private(set) var rowCount = 0
    public private(set) var pids: [Int32] = []
    /// Set when rows did not fit (the rest of the address space uses frame pointers).
    public private(set) var warning: String?

    private var fileRows: [String: [EHFrame.Row]] = [:]
    private var mappings: [ProcessSymbols.Mapping] = []

    /// Reads the target's mappings now. `capacity` nil sizes the table for what is mapped
    /// now (twice the rows, at least 4096); a -c command, which has not exec'd yet, gets the
    /// maximum.
    public init(pid: Int32, capacity: Int? = nil) {
        self.pid = pid
        let maps = ProcessSymbols.readMaps(pid: pid)
        let rows = Self.rows(maps, pid: pid, cache: &fileRows)
        var c = 4096
        while c < 2 * rows.count && c < Self.maxRows { c <<= 1 }
        self.capacity = Swift.min(Self.maxRows, capacity.map { Swift.max(2, $0) } ?? c)
        mappings = maps
        install(rows)
        pids = descendants()
    }

    /// log2(capacity): the binary search's steps.
    public var searchSteps: Int { capacity.trailingZeroBitCount }

    @discardableResult
    public func refresh() -> Bool {
        let maps = ProcessSymbols.readMaps(pid: pid)
        var changed = false
        if !maps.isEmpty, maps != mappings {
            mappings = maps
            install(Self.rows(maps, pid: pid, cache: &fileRows))
            changed = true
        }
        let now = descendants()
        if now != pids {
            pids = now
            changed = true
        }
        return changed
    }

    private func install(_ rows: [EHFrame.Row]) {
        var r = rows
        if r.count > capacity {
            warning = "ustack(): \(r.count) unwind rows for pid \(pid) exceed the table's \(capacity); addresses above 0x\(String(r[capacity - 1].address, radix: 16)) use frame pointers"
            r = Array(r.prefix(capacity - 1)) + [EHFrame.Row(address: r[capacity - 1].address, rule: .none)]
        }
        rowCount = r.count
        bytes = Self.encode(r, capacity: capacity)
    }

    /// The target and its descendants that map the same executable files at the same
    /// addresses (forked, not exec'd), target first.
    func descendants() -> [Int32] {
        var out: [Int32] = [pid]
        var queue: [Int32] = [pid]
        var seen: Set<Int32> = [pid]
        while let p = queue.popLast(), out.count < Self.maxPids {
            for task in Files.list("/proc/\(p)/task") {
                guard let text = TextFile.read("/proc/\(p)/task/\(task)/children") else { continue }
                for c in text.split(whereSeparator: { $0 == " " || $0 == "\n" }).compactMap({ Int32($0) }) where !seen.contains(c) {
                    seen.insert(c)
                    queue.append(c)
                    if ProcessSymbols.readMaps(pid: c) == mappings, out.count < Self.maxPids { out.append(c) }
                }
            }
        }
        return out
    }

    /// Rows at the addresses `maps` maps their files at, normalized, after a row at 0 that
    /// covers the unmapped low addresses.
    static func rows(_ maps: [ProcessSymbols.Mapping], pid: Int32, cache: inout [String: [EHFrame.Row]]) -> [EHFrame.Row] {
        var out: [EHFrame.Row] = [EHFrame.Row(address: 0, rule: .none)]
        var files: [String: ELFFile] = [:]
        for m in maps {
            let path = ProcessMaps.attachPath(pid: pid, path: m.path)
            if cache[m.path] == nil {
                guard let elf = try? ELFFile(path: path) else { continue }
                files[m.path] = elf
                cache[m.path] = (try? EHFrame.rows(of: elf)) ?? []
            }
            guard let fileRows = cache[m.path], !fileRows.isEmpty,
                  let elf = files[m.path] ?? (try? ELFFile(path: path)) else { continue }
            files[m.path] = elf
            guard let seg = elf.segments.first(where: {
                $0.type == ELFFile.ptLoad && $0.offset <= m.offset && m.offset < $0.offset + Swift.max($0.fileSize, 1)
            }) else { continue }
            // address in memory = ELF address + bias
            let bias = m.start &- m.offset &+ seg.offset &- seg.virtualAddress
            let low = m.start &- bias, high = m.end &- bias
            var i = firstIndex(fileRows, atOrAfter: low)
            // The rule in force at the mapping's start.
            if i > 0, fileRows[i - 1].address < low, i == fileRows.count || fileRows[i].address > low {
                var r = fileRows[i - 1]
                r.address = m.start
                out.append(r)
            }
            while i < fileRows.count, fileRows[i].address < high {
                var r = fileRows[i]
                r.address = r.address &+ bias
                out.append(r)
                i += 1
            }
            out.append(EHFrame.Row(address: m.end, rule: .none))
        }
        return EHFrame.normalized(out)
    }

    static func firstIndex(_ rows: [EHFrame.Row], atOrAfter address: UInt64) -> Int {
        var lo = 0, hi = rows.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if rows[mid].address < address { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    public static func encode(_ rows: [EHFrame.Row], capacity: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: capacity * rowSize)
        func put(_ v: UInt64, _ at: Int, _ n: Int) { for k in 0..<n { out[at + k] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(k))) } }
        for i in 0..<capacity {
            let o = i * rowSize
            guard i < rows.count else { put(UInt64(Int64.max), o, 8); continue }
            let r = rows[i]
            put(r.address, o, 8)
            put(UInt64(UInt32(bitPattern: r.cfaOffset)), o + 8, 4)
            out[o + 12] = r.rule.rawValue
            out[o + 13] = r.rbpOffset == nil ? 0 : 1
            put(UInt64(UInt16(bitPattern: r.rbpOffset ?? 0)), o + 14, 2)
        }
        return out
    }
}
