import LumosCore

/// The x86-64 call frame information of an ELF file's `.eh_frame`, reduced to what a stack
/// walk needs at each address: how to find the CFA (canonical frame address: the stack
/// pointer before the call) and where the caller's %rbp was saved. The return address is
/// always at CFA-8 on x86-64 (the System V ABI's `call`), so it needs no column.
///
/// This is the table `readelf --debug-dump=frames-interp` prints, with only its CFA and rbp
/// columns; docs/trace.md ("ustack() and .eh_frame") says how the BPF side walks it.
///
/// Public API:
///   EHFrame.rows(of: ELFFile) throws -> [EHFrame.Row]   -- sorted by address, ELF addresses
///   EHFrame.parse(_ bytes:, sectionAddress:) throws -> [Row]
///   EHFrame.Row(address:rule:cfaOffset:rbpOffset:)
public enum EHFrame {
    /// How the CFA is found from the registers at an address.
    public enum Rule: UInt8, Sendable, Hashable {
        /// No frame information covers the address: the walker uses the frame pointer.
        case none = 0
        /// CFA = %rsp + offset.
        case rsp = 1
        /// CFA = %rbp + offset.
        case rbp = 2
        /// The expression GCC and ld write for PLT entries: CFA = %rsp + 8, plus 8 once
        /// past the entry's push (`(%rip & 15) >= 11`).
        case plt = 3
        /// The return address is undefined here (`_start`, a thread's entry): the outermost
        /// frame.
        case stop = 4
        /// An expression other than the PLT one: not followed (the walk ends).
        case expression = 5
    }

    public struct Row: Sendable, Hashable {
        /// The first address (in the file's ELF address space) this row covers; it lasts until
        /// the next row's.
        public var address: UInt64
        public var rule: Rule
        public var cfaOffset: Int32
        /// Where the caller's %rbp is, relative to the CFA; nil when %rbp is unchanged.
        public var rbpOffset: Int16?

        public init(address: UInt64, rule: Rule, cfaOffset: Int32 = 0, rbpOffset: Int16? = nil) {
            self.address = address
            self.rule = rule
            self.cfaOffset = cfaOffset
            self.rbpOffset = rbpOffset
        }
    }

    public static func rows(of file: ELFFile) throws -> [Row] {
        guard let s = file.section(named: ".eh_frame"), s.size > 0 else { return [] }
        return try parse(try file.sectionData(s), sectionAddress: s.address, what: file.path)
    }

    // DWARF register numbers on x86-64 (System V ABI, figure 3.36).
    static let regRBP: UInt64 = 6, regRSP: UInt64 = 7, regRA: UInt64 = 16

    /// The register state the CFA program tracks.
    struct State: Equatable {
        var cfaRule: Rule = .none
        var cfaRegister: UInt64 = 0
        var cfaOffset: Int64 = 0
        var rbpOffset: Int64?
        var raUndefined = false

        var row: (Rule, Int32, Int16?) {
            if raUndefined { return (.stop, 0, nil) }
            var rule = cfaRule
            if rule == .rsp || rule == .rbp {
                rule = cfaRegister == EHFrame.regRSP ? .rsp : cfaRegister == EHFrame.regRBP ? .rbp : .expression
            }
            guard let off = Int32(exactly: cfaOffset) else { return (.expression, 0, nil) }
            return (rule, off, rbpOffset.flatMap { Int16(exactly: $0) })
        }
    }

    struct CIE {
        var codeAlign: UInt64
        var dataAlign: Int64
        var fdeEncoding: UInt8
        var hasAugmentationData: Bool
        var initial: ArraySlice<UInt8>
        var version: UInt8
    }

