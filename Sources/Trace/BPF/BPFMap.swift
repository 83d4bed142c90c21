import CLinux
import Glibc
import LumosCore

/// A kernel BPF map owned by this process; closed on deinit.
public final class BPFMap: @unchecked Sendable {
    public enum Kind: UInt32, Sendable {
        case hash = 1, array = 2, perCPUHash = 5, perCPUArray = 6, ringBuffer = 27
    }

    public let fd: Int32
    public let kind: Kind
    public let keySize: Int
    public let valueSize: Int
    public let maxEntries: Int
    public let name: String

    public init(_ kind: Kind, name: String, keySize: Int, valueSize: Int, maxEntries: Int, flags: UInt32 = 0) throws {
        self.kind = kind
        self.keySize = keySize
        self.valueSize = valueSize
        self.maxEntries = maxEntries
        self.name = name
        let r = clinux_bpf_map_create(kind.rawValue, UInt32(keySize), UInt32(valueSize), UInt32(maxEntries), flags, name)
        if r < 0 {
            let e = errno
            if e == EPERM {
                throw LumosError(.permission, "cannot create BPF map \(name): permission denied; run dtrace as root", errno: e)
            }
            throw Errno(e, "bpf(BPF_MAP_CREATE)", "\(name) (\(kind), key \(keySize), value \(valueSize), \(maxEntries) entries)")
        }
        fd = r
    }

    deinit { close(fd) }

    public static let possibleCPUs: Int = max(1, Int(clinux_bpf_possible_cpus()))

    var isPerCPU: Bool { kind == .perCPUHash || kind == .perCPUArray }

    /// Per-CPU values are rounded up to 8 bytes each and returned back to back.
    var lookupSize: Int { isPerCPU ? ((valueSize + 7) & ~7) * BPFMap.possibleCPUs : valueSize }

    /// The value for `key`, or nil when absent. For a per-CPU map: one value per CPU.
    public func lookup(_ key: [UInt8]) -> [[UInt8]]? {
        var value = [UInt8](repeating: 0, count: lookupSize)
        let r = key.withUnsafeBytes { k in value.withUnsafeMutableBytes { clinux_bpf_map_lookup(fd, k.baseAddress, $0.baseAddress) } }
        if r < 0 { return nil }
        if !isPerCPU { return [value] }
        let stride = (valueSize + 7) & ~7
        return (0..<BPFMap.possibleCPUs).map { Array(value[$0 * stride..<$0 * stride + valueSize]) }
    }

    public func update(_ key: [UInt8], _ value: [UInt8]) throws {
        var v = value
        if isPerCPU {
            let stride = (valueSize + 7) & ~7
            v = []
            for _ in 0..<BPFMap.possibleCPUs { v += value + [UInt8](repeating: 0, count: stride - value.count) }
        }
        let r = key.withUnsafeBytes { k in v.withUnsafeBytes { clinux_bpf_map_update(fd, k.baseAddress, $0.baseAddress, 0) } }
        if r < 0 { throw Errno(errno, "bpf(BPF_MAP_UPDATE_ELEM)", name) }
    }

    public func delete(_ key: [UInt8]) {
        _ = key.withUnsafeBytes { clinux_bpf_map_delete(fd, $0.baseAddress) }
    }

    /// Every key currently in the map (hash maps), in kernel iteration order.
    public func keys() -> [[UInt8]] {
        var out: [[UInt8]] = []
        var next = [UInt8](repeating: 0, count: keySize)
        var r = next.withUnsafeMutableBytes { clinux_bpf_map_next_key(fd, nil, $0.baseAddress) }
        while r == 0, out.count <= maxEntries {
            out.append(next)
            let cur = next
            r = cur.withUnsafeBytes { c in next.withUnsafeMutableBytes { clinux_bpf_map_next_key(fd, c.baseAddress, $0.baseAddress) } }
        }
        return out
    }
}
