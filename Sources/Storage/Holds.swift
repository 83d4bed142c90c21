import Glibc
import LumosCore

/// zfs(8) "hold": named tags on a snapshot; a snapshot with any hold cannot be destroyed (on
/// its own, by destroy -r of its dataset, or by rollback -r) until every tag is released.
/// Kept as `trusted.lumos.holds` (tags joined by ",") on the snapshot's holder directory: the
/// snapshot itself is read-only, and tenants cannot change trusted.* attributes.
extension Pool {
    public func holds(_ snap: DatasetName) throws -> [String] {
        guard snap.isSnapshot else { throw LumosError.invalid("'\(snap)' is not a snapshot; holds are on DATASET@SNAPSHOT") }
        _ = try entry(snap)
        return Self.tags(Btrfs.getxattr(snapshotHolder(snap), XAttr.holds))
    }

    public func hold(_ tag: String, _ snap: DatasetName) throws {
        try Self.checkTag(tag)
        let lock = try begin()
        defer { _ = lock }
        var tags = try holds(snap)
        if tags.contains(tag) { throw LumosError.exists("snapshot '\(snap)' already has a hold named '\(tag)'") }
        tags.append(tag)
        try Btrfs.setxattr(snapshotHolder(snap), XAttr.holds, tags.joined(separator: ","))
    }

    public func release(_ tag: String, _ snap: DatasetName) throws {
        let lock = try begin()
        defer { _ = lock }
        var tags = try holds(snap)
        guard let i = tags.firstIndex(of: tag) else { throw LumosError.notFound("snapshot '\(snap)' has no hold named '\(tag)'; see: lumos dataset holds \(snap)") }
        tags.remove(at: i)
        if tags.isEmpty {
            Btrfs.removexattr(snapshotHolder(snap), XAttr.holds)
        } else {
            try Btrfs.setxattr(snapshotHolder(snap), XAttr.holds, tags.joined(separator: ","))
        }
    }

    /// Refuses when any of `snapshots` is held (called under the pool lock by destroy and rollback).
    func refuseHeld(_ snapshots: [Entry], _ what: String) throws {
        for s in snapshots where s.name.isSnapshot {
            let tags = Self.tags(Btrfs.getxattr(snapshotHolder(s.name), XAttr.holds))
            if !tags.isEmpty {
                throw LumosError.busy("cannot \(what): snapshot '\(s.name)' has holds (\(tags.joined(separator: ", "))); release them first: lumos dataset release \(tags[0]) \(s.name)")
            }
        }
    }

    static func tags(_ text: String?) -> [String] {
        (text ?? "").split(separator: ",").map(String.init).filter { !$0.isEmpty }
    }

    static func checkTag(_ tag: String) throws {
        guard !tag.isEmpty, tag.count <= 255, !tag.contains(","), !tag.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else {
            throw LumosError.invalid("hold tag '\(tag)': use 1-255 characters without commas or control characters")
        }
    }
}
