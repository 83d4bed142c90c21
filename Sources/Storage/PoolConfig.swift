import Foundation
import LumosCore

/// How a pool lays data over its devices (zpool's vdev words mapped to btrfs profiles).
public enum PoolLayout: String, Codable, Sendable, CaseIterable {
    case single, mirror, raidz1, raidz2

    /// mkfs.btrfs data and metadata profiles.
    func profiles(devices: Int) -> (data: String, metadata: String) {
        switch self {
        case .single: return ("single", devices > 1 ? "raid1" : "dup")
        case .mirror: return devices >= 3 ? ("raid1c3", "raid1c3") : ("raid1", "raid1")
        case .raidz1: return ("raid5", "raid1")
        case .raidz2: return ("raid6", "raid1c3")
        }
    }

    var minimumDevices: Int {
        switch self {
        case .single: return 1
        case .mirror: return 2
        case .raidz1: return 2
        case .raidz2: return 3
        }
    }
}

public enum ChecksumAlgorithm: String, Codable, Sendable, CaseIterable {
    case crc32c, xxhash, sha256, blake2
    /// btrfs csum_type numbers (BTRFS_CSUM_TYPE_*).
    init?(btrfsType: UInt16) {
        switch btrfsType {
        case 0: self = .crc32c
        case 1: self = .xxhash
        case 2: self = .sha256
        case 3: self = .blake2
        default: return nil
        }
    }
}

/// What Lumos remembers about a pool: enough to import it again after a reboot.
public struct PoolConfig: Codable, Sendable, Equatable {
    public var name: String
    public var uuid: String
    public var layout: PoolLayout
    public var checksum: ChecksumAlgorithm
    /// Files or block devices, as given (files are attached through loop devices).
    public var devices: [String]
    /// Backing files Lumos created itself (the embedded default); removed by destroy.
    public var ownedFiles: [String]
    public var mountpoint: String
    public var created: Int
    public var exported: Bool = false
    public var lastScrub: ScrubSummary?
    /// Set while `pool create` runs: a configuration still marked incomplete when its lock is
    /// free belongs to a killed create, which the next pool command undoes.
    public var incomplete: Bool?
    /// Set before `pool destroy` changes anything; a destroy that was killed is finished by the
    /// next pool command.
    public var destroying: Bool?

    static func path(root: StateRoot, name: String) -> String { root.sub("pools", "\(name).json") }

    static func load(root: StateRoot, name: String) throws -> PoolConfig? {
        let p = path(root: root, name: name)
        guard Files.exists(p) else { return nil }
        do {
            return try JSONDecoder().decode(PoolConfig.self, from: Data(try FD.readFile(p)))
        } catch {
            throw LumosError(.corrupt, "pool configuration \(p) is unreadable (\(error)); fix or remove it")
        }
    }

    func save(root: StateRoot) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try Files.makeDirectories(root.sub("pools"))
        try Files.writeAtomically(Self.path(root: root, name: name), Array(try enc.encode(self)))
    }

    static func all(root: StateRoot) -> [PoolConfig] {
        Files.list(root.sub("pools")).filter { $0.hasSuffix(".json") }.compactMap {
            try? load(root: root, name: String($0.dropLast(5)))
        }
    }
}

/// The result of the last scrub, kept for `pool status`.
public struct ScrubSummary: Codable, Sendable, Equatable {
    public var finished: Int
    public var seconds: Double
    public var bytesScrubbed: UInt64
    public var corrected: UInt64
    public var uncorrectable: UInt64
    public var csumErrors: UInt64
    public var readErrors: UInt64
    public var cancelled: Bool
}