    /// Parses a whole `.eh_frame` section loaded at `sectionAddress`.
    public static func parse(_ bytes: [UInt8], sectionAddress: UInt64, what: String = ".eh_frame") throws -> [Row] {
        var cies: [Int: CIE] = [:]
        var rows: [Row] = []
        var o = 0
        while o + 4 <= bytes.count {
            let start = o
            var length = UInt64(bytes.u32(o))
            o += 4
            if length == 0 { break }  // the terminator
            if length == 0xffff_ffff {
                length = bytes.u64(o)
                o += 8
            }
            let idOffset = o
            guard length <= UInt64(bytes.count - o) else {
                throw LumosError(.corrupt, "\(what): .eh_frame entry at 0x\(String(start, radix: 16)) runs past the section")
            }
            let end = o + Int(length)
            let id = bytes.u32(o)
            o += 4
            var r = Reader(bytes: bytes, at: o, end: end, sectionAddress: sectionAddress)
            if id == 0 {
                cies[start] = try parseCIE(&r, what: what)
            } else {
                let cieStart = idOffset - Int(id)
                if cies[cieStart] == nil, cieStart >= 0 {
                    var cr = Reader(bytes: bytes, at: cieStart + 8, end: cieStart + 4 + Int(bytes.u32(cieStart)), sectionAddress: sectionAddress)
                    cies[cieStart] = try? parseCIE(&cr, what: what)
                }
                guard let cie = cies[cieStart] else {
                    throw LumosError(.corrupt, "\(what): FDE at 0x\(String(start, radix: 16)) names no CIE")
                }
                try parseFDE(&r, cie: cie, into: &rows, what: what)
            }
            o = end
        }
        return normalized(rows)
    }

    /// Sorted by address, one row per address (a function's first row wins over the previous
    /// function's end marker), and consecutive equal rules merged.
    static func normalized(_ rows: [Row]) -> [Row] {
        let sorted = rows.enumerated().sorted {
            $0.element.address != $1.element.address ? $0.element.address < $1.element.address
                : ($0.element.rule == .none) != ($1.element.rule == .none) ? $1.element.rule == .none : $0.offset < $1.offset
        }
        var out: [Row] = []
        out.reserveCapacity(sorted.count)
        var lastAddress: UInt64?
        for (_, row) in sorted {
            if row.address == lastAddress { continue }
            lastAddress = row.address
            if let last = out.last, last.rule == row.rule, last.cfaOffset == row.cfaOffset, last.rbpOffset == row.rbpOffset { continue }
            out.append(row)
        }
        return out
    }

    static func parseCIE(_ r: inout Reader, what: String) throws -> CIE {
        let version = try r.u8()
        guard version == 1 || version == 3 || version == 4 else {
            throw LumosError(.corrupt, "\(what): CIE version \(version) is not supported")
        }
        var augmentation: [UInt8] = []
        while true {
            let c = try r.u8()
            if c == 0 { break }
            augmentation.append(c)
        }
        if augmentation.starts(with: Array("eh".utf8)) { _ = try r.fixed(8) }
        if version == 4 { _ = try r.u8(); _ = try r.u8() }  // address size, segment size
        let codeAlign = try r.uleb()
        let dataAlign = try r.sleb()
        if version == 1 { _ = try r.u8() } else { _ = try r.uleb() }  // the return address register
        var fdeEncoding: UInt8 = 0
        let z = augmentation.first == UInt8(ascii: "z")
        if z {
            let len = try r.uleb()
            let dataEnd = r.at + Int(len)
            for c in augmentation.dropFirst() {
                switch c {
                case UInt8(ascii: "R"): fdeEncoding = try r.u8()
                case UInt8(ascii: "L"): _ = try r.u8()
                case UInt8(ascii: "P"):
                    let enc = try r.u8()
                    _ = try r.pointer(enc)
                default: break  // S (signal frame), B: no data
                }
            }
            r.at = dataEnd
        }
        return CIE(codeAlign: codeAlign, dataAlign: dataAlign, fdeEncoding: fdeEncoding, hasAugmentationData: z,
                   initial: r.bytes[r.at..<r.end], version: version)
    }

    static func parseFDE(_ r: inout Reader, cie: CIE, into rows: inout [Row], what: String) throws {
        let begin = try r.pointer(cie.fdeEncoding)
        let range = try r.pointer(cie.fdeEncoding & 0x0f)
        if cie.hasAugmentationData { r.at += Int(try r.uleb()) }
        guard begin != 0, range > 0 else { return }  // a discarded function's FDE
        let end = begin &+ range
        var m = Machine(cie: cie, loc: begin, what: what)
        var cr = Reader(bytes: r.bytes, at: cie.initial.startIndex, end: cie.initial.endIndex, sectionAddress: r.sectionAddress)
        try m.run(&cr, emitting: false)
        m.initial = m.state
        m.emit()
        var fr = Reader(bytes: r.bytes, at: r.at, end: r.end, sectionAddress: r.sectionAddress)
        try m.run(&fr, emitting: true)
        m.emit()
        rows += m.emitted.filter { $0.address < end }
        rows.append(Row(address: end, rule: .none))
    }

