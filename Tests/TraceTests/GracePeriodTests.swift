import Glibc
import LumosCore
import Testing
@testable import Trace

/// Expedited RCU grace periods while uprobes are registered (docs/trace.md, "USDT
/// start-up"): the knob is set for the window only, only when it is ours to set, and what a
/// killed run left is restored by the next one.
@Suite(.serialized) struct GracePeriodTests {
    /// Fake knobs and a private lock directory in a temporary directory.
    final class Knobs {
        let dir: String
        var knob: String { dir + "/rcu_expedited" }
        var normal: String { dir + "/rcu_normal" }
        var state: String { dir + "/state" }

        init(expedited: String = "0\n", normal n: String = "0\n") throws {
            dir = try USDTIndexTests.indexDirectory()
            try Files.writeAtomically(knob, expedited)
            try Files.writeAtomically(normal, n)
        }

        func make(enabled: Bool = true) -> ExpeditedGracePeriods {
            ExpeditedGracePeriods(knob: knob, normal: normal, directory: state, enabled: enabled)
        }

        var value: String? { TextFile.trimmed(knob) }
        var restoreFile: String? { TextFile.trimmed(state + "/rcu-expedited.restore") }

        func remove() {
            for f in Files.list(state) { unlink(state + "/" + f) }
            rmdir(state)
            USDTIndexTests.removeIndex(dir)
        }
    }

    @Test func holdsNestAndTheLastReleaseRestoresTheKnob() throws {
        let k = try Knobs()
        defer { k.remove() }
        let g = k.make()
        let outer = g.hold()
        #expect(k.value == "1")
        #expect(k.restoreFile == "0", "the value to restore is recorded before the knob is set")
        #expect(!FileLock.isFree(g.lockPath), "the window's lock is held")
        let inner = g.hold()
        outer.release()
        #expect(k.value == "1", "an inner hold keeps the window open")
        inner.release()
        #expect(k.value == "0")
        #expect(k.restoreFile == nil)
        #expect(FileLock.isFree(g.lockPath))
        #expect(g.during { k.value } == "1")
        #expect(k.value == "0")
    }

