import CLinux
import Foundation
import Glibc
import LumosCore

/// Changes to datasets. Every change holds the pool lock and first finishes or undoes whatever
/// an earlier, killed command left (`recover`), so a crash never leaves a half-made dataset.
/// New subvolumes are built in `.lumos/tmp` and renamed into place as the last step.
extension Pool {
    /// Takes the pool lock and recovers abandoned work. Callers keep the lock while they change things.
    func begin() throws -> FileLock {
        try requireMounted()
        let l = try lock()
        try recover()
        return l
    }

    // MARK: create

    public func createFilesystem(_ ds: DatasetName, parents: Bool = false, properties: [String: String] = [:]) throws {
        try create(ds, volumeSize: nil, parents: parents, properties: properties)
    }

    /// A volume is a sparse copy-on-write file; like zfs create -V without -s, its size must fit
    /// in the pool's available space when it is made, unless `sparse` (zfs create -s -V).
    public func createVolume(_ ds: DatasetName, size: UInt64, parents: Bool = false, sparse: Bool = false, properties: [String: String] = [:]) throws {
        guard size > 0 else { throw LumosError.invalid("volume size must be greater than 0") }
        if !sparse {
            let fd = try openRoot()
            defer { close(fd) }
            let available = try spaceAvailable(fd)
            guard size <= available else {
                throw LumosError(.noSpace, "cannot create '\(ds)': volume size \(Size.format(size)) exceeds the pool's available space \(Size.format(available)); make it smaller or use -s for a sparse volume")
            }
        }
        try create(ds, volumeSize: size, parents: parents, properties: properties)
        if sparse { try Btrfs.setxattr(path(ds), XAttr.sparse, "on") }
    }

    func create(_ ds: DatasetName, volumeSize: UInt64?, parents: Bool, properties: [String: String]) throws {
        guard ds.pool == name else { throw LumosError.invalid("\(ds) is not in pool '\(name)'") }
        guard !ds.isSnapshot else { throw LumosError.invalid("cannot create '\(ds)': use 'dataset snapshot' for snapshots") }
        guard !ds.isPoolRoot else { throw LumosError.exists("dataset '\(ds)' already exists (it is the pool's root)") }
        let props = try PropertyTable.validateForCreate(properties, type: volumeSize == nil ? .filesystem : .volume)
        let lock = try begin()
        defer { _ = lock }
        if exists(ds) { throw LumosError.exists("dataset '\(ds)' already exists") }
        // Check the whole chain of parents before creating anything.
        var missing: [DatasetName] = []
        var cur = ds.parent
        while let c = cur, !exists(c) { missing.insert(c, at: 0); cur = c.parent }
        if !missing.isEmpty && !parents {
            throw LumosError.notFound("cannot create '\(ds)': parent '\(missing.last!)' does not exist; create it first or use -p")
        }
        if let c = cur, c != ds, try entry(c).type == .volume {
            throw LumosError.invalid("cannot create '\(ds)': parent '\(c)' is a volume; volumes cannot have children")
        }
        for p in missing + [ds] {
            let target = path(p)
            var st = stat()
            if lstat(target, &st) == 0 {
                throw LumosError.exists("cannot create '\(p)': \(target) exists and is not a dataset; move it away first")
            }
        }
        for p in missing { try makeSubvolume(p, volumeSize: nil, properties: [:]) }
        try makeSubvolume(ds, volumeSize: volumeSize, properties: props)
    }