    /// The CFA program of one FDE (its CIE's initial instructions first), and the rows it
    /// makes: one each time the location advances.
    struct Machine {
        let cie: CIE
        var loc: UInt64
        let what: String
        var state = State()
        var initial: State?
        var stack: [State] = []
        var emitted: [Row] = []

        init(cie: CIE, loc: UInt64, what: String) {
            self.cie = cie
            self.loc = loc
            self.what = what
        }

        mutating func emit() {
            let (rule, off, rbp) = state.row
            let row = Row(address: loc, rule: rule, cfaOffset: off, rbpOffset: rbp)
            if let last = emitted.last, last.address == loc {
                emitted[emitted.count - 1] = row
            } else {
                emitted.append(row)
            }
        }

        mutating func setOffset(_ reg: UInt64, _ off: Int64?) {
            if reg == EHFrame.regRBP { state.rbpOffset = off }
            if reg == EHFrame.regRA { state.raUndefined = false }
        }

        mutating func restore(_ reg: UInt64) {
            if reg == EHFrame.regRBP { state.rbpOffset = initial?.rbpOffset }
            if reg == EHFrame.regRA { state.raUndefined = initial?.raUndefined ?? false }
        }

        mutating func advance(_ delta: UInt64, _ emitting: Bool) {
            if emitting { emit() }
            loc &+= delta &* cie.codeAlign
        }

        /// Runs CFA instructions; with `emitting`, a row is made before each advance.
        mutating func run(_ r: inout Reader, emitting: Bool) throws {
            while r.at < r.end {
                let op = try r.u8()
                switch op >> 6 {
                case 1: advance(UInt64(op & 0x3f), emitting); continue
                case 2: setOffset(UInt64(op & 0x3f), Int64(try r.uleb()) &* cie.dataAlign); continue
                case 3: restore(UInt64(op & 0x3f)); continue
                default: break
                }
                switch op {
                case 0x00: break  // nop
                case 0x01:
                    if emitting { emit() }
                    loc = try r.pointer(cie.fdeEncoding)
                case 0x02: advance(UInt64(try r.u8()), emitting)
                case 0x03: advance(try r.fixed(2), emitting)
                case 0x04: advance(try r.fixed(4), emitting)
                case 0x05: let reg = try r.uleb(); setOffset(reg, Int64(try r.uleb()) &* cie.dataAlign)
                case 0x06: restore(try r.uleb())
                case 0x07:
                    let reg = try r.uleb()
                    if reg == EHFrame.regRA { state.raUndefined = true }
                    if reg == EHFrame.regRBP { state.rbpOffset = nil }
                case 0x08: setOffset(try r.uleb(), nil)  // same value
                case 0x09:
                    // DW_CFA_register: the value is in another register. Only rbp matters
                    // here, and a walk cannot follow it: rbp is taken as unchanged.
                    let reg = try r.uleb()
                    _ = try r.uleb()
                    setOffset(reg, nil)
                case 0x0a: stack.append(state)
                case 0x0b:
                    guard let saved = stack.popLast() else {
                        throw LumosError(.corrupt, "\(what): DW_CFA_restore_state with no remembered state")
                    }
                    state = saved  // the CFA rule is restored with the registers
                case 0x0c:
                    state.cfaRegister = try r.uleb()
                    state.cfaOffset = Int64(try r.uleb())
                    state.cfaRule = .rsp
                case 0x0d:
                    state.cfaRegister = try r.uleb()
                    if state.cfaRule != .rsp && state.cfaRule != .rbp { state.cfaRule = .rsp }
                case 0x0e: state.cfaOffset = Int64(try r.uleb())
                case 0x0f:
                    let expr = try r.block(Int(try r.uleb()))
                    state.cfaRule = EHFrame.isPLTExpression(expr) ? .plt : .expression
                case 0x10, 0x16:
                    let reg = try r.uleb()
                    _ = try r.block(Int(try r.uleb()))
                    if reg == EHFrame.regRBP { state.rbpOffset = nil }
                case 0x11: let reg = try r.uleb(); setOffset(reg, try r.sleb() &* cie.dataAlign)
                case 0x12:
                    state.cfaRegister = try r.uleb()
                    state.cfaOffset = try r.sleb() &* cie.dataAlign
                    state.cfaRule = .rsp
                case 0x13: state.cfaOffset = try r.sleb() &* cie.dataAlign
                case 0x14:
                    let reg = try r.uleb()
                    _ = try r.uleb()
                    if reg == EHFrame.regRBP { state.rbpOffset = nil }
                case 0x15:
                    let reg = try r.uleb()
                    _ = try r.sleb()
                    if reg == EHFrame.regRBP { state.rbpOffset = nil }
                case 0x2e: _ = try r.uleb()  // GNU_args_size
                case 0x2f: let reg = try r.uleb(); setOffset(reg, -(Int64(try r.uleb()) &* cie.dataAlign))
                default:
                    throw LumosError(.corrupt, "\(what): unknown CFA instruction 0x\(String(op, radix: 16))")
                }
            }
        }
    }

