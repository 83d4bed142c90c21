import Glibc
import LumosCore
import Testing
@testable import VM

@Suite struct CPIOArchiveTests {
    @Test func headerLayout() {
        var a = CPIOArchive()
        a.file("init", Array("hi\n".utf8), mode: 0o755)
        let bytes = a.finish()
        let header = String(decoding: bytes[0..<110], as: UTF8.self)
        #expect(header.hasPrefix("070701"))
        // mode field (second): regular file 0755.
        #expect(header.dropFirst(14).prefix(8) == "000081ED")
        // filesize field (seventh): 3 bytes.
        #expect(header.dropFirst(6 + 6 * 8).prefix(8) == "00000003")
        #expect(bytes.count % 4 == 0)
        #expect(String(decoding: bytes, as: UTF8.self).contains("TRAILER!!!"))
    }

    /// busybox cpio reads back what we wrote: names, types, contents.
    @Test func busyboxReadsIt() throws {
        var a = CPIOArchive()
        a.directory("etc")
        a.file("etc/hello", Array("hello, world\n".utf8))
        a.file("odd", [1, 2, 3, 4, 5])
        a.symlink("link", target: "etc/hello")
        let dir = "/tmp/lumos-cpio-\(getpid())-\(UInt32.random(in: 0...0xffffff))"
        try Files.makeDirectories(dir)
        defer { _ = try? Exec.run(["rm", "-rf", dir]) }
        try Files.writeAtomically("\(dir)/a.cpio", a.finish())
        let list = try Exec.run(["sh", "-c", "busybox cpio -t < \(dir)/a.cpio"]).stdout
        #expect(list.split(separator: "\n").map(String.init) == ["etc", "etc/hello", "odd", "link"])
        try Exec.run(["sh", "-c", "cd \(dir) && mkdir x && cd x && busybox cpio -i -d < ../a.cpio"])
        #expect(try FD.readText("\(dir)/x/etc/hello") == "hello, world\n")
        #expect(try FD.readFile("\(dir)/x/odd") == [1, 2, 3, 4, 5])
        var buf = [CChar](repeating: 0, count: 64)
        let n = readlink("\(dir)/x/link", &buf, 63)
        #expect(n > 0 && String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) == "etc/hello")
    }
}