    /// Builds a complete subvolume in tmp (qgroups, properties, volume file) and renames it in.
    func makeSubvolume(_ ds: DatasetName, volumeSize: UInt64?, properties: [String: String]) throws {
        let fd = try openRoot()
        defer { close(fd) }
        let qg = try allocateQGroup(fd)
        let tmp = tmpDir + "/" + UUID().uuidString
        try Btrfs.createSubvolume(tmp, qgroups: [Btrfs.qgroupID(level: 1, qg)] + ancestorQGroups(ds))
        do {
            try Btrfs.setxattr(tmp, XAttr.qgroup, String(qg))
            try Btrfs.setxattr(tmp, XAttr.type, volumeSize == nil ? DatasetType.filesystem.rawValue : DatasetType.volume.rawValue)
            // Children inherit the parent's compression, as ZFS properties inherit.
            if properties["compression"] == nil, let parent = ds.parent, let c = Btrfs.getxattr(path(parent), XAttr.compression) {
                try Btrfs.setxattr(tmp, XAttr.compression, c)
            }
            if let size = volumeSize {
                try Btrfs.setxattr(tmp, XAttr.volsize, String(size))
                try createVolumeFile(tmp + "/" + Volume.fileName, size: size)
            }
            for (k, v) in properties.sorted(by: { $0.key < $1.key }) { try applyProperty(k, v, path: tmp, dataset: ds, fd: fd, creating: true) }
            try Self.crashPoint("create.before-rename")
            try sys("rename", "\(ds)") { rename(tmp, path(ds)) }
        } catch {
            try? Btrfs.delete(tmp)
            Btrfs.destroyQGroup(fd, Btrfs.qgroupID(level: 1, qg))
            throw error
        }
    }

    // MARK: snapshot, clone

    public func snapshot(_ snap: DatasetName, recursive: Bool = false) throws {
        guard let snapName = snap.snapshot else { throw LumosError.invalid("'\(snap)' is not a snapshot name; use DATASET@NAME") }
        let lock = try begin()
        defer { _ = lock }
        let top = try entry(snap.dataset)
        guard top.type != .snapshot else { throw LumosError.invalid("cannot snapshot a snapshot") }
        let targets = recursive ? try entries().filter { !$0.name.isSnapshot && $0.name.isWithin(snap.dataset) } : [top]
        for t in targets where exists(t.name.at(snapName)) {
            throw LumosError.exists("snapshot '\(t.name.at(snapName))' already exists")
        }
        // All or nothing: a journal lists what was made so a crash can undo a partial -r
        // (one snapshot is a single atomic ioctl and needs none).
        var made: [String] = []
        let journal = targets.count > 1 ? Journal(pool: self, op: "snapshot") : nil
        do {
            for t in targets {
                let dest = path(t.name.at(snapName))
                try journal?.record(undo: dest)
                try Files.makeDirectories(Files.parent(dest), mode: 0o700)
                try Btrfs.snapshot(t.path, dest, readOnly: true, qgroups: levelOneGroups(t.name))
                made.append(dest)
                try Self.crashPoint("snapshot.after-one")
            }
            journal?.commit()
        } catch {
            for m in made.reversed() { try? Btrfs.delete(m); rmdir(Files.parent(m)) }
            journal?.commit()
            throw error
        }
    }

    /// The level-1 groups a subvolume of dataset `ds` (or its snapshot) belongs to.
    func levelOneGroups(_ ds: DatasetName) -> [UInt64] {
        let own = qgroupNumber(path(ds.dataset)).map { [Btrfs.qgroupID(level: 1, $0)] } ?? []
        return own + ancestorQGroups(ds.dataset)
    }

