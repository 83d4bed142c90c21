import Glibc
import Testing
@testable import LumosCore

@Suite struct ExecTests {
    /// A descriptor opened without O_CLOEXEC (as a library or another thread may) stays out of
    /// spawned tools: only stdin, stdout and stderr pass.
    @Test func childGetsOnlyStandardDescriptors() throws {
        var p: [Int32] = [0, 0]
        #expect(pipe(&p) == 0)
        defer { close(p[0]); close(p[1]) }
        // The shell's builtin test looks at the shell's own descriptors.
        func open(_ fd: Int32) throws -> Bool {
            try Exec.run(["sh", "-c", "[ -e /proc/self/fd/\(fd) ]"], check: false).status == 0
        }
        #expect(try open(1) && open(2))
        #expect(try !open(p[0]))
        #expect(try !open(p[1]))
    }

    /// `passing` hands descriptors over as 3, 4, ... in order (how QEMU gets its disks and taps)
    /// and nothing else leaks.
    @Test func passingMapsDescriptorsInOrder() throws {
        let dir = "/tmp/lumos-exec-pass-\(getpid())-\(UInt32.random(in: 0...0xffffff))"
        try Files.makeDirectories(dir)
        defer { _ = try? Exec.run(["rm", "-rf", dir]) }
        let a = try sys("open") { Glibc.open("\(dir)/a", O_RDWR | O_CREAT | O_CLOEXEC, 0o600) }
        defer { close(a) }
        let b = try sys("open") { Glibc.open("\(dir)/b", O_RDWR | O_CREAT | O_CLOEXEC, 0o600) }
        defer { close(b) }
        var out: [Int32] = [0, 0]
        #expect(pipe(&out) == 0)
        let script = "readlink /proc/self/fd/3; readlink /proc/self/fd/4; [ -e /proc/self/fd/5 ] && echo leaked; exit 0"
        let pid = try Exec.spawn(["sh", "-c", script], stdout: .fd(out[1]), passing: [b, a])
        close(out[1])
        let text = String(decoding: FD.readAll(out[0]), as: UTF8.self)
        close(out[0])
        #expect(Exec.wait(pid) == 0)
        #expect(text == "\(dir)/b\n\(dir)/a\n")
    }
}
