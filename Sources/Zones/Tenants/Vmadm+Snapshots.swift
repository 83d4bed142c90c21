import Foundation
import Images
import LumosCore
import VM

extension Vmadm {
    /// vmadm's rule for snapshot names, narrowed to what Lumos dataset names allow.
    static func checkSnapshotName(_ name: String) throws {
        guard !name.isEmpty, name.count <= 64 else {
            throw LumosError.invalid("snapshot name \"\(name)\" must be 1 to 64 characters")
        }
        guard let first = name.unicodeScalars.first, first.properties.isAlphabetic || ("0"..."9").contains(first),
              name.unicodeScalars.allSatisfy({ $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || "-_.:".unicodeScalars.contains($0)) }) else {
            throw LumosError.invalid("snapshot name \"\(name)\": use letters, digits and - _ . : starting with a letter or digit")
        }
    }

    public func snapshots(_ uuid: String) throws -> [String] {
        _ = try store.read(uuid)
        return try datasets.snapshots(of: dataset(uuid))
    }

    public func createSnapshot(_ uuid: String, _ name: String) throws {
        try Self.checkSnapshotName(name)
        let lock = try self.lock(uuid)
        defer { withExtendedLifetime(lock) {} }
        let m = try store.read(uuid)
        if try datasets.snapshots(of: dataset(uuid)).contains(name) {
            throw LumosError.exists("VM \(uuid) already has a snapshot named \(name); choose another name or delete it")
        }
        let all = tenantDatasets(uuid)
        // A running VM's vCPUs are paused over the snapshots of its disks, so they are taken at
        // one instant (crash-consistent, as zvol snapshots of a running VM are on SmartOS).
        let qmp = m.isKVM ? qmpSocket(uuid).flatMap { try? QMPClient(socketPath: $0, timeout: 5) } : nil
        if let qmp { try qmp.execute("stop") }
        defer { if let qmp { _ = try? qmp.execute("cont") } }
        var made: [String] = []
        do {
            for ds in all {
                try datasets.snapshot("\(ds)@\(name)")
                made.append("\(ds)@\(name)")
            }
        } catch {
            for snap in made { try? datasets.destroy(snap, recursive: false) }
            throw error
        }
    }

    public func deleteSnapshot(_ uuid: String, _ name: String) throws {
        try Self.checkSnapshotName(name)
        let lock = try self.lock(uuid)
        defer { withExtendedLifetime(lock) {} }
        _ = try store.read(uuid)
        guard try datasets.snapshots(of: dataset(uuid)).contains(name) else {
            throw LumosError.notFound("VM \(uuid) has no snapshot named \(name); see vmadm get \(uuid) (snapshots)")
        }
        for ds in tenantDatasets(uuid) where try datasets.snapshots(of: ds).contains(name) {
            try datasets.destroy("\(ds)@\(name)", recursive: false)
        }
    }

    /// vmadm rollback-snapshot: the zone is stopped if running, its files become the
    /// snapshot's (newer snapshots are destroyed, as zfs rollback -r), and it boots again if it
    /// was running. Journaled so a crash finishes the rollback on the next command.
    public func rollbackSnapshot(_ uuid: String, _ name: String) throws {
        try Self.checkSnapshotName(name)
        let lock = try self.lock(uuid)
        defer { withExtendedLifetime(lock) {} }
        let m = try store.read(uuid)
        guard try datasets.snapshots(of: dataset(uuid)).contains(name) else {
            throw LumosError.notFound("VM \(uuid) has no snapshot named \(name); see vmadm get \(uuid) (snapshots)")
        }
        let wasRunning = zones.isRunning(uuid)
        let intent = try store.journal.begin("rollback", uuid, data: ["snapshot": name, "restart": wasRunning ? "true" : "false",
                                                                      "manifest": m.stored.json.serialized(pretty: false)])
        if wasRunning {
            if m.isKVM { try stopKVM(uuid, force: false, timeout: 30) } else { try zones.stop(uuid, force: false, timeout: 30) }
            try? network.detach(vm: m)
            try intent.mark("stopped")
        }
        if wasRunning { record(.stateChange(m, from: "running", to: "stopped")) }
        try finishRollback(uuid, snapshot: name, restart: wasRunning, manifest: m)
        intent.finish()
        record(TenantEvent(type: "modify", m, state: wasRunning ? "running" : "stopped",
                           changes: [.init("snapshot", nil, .string(name))] + (wasRunning ? [.init("state", "stopped", "running")] : [])))
    }

    /// imgadm create: a stopped zone's root becomes a new image (manifest + compressed file).
    public func createImage(from uuid: String, name: String, version: String, description: String?,
                            compression: String, prefix: String) throws -> (manifest: ImageManifest, manifestPath: String, filePath: String) {
        let lock = try self.lock(uuid)
        defer { withExtendedLifetime(lock) {} }
        let m = try store.read(uuid)
        if zones.isRunning(uuid) { throw LumosError.invalid("VM \(uuid) is running; stop it first (vmadm stop \(uuid)) so its files are consistent") }
        if m.isKVM {
            // A hardware VM's image is its boot disk: a zvol image, an O(1) copy of the disk's
            // snapshot installed here, and the compressed raw disk written for other hosts.
            let disks = m.disks
            guard let i = disks.firstIndex(where: { $0.boot && $0.media == .disk }) ?? disks.firstIndex(where: { $0.media == .disk }) else {
                throw LumosError.invalid("VM \(uuid) has no disk to make an image of")
            }
            let snap = "\(volume(of: disks[i], uuid, index: i))@imgadm-create-\(Int(Date().timeIntervalSince1970))"
            try datasets.snapshot(snap)
            defer { try? datasets.destroy(snap, recursive: false) }
            let made = try images.createFromVolume(snapshot: snap, name: name, version: version,
                                                   description: description ?? "\(name) made from VM \(uuid)",
                                                   output: (prefix, compression), extra: ["origin_vm": .string(uuid)])
            return (made, prefix + ".json", prefix + ".raw" + ImageFileInfo.fileExtension(compression))
        }
        let snap = "\(dataset(uuid))@imgadm-create-\(Int(Date().timeIntervalSince1970))"
        try datasets.snapshot(snap)
        defer { try? datasets.destroy(snap, recursive: false) }
        var extra: [String: JSONValue] = ["origin_vm": .string(uuid)]
        if let img = try? images.get(m.imageUUID) {
            extra["requirements"] = img.manifest.fields["requirements"] ?? [:]
        }
        return try ImageStore.pack(rootfs: try datasets.mountpoint(snap) + "/root", name: name, version: version,
                                   description: description ?? "\(name) made from VM \(uuid)", compression: compression,
                                   prefix: prefix, extra: extra)
    }
}