    /// DW_OP_breg7 (rsp) 8; DW_OP_breg16 (rip) 0; DW_OP_lit15; DW_OP_and; DW_OP_lit<10|11>;
    /// DW_OP_ge; DW_OP_lit3; DW_OP_shl; DW_OP_plus: what binutils writes for .plt and
    /// .plt.sec entries.
    static func isPLTExpression(_ e: ArraySlice<UInt8>) -> Bool {
        let a = Array(e)
        return a.count == 11 && a[0] == 0x77 && a[1] == 8 && a[2] == 0x80 && a[3] == 0 && a[4] == 0x3f && a[5] == 0x1a
            && (a[6] == 0x3a || a[6] == 0x3b) && a[7] == 0x2a && a[8] == 0x33 && a[9] == 0x24 && a[10] == 0x22
    }

    struct Reader {
        let bytes: [UInt8]
        var at: Int
        let end: Int
        let sectionAddress: UInt64

        init(bytes: [UInt8], at: Int, end: Int, sectionAddress: UInt64) {
            self.bytes = bytes
            self.at = at
            self.end = Swift.min(end, bytes.count)
            self.sectionAddress = sectionAddress
        }

        func short() -> LumosError { LumosError(.corrupt, ".eh_frame: an entry ends in the middle of a value") }

        mutating func u8() throws -> UInt8 {
            guard at < end else { throw short() }
            defer { at += 1 }
            return bytes[at]
        }

        mutating func fixed(_ n: Int) throws -> UInt64 {
            guard at + n <= end else { throw short() }
            var v: UInt64 = 0
            for i in 0..<n { v |= UInt64(bytes[at + i]) << (8 * UInt64(i)) }
            at += n
            return v
        }

        mutating func block(_ n: Int) throws -> ArraySlice<UInt8> {
            guard n >= 0, at + n <= end else { throw short() }
            defer { at += n }
            return bytes[at..<at + n]
        }

        mutating func uleb() throws -> UInt64 {
            var v: UInt64 = 0, shift: UInt64 = 0
            while true {
                let b = try u8()
                if shift < 64 { v |= UInt64(b & 0x7f) << shift }
                shift += 7
                if b & 0x80 == 0 { return v }
            }
        }

        mutating func sleb() throws -> Int64 {
            var v: Int64 = 0, shift: Int64 = 0, b: UInt8 = 0
            repeat {
                b = try u8()
                if shift < 64 { v |= Int64(b & 0x7f) << shift }
                shift += 7
            } while b & 0x80 != 0
            if shift < 64, b & 0x40 != 0 { v |= -(Int64(1) << shift) }
            return v
        }

        /// A pointer in DW_EH_PE encoding `enc` (pc-relative ones resolved to addresses).
        mutating func pointer(_ enc: UInt8) throws -> UInt64 {
            if enc == 0xff { return 0 }
            let fieldAddress = sectionAddress &+ UInt64(at)
            var v: UInt64
            switch enc & 0x0f {
            case 0x00: v = try fixed(8)
            case 0x01: v = try uleb()
            case 0x02: v = try fixed(2)
            case 0x03: v = try fixed(4)
            case 0x04: v = try fixed(8)
            case 0x09: v = UInt64(bitPattern: try sleb())
            case 0x0a: v = UInt64(bitPattern: Int64(Int16(truncatingIfNeeded: try fixed(2))))
            case 0x0b: v = UInt64(bitPattern: Int64(Int32(truncatingIfNeeded: try fixed(4))))
            case 0x0c: v = try fixed(8)
            default: throw LumosError(.corrupt, ".eh_frame: pointer encoding 0x\(String(enc, radix: 16)) is not supported")
            }
            switch enc & 0x70 {
            case 0x00: break
            case 0x10: v = v &+ fieldAddress
            default: throw LumosError(.corrupt, ".eh_frame: pointer application 0x\(String(enc & 0x70, radix: 16)) is not supported")
            }
            return v
        }
    }
}
