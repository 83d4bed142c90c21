import LumosCore

/// USDT argument specifications from a stapsdt note (x86_64 GNU assembler operand syntax,
/// as <sys/sdt.h> emits them): "-4@%ebx 8@-16(%rbp) 8@$5 4@counter(%rip) 8@(%rax,%rdx,8)".
/// The size before '@' is in bytes; a negative size means signed.
///
/// Public API:
///   USDTArgument.parseList(_ text:) throws -> [USDTArgument]
///   USDTArgument: size, isSigned, location
///   USDTArgument.Location: .register(X86Register), .memory(base:, index:, scale:, offset:, symbol:),
///                          .constant(Int64)
///   X86Register.named(_:) -> X86Register?; .ptRegsOffset (byte offset in struct pt_regs),
///     .canonical ("rax" for "eax"), .isHighByte (ah/bh/ch/dh: bits 8-15)
public struct X86Register: Sendable, Hashable {
    public var name: String
    public var canonical: String
    public var ptRegsOffset: Int
    public var isHighByte: Bool

    /// struct pt_regs on x86_64 (arch/x86/include/asm/ptrace.h), 8 bytes per slot.
    public static let ptRegsOffsets: [String: Int] = [
        "r15": 0, "r14": 8, "r13": 16, "r12": 24, "rbp": 32, "rbx": 40, "r11": 48, "r10": 56,
        "r9": 64, "r8": 72, "rax": 80, "rcx": 88, "rdx": 96, "rsi": 104, "rdi": 112,
        "orig_rax": 120, "rip": 128, "cs": 136, "eflags": 144, "rsp": 152, "ss": 160,
    ]

    private static let aliases: [String: (String, Bool)] = {
        var m: [String: (String, Bool)] = [:]
        for (r, names) in [("rax", ["eax", "ax", "al"]), ("rbx", ["ebx", "bx", "bl"]), ("rcx", ["ecx", "cx", "cl"]),
                           ("rdx", ["edx", "dx", "dl"]), ("rsi", ["esi", "si", "sil"]), ("rdi", ["edi", "di", "dil"]),
                           ("rbp", ["ebp", "bp", "bpl"]), ("rsp", ["esp", "sp", "spl"]), ("rip", ["eip", "ip"])] {
            m[r] = (r, false)
            for n in names { m[n] = (r, false) }
        }
        for (h, r) in [("ah", "rax"), ("bh", "rbx"), ("ch", "rcx"), ("dh", "rdx")] { m[h] = (r, true) }
        for i in 8...15 {
            let r = "r\(i)"
            m[r] = (r, false)
            for s in ["d", "w", "b", "l"] { m[r + s] = (r, false) }
        }
        return m
    }()

    public static func named(_ name: String) -> X86Register? {
        let n = name.hasPrefix("%") ? String(name.dropFirst()) : name
        guard let (canon, high) = aliases[n], let off = ptRegsOffsets[canon] else { return nil }
        return X86Register(name: n, canonical: canon, ptRegsOffset: off, isHighByte: high)
    }
}

public struct USDTArgument: Sendable, Hashable {
    public enum Location: Sendable, Hashable {
        case register(X86Register)
        /// offset(base, index, scale) or symbol+offset(%rip).
        case memory(base: X86Register?, index: X86Register?, scale: Int, offset: Int64, symbol: String?)
        case constant(Int64)
    }

    public var size: Int
    public var isSigned: Bool
    public var location: Location
    /// The spec as written in the note.
    public var spec: String

    public static func parseList(_ text: String) throws -> [USDTArgument] {
        try text.split(separator: " ", omittingEmptySubsequences: true).map { try parse(String($0)) }
    }

    public static func parse(_ spec: String) throws -> USDTArgument {
        var size = 8
        var signed = false
        var operand = Substring(spec)
        if let at = spec.firstIndex(of: "@") {
            guard let n = Int(spec[..<at]), n != 0 else {
                throw LumosError.invalid("USDT argument '\(spec)' has an invalid size")
            }
            signed = n < 0
            size = abs(n)
            operand = spec[spec.index(after: at)...]
        }
        guard [1, 2, 4, 8].contains(size) else {
            throw LumosError.invalid("USDT argument '\(spec)' has size \(size); expected 1, 2, 4 or 8")
        }
        return USDTArgument(size: size, isSigned: signed, location: try location(String(operand), spec), spec: spec)
    }

    static func location(_ op: String, _ spec: String) throws -> Location {
        func bad() -> LumosError {
            LumosError.unsupported("USDT argument '\(spec)' is not an x86_64 register, memory or constant operand")
        }
        if op.hasPrefix("$") {
            guard let v = parseInteger(String(op.dropFirst())) else { throw bad() }
            return .constant(v)
        }
        if op.hasPrefix("%") {
            guard let r = X86Register.named(op) else { throw bad() }
            return .register(r)
        }
        // disp(base,index,scale) with an optional symbol[+-off] displacement.
        guard let open = op.firstIndex(of: "("), op.hasSuffix(")") else {
            // A bare number or symbol is an absolute memory operand.
            if let v = parseInteger(op) { return .memory(base: nil, index: nil, scale: 1, offset: v, symbol: nil) }
            if !op.isEmpty { return .memory(base: nil, index: nil, scale: 1, offset: 0, symbol: op) }
            throw bad()
        }
        let disp = String(op[..<open])
        let inner = op[op.index(after: open)..<op.index(before: op.endIndex)]
        let parts = inner.split(separator: ",", omittingEmptySubsequences: false).map { String($0).trimmingWhitespace() }
        var base: X86Register? = nil, index: X86Register? = nil
        var scale = 1
        if let b = parts.first, !b.isEmpty {
            guard let r = X86Register.named(b) else { throw bad() }
            base = r
        }
        if parts.count > 1, !parts[1].isEmpty {
            guard let r = X86Register.named(parts[1]) else { throw bad() }
            index = r
        }
        if parts.count > 2 {
            guard let s = Int(parts[2]), [1, 2, 4, 8].contains(s) else { throw bad() }
            scale = s
        }
        var offset: Int64 = 0
        var symbol: String? = nil
        if !disp.isEmpty {
            if let v = parseInteger(disp) {
                offset = v
            } else {
                // symbol, symbol+8, symbol-8
                var name = disp
                if let i = disp.lastIndex(where: { $0 == "+" || $0 == "-" }), i != disp.startIndex,
                   let v = parseInteger(String(disp[i...])) {
                    name = String(disp[..<i])
                    offset = v
                }
                symbol = name
            }
        }
        return .memory(base: base, index: index, scale: scale, offset: offset, symbol: symbol)
    }

    /// Decimal or 0x hex with an optional sign.
    static func parseInteger(_ s: String) -> Int64? {
        var t = Substring(s)
        var negative = false
        if t.hasPrefix("-") { negative = true; t = t.dropFirst() } else if t.hasPrefix("+") { t = t.dropFirst() }
        let v: UInt64?
        if t.hasPrefix("0x") || t.hasPrefix("0X") { v = UInt64(t.dropFirst(2), radix: 16) } else { v = UInt64(t) }
        guard let m = v else { return nil }
        return negative ? -Int64(bitPattern: m) : Int64(bitPattern: m)
    }
}