    /// A writable snapshot of a snapshot (zfs clone). With `recordOrigin` false the new dataset
    /// is not tied to its origin (no `origin`, so the origin snapshot can be destroyed while it
    /// lives): btrfs shares the blocks either way, which makes this an O(1) independent copy
    /// (an image made from a VM's disk, docs/vm.md).
    public func clone(_ snap: DatasetName, to target: DatasetName, properties: [String: String] = [:], recordOrigin: Bool = true) throws {
        guard snap.isSnapshot else { throw LumosError.invalid("'\(snap)' is not a snapshot; clone needs DATASET@SNAPSHOT") }
        guard !target.isSnapshot, target.pool == name else { throw LumosError.invalid("invalid clone target '\(target)': use a dataset name in pool '\(name)'") }
        let lock = try begin()
        defer { _ = lock }
        let src = try entry(snap)
        if exists(target) { throw LumosError.exists("dataset '\(target)' already exists") }
        guard let parent = target.parent, exists(parent) else {
            throw LumosError.notFound("cannot create '\(target)': parent '\(target.parent?.description ?? "")' does not exist; create it first")
        }
        if try entry(parent).type == .volume { throw LumosError.invalid("cannot create '\(target)': parent '\(parent)' is a volume") }
        let type: DatasetType = Btrfs.getxattr(src.path, XAttr.type) == "volume" ? .volume : .filesystem
        let props = try PropertyTable.validateForCreate(properties, type: type)
        let fd = try openRoot()
        defer { close(fd) }
        let qg = try allocateQGroup(fd)
        let tmp = tmpDir + "/" + UUID().uuidString
        try Btrfs.snapshot(src.path, tmp, readOnly: false, qgroups: [Btrfs.qgroupID(level: 1, qg)] + ancestorQGroups(target))
        do {
            try resetProperties(tmp, keep: [XAttr.type, XAttr.volsize, XAttr.compression])
            removeChildPlaceholders(tmp)
            try Btrfs.setxattr(tmp, XAttr.qgroup, String(qg))
            if recordOrigin { try Btrfs.setxattr(tmp, XAttr.origin, snap.description) }
            for (k, v) in props.sorted(by: { $0.key < $1.key }) { try applyProperty(k, v, path: tmp, dataset: target, fd: fd, creating: true) }
            try Self.crashPoint("clone.before-rename")
            try sys("rename", "\(target)") { rename(tmp, path(target)) }
        } catch {
            try? Btrfs.delete(tmp)
            Btrfs.destroyQGroup(fd, Btrfs.qgroupID(level: 1, qg))
            throw error
        }
    }

    /// Drops Lumos's per-dataset xattrs that must not be copied into a new dataset.
    func resetProperties(_ p: String, keep: Set<String>) throws {
        for k in Btrfs.listxattr(p) where k.hasPrefix(XAttr.prefix) && !k.hasPrefix(XAttr.userPrefix) && !keep.contains(k) {
            Btrfs.removexattr(p, k)
        }
    }

    /// A snapshot holds an empty directory where each nested subvolume (child dataset) was;
    /// clones and rollbacks must not show them. Their inode number is always 2
    /// (BTRFS_EMPTY_SUBVOL_DIR_OBJECTID).
    func removeChildPlaceholders(_ dir: String) {
        for n in Files.list(dir) {
            var st = stat()
            let p = dir + "/" + n
            if lstat(p, &st) == 0 && st.st_ino == 2 && (st.st_mode & S_IFMT) == S_IFDIR { rmdir(p) }
        }
    }

    /// Direct child datasets of `ds` (nested subvolumes one level down).
    func children(_ ds: DatasetName, in all: [Entry]) -> [Entry] {
        all.filter { !$0.name.isSnapshot && $0.name.parent == ds }
    }

    // MARK: destroy

