import Foundation
import Glibc
import Images
import LumosCore

/// vmadm's operations on tenants (lx zones). Every multi-step change is journaled: an intent
/// is written before anything changes, and every command first finishes or undoes intents
/// left by a command that died (create, delete, receive are undone or completed; update and
/// rollback roll forward), so a kill -9 never leaves a half tenant (DESIGN.md).
public final class Vmadm {
    public let store: TenantStore
    public let datasets: DatasetStore
    public let images: ImageStore
    public let zones: ZoneControl
    public let network: TenantNetwork

    public init(root: StateRoot, datasets: DatasetStore, zones: ZoneControl, network: TenantNetwork = NoTenantNetwork()) {
        store = TenantStore(root: root)
        self.datasets = datasets
        images = ImageStore(root: root, datasets: datasets)
        self.zones = zones
        self.network = network
    }

    func dataset(_ uuid: String) -> String { datasets.dataset(uuid) }

    /// The zone's root directory (SmartOS layout: `<zonepath>/root`).
    public func rootfs(_ uuid: String) throws -> String { try datasets.mountpoint(dataset(uuid)) + "/root" }

    // MARK: crash recovery

    /// Finishes or undoes every operation a killed command left behind.
    public func recover() throws {
        try store.journal.recoverAbandoned { intent in
            let uuid = intent.subject
            let manifest = intent.data["manifest"].flatMap { try? Manifest.decode(Array($0.utf8), what: "journal") }
            switch intent.operation {
            case "create", "receive":
                // Removing the record is the commit: a record means the create never finished.
                try undoCreate(uuid, manifest)
            case "delete":
                try finishDelete(uuid, manifest)
            case "update":
                if let manifest { try finishUpdate(manifest) }
            case "rollback":
                if let snap = intent.data["snapshot"] {
                    try finishRollback(uuid, snapshot: snap, restart: intent.data["restart"] == "true", manifest: manifest)
                }
            default: break
            }
        }
    }

    /// Removes everything a create may have made: processes, cgroups, links, dataset, manifest.
    func undoCreate(_ uuid: String, _ manifest: Manifest?) throws {
        try zones.cleanup(uuid)
        if let manifest { try? network.detach(vm: manifest) }
        if datasets.exists(dataset(uuid)) { try datasets.destroy(dataset(uuid), recursive: true) }
        store.remove(uuid)
        zones.release(uuid)
    }

    func finishDelete(_ uuid: String, _ manifest: Manifest?) throws {
        try zones.cleanup(uuid)
        if let manifest { try? network.detach(vm: manifest) }
        if datasets.exists(dataset(uuid)) { try datasets.destroy(dataset(uuid), recursive: true) }
        store.remove(uuid)
        zones.release(uuid)
    }

    func finishUpdate(_ manifest: Manifest) throws {
        try datasets.setQuota(dataset(manifest.uuid), bytes: manifest.quotaGiB.map { UInt64($0) << 30 })
        try store.write(manifest)
        if zones.isRunning(manifest.uuid) { try zones.updateLimits(manifest.uuid, TenantLimits(manifest)) }
    }

    func finishRollback(_ uuid: String, snapshot: String, restart: Bool, manifest: Manifest?) throws {
        try zones.cleanup(uuid)
        try datasets.rollback("\(dataset(uuid))@\(snapshot)")
        if let m = manifest ?? (try? store.read(uuid)) {
            try datasets.setQuota(dataset(uuid), bytes: m.quotaGiB.map { UInt64($0) << 30 })
            if restart { try boot(m) }
        }
    }

    /// Takes a tenant's lock after repairing abandoned work.
    func lock(_ uuid: String) throws -> FileLock {
        try recover()
        return try store.journal.lock(uuid)
    }

    // MARK: create

    /// Checks a create payload against this host too: the image is installed, the uuid is
    /// free, bind-mount sources exist. Nothing is changed.
    public func validateForCreate(_ payload: JSONValue) throws -> Manifest {
        let m = try ManifestValidator.validateCreate(payload)
        guard images.isInstalled(m.imageUUID) else {
            throw LumosError.notFound("image_uuid: image \(m.imageUUID) is not installed; see imgadm list, or imgadm import / imgadm build busybox")
        }
        if store.exists(m.uuid) || datasets.exists(dataset(m.uuid)) {
            throw LumosError.exists("uuid: VM \(m.uuid) already exists; omit uuid to get a new one")
        }
        for (i, fs) in m.filesystems.enumerated() where !Files.exists(fs.source) {
            throw LumosError.notFound("filesystems[\(i)].source: \(fs.source) does not exist on this host; create it first")
        }
        return m
    }

