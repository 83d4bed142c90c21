import Foundation
import Glibc
import Images
import LumosCore

/// vmadm send / receive: a whole tenant (manifest and dataset) as one stream, for backup and
/// for moving it to another host. Format: a header line `LUMOS-VM-STREAM 1`, the manifest's
/// length in bytes on a line, the manifest JSON, then the dataset's send stream. A kvm VM's
/// stream holds its disks' volumes instead, in disks[] order: its jail's root is Lumos's own
/// (docs/vm.md), made afresh on the receiving host.
extension Vmadm {
    static let streamMagic = "LUMOS-VM-STREAM 1"

    public func send(_ uuid: String, to fd: Int32) throws {
        let lock = try self.lock(uuid)
        defer { withExtendedLifetime(lock) {} }
        let m = try store.read(uuid)
        if zones.isRunning(uuid) {
            throw LumosError.invalid("VM \(uuid) is running; stop it first (vmadm stop \(uuid)) so the stream is consistent")
        }
        let name = "vmadm-send-\(Int(Date().timeIntervalSince1970))"
        let sources = m.isKVM ? sentDisks(m).map(\.dataset) : [dataset(uuid)]
        var snaps: [String] = []
        defer { for snap in snaps { try? datasets.destroy(snap, recursive: false) } }
        for ds in sources {
            try datasets.snapshot("\(ds)@\(name)")
            snaps.append("\(ds)@\(name)")
        }
        let manifest = Array(m.stored.json.serialized(pretty: false).utf8)
        let header = Array("\(Self.streamMagic)\n\(manifest.count)\n".utf8) + manifest
        guard FD.writeAll(fd, header) else { throw Errno(errno, "write", "send stream") }
        for snap in snaps { try datasets.send(snap, to: fd) }
    }

    /// A kvm VM's volumes in disks[] order (cdroms are host files, not sent).
    func sentDisks(_ m: Manifest) -> [(index: Int, dataset: String)] {
        m.disks.enumerated().filter { $0.element.media == .disk }.map { ($0.offset, volume(of: $0.element, m.uuid, index: $0.offset)) }
    }

    /// Reads one line without reading past it (the rest of the stream belongs to the dataset).
    static func readLine(_ fd: Int32, limit: Int = 64) throws -> String {
        var bytes: [UInt8] = []
        var c: UInt8 = 0
        while bytes.count < limit {
            let n = read(fd, &c, 1)
            if n < 0 { if errno == EINTR { continue }; throw Errno(errno, "read", "receive stream") }
            if n == 0 || c == UInt8(ascii: "\n") { break }
            bytes.append(c)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func readExactly(_ fd: Int32, _ count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var off = 0
        while off < count {
            let n = out.withUnsafeMutableBytes { read(fd, $0.baseAddress! + off, count - off) }
            if n < 0 { if errno == EINTR { continue }; throw Errno(errno, "read", "receive stream") }
            if n == 0 { throw LumosError(.corrupt, "receive: the stream ended inside the manifest; it is truncated") }
            off += n
        }
        return out
    }

    /// vmadm receive: recreates a tenant from a `send` stream. It arrives stopped; a failure
    /// or crash leaves nothing behind.
    @discardableResult
    public func receive(from fd: Int32) throws -> Manifest {
        try recover()
        let magic = try Self.readLine(fd)
        guard magic == Self.streamMagic else {
            throw LumosError(.corrupt, "receive: the input is not a vmadm send stream (it starts with \"\(magic.prefix(20))\"); pipe in the output of vmadm send")
        }
        guard let length = Int(try Self.readLine(fd)), length > 0, length < 16 << 20 else {
            throw LumosError(.corrupt, "receive: the stream's manifest length is damaged")
        }
        var m = try Manifest.decode(try Self.readExactly(fd, length), what: "receive stream manifest")
        // The stream carries a stored manifest; check it as a create payload would be.
        var payload = m.properties
        for key in ["create_timestamp", "last_modified"] { payload[key] = nil }
        // Set by vmadm at create, and again here for this host's pool.
        if let disks = payload["disks"]?.arrayValue {
            payload["disks"] = .array(disks.map { d in
                guard var o = d.objectValue, o["media"]?.stringValue != "cdrom" else { return d }
                o["path"] = nil
                o["zfs_filesystem"] = nil
                return .object(o)
            })
        }
        _ = try ManifestValidator.validateCreate(.object(payload))
        let uuid = m.uuid
        if store.exists(uuid) || datasets.exists(dataset(uuid)) {
            throw LumosError.exists("VM \(uuid) already exists on this host; delete it first to restore from the stream")
        }
        try checkLinkPrefixFree(uuid, fix: "delete that VM first to restore this one from the stream")
        let lock = try store.journal.lock(uuid)
        defer { withExtendedLifetime(lock) {} }
        let intent = try store.journal.begin("receive", uuid, data: ["manifest": m.stored.json.serialized(pretty: false)])
        do {
            if m.isKVM {
                try datasets.clone(try jailImage(), to: dataset(uuid))
                var list = m["disks"]?.arrayValue ?? []
                for (i, ds) in sentDisks(m) {
                    try datasets.receive(ds, from: fd)
                    var o = list[i].objectValue ?? [:]
                    o["zfs_filesystem"] = .string(ds)
                    o["path"] = .string(try datasets.volumeFile(ds))
                    list[i] = .object(o)
                }
                m["disks"] = .array(list)
            } else {
                try datasets.receive(dataset(uuid), from: fd)
            }
            try intent.mark("received")
            for ds in tenantDatasets(uuid) {
                for snap in try datasets.snapshots(of: ds) where snap.hasPrefix("vmadm-send-") {
                    try datasets.destroy("\(ds)@\(snap)", recursive: false)
                }
            }
            try datasets.setQuota(dataset(uuid), bytes: ZoneDataset(m).quotaBytes)
            if m["create_timestamp"] == nil { m["create_timestamp"] = .string(TenantStore.timestamp()) }
            try store.write(m)
            intent.finish()
        } catch {
            try? undoCreate(uuid, m)
            intent.finish()
            throw error
        }
        record(TenantEvent(type: "create", m, state: "stopped"))
        return m
    }
}
