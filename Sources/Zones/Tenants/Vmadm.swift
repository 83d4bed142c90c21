import Foundation
import Glibc
import Images
import LumosCore
import Net

/// vmadm's operations on tenants (lx zones). Every multi-step change is journaled: an intent
/// is written before anything changes, and every command first finishes or undoes intents
/// left by a command that died (create, delete, receive are undone or completed; update and
/// rollback roll forward), so a kill -9 never leaves a half tenant (docs/architecture.md).
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
                let previous = intent.data["previous"].flatMap { try? Manifest.decode(Array($0.utf8), what: "journal") }
                if let manifest { try finishUpdate(manifest, previous: previous, nicsLive: intent.data["nics"] == "live") }
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
        for ds in tenantDatasets(uuid) { try datasets.destroy(ds, recursive: true) }
        store.remove(uuid)
        zones.release(uuid)
    }

    func finishDelete(_ uuid: String, _ manifest: Manifest?) throws {
        try zones.cleanup(uuid)
        if let manifest { try? network.detach(vm: manifest) }
        for ds in tenantDatasets(uuid) { try datasets.destroy(ds, recursive: true) }
        store.remove(uuid)
        zones.release(uuid)
        // The killed delete never recorded its event.
        if let manifest { record(TenantEvent(type: "delete", manifest, state: nil)) }
    }

    /// Rolls an update forward. An update that was changing a running zone's NICs may have
    /// died anywhere inside Net's work, so the NICs are wired afresh from the new manifest;
    /// when that cannot be done (a switch went away meanwhile) the update is undone instead.
    func finishUpdate(_ manifest: Manifest, previous: Manifest?, nicsLive: Bool) throws {
        var m = manifest
        let uuid = manifest.uuid
        if nicsLive, zones.isRunning(uuid), let pid = zones.initPid(uuid) {
            do {
                m = m.withNicResults(try network.reset(vm: m, pid: pid))
            } catch {
                guard let previous else { throw error }
                m = previous
                m = m.withNicResults((try? network.reset(vm: previous, pid: pid)) ?? [])
            }
        }
        try datasets.setQuota(dataset(uuid), bytes: ZoneDataset(m).quotaBytes)
        try setIndestructible(uuid, m.indestructibleZoneroot)
        try store.write(m)
        if zones.isRunning(uuid) { try zones.updateLimits(uuid, ZoneLimits(m)) }
    }

    func finishRollback(_ uuid: String, snapshot: String, restart: Bool, manifest: Manifest?) throws {
        try zones.cleanup(uuid)
        for ds in tenantDatasets(uuid) where try datasets.snapshots(of: ds).contains(snapshot) {
            try datasets.rollback("\(ds)@\(snapshot)")
        }
        if let m = manifest ?? (try? store.read(uuid)) {
            try datasets.setQuota(dataset(uuid), bytes: ZoneDataset(m).quotaBytes)
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
        if let pool = m["zpool"]?.stringValue, pool != datasets.poolName {
            throw LumosError.notFound("zpool: pool \(pool) is not the pool vmadm uses on this host (\(datasets.poolName)); leave zpool out or give \(datasets.poolName)")
        }
        if m.isKVM {
            try validateKVM(m)
        } else {
            guard images.isInstalled(m.imageUUID) else {
                throw LumosError.notFound("image_uuid: image \(m.imageUUID) is not installed; see imgadm list, or imgadm import / imgadm build busybox")
            }
            if images.isVolumeImage(m.imageUUID) {
                throw LumosError.invalid("image_uuid: image \(m.imageUUID) is a disk image (zvol), for brand kvm; an lx zone needs a zone image (lx-dataset)")
            }
        }
        if store.exists(m.uuid) || datasets.exists(dataset(m.uuid)) {
            throw LumosError.exists("uuid: VM \(m.uuid) already exists; omit uuid to get a new one")
        }
        try checkLinkPrefixFree(m.uuid)
        try checkMountSources(m)
        if !m.nics.isEmpty { try network.validate(vm: m) }
        return m
    }

    /// Bind-mount sources must exist on this host (checked at create and when filesystems change).
    func checkMountSources(_ m: Manifest) throws {
        for (i, fs) in m.filesystems.enumerated() where !Files.exists(fs.source) {
            throw LumosError.notFound("filesystems[\(i)].source: \(fs.source) does not exist on this host; create it first")
        }
    }

    /// Net names a tenant's host links `lz` + the first 8 hex digits of its uuid, so two VMs
    /// (in any state: a stopped one gets its NICs back at boot) must not share them.
    func checkLinkPrefixFree(_ uuid: String, fix: String = "omit uuid to get a new one") throws {
        let prefix = try Net.TenantNetwork.linkPrefix(tenant: uuid)
        if let other = store.uuids().first(where: { $0 != uuid && (try? Net.TenantNetwork.linkPrefix(tenant: $0)) == prefix }) {
            throw LumosError.exists("uuid: VM \(uuid) shares its first 8 hex digits with VM \(other) (Lumos names NIC links \(prefix)*); \(fix)")
        }
    }

    /// vmadm create: clone the image, write the manifest, boot when autoboot.
    @discardableResult
    public func create(_ payload: JSONValue) throws -> Manifest {
        try recover()
        var m = try validateForCreate(payload)
        let lock = try store.journal.lock(m.uuid)
        defer { withExtendedLifetime(lock) {} }
        // Checked again under the lock: a concurrent create of the same uuid may have won, and
        // undoing our failed clone must never take its VM with it.
        if store.exists(m.uuid) || datasets.exists(dataset(m.uuid)) {
            throw LumosError.exists("VM \(m.uuid) already exists; choose another uuid or delete it first")
        }
        m["create_timestamp"] = .string(TenantStore.timestamp())
        let intent = try store.journal.begin("create", m.uuid, data: ["manifest": m.stored.json.serialized(pretty: false)])
        CrashPoint.hit("create.begun")
        do {
            try datasets.clone(m.isKVM ? try jailImage() : images.finalSnapshot(m.imageUUID), to: dataset(m.uuid))
            try intent.mark("cloned")
            try datasets.setQuota(dataset(m.uuid), bytes: ZoneDataset(m).quotaBytes)
            try intent.mark("quota")
            if m.isKVM {
                m = try createDisks(m)
                try intent.mark("disks")
            }
            if m.indestructibleZoneroot { try setIndestructible(m.uuid, true) }
            // vmadm: a VM has its zonedid from create on, booted or not.
            try zones.reserve(m.uuid)
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
        record(TenantEvent(type: "create", m, state: "stopped"))
        if m.autoboot { record(.stateChange(m, from: "stopped", to: "running")) }
        return m
    }

    // MARK: start, stop, kill

    /// Boots a zone from its manifest (caller holds the lock) and writes back the MACs and
    /// interfaces its NICs got, when the manifest did not have them already.
    func boot(_ m: Manifest) throws {
        if m.isKVM { return try bootKVM(m) }
        let root = try rootfs(m.uuid)
        try ZoneFiles(m).write(root: root)
        var launch = ZoneLaunch(m, rootfs: root, consoleLog: ConsoleLog(path: store.consoleLog(m.uuid)))
        launch.consoleSocket = consoleSocket(m.uuid)
        launch.metadata = true
        launch.quotaGroup = datasets.quotaGroupDirectory(dataset(m.uuid))
        let metadata = ZoneMetadata(root: store.root, uuid: m.uuid)
        var nics: [NicResult] = []
        _ = try zones.start(launch) { pid in
            nics = try network.attach(vm: m, pid: pid)
            try metadata.writeCustomerMetadata(m.customerMetadata)
            try metadata.writeSDCKeys(m.withNicResults(nics), serverUUID: HostIdentity.uuid)
            try zones.startMetadataServer(m.uuid, keysDirectory: metadata.directory, initPid: pid)
        }
        try writeBack(m, nics)
        // vmadm's user-script, at the zone's first boot only (docs/vmadm.md, "Metadata").
        if m.customerMetadata["user-script"] != nil, metadata.claimFirstBoot() {
            do { try zones.runUserScript(m.uuid, allowIOUring: m.allowIOUring) } catch { _ = FD.writeAll(2, Array("vmadm: \(error)\n".utf8)) }
        }
    }

    /// Stores the manifest with the network's view of its NICs, if that differs.
    func writeBack(_ m: Manifest, _ nics: [NicResult]) throws {
        let updated = m.withNicResults(nics)
        if updated != m { try store.write(updated) }
    }

    public func start(_ uuid: String) throws {
        let lock = try self.lock(uuid)
        defer { withExtendedLifetime(lock) {} }
        let m = try store.read(uuid)
        if zones.isRunning(uuid) { throw LumosError.invalid("VM \(uuid) is already running") }
        let before = stateName(uuid)
        try zones.cleanup(uuid)
        // A zone whose init ended by itself left its NIC records behind: start clean.
        try network.detach(vm: m)
        try boot(m)
        try recordAutoboot(uuid, true)
        record(.stateChange(m, from: before, to: "running"))
    }

    public func stop(_ uuid: String, force: Bool, timeout: Double) throws {
        let lock = try self.lock(uuid)
        defer { withExtendedLifetime(lock) {} }
        let m = try store.read(uuid)
        let before = stateName(uuid)
        if before != "running" && !force { throw LumosError.invalid("VM \(uuid) is not running") }
        if m.isKVM { try stopKVM(uuid, force: force, timeout: timeout) } else { try zones.stop(uuid, force: force, timeout: timeout) }
        try network.detach(vm: m)
        try recordAutoboot(uuid, false)
        // A forced stop of a failed VM clears its verdict: failed -> stopped.
        let after = stateName(uuid)
        if before != after { record(.stateChange(m, from: before, to: after)) }
    }

    /// vmadm(8) autoboot: "any time the VM is started this will also get set true and when the
    /// VM is stopped it will get set false", so a host that boots brings back what was running.
    func recordAutoboot(_ uuid: String, _ on: Bool) throws {
        var m = try store.read(uuid)
        guard m.autoboot != on else { return }
        m["autoboot"] = .bool(on)
        try store.write(m)
    }

    public func reboot(_ uuid: String, force: Bool = false, timeout: Double = 30) throws {
        let lock = try self.lock(uuid)
        defer { withExtendedLifetime(lock) {} }
        let m = try store.read(uuid)
        if !zones.isRunning(uuid) { throw LumosError.invalid("VM \(uuid) is not running; use vmadm start") }
        if m.isKVM { try stopKVM(uuid, force: force, timeout: timeout) } else { try zones.stop(uuid, force: force, timeout: timeout) }
        try network.detach(vm: m)
        record(.stateChange(m, from: "running", to: "stopped"))
        try boot(m)
        record(.stateChange(m, from: "stopped", to: "running"))
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
        if m.indestructibleZoneroot {
            throw LumosError.busy("VM \(uuid) has indestructible_zoneroot set; run vmadm update \(uuid) indestructible_zoneroot=false first")
        }
        let intent = try store.journal.begin("delete", uuid, data: ["manifest": m.stored.json.serialized(pretty: false)])
        try zones.cleanup(uuid)
        try intent.mark("stopped")
        try? network.detach(vm: m)
        for ds in tenantDatasets(uuid) { try datasets.destroy(ds, recursive: true) }
        try intent.mark("destroyed")
        store.remove(uuid)
        zones.release(uuid)
        intent.finish()
        record(TenantEvent(type: "delete", m, state: nil))
    }

    // MARK: update

    /// vmadm update: validates, stores, and applies live properties to a running zone.
    /// NIC changes (add_nics, remove_nics, update_nics) are wired into a running zone first;
    /// when that fails the zone's NICs are put back and nothing is stored.
    @discardableResult
    public func update(_ uuid: String, _ payload: JSONValue) throws -> UpdatePlan {
        let lock = try self.lock(uuid)
        defer { withExtendedLifetime(lock) {} }
        let current = try store.read(uuid)
        var plan = try ManifestValidator.validateUpdate(current, payload)
        guard !plan.changed.isEmpty else { return plan }
        // Routes live in the zone's network namespace: a running zone gets them with its NICs.
        if plan.changed.contains("filesystems") { try checkMountSources(plan.manifest) }
        let nicsChanged = plan.changed.contains("nics") || plan.changed.contains("routes")
        if nicsChanged { try network.validate(vm: plan.manifest) }
        // A hardware VM's NICs are taps QEMU holds: they change at its next boot.
        let livePid = nicsChanged && !current.isKVM && zones.isRunning(uuid) ? zones.initPid(uuid) : nil
        var data = ["manifest": plan.manifest.stored.json.serialized(pretty: false)]
        if livePid != nil {
            data["nics"] = "live"
            data["previous"] = current.stored.json.serialized(pretty: false)
        }
        let intent = try store.journal.begin("update", uuid, data: data)
        if let pid = livePid {
            CrashPoint.hit("update.nics-begun")
            do {
                plan.manifest = plan.manifest.withNicResults(try network.apply(vm: plan.manifest, pid: pid))
            } catch {
                restoreNics(current, pid: pid)
                intent.finish()
                throw error
            }
            try intent.mark("nics")
        }
        if current.isKVM, plan.changed.contains("disks") {
            do {
                plan.manifest = try applyDiskChanges(from: current, to: plan.manifest, running: zones.isRunning(uuid))
            } catch {
                // Nothing is stored: the journal must not roll this update forward.
                intent.finish()
                throw error
            }
            try intent.mark("disks")
        }
        if plan.changed.contains("quota") {
            try datasets.setQuota(dataset(uuid), bytes: ZoneDataset(plan.manifest).quotaBytes)
            try intent.mark("quota")
        }
        if plan.changed.contains("indestructible_zoneroot") {
            try setIndestructible(uuid, plan.manifest.indestructibleZoneroot)
        }
        try store.write(plan.manifest)
        try intent.mark("manifest")
        // vmadm(8) maintain_resolvers: a running zone's resolv.conf follows resolvers.
        let files = ZoneFiles(plan.manifest)
        if plan.changed.contains("resolvers") && files.maintainResolvers && zones.isRunning(uuid) {
            try files.write(root: try rootfs(uuid))
        }
        // A running VM's guest keeps its ram until the next boot, and its jail the cap that holds it.
        let ramPending = current.isKVM && plan.changed.contains("ram")
        if zones.isRunning(uuid), !ramPending, plan.live.contains(where: PropertyTable.limitProperties.contains) {
            try zones.updateLimits(uuid, ZoneLimits(plan.manifest))
            try intent.mark("applied")
        }
        intent.finish()
        record(TenantEvent(type: "modify", plan.manifest, state: stateName(uuid),
                           changes: plan.changed.map { TenantEvent.Change($0, current[$0], plan.manifest[$0]) }))
        return plan
    }

    /// Puts a running zone's NICs back as `m` has them after a failed update: the cheap way
    /// first (only the difference), then by wiring them afresh.
    func restoreNics(_ m: Manifest, pid: pid_t) {
        if (try? network.apply(vm: m, pid: pid)) == nil { _ = try? network.reset(vm: m, pid: pid) }
    }

    /// The snapshot that holds a VM with indestructible_zoneroot (vmadm(8): "@indestructible").
    static let indestructibleSnapshot = "indestructible"

    /// The hold on it; while it is there, neither vmadm delete nor a destroy of the dataset
    /// (lumos dataset destroy -r) can remove the zone's root.
    static let indestructibleHold = "vmadm_indestructible_zoneroot"

    /// indestructible_zoneroot (vmadm(8)): a snapshot @indestructible of the zone's dataset with
    /// a hold on it. Setting it false releases the hold and destroys the snapshot.
    func setIndestructible(_ uuid: String, _ on: Bool) throws {
        let snap = "\(dataset(uuid))@\(Self.indestructibleSnapshot)"
        let has = (try datasets.snapshots(of: dataset(uuid))).contains(Self.indestructibleSnapshot)
        if on {
            if !has { try datasets.snapshot(snap) }
            if !(try datasets.holds(snap)).contains(Self.indestructibleHold) { try datasets.hold(snap, tag: Self.indestructibleHold) }
        } else if has {
            if (try datasets.holds(snap)).contains(Self.indestructibleHold) { try datasets.release(snap, tag: Self.indestructibleHold) }
            try datasets.destroy(snap, recursive: false)
        }
    }

    // MARK: reading

    /// The manifest with what vmadm computes when printing: every computed row of the
    /// property table, from the kernel's and the pool's facts about the VM.
    public func describe(_ m: Manifest, withSnapshots: Bool = false) -> JSONValue {
        let uuid = m.uuid
        let running = zones.isRunning(uuid)
        let pid = running ? zones.initPid(uuid) : nil
        var facts = VMFacts(manifest: m, running: running,
                            busy: store.journal.read(uuid) != nil && !FileLock.isFree(store.journal.lockPath(uuid)),
                            hasDataset: datasets.exists(dataset(uuid)), dataset: dataset(uuid), pool: datasets.poolName,
                            zonepath: try? datasets.mountpoint(dataset(uuid)), pid: pid, bootTimestamp: pid.flatMap(ProcessStart.timestamp),
                            snapshots: withSnapshots ? (try? datasets.snapshots(of: dataset(uuid)))?.filter { $0 != Self.indestructibleSnapshot } : nil,
                            serverUUID: HostIdentity.uuid, zonedid: zones.zonedid(uuid),
                            accelerator: m.isKVM && running ? runningAccelerator(uuid) : nil)
        facts.initReady = !running || zones.initReady(uuid)
        if m.isKVM { (facts.failed, facts.stateReason) = kvmHealth(uuid, running: running) }
        var p = m.properties
        for spec in PropertyTable.all {
            guard case .computed(let compute) = spec.source else { continue }
            p[spec.name] = compute(facts)
        }
        if p["nics"] != nil { p["nics"] = .array(m.nicsAsShown) }
        // A zone's ram is its max_physical_memory (vmadm); a hardware VM's is the guest's.
        if !m.isKVM { p["ram"] = m["max_physical_memory"] }
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
        let m = try store.read(uuid)
        return try zones.login(uuid, argv, tty: tty, allowIOUring: m.allowIOUring)
    }
}
