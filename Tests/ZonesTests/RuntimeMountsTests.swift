import Glibc
import LumosCore
import Testing
@testable import Zones

/// The zone's file system view: bind mounts from the host, /tmp tmpfs, a chowned rootfs.
@Suite("Zone mounts") struct RuntimeMountsTests {
    @Test(.enabled(if: isRoot, "needs root")) func bindMountsStayInsideTheZone() throws {
        let zone = try BusyboxZone("binds")
        defer { zone.close() }
        let shared = zone.dir + "/shared", readonly = zone.dir + "/readonly"
        try Files.makeDirectories(shared)
        try Files.makeDirectories(readonly)
        try Files.writeAtomically(readonly + "/file", "from the host\n")
        chmod(shared, 0o777)
        // An image whose /escape points at the host's /etc: the target must resolve inside.
        symlink("/etc", zone.rootfs + "/escape")
        let marker = "lumos-escape-\(getpid())"
        var spec = zone.spec()
        spec.filesystems = [
            BindMount(source: shared, target: "/data"),
            BindMount(source: readonly, target: "/ro", readOnly: true),
            BindMount(source: readonly, target: "/escape/\(marker)", readOnly: true),
        ]
        spec.tmpfsSize = 16
        try zone.runtime.start(spec)
        #expect(!Files.exists("/etc/\(marker)"), "a bind mount followed the image's symlink onto the host")
        #expect(try zone.sh("cat /etc/\(marker)/file").output == "from the host\n")
        #expect(try zone.sh("cat /ro/file").output == "from the host\n")
        let write = try zone.sh("echo x > /ro/new")
        #expect(write.status != 0 && write.output.contains("Read-only"), "\(write.output)")
        #expect(try zone.sh("echo shared > /data/f").status == 0)
        #expect(try FD.readText(shared + "/f") == "shared\n")
        let tmp = try zone.sh("grep ' /tmp ' /proc/mounts")
        #expect(tmp.output.hasPrefix("tmpfs /tmp tmpfs") && tmp.output.contains("size=16384k"), "\(tmp.output)")
        // The new network namespace has a working loopback.
        #expect(try zone.sh("ip link show lo | grep -c UP").output == "1\n")
    }

    @Test(.enabled(if: isRoot, "needs root")) func chownedRootfsWithoutIdmap() throws {
        let zone = try BusyboxZone("chown")
        defer { zone.close() }
        try zone.range.chown(zone.rootfs)
        var spec = zone.spec()
        spec.idmapRootfs = false
        try zone.runtime.start(spec)
        let r = try zone.sh("id -u; touch /root/plain; stat -c %u /bin/busybox")
        #expect(r.output == "0\n0\n", "\(r.output)")
        var st = stat()
        #expect(lstat(zone.rootfs + "/root/plain", &st) == 0 && st.st_uid == zone.range.base)
    }

    @Test(.enabled(if: isRoot, "needs root")) func symlinkedSystemMountPointIsRefused() throws {
        let zone = try BusyboxZone("procsymlink")
        defer { zone.close() }
        // An image that tries to steer /proc (and its masks) elsewhere.
        rmdir(zone.rootfs + "/proc")
        symlink("/tmp", zone.rootfs + "/proc")
        do {
            try zone.start()
            Issue.record("a zone with /proc -> /tmp started")
        } catch let error as LumosError {
            #expect(error.message.contains("mounting /proc"), "\(error.message)")
        }
        #expect(!zone.runtime.cgroup(zone.uuid).exists)
    }
}
