import Glibc
import LumosCore
import Testing
@testable import VM

/// QMP against a real QEMU: a q35 machine with no disk, whose firmware finds nothing to boot
/// and idles (no guest OS, so nothing answers the ACPI button either).
@Suite(.serialized, .enabled(if: hasQEMU, "needs qemu-system-x86_64: run scripts/install-deps.sh"))
struct QMPTests {
    func start(_ scratch: Scratch) throws -> QEMUProcess {
        try QEMUProcess(VMDescription(name: "qmp-test", machine: .q35, accelerator: .tcg, memoryMiB: 64, runDirectory: scratch.path))
    }

    @Test func statusStopContinueAndErrors() throws {
        let scratch = try Scratch("qmp")
        defer { scratch.remove() }
        let qemu = try start(scratch)
        defer { qemu.kill() }
        let q = try qemu.qmp()
        #expect(q.greeting.lookup("QMP")?.objectValue?["version"] != nil)
        let s = try q.status()
        #expect(s.running && s.status == "running" && s.failure == nil && !s.isPaused)

        try q.execute("stop")
        let paused = try q.status()
        #expect(!paused.running && paused.status == "paused" && paused.isPaused && paused.failure == nil)
        #expect(try q.waitForEvent("STOP", seconds: 5) != nil)
        try q.execute("cont")
        #expect(try q.status().running)

        let version = try q.execute("query-version")
        #expect((version.lookup("qemu")?.objectValue?["major"]?.intValue ?? 0) >= 7)
        let error = #expect(throws: LumosError.self) { try q.execute("no-such-command") }
        #expect(error?.message.contains("CommandNotFound") == true)
        #expect(qemu.failure() == nil)
    }

    @Test func quitEndsQEMU() throws {
        let scratch = try Scratch("quit")
        defer { scratch.remove() }
        let qemu = try start(scratch)
        defer { qemu.kill() }
        try qemu.qmp().quit()
        #expect(qemu.waitForExit(seconds: 10))
        #expect(qemu.exitStatus == 0)
        #expect(!processExists(qemu.pid))
    }

    /// vmadm stop of a guest that ignores the ACPI button: killed after the timeout.
    @Test func stopKillsAGuestThatIgnoresPowerdown() throws {
        let scratch = try Scratch("stop")
        defer { scratch.remove() }
        let qemu = try start(scratch)
        defer { qemu.kill() }
        _ = try qemu.qmp().status()
        let t0 = Monotonic.now
        #expect(qemu.stop(timeout: 1.5) == .killed)
        #expect(Monotonic.now - t0 >= 1.5)
        #expect(!processExists(qemu.pid))
        #expect(qemu.failure() != nil)
    }

    @Test func runStateFailures() {
        #expect(RunState(status: "internal-error", running: false).failure?.contains("KVM internal error") == true)
        #expect(RunState(status: "guest-panicked", running: false).failure != nil)
        #expect(RunState(status: "io-error", running: false).failure != nil)
        #expect(RunState(status: "shutdown", running: false).failure == nil)
        #expect(RunState(status: "paused", running: false).isPaused)
        #expect(!RunState(status: "internal-error", running: false).isPaused)
    }
}