    /// vmadm create: clone the image, write the manifest, boot when autoboot.
    @discardableResult
    public func create(_ payload: JSONValue) throws -> Manifest {
        try recover()
        var m = try validateForCreate(payload)
        let lock = try store.journal.lock(m.uuid)
        defer { withExtendedLifetime(lock) {} }
        m["create_timestamp"] = .string(TenantStore.timestamp())
        let intent = try store.journal.begin("create", m.uuid, data: ["manifest": m.stored.json.serialized(pretty: false)])
        CrashPoint.hit("create.begun")
        do {
            try datasets.clone(images.finalSnapshot(m.imageUUID), to: dataset(m.uuid))
            try intent.mark("cloned")
            try datasets.setQuota(dataset(m.uuid), bytes: m.quotaGiB.map { UInt64($0) << 30 })
            try intent.mark("quota")
            try store.write(m)
            try intent.mark("manifest")
            if m.autoboot {
                try boot(m)
                try intent.mark("started")
            }
            intent.finish()
        } catch {
            try? undoCreate(m.uuid, m)
            intent.finish()
            throw error
        }
        return m
    }

    // MARK: start, stop, kill

    /// Boots a zone from its manifest (caller holds the lock).
    func boot(_ m: Manifest) throws {
        let root = try rootfs(m.uuid)
        try writeZoneFiles(m, root: root)
        let launch = ZoneLaunch(uuid: m.uuid, hostname: m.hostname, rootfs: root, initCommand: [m.initName],
                                limits: TenantLimits(m), mounts: m.filesystems, tmpfsMiB: UInt64(m.tmpfsMiB),
                                consoleLog: store.consoleLog(m.uuid))
        _ = try zones.start(launch) { pid in try network.attach(vm: m, pid: pid) }
    }

    /// /etc/resolv.conf and /etc/hostname from the manifest, as vmadm does for lx zones.
    func writeZoneFiles(_ m: Manifest, root: String) throws {
        let etc = root + "/etc"
        guard Files.isDirectory(etc) else { return }
        // Never follow a symlink the tenant planted: write only regular files or nothing.
        for (name, text) in [("hostname", m.hostname + "\n"), ("resolv.conf", resolvConf(m))] {
            var st = stat()
            let path = "\(etc)/\(name)"
            if lstat(path, &st) == 0 && (st.st_mode & S_IFMT) != S_IFREG { continue }
            if name == "resolv.conf" && m.resolvers.isEmpty { continue }
            // Unchanged files are not rewritten. No fsync: both are derived from the manifest
            // again at every boot, so a power loss cannot leave them wrong for long.
            if (try? FD.readText(path)) == text { continue }
            try Files.replaceAtomically(path, Array(text.utf8))
        }
    }

    func resolvConf(_ m: Manifest) -> String {
        var text = ""
        if let d = m.dnsDomain, d != "local" { text += "search \(d)\n" }
        for r in m.resolvers { text += "nameserver \(r)\n" }
        return text
    }

    public func start(_ uuid: String) throws {
        let lock = try self.lock(uuid)
        defer { withExtendedLifetime(lock) {} }
        let m = try store.read(uuid)
        if zones.isRunning(uuid) { throw LumosError.invalid("VM \(uuid) is already running") }
        try zones.cleanup(uuid)
        try boot(m)
    }

    public func stop(_ uuid: String, force: Bool, timeout: Double) throws {
        let lock = try self.lock(uuid)
        defer { withExtendedLifetime(lock) {} }
        let m = try store.read(uuid)
        if !zones.isRunning(uuid) && !force { throw LumosError.invalid("VM \(uuid) is not running") }
        try zones.stop(uuid, force: force, timeout: timeout)
        try network.detach(vm: m)
    }

    public func reboot(_ uuid: String, force: Bool = false, timeout: Double = 30) throws {
        let lock = try self.lock(uuid)
        defer { withExtendedLifetime(lock) {} }
        let m = try store.read(uuid)
        if !zones.isRunning(uuid) { throw LumosError.invalid("VM \(uuid) is not running; use vmadm start") }
        try zones.stop(uuid, force: force, timeout: timeout)
        try network.detach(vm: m)
        try boot(m)
    }

