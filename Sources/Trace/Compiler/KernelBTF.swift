import Glibc
import LumosCore

/// The few kernel structure offsets D built-ins need (ppid: task_struct.real_parent and
/// task_struct.tgid), read from the kernel's own BTF (/sys/kernel/btf/vmlinux) so they are
/// right for whatever kernel runs (linux/btf.h format; no libbpf).
public struct KernelBTF: Sendable {
    struct TypeEntry {
        var name: String
        var kind: UInt32
        var members: [(name: String, type: UInt32, bitOffset: UInt32)]
    }

    let types: [UInt32: TypeEntry]
    let structsByName: [String: UInt32]

    /// Parses struct and union types (members with their offsets) and resolves names.
    public init(bytes: [UInt8]) throws {
        func u32(_ o: Int) -> UInt32 {
            guard o + 4 <= bytes.count else { return 0 }
            return UInt32(bytes[o]) | UInt32(bytes[o + 1]) << 8 | UInt32(bytes[o + 2]) << 16 | UInt32(bytes[o + 3]) << 24
        }
        guard bytes.count > 24, bytes[0] == 0x9f, bytes[1] == 0xeb else { throw LumosError(.corrupt, "kernel BTF: bad magic") }
        let hdrLen = Int(u32(4)), typeOff = Int(u32(8)), typeLen = Int(u32(12)), strOff = Int(u32(16))
        let typeStart = hdrLen + typeOff, strStart = hdrLen + strOff
        func name(_ off: UInt32) -> String {
            var i = strStart + Int(off)
            var out: [UInt8] = []
            while i < bytes.count, bytes[i] != 0 { out.append(bytes[i]); i += 1 }
            return String(decoding: out, as: UTF8.self)
        }
        var types: [UInt32: TypeEntry] = [:]
        var byName: [String: UInt32] = [:]
        var o = typeStart
        var id: UInt32 = 1
        while o + 12 <= typeStart + typeLen {
            let nameOff = u32(o), info = u32(o + 4), sizeOrType = u32(o + 8)
            let vlen = Int(info & 0xffff), kind = (info >> 24) & 0x1f, kindFlag = info >> 31
            o += 12
            switch kind {
            case 4, 5:  // STRUCT, UNION
                var members: [(String, UInt32, UInt32)] = []
                for m in 0..<vlen {
                    let base = o + m * 12
                    let off = u32(base + 8)
                    members.append((name(u32(base)), u32(base + 4), kindFlag == 1 ? off & 0xffffff : off))
                }
                let n = name(nameOff)
                types[id] = TypeEntry(name: n, kind: kind, members: members)
                if kind == 4, !n.isEmpty, byName[n] == nil { byName[n] = id }
                o += vlen * 12
            case 8, 9, 10, 11, 18:  // TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG: follow to the real type
                types[id] = TypeEntry(name: name(nameOff), kind: kind, members: [("", sizeOrType, 0)])
            case 1, 14, 17: o += 4          // INT, VAR, DECL_TAG
            case 3: o += 12                 // ARRAY
            case 6, 13: o += vlen * 8       // ENUM, FUNC_PROTO
            case 15, 19: o += vlen * 12     // DATASEC, ENUM64
            default: break                  // PTR, FWD, FUNC, FLOAT
            }
            id += 1
        }
        self.types = types
        structsByName = byName
    }

    public static func load(path: String = "/sys/kernel/btf/vmlinux") throws -> KernelBTF {
        guard let bytes = TextFile.readBytes(path) else {
            throw LumosError.unsupported("kernel type information \(path) is missing (CONFIG_DEBUG_INFO_BTF)")
        }
        return try KernelBTF(bytes: bytes)
    }

    /// The byte offset of `member` in struct `name`, looking through anonymous members
    /// (randomized-layout task_struct keeps most fields in one).
    public func offset(of member: String, inStruct name: String) -> Int? {
        guard let id = structsByName[name] else { return nil }
        return find(member, in: id, base: 0)
    }

    func find(_ member: String, in id: UInt32, base: UInt32) -> Int? {
        guard let t = types[id], t.kind == 4 || t.kind == 5 else { return nil }
        for m in t.members where m.name == member { return Int((base + m.bitOffset) / 8) }
        for m in t.members where m.name.isEmpty {
            if let r = find(member, in: resolve(m.type), base: base + m.bitOffset) { return r }
        }
        return nil
    }

    func resolve(_ id: UInt32) -> UInt32 {
        var cur = id
        for _ in 0..<16 {
            guard let t = types[cur], [8, 9, 10, 11, 18].contains(t.kind) else { return cur }
            cur = t.members[0].type
        }
        return cur
    }
}
