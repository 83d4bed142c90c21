import CLinux
import Glibc
import LumosCore

/// Loop block devices (loop(4)) for file-backed pool devices and volumes.
/// State is read back from sysfs, so nothing needs remembering across a reboot or crash.
public enum LoopDevice {
    /// Attaches `file`, reusing an existing binding of the same file.
    public static func attach(_ file: String, directIO: Bool = false, readOnly: Bool = false) throws -> String {
        let real = realPath(file)
        if let existing = find(backing: real) { return existing }
        let control = try sys("open", "/dev/loop-control") { open("/dev/loop-control", O_RDWR | O_CLOEXEC) }
        defer { close(control) }
        let backing = try sys("open", file) { open(real, (readOnly ? O_RDONLY : O_RDWR) | O_CLOEXEC) }
        defer { close(backing) }
        // LOOP_CTL_GET_FREE can race with another attacher: retry on EBUSY.
        for _ in 0..<16 {
            let n = try sys("LOOP_CTL_GET_FREE") { clinux_loop_control_get_free(control) }
            let dev = "/dev/loop\(n)"
            if !Files.exists(dev) { mknod(dev, S_IFBLK | 0o660, loopDeviceNumber(UInt64(n))) }
            let fd = try sys("open", dev) { open(dev, O_RDWR | O_CLOEXEC) }
            defer { close(fd) }
            if clinux_loop_configure(fd, backing, readOnly ? 1 : 0, directIO ? 1 : 0, 0) == 0 { return dev }
            if errno == EBUSY { continue }
            if directIO && errno == EINVAL {
                // Direct I/O needs the backing file system's block size alignment; fall back to buffered.
                if clinux_loop_configure(fd, backing, readOnly ? 1 : 0, 0, 0) == 0 { return dev }
            }
            throw Errno(errno, "LOOP_CONFIGURE", "\(dev) for \(file)")
        }
        throw LumosError.busy("no free loop device for \(file); detach unused ones with losetup -d")
    }

    public static func detach(_ device: String) throws {
        let fd = try sys("open", device) { open(device, O_RDWR | O_CLOEXEC) }
        defer { close(fd) }
        if clinux_loop_clear(fd) != 0 && errno != ENXIO {
            if errno == EBUSY { throw LumosError.busy("\(device) is in use; unmount or close it first") }
            throw Errno(errno, "LOOP_CLR_FD", device)
        }
    }

    /// Attached loop devices and their backing files, from /sys/block/loop*/loop/backing_file.
    public static func all() -> [(device: String, backing: String)] {
        var out: [(String, String)] = []
        for name in Files.list("/sys/block") where name.hasPrefix("loop") {
            guard let text = try? FD.readText("/sys/block/\(name)/loop/backing_file") else { continue }
            var path = text.trimmingSpaces()
            if path.hasSuffix(" (deleted)") { path.removeLast(10) }
            out.append(("/dev/\(name)", path))
        }
        return out
    }

    public static func find(backing file: String) -> String? {
        let real = realPath(file)
        return all().first { $0.backing == real }?.device
    }

    public static func directIO(_ device: String) -> Bool {
        let name = Files.basename(device)
        return (try? FD.readText("/sys/block/\(name)/loop/dio"))?.trimmingSpaces() == "1"
    }

    /// gnu_dev_makedev(7, minor), which the importer cannot see (a macro).
    static func loopDeviceNumber(_ minor: UInt64) -> dev_t {
        let major: UInt64 = 7
        return dev_t((minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xff) << 12) | ((major & ~0xfff) << 32))
    }

    public static func realPath(_ p: String) -> String {
        guard let r = realpath(p, nil) else { return p }
        defer { free(r) }
        return String(cString: r)
    }
}
