import Dispatch
import Glibc
import Synchronization
import Testing
@testable import LumosCore

@Suite struct FileLockTests {
    /// A lock found busy closes its own descriptor once. A throwing init of a whole object runs
    /// deinit, so a close in the init as well closed the descriptor number a second time: in a
    /// threaded process (vmadmd, whose events loop tries tenants' locks while a create holds
    /// one) that number may already be another thread's next open. Here a second thread keeps
    /// opening /dev/null and checks that its descriptor stays /dev/null while the first meets
    /// a busy lock over and over.
    @Test func aBusyLockClosesOnlyItsOwnDescriptor() throws {
        let dir = "/tmp/lumos-filelock-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try Files.makeDirectories(dir)
        defer { _ = try? Exec.run(["rm", "-rf", dir], check: false) }
        let path = dir + "/lock"
        let held = try FileLock(path)
        defer { withExtendedLifetime(held) {} }
        #expect(throws: LumosError.self) { try FileLock(path, wait: false) }

        var null = stat()
        #expect(stat("/dev/null", &null) == 0)
        let device = null.st_rdev
        let done = Atomic<Bool>(false)
        let stolen = Atomic<Int>(0)
        let opened = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 2) { i in
            if i == 0 {
                for _ in 0..<20_000 { _ = try? FileLock(path, wait: false) }
                done.store(true, ordering: .releasing)
                return
            }
            while !done.load(ordering: .acquiring) {
                let fd = open("/dev/null", O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else { continue }
                opened.add(1, ordering: .relaxed)
                var st = stat()
                for _ in 0..<20 where fstat(fd, &st) != 0 || (st.st_mode & S_IFMT) != S_IFCHR || st.st_rdev != device {
                    stolen.add(1, ordering: .relaxed)
                    break
                }
                close(fd)
            }
        }
        #expect(opened.load(ordering: .relaxed) > 0)
        #expect(stolen.load(ordering: .relaxed) == 0, "another thread's descriptor was closed (or replaced) under it")
    }
}