    public func destroy(_ ds: DatasetName, recursive: Bool = false) throws {
        guard !ds.isPoolRoot else { throw LumosError.invalid("cannot destroy the pool's root dataset '\(ds)'; use: lumos pool destroy \(ds.pool)") }
        let lock = try begin()
        defer { _ = lock }
        let all = try entries()
        let target = try entry(ds)
        let doomed = ds.isSnapshot ? [target] : all.filter { $0.name.isWithin(ds) }
        if !recursive && !ds.isSnapshot {
            let kids = doomed.filter { $0.name != ds }
            if !kids.isEmpty {
                let what = kids.contains { !$0.name.isSnapshot } ? "children" : "snapshots"
                throw LumosError.busy("cannot destroy '\(ds)': it has \(what) (\(kids.prefix(3).map(\.name.description).joined(separator: ", "))); use -r to destroy them too")
            }
        }
        try refuseHeld(doomed, "destroy '\(ds)'")
        // A snapshot that has clones outside what is being destroyed stays, as in zfs.
        let doomedNames = Set(doomed.map(\.name.description))
        for d in doomed where d.name.isSnapshot {
            let clones = all.filter { !$0.name.isSnapshot && $0.xattr(XAttr.origin) == d.name.description && !doomedNames.contains($0.name.description) }
            if !clones.isEmpty {
                throw LumosError.busy("cannot destroy '\(d.name)': it has clones (\(clones.map(\.name.description).joined(separator: ", "))); destroy or promote them first")
            }
        }
        for d in doomed where d.type == .volume {
            if let dev = LoopDevice.find(backing: d.path + "/" + Volume.fileName) {
                throw LumosError.busy("cannot destroy '\(d.name)': volume is attached as \(dev); detach it first")
            }
        }
        let fd = try openRoot()
        defer { close(fd) }
        // Deepest first, snapshots before their dataset.
        let order = doomed.sorted { a, b in
            if a.name.depth != b.name.depth { return a.name.depth > b.name.depth }
            return a.name.isSnapshot && !b.name.isSnapshot
        }
        for d in order {
            let qg = d.name.isSnapshot ? nil : qgroupNumber(d.path)
            do { try Btrfs.delete(d.path) } catch let e as LumosError where e.errno == EBUSY {
                throw LumosError.busy("cannot destroy '\(d.name)': it is busy (mounted or in use by a tenant); stop its users first")
            }
            if d.name.isSnapshot {
                rmdir(snapshotHolder(d.name))
                removeEmptySnapshotDirs(d.name.dataset)
            }
            if let qg { Btrfs.destroyQGroup(fd, Btrfs.qgroupID(level: 1, qg)) }
            Btrfs.destroyQGroup(fd, Btrfs.qgroupID(level: 0, d.info.id))
        }
    }

    func removeEmptySnapshotDirs(_ ds: DatasetName) {
        var cur: DatasetName? = ds
        while let c = cur, !c.isPoolRoot {
            if rmdir(snapshotDirectory(c)) != 0 { break }
            cur = c.parent
        }
    }

    // MARK: rollback

    /// Rolls a dataset back to a snapshot. btrfs cannot rewind a subvolume, so the dataset is
    /// replaced by a writable snapshot of the snapshot; child datasets are moved across, and
    /// the dataset's properties and quota group are kept (the new subvolume has a new id).
    public func rollback(_ snap: DatasetName, destroyNewer: Bool = false) throws {
        guard snap.isSnapshot else { throw LumosError.invalid("'\(snap)' is not a snapshot; rollback needs DATASET@SNAPSHOT") }
        let lock = try begin()
        defer { _ = lock }
        let all = try entries()
        let src = try entry(snap)
        let ds = snap.dataset
        guard !ds.isPoolRoot else { throw LumosError.unsupported("cannot roll back the pool's root dataset '\(ds)'; keep data in child datasets") }
        let current = try entry(ds)
        let newer = all.filter { $0.name.isSnapshot && $0.name.dataset == ds && $0.info.id > src.info.id }
        if !newer.isEmpty {
            guard destroyNewer else {
                throw LumosError.busy("cannot roll back to '\(snap)': more recent snapshots exist (\(newer.map(\.name.description).joined(separator: ", "))); use -r to destroy them")
            }
            for n in newer {
                let clones = all.filter { !$0.name.isSnapshot && $0.xattr(XAttr.origin) == n.name.description }
                if !clones.isEmpty {
                    throw LumosError.busy("cannot roll back to '\(snap)': newer snapshot '\(n.name)' has clones (\(clones.map(\.name.description).joined(separator: ", "))); destroy or promote them first")
                }
            }
        }
        try refuseHeld(newer, "roll back to '\(snap)'")
        if current.type == .volume, let dev = LoopDevice.find(backing: current.path + "/" + Volume.fileName) {
            throw LumosError.busy("cannot roll back '\(ds)': volume is attached as \(dev); detach it first")
        }
        let fd = try openRoot()
        defer { close(fd) }
        try replaceHead(current, with: src, all: all, fd: fd)
        for n in newer.sorted(by: { $0.info.id > $1.info.id }) {
            try Btrfs.delete(n.path)
            rmdir(snapshotHolder(n.name))
            Btrfs.destroyQGroup(fd, Btrfs.qgroupID(level: 0, n.info.id))
        }
    }

