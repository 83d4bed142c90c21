import Glibc
import LumosCore
import Testing
@testable import Zones

let isRoot = getuid() == 0

/// A busybox zone for one test: a rootfs directory built from Debian's busybox-static
/// (/bin/busybox plus applet symlinks), a private state root for the uid range, and a unique
/// uuid. `close()` stops the zone and removes everything; call it with defer.
final class BusyboxZone {
    let uuid: String
    let dir: String
    let rootfs: String
    let runtime: ZoneRuntime
    let range: ZoneIDRange

    init(_ name: String) throws {
        uuid = "test-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        var template = Array("/tmp/lumos-zone-\(name)-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw Errno(errno, "mkdtemp") }
        dir = String(cString: made)
        chmod(dir, 0o755)   // the zone's root (an unprivileged host uid) must reach its rootfs
        rootfs = dir + "/root"
        runtime = try ZoneRuntime()
        // A random slot: test runs in other processes allocate from other state roots, so a
        // shared first slot would mix their zones' processes (allocation has its own tests).
        range = ZoneIDRange(base: ZoneIDRange.firstBase + UInt32.random(in: 1..<UInt32(ZoneIDRange.slots)) * ZoneIDRange.size)
        try BusyboxZone.makeRootfs(rootfs)
    }

    static func makeRootfs(_ rootfs: String) throws {
        for sub in ["bin", "sbin", "etc", "tmp", "root", "proc", "sys", "dev", "mnt"] {
            try Files.makeDirectories("\(rootfs)/\(sub)")
        }
        chmod("\(rootfs)/tmp", 0o1777)
        try Exec.run(["cp", "/bin/busybox", "\(rootfs)/bin/busybox"])
        let list = try Exec.run(["/bin/busybox", "--list"]).stdout
        for applet in list.split(separator: "\n") where applet != "busybox" {
            symlink("busybox", "\(rootfs)/bin/\(applet)")
        }
        try Files.writeAtomically("\(rootfs)/etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
        try Files.writeAtomically("\(rootfs)/etc/group", "root:x:0:\ntty:x:5:\nnobody:x:65534:\n")
    }

    func spec(_ initProcess: ZoneInit = .lumos(command: nil), limits: ZoneLimits = ZoneLimits()) -> ZoneSpec {
        ZoneSpec(uuid: uuid, hostname: "zone-\(getpid())", rootfs: rootfs, initProcess: initProcess,
                 limits: limits, idRange: range)
    }

    @discardableResult
    func start(_ initProcess: ZoneInit = .lumos(command: nil), limits: ZoneLimits = ZoneLimits()) throws -> pid_t {
        try runtime.start(spec(initProcess, limits: limits))
    }

    /// Runs a shell script inside the zone (zlogin) and returns its status and combined output.
    func sh(_ script: String) throws -> (status: Int32, output: String) {
        let path = "\(dir)/out.\(UInt32.random(in: 0...UInt32.max))"
        let fd = try sys("open", path) { open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600) }
        defer { Glibc.close(fd); unlink(path) }
        let status = try runtime.exec(uuid, ["/bin/sh", "-c", script], stdin: -1, stdout: fd, stderr: fd)
        return (status, try FD.readText(path))
    }

    func close() {
        try? runtime.cleanup(uuid)
        _ = try? Exec.run(["rm", "-rf", "--one-file-system", dir], check: false)
    }
}

@Suite("Runtime fixture") struct RuntimeFixtureTests {
    @Test(.enabled(if: isRoot, "needs root")) func busyboxRootfsHasAShell() throws {
        let zone = try BusyboxZone("fixture")
        defer { zone.close() }
        #expect(access(zone.rootfs + "/bin/sh", X_OK) == 0)
        #expect(zone.range.base >= ZoneIDRange.firstBase)
    }
}
