import Glibc
import LumosCore
import Testing

/// Host root writing into a tenant's tree must never be steered onto other files by symlinks.
@Suite struct WriteBeneathTests {
    func scratch() throws -> String {
        let d = "/tmp/lumos-beneath-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try Files.makeDirectories(d + "/victim")
        try Files.writeAtomically(d + "/victim/secret", "original")
        return d
    }

    @Test func symlinkedParentIsRefused() throws {
        let d = try scratch()
        defer { _ = try? Exec.run(["rm", "-rf", d]) }
        try Files.makeDirectories(d + "/zone")
        symlink(d + "/victim", d + "/zone/etc")
        #expect(throws: Errno.self) { try Files.writeBeneath(root: d + "/zone", "etc/secret", "pwned") }
        #expect(try FD.readText(d + "/victim/secret") == "original")
    }

    @Test func plantedTempAndTargetSymlinksAreReplacedNotFollowed() throws {
        let d = try scratch()
        defer { _ = try? Exec.run(["rm", "-rf", d]) }
        try Files.makeDirectories(d + "/zone/etc")
        symlink(d + "/victim/secret", d + "/zone/etc/.hostname.lumos-tmp")
        symlink(d + "/victim/secret", d + "/zone/etc/hostname")
        try Files.writeBeneath(root: d + "/zone", "etc/hostname", "web01\n")
        #expect(try FD.readText(d + "/victim/secret") == "original")
        var st = stat()
        #expect(lstat(d + "/zone/etc/hostname", &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG)
        #expect(try FD.readText(d + "/zone/etc/hostname") == "web01\n")
    }

    @Test func dotDotCannotLeaveTheRoot() throws {
        let d = try scratch()
        defer { _ = try? Exec.run(["rm", "-rf", d]) }
        try Files.makeDirectories(d + "/zone/etc")
        #expect(throws: Errno.self) { try Files.writeBeneath(root: d + "/zone", "../victim/secret", "pwned") }
        #expect(try FD.readText(d + "/victim/secret") == "original")
    }
}
