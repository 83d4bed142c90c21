import Foundation
import Glibc
import LumosCore

/// A list of subvolumes to remove if the command that made them dies before it commits.
struct Journal {
    let file: String
    let pool: Pool

    init(pool: Pool, op: String) {
        self.pool = pool
        file = pool.journalDir + "/\(op)-\(UUID().uuidString).undo"
    }

    func record(undo path: String) throws {
        let existing = (try? FD.readText(file)) ?? ""
        try Files.writeAtomically(file, existing + path + "\n", mode: 0o600)
    }

    func commit() { unlink(file) }
}

/// What a rollback is doing, saved before its first change so recovery can finish or undo it.
struct RollbackPlan: Codable {
    var dataset: String
    var tmp: String
    var trash: String
    var children: [String]

    static func path(_ pool: Pool, _ tmp: String) -> String {
        pool.journalDir + "/rollback-" + Files.basename(tmp) + ".json"
    }

    func save(_ pool: Pool) throws {
        try Files.writeAtomically(Self.path(pool, tmp), Array(try JSONEncoder().encode(self)), mode: 0o600)
    }

    func remove(_ pool: Pool) { unlink(Self.path(pool, tmp)) }
}

extension Pool {
    /// Finishes or undoes what killed commands left behind. Runs under the pool lock, so any
    /// journal, tmp or trash entry found here belongs to a command that is no longer running.
    func recover() throws {
        guard Files.isDirectory(internalDir) else { try initializeLayout(); return }
        for d in [snapshotsDir, tmpDir, trashDir, journalDir, receiveDir] where !Files.isDirectory(d) {
            try Files.makeDirectories(d, mode: 0o700)
        }
        let fd = try openRoot()
        defer { close(fd) }
        for f in Files.list(journalDir) {
            let p = journalDir + "/" + f
            if f.hasPrefix("rollback-"), let plan = try? JSONDecoder().decode(RollbackPlan.self, from: Data(try FD.readFile(p))) {
                try recoverRollback(plan, fd: fd)
            } else if f.hasSuffix(".undo") {
                let paths = ((try? FD.readText(p)) ?? "").split(separator: "\n").map(String.init)
                for s in paths.reversed() {
                    if Btrfs.isSubvolume(s) { try? Btrfs.delete(s) }
                    // Only a snapshot's own `@name` holder is removed (rmdir can delete an empty subvolume).
                    if Files.basename(Files.parent(s)).hasPrefix("@") { rmdir(Files.parent(s)) }
                }
                for s in paths { if let n = name(forRelativePath: String(s.dropFirst(mountpoint.count + 1))) { removeEmptySnapshotDirs(n.dataset) } }
                unlink(p)
            } else {
                unlink(p)
            }
        }
        // Half-built subvolumes that were never renamed into place.
        for dir in [tmpDir, trashDir] {
            for n in Files.list(dir) { deleteTree(dir + "/" + n) }
        }
        // Abandoned receives: their staging directory's lock is free.
        for n in Files.list(receiveDir) {
            let staging = receiveDir + "/" + (n.hasSuffix(".lock") ? String(n.dropLast(5)) : n)
            if FileLock.isFree(staging + ".lock") {
                deleteTree(staging)
                unlink(staging + ".lock")
            }
        }
    }

    func recoverRollback(_ plan: RollbackPlan, fd: Int32) throws {
        let ds = try DatasetName(plan.dataset)
        let target = path(ds)
        let tmpExists = Btrfs.isSubvolume(plan.tmp)
        if Btrfs.isSubvolume(target) && tmpExists {
            // Killed before the swap: move children back and drop the new copy.
            for c in plan.children where Btrfs.isSubvolume(plan.tmp + "/" + c) && !Files.exists(target + "/" + c) {
                rename(plan.tmp + "/" + c, target + "/" + c)
            }
            deleteTree(plan.tmp)
            if Btrfs.isSubvolume(plan.trash) { deleteTree(plan.trash) }
            plan.remove(self)
        } else if !Files.exists(target) && tmpExists {
            // Killed between the two renames: complete the swap.
            try sys("rename", plan.dataset) { rename(plan.tmp, target) }
            try finishRollback(plan, fd: fd)
        } else if !Files.exists(target) && Btrfs.isSubvolume(plan.trash) {
            // Nothing new was made: put the original back.
            try sys("rename", plan.dataset) { rename(plan.trash, target) }
            plan.remove(self)
        } else {
            try finishRollback(plan, fd: fd)
        }
    }

    /// Deletes a subvolume and any subvolumes nested in it (or a plain directory tree).
    func deleteTree(_ p: String) {
        var st = stat()
        guard lstat(p, &st) == 0 else { return }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            for n in Files.list(p) where Btrfs.isSubvolume(p + "/" + n) { deleteTree(p + "/" + n) }
        }
        if Btrfs.isSubvolume(p) {
            let ro = (try? Btrfs.info(p))?.readOnly ?? false
            if ro { try? Btrfs.setReadOnly(p, false) }
            try? Btrfs.delete(p)
        } else {
            _ = try? Exec.run(["rm", "-rf", "--one-file-system", p], check: false)
        }
    }
}
