import Glibc
import Testing
@testable import LumosCore

@Test func parsesZFSSizes() {
    #expect(Size.parse("1024") == 1024)
    #expect(Size.parse("4k") == 4096)
    #expect(Size.parse("10M") == 10 * 1024 * 1024)
    #expect(Size.parse("1.5G") == 1536 * 1024 * 1024)
    #expect(Size.parse("2GiB") == 2 * 1024 * 1024 * 1024)
    #expect(Size.parse("3GB") == 3 * 1024 * 1024 * 1024)
    #expect(Size.parse("") == nil)
    #expect(Size.parse("ten") == nil)
    #expect(Size.parse("-1M") == nil)
}

@Test func formatsLikeZFSList() {
    #expect(Size.format(512) == "512")
    #expect(Size.format(1024) == "1K")
    #expect(Size.format(1536) == "1.5K")
    #expect(Size.format(10 * 1024 * 1024) == "10M")
    #expect(Size.format(123 * 1024 * 1024 * 1024) == "123G")
}

@Test func tableAlignsColumns() {
    var t = Table(columns: ["name", "used"])
    t.add(["pool/a", "1K"])
    t.add(["p", "100M"])
    #expect(t.render() == "NAME    USED\npool/a  1K\np       100M\n")
    #expect(t.render(scripted: true) == "pool/a\t1K\np\t100M\n")
}

@Test func spawnedProgramsStartWithNoBlockedSignals() throws {
    // Block everything in this thread, as worker threads do; the child must not inherit it.
    var all = sigset_t(), old = sigset_t()
    sigfillset(&all)
    pthread_sigmask(SIG_SETMASK, &all, &old)
    defer { pthread_sigmask(SIG_SETMASK, &old, nil) }
    let r = try Exec.run(["grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"])
    #expect(r.stdout.contains("SigBlk:\t0000000000000000"))
    // Standard signals (1-31) are not ignored either; glibc keeps its own two realtime signals.
    let ign = r.stdout.split(separator: "\n").first { $0.hasPrefix("SigIgn") }.flatMap { UInt64($0.split(separator: "\t").last!, radix: 16) }
    #expect(ign.map { $0 & 0x7fff_ffff } == 0)
}

@Test func inputToAChildThatExitsEarlyIsNotFatal() throws {
    // `true` reads nothing; writing 1 MiB to it must fail quietly, not raise SIGPIPE.
    let r = try Exec.run(["true"], input: [UInt8](repeating: 7, count: 1 << 20))
    #expect(r.status == 0)
}