    @Test func anOperatorsSettingIsLeftAlone() throws {
        // Already expedited: left expedited, nothing recorded, nothing restored to 0.
        let a = try Knobs(expedited: "1\n")
        defer { a.remove() }
        a.make().during { #expect(a.restoreFile == nil) }
        #expect(a.value == "1")
        // rcu_normal set (a host that refuses expedited grace periods): not set.
        let b = try Knobs(normal: "1\n")
        defer { b.remove() }
        b.make().during { #expect(b.value == "0") }
        // Turned off (LUMOS_TRACE_RCU_EXPEDITE=0).
        let c = try Knobs()
        defer { c.remove() }
        c.make(enabled: false).during { #expect(c.value == "0") }
        // A knob that is not a number is not ours to change.
        let d = try Knobs(expedited: "x\n")
        defer { d.remove() }
        d.make().during { #expect(d.value == "x") }
        #expect(d.value == "x")
    }

    /// Another run's open window (its lock held by a live process): this one neither takes
    /// it over nor restores the knob under it.
    @Test func anotherRunsWindowIsLeftToIt() throws {
        let k = try Knobs()
        defer { k.remove() }
        let other = k.make()
        let h = other.hold()
        defer { h.release() }
        let mine = k.make()
        mine.during {
            #expect(!mine.isSetByThisProcess)
            #expect(k.value == "1")
        }
        mine.recoverIfLeft()
        #expect(k.value == "1", "a live run's window is not restored under it")
        #expect(k.restoreFile == "0")
        h.release()
        #expect(k.value == "0")
    }

    /// A run killed in its window (a real process holding the lock, SIGKILLed) leaves the
    /// knob set and its restore file; the next run restores the knob.
    @Test func aKilledRunsSettingIsRestoredByTheNextRun() throws {
        let k = try Knobs()
        defer { k.remove() }
        let g = k.make()
        try Files.makeDirectories(k.state, mode: 0o700)
        try Files.writeAtomically(k.knob, "1\n")
        try Files.writeAtomically(g.restorePath, "0\n")
        // One process that holds the lock (fd 9, the lock on its open file) until it is killed.
        let holder = try Exec.spawn(["sh", "-c", "exec 9>\"$0\" && flock 9 && exec sleep 60", g.lockPath])
        var alive = true
        defer { if alive { kill(holder, SIGKILL); _ = Exec.wait(holder) } }
        var tries = 0
        while FileLock.isFree(g.lockPath) && tries < 500 { usleep(10_000); tries += 1 }
        #expect(!FileLock.isFree(g.lockPath), "flock(1) should hold the lock")
        g.recoverIfLeft()
        #expect(k.value == "1", "not restored while its run lives")
        kill(holder, SIGKILL)
        _ = Exec.wait(holder)
        alive = false
        g.recoverIfLeft()
        #expect(k.value == "0")
        #expect(k.restoreFile == nil)

        // The same leftover found when a window opens: restored, then set and restored again.
        try Files.writeAtomically(k.knob, "1\n")
        try Files.writeAtomically(g.restorePath, "0\n")
        g.during { #expect(k.value == "1" && g.isSetByThisProcess) }
        #expect(k.value == "0")
        #expect(k.restoreFile == nil)

        // A malformed restore file is removed; the knob is left as it is.
        try Files.writeAtomically(k.knob, "1\n")
        try Files.writeAtomically(g.restorePath, "garbage\n")
        g.recoverIfLeft()
        #expect(k.value == "1")
        #expect(k.restoreFile == nil)
    }

    /// The host's knob: the kernel takes the value while a window is open, and a `dtrace`
    /// run on a USDT probe (its uprobes registered in a window) leaves it as it found it,
    /// also when a killed run had left it set.
    static let realKnobIsOurs = isRoot && ExpeditedGracePeriods.value("/sys/kernel/rcu_expedited") == 0
        && (ExpeditedGracePeriods.value("/sys/kernel/rcu_normal") ?? 0) == 0
        && access("/sys/kernel/rcu_expedited", W_OK) == 0

    static func writeKnob(_ path: String, _ value: String) -> Bool {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return FD.writeAll(fd, Array(value.utf8))
    }

    @Test(.enabled(if: realKnobIsOurs, "needs root and a writable /sys/kernel/rcu_expedited at 0"))
    func theHostsKnobIsSetOnlyForTheWindow() throws {
        let g = ExpeditedGracePeriods.shared
        defer {
            if ExpeditedGracePeriods.value(g.knob) != 0 { _ = Self.writeKnob(g.knob, "0") }
            unlink(g.restorePath)
        }
        #expect(g.during { ExpeditedGracePeriods.value(g.knob) } == 1)
        #expect(ExpeditedGracePeriods.value(g.knob) == 0)

        let r = try USDTIndexTests.Running(copy: false)
        defer { r.close() }
        let first = try r.dtrace(#"lumostest*:::tick { printf("fired\n"); exit(0); } tick-5s { exit(1); }"#)
        #expect(first.status == 0 && first.output == "fired\n")
        #expect(ExpeditedGracePeriods.value(g.knob) == 0)
        #expect(access(g.restorePath, F_OK) != 0)

        // A killed run's leftover: the knob set, its restore file written.
        #expect(Self.writeKnob(g.knob, "1"))
        try Files.makeDirectories(g.directory, mode: 0o700)
        try Files.writeAtomically(g.restorePath, "0\n")
        let second = try r.dtrace(#"BEGIN { exit(0); }"#)
        #expect(second.status == 0)
        #expect(ExpeditedGracePeriods.value(g.knob) == 0, "the next dtrace restores what a killed run left")
        #expect(access(g.restorePath, F_OK) != 0)
    }
}