    /// Commits the pool's transaction and records the head's generation on the snapshot's
    /// holder: a later incremental receive compares against it to tell the user's changes from
    /// Lumos's own (properties and quota groups set on a new head raise its generation too,
    /// once the transaction commits, which may be 30 s later).
    /// The marker is "HEAD-UUID GENERATION": a holder that moves to another dataset (promote)
    /// or a head replaced by other means no longer matches and is ignored.
    func recordCleanHead(_ ds: DatasetName, equals snap: DatasetName, fd: Int32) {
        guard clinux_btrfs_sync(fd) == 0, let info = try? Btrfs.info(path(ds)) else { return }
        try? Btrfs.setxattr(snapshotHolder(snap), XAttr.headGeneration, "\(info.uuid) \(info.generation)")
    }

    /// Whether the head changed since Lumos made it equal to `base` (or since `base` was
    /// taken). Commits first: uncommitted writes do not show in a subvolume's generation.
    func headModified(_ ds: DatasetName, since base: Entry, fd: Int32) throws -> Bool {
        try sys("sync", "pool \(name)") { clinux_btrfs_sync(fd) }
        let head = try entry(ds)
        let clean = recordedCleanGeneration(of: head, equal: base.name) ?? max(base.info.otransid, head.info.otransid)
        return head.info.generation > clean
    }

    /// The generation recordCleanHead stored for `head` on `snap`'s holder, if it is this head's.
    func recordedCleanGeneration(of head: Entry, equal snap: DatasetName) -> UInt64? {
        guard let marker = Btrfs.getxattr(snapshotHolder(snap), XAttr.headGeneration)?.split(separator: " "),
              marker.count == 2, String(marker[0]) == head.info.uuid else { return nil }
        return UInt64(marker[1])
    }

    /// The newest snapshot of `ds` when Lumos recorded the head as equal to it (receive,
    /// rollback) and the head is still unmodified; nil otherwise. Costs a commit only for
    /// datasets that have such a record.
    func cleanHeadSnapshot(_ ds: DatasetName, fd: Int32) throws -> DatasetName? {
        guard let newest = try entries().filter({ $0.name.isSnapshot && $0.name.dataset == ds }).max(by: { $0.info.id < $1.info.id }),
              recordedCleanGeneration(of: try entry(ds), equal: newest.name) != nil else { return nil }
        return try headModified(ds, since: newest, fd: fd) ? nil : newest.name
    }

    /// Replaces a dataset's subvolume by a writable snapshot of `src`, moving child datasets
    /// across and keeping the dataset's current properties (journaled; see RollbackPlan), and
    /// records the new head as equal to `src` (recordCleanHead).
    func replaceHead(_ current: Entry, with src: Entry, all: [Entry], fd: Int32) throws {
        let ds = current.name
        let id = UUID().uuidString
        let plan = RollbackPlan(dataset: ds.description, tmp: tmpDir + "/rb-" + id, trash: trashDir + "/rb-" + id,
                                children: children(ds, in: all).map { $0.name.path.last! })
        try plan.save(self)
        try Btrfs.snapshot(src.path, plan.tmp, readOnly: false, qgroups: levelOneGroups(ds))
        try Self.crashPoint("rollback.after-snapshot")
        removeChildPlaceholders(plan.tmp)
        // Keep the dataset's current properties, not those frozen in the snapshot.
        for k in Btrfs.listxattr(plan.tmp) where k.hasPrefix(XAttr.prefix) || k == XAttr.compression { Btrfs.removexattr(plan.tmp, k) }
        for k in Btrfs.listxattr(current.path) where k.hasPrefix(XAttr.prefix) || k == XAttr.compression {
            if let v = Btrfs.getxattr(current.path, k) { try Btrfs.setxattr(plan.tmp, k, v) }
        }
        for c in plan.children {
            try sys("rename", c) { rename(current.path + "/" + c, plan.tmp + "/" + c) }
            try Self.crashPoint("rollback.after-child")
        }
        try sys("rename", "\(ds)") { rename(current.path, plan.trash) }
        try Self.crashPoint("rollback.after-swap-out")
        try sys("rename", "\(ds)") { rename(plan.tmp, current.path) }
        try finishRollback(plan, fd: fd)
        recordCleanHead(ds, equals: src.name, fd: fd)
    }

