import Glibc
import LumosCore
import Testing
@testable import Zones

/// Holes a reviewer found and their fixes: device nodes an image brings along, and ioctls that
/// reach outside the zone (TIOCSTI into a terminal, btrfs subvolume creation past the quota).
@Suite("Zone hardening") struct RuntimeHardeningTests {
    @Test(.enabled(if: isRoot, "needs root")) func deviceNodesInTheImageDoNotOpen() throws {
        let zone = try BusyboxZone("nodev")
        defer { zone.close() }
        try Files.makeDirectories(zone.rootfs + "/srv")
        // A world-writable node for the host's /dev/null (1:3), as an imported image could carry
        // (a disk's 8:0 would be the real danger).
        #expect(mknod(zone.rootfs + "/srv/null", S_IFCHR | 0o666, dev_t((1 << 8) | 3)) == 0)
        chmod(zone.rootfs + "/srv/null", 0o666)
        try zone.start()
        let r = try zone.sh("echo x > /srv/null && echo opened; echo x > /dev/null && echo devnull-ok")
        #expect(!r.output.contains("opened"), "a device node in the rootfs opened: \(r.output)")
        #expect(r.output.contains("devnull-ok"), "the zone's own /dev still works: \(r.output)")
    }

    @Test(.enabled(if: isRoot, "needs root")) func terminalInjectionAndSubvolumeIoctlsAreRefused() throws {
        let zone = try BusyboxZone("ioctl")
        defer { zone.close() }
        // A static probe: the ioctl on /dev/null gives ENOTTY (25) when it reaches the kernel and
        // EPERM (1) when the zone's seccomp filter stops it first.
        let src = zone.dir + "/probe.c"
        try Files.writeAtomically(src, """
        #include <fcntl.h>
        #include <errno.h>
        #include <stdio.h>
        #include <stdlib.h>
        #include <sys/ioctl.h>
        #include <linux/btrfs.h>
        int main(void) {
            unsigned long reqs[] = { TIOCSTI, BTRFS_IOC_SUBVOL_CREATE, BTRFS_IOC_SNAP_CREATE_V2, TIOCGWINSZ };
            char buf[4096] = {0};
            int fd = open("/dev/null", O_RDWR);
            for (int i = 0; i < 4; i++) { errno = 0; ioctl(fd, reqs[i], buf); printf("%d\\n", errno); }
            return 0;
        }
        """)
        try Exec.run(["cc", "-static", "-O1", "-o", zone.rootfs + "/bin/probe", src])
        try zone.start()
        let r = try zone.sh("/bin/probe")
        let codes = r.output.split(separator: "\n").compactMap { Int32($0) }
        #expect(codes == [EPERM, EPERM, EPERM, ENOTTY], "errnos: \(r.output)")
    }

    @Test(.enabled(if: isRoot, "needs root")) func bindMountsHaveNoDevicesOrSetIDAndHonourNoexec() throws {
        let zone = try BusyboxZone("bindopts")
        defer { zone.close() }
        let host = zone.dir + "/hostdir"
        try Files.makeDirectories(host)
        chmod(host, 0o755)
        #expect(mknod(host + "/null", S_IFCHR | 0o666, dev_t((1 << 8) | 3)) == 0)
        chmod(host + "/null", 0o666)
        try Files.writeAtomically(host + "/run.sh", "#!/bin/sh\necho ran\n", mode: 0o755)
        try Files.makeDirectories(zone.rootfs + "/mnt/plain")
        try Files.makeDirectories(zone.rootfs + "/mnt/noexec")
        var spec = zone.spec()
        spec.filesystems = [BindMount(source: host, target: "/mnt/plain"), BindMount(source: host, target: "/mnt/noexec", noExec: true)]
        _ = try zone.runtime.start(spec)
        let r = try zone.sh("echo x > /mnt/plain/null && echo dev-opened; /mnt/plain/run.sh; /mnt/noexec/run.sh || echo noexec-refused")
        #expect(!r.output.contains("dev-opened"), "a device node in a bind mount opened: \(r.output)")
        #expect(r.output.contains("ran\n"), "executables run from a plain bind mount: \(r.output)")
        #expect(r.output.contains("noexec-refused"), "noexec is applied: \(r.output)")
    }
}
