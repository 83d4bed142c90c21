import Glibc

extension Files {
    /// Replaces `path` atomically (temp + rename) without fsync: readers and a killed writer
    /// never see a half-written file, but after a power loss the old content (or none) may come
    /// back. For files that describe volatile state (links, nft elements) or that are derived
    /// again at every use (a zone's /etc/hostname from its manifest): there an fsync buys
    /// nothing and costs 1-20 ms on a busy host. The source of truth keeps `writeAtomically`.
    public static func replaceAtomically(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644) throws {
        let tmp = "\(parent(path))/.\(basename(path)).tmp.\(getpid())"
        let fd = try sys("open", tmp) { open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode) }
        let ok = FD.writeAll(fd, bytes)
        let e = errno
        close(fd)
        if !ok { unlink(tmp); throw Errno(e, "write", tmp) }
        do {
            try sys("rename", path) { rename(tmp, path) }
        } catch {
            unlink(tmp)
            throw error
        }
    }
}
