import Glibc
import LumosCore

/// `imgadm build busybox`: a tiny lx image from Debian's busybox-static (/bin/busybox),
/// built in seconds without a network, so a host can run zones with no image server.
public enum BusyboxImage {
    public static let binary = "/bin/busybox"

    public static func version() throws -> String {
        let out = try Exec.run([binary], check: false).stdout
        // "BusyBox v1.35.0 (Debian 1:1.35.0-4+b3) multi-call binary."
        guard let v = out.split(separator: " ").first(where: { $0.hasPrefix("v") && $0.dropFirst().first?.isNumber == true }) else { return "1.0.0" }
        return String(v.dropFirst())
    }

    /// Lays out a root file system in `rootfs`.
    public static func build(into rootfs: String) throws {
        guard Exec.which(binary) != nil else {
            throw LumosError.notFound("\(binary) is missing; install Debian's busybox-static (apt-get install busybox-static)")
        }
        for dir in ["bin", "sbin", "usr/bin", "usr/sbin", "etc/init.d", "dev", "proc", "sys", "root", "home", "var/run", "var/log", "run", "mnt"] {
            try Files.makeDirectories("\(rootfs)/\(dir)")
        }
        try Files.makeDirectories("\(rootfs)/tmp", mode: 0o1777)
        _ = chmod("\(rootfs)/tmp", 0o1777)
        try Exec.run(["cp", binary, "\(rootfs)/bin/busybox"])
        // One link per applet at the path busybox itself reports (`--list-full`); busybox is
        // in its own list, so never link over it.
        let applets = try Exec.run([binary, "--list-full"]).stdout.split(separator: "\n").map(String.init)
        for path in applets where !path.isEmpty && path != "bin/busybox" {
            let dir = Files.parent("\(rootfs)/\(path)")
            try Files.makeDirectories(dir)
            let depth = path.split(separator: "/").count - 1
            let target = String(repeating: "../", count: depth) + "bin/busybox"
            if symlink(target, "\(rootfs)/\(path)") != 0 && errno != EEXIST { throw Errno(errno, "symlink", path) }
        }
        let files: [(String, String, mode_t)] = [
            ("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n", 0o644),
            ("etc/group", "root:x:0:\nnogroup:x:65534:\n", 0o644),
            ("etc/shadow", "root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n", 0o640),
            ("etc/hostname", "busybox\n", 0o644),
            ("etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost\n", 0o644),
            ("etc/resolv.conf", "", 0o644),
            ("etc/profile", "export PATH=/bin:/sbin:/usr/bin:/usr/sbin\nexport PS1='\\h:\\w# '\n", 0o644),
            ("etc/os-release", "NAME=BusyBox\nID=busybox\nPRETTY_NAME=\"BusyBox (Lumos image)\"\n", 0o644),
            // busybox init runs rcS, then offers a root shell on /dev/console (the zone's
            // console, reached only by host root with vmadm console: docs/vmadm.md, "Console")
            // once Enter is pressed there, and reaps; SIGTERM makes it run the shutdown entry
            // and exit, which is how `vmadm stop` ends the zone.
            ("etc/inittab", "::sysinit:/etc/init.d/rcS\n::askfirst:-/bin/sh\n::shutdown:/bin/sync\n", 0o644),
            ("etc/init.d/rcS", "#!/bin/sh\n[ -x /etc/rc.local ] && /etc/rc.local\nexit 0\n", 0o755),
        ]
        for (path, text, mode) in files {
            try Files.writeAtomically("\(rootfs)/\(path)", text, mode: mode)
            _ = chmod("\(rootfs)/\(path)", mode)
        }
    }
}