    /// The last steps of a rollback, also run by recovery: limits on the new subvolume, old one removed.
    func finishRollback(_ plan: RollbackPlan, fd: Int32) throws {
        let ds = try DatasetName(plan.dataset)
        let p = path(ds)
        if let rq = Btrfs.getxattr(p, XAttr.refquota).flatMap({ UInt64($0) }) {
            let info = try Btrfs.info(p)
            try Btrfs.limitReferenced(fd, Btrfs.qgroupID(level: 0, info.id), .bytes(rq))
        }
        if Btrfs.isSubvolume(plan.trash) {
            let old = try? Btrfs.info(plan.trash)
            try Btrfs.delete(plan.trash)
            if let old { Btrfs.destroyQGroup(fd, Btrfs.qgroupID(level: 0, old.id)) }
        }
        plan.remove(self)
    }

    // MARK: promote

    /// Makes a clone independent of its origin: the origin's snapshots up to the clone's origin
    /// snapshot move to the clone, and the old origin becomes a clone of it (zfs promote).
    public func promote(_ ds: DatasetName) throws {
        let lock = try begin()
        defer { _ = lock }
        let all = try entries()
        let clone = try entry(ds)
        guard let originText = clone.xattr(XAttr.origin), let origin = try? DatasetName(originText) else {
            throw LumosError.invalid("cannot promote '\(ds)': it is not a clone")
        }
        let originSnap = try entry(origin)
        let moving = all.filter { $0.name.isSnapshot && $0.name.dataset == origin.dataset && $0.info.id <= originSnap.info.id }
        for m in moving where exists(ds.at(m.name.snapshot!)) {
            throw LumosError.exists("cannot promote '\(ds)': it already has a snapshot named '\(m.name.snapshot!)'; rename or destroy it")
        }
        try Files.makeDirectories(snapshotDirectory(ds), mode: 0o700)
        for m in moving {
            try sys("rename", "\(m.name)") { rename(snapshotHolder(m.name), snapshotHolder(ds.at(m.name.snapshot!))) }
        }
        removeEmptySnapshotDirs(origin.dataset)
        // Other clones of the moved snapshots now name the promoted dataset's copy.
        for e in all where !e.name.isSnapshot && e.name != ds {
            guard let o = e.xattr(XAttr.origin), let on = try? DatasetName(o), moving.contains(where: { $0.name == on }) else { continue }
            try Btrfs.setxattr(e.path, XAttr.origin, ds.at(on.snapshot!).description)
        }
        Btrfs.removexattr(clone.path, XAttr.origin)
        try Btrfs.setxattr(path(origin.dataset), XAttr.origin, ds.at(origin.snapshot!).description)
    }

    // MARK: crash testing

    /// Lets integration tests kill the process at a named step (LUMOS_TEST_CRASH_AT=step).
    static func crashPoint(_ step: String) throws {
        guard let v = getenv("LUMOS_TEST_CRASH_AT"), String(cString: v) == step else { return }
        kill(getpid(), SIGKILL)
    }
}
