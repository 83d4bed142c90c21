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
}