    public func kill(_ uuid: String, signal: Int32) throws {
        _ = try store.read(uuid)
        if !zones.isRunning(uuid) { throw LumosError.invalid("VM \(uuid) is not running") }
        try zones.kill(uuid, signal: signal)
    }

    // MARK: delete

    public func delete(_ uuid: String) throws {
        let lock = try self.lock(uuid)
        defer { withExtendedLifetime(lock) {} }
        let m = try store.read(uuid)
        let intent = try store.journal.begin("delete", uuid, data: ["manifest": m.stored.json.serialized(pretty: false)])
        try zones.cleanup(uuid)
        try intent.mark("stopped")
        try? network.detach(vm: m)
        if datasets.exists(dataset(uuid)) { try datasets.destroy(dataset(uuid), recursive: true) }
        try intent.mark("destroyed")
        store.remove(uuid)
        zones.release(uuid)
        intent.finish()
    }

    // MARK: update

    /// vmadm update: validates, stores, and applies live properties to a running zone.
    @discardableResult
    public func update(_ uuid: String, _ payload: JSONValue) throws -> UpdatePlan {
        let lock = try self.lock(uuid)
        defer { withExtendedLifetime(lock) {} }
        let current = try store.read(uuid)
        let plan = try ManifestValidator.validateUpdate(current, payload)
        guard !plan.changed.isEmpty else { return plan }
        let intent = try store.journal.begin("update", uuid, data: ["manifest": plan.manifest.stored.json.serialized(pretty: false)])
        if plan.changed.contains("quota") {
            try datasets.setQuota(dataset(uuid), bytes: plan.manifest.quotaGiB.map { UInt64($0) << 30 })
            try intent.mark("quota")
        }
        try store.write(plan.manifest)
        try intent.mark("manifest")
        if zones.isRunning(uuid), plan.live.contains(where: Self.limitProperties.contains) {
            try zones.updateLimits(uuid, TenantLimits(plan.manifest))
            try intent.mark("applied")
        }
        intent.finish()
        return plan
    }

    static let limitProperties: Set<String> = ["max_physical_memory", "max_swap", "max_locked_memory", "max_lwps",
                                               "cpu_shares", "cpu_cap", "zfs_io_priority"]

    // MARK: reading

    /// The manifest with what vmadm computes when printing (state from the kernel).
    public func describe(_ m: Manifest, withSnapshots: Bool = false) -> JSONValue {
        var p = m.properties
        let uuid = m.uuid
        let running = zones.isRunning(uuid)
        let busy = store.journal.read(uuid) != nil && !FileLock.isFree(store.journal.lockPath(uuid))
        let hasDataset = datasets.exists(dataset(uuid))
        p["type"] = "LX"
        p["ram"] = p["max_physical_memory"]
        p["state"] = .string(running ? "running" : busy ? "provisioning" : hasDataset ? "stopped" : "failed")
        p["zone_state"] = .string(running ? "running" : "installed")
        p["zonename"] = .string(uuid)
        p["zfs_filesystem"] = .string(dataset(uuid))
        p["zpool"] = .string(datasets.poolName)
        if let path = try? datasets.mountpoint(dataset(uuid)) { p["zonepath"] = .string(path) }
        if running, let pid = zones.initPid(uuid) {
            p["pid"] = .number(Double(pid))
            p["zoneid"] = .number(Double(pid))
            if let t = ProcessStart.timestamp(pid) { p["boot_timestamp"] = .string(t) }
        }
        if withSnapshots, let snaps = try? datasets.snapshots(of: dataset(uuid)) {
            p["snapshots"] = .array(snaps.map { ["name": .string($0)] })
        }
        return .object(p)
    }

    public func get(_ uuid: String) throws -> JSONValue {
        try describe(store.read(store.resolve(uuid)), withSnapshots: true)
    }

    public func list() throws -> [JSONValue] {
        try recover()
        return store.all().map { describe($0) }
    }

    /// VMs whose image is `imageUUID` (imgadm delete refuses while there are any).
    public func users(ofImage imageUUID: String) -> [String] {
        store.all().filter { $0.imageUUID == imageUUID.lowercased() }.map(\.uuid)
    }

    public func login(_ uuid: String, _ argv: [String], tty: Bool) throws -> Int32 {
        _ = try store.read(uuid)
        return try zones.login(uuid, argv, tty: tty)
    }
}
