import CLinux
import Foundation
import Glibc
import LumosCore
import Testing
@testable import VM

/// lumos-init built next to the test bundle.
let lumosInit: String = {
    var buf = [CChar](repeating: 0, count: 4096)
    let n = readlink("/proc/self/exe", &buf, buf.count - 1)
    return Files.parent(String(decoding: buf[0..<max(0, n)].map { UInt8(bitPattern: $0) }, as: UTF8.self)) + "/lumos-init"
}()
let hasLumosInit = access(lumosInit, X_OK) == 0

/// The console relay (`lumos-init --console-relay`, docs/vm.md "Console") in front of the small
/// guest under a real QEMU, and `ConsoleClient` attached to it from pipes.
@Suite(.serialized, .enabled(if: isRoot && hasQEMU && hasLumosInit, "needs root, qemu-system-x86_64 and lumos-init (swift build)"))
struct ConsoleRelayTests {
    @Test func relayKeepsACappedLogAndServesOneClientAtATime() throws {
        // The small guest boots quietly (~500 bytes): a 256-byte cap rotates during the boot.
        let g = try RelayedGuest("rly", maxBytes: 256)
        defer { g.stop() }
        // QEMU has no log of its own: the relay keeps it.
        #expect(!g.qemu.command.argv.contains { $0.contains("logfile=") })
        var st = stat()
        #expect(stat(g.relay.listenSocket, &st) == 0 && st.st_mode & 0o777 == 0o600)
        #expect(g.waitForLog("lumos-guest: up", seconds: 120), "log:\n\(g.log.suffix(1500))\nqemu.log:\n\((try? FD.readText(g.qemu.logPath)) ?? "")")

        let client = try PipedConsole(g.relay.listenSocket)
        defer { client.close() }
        #expect(try client.command("echo lumos-answer-$((20+22))", expect: "lumos-answer-42"), "client saw:\n\(client.output.suffix(800))")

        // A second client is told the console is in use, and the first keeps it.
        var idle: [Int32] = [-1, -1]
        try sys("pipe2") { clinux_pipe2(&idle, O_CLOEXEC) }
        defer { close(idle[0]); close(idle[1]) }
        let second = #expect(throws: LumosError.self) { try ConsoleClient.attach(socket: g.relay.listenSocket, input: idle[0], output: client.devNull, notices: client.devNull) }
        #expect(second?.kind == .busy)
        #expect(try client.command("echo lumos-still-$((40+2))", expect: "lumos-still-42"))

        // Ctrl-] detaches with a one-line notice; the guest runs on and a new client gets it.
        client.type([0x1d])
        #expect(client.wait(seconds: 10) == .escape)
        #expect(client.notices.contains(ConsoleClient.detachedNotice))
        #expect(try g.qemu.qmp().status().running)
        let again = try PipedConsole(g.relay.listenSocket)
        defer { again.close() }
        #expect(try again.command("echo lumos-again-$((1+1))", expect: "lumos-again-2"), "client saw:\n\(again.output.suffix(800))")
        // A whole line written at once (as `echo ... | vmadm console` would) arrives intact.
        again.typeAtOnce(Array(("echo " + String(repeating: "abcdefghij", count: 20) + " lumos-fast-$((3+4))\r").utf8))
        #expect(again.waitFor("lumos-fast-7", seconds: 20), "client saw:\n\(again.output.suffix(800))")
        // "~." at the start of a line detaches too.
        again.type(Array("\r~.".utf8))
        #expect(again.wait(seconds: 10) == .escape)

        // The log: rotated at the cap, never more than 2 x 256 bytes, and it holds the latest.
        let size = { (p: String) -> Int in var s = stat(); return stat(p, &s) == 0 ? Int(s.st_size) : -1 }
        #expect(size(g.relay.logPath + ".0") > 0, "no rotation: log is \(size(g.relay.logPath)) bytes")
        #expect(size(g.relay.logPath) <= 256 && size(g.relay.logPath + ".0") <= 256)
        #expect(g.log.contains("lumos-fast-7"))

        // QEMU ends: the relay exits by itself and removes its socket.
        try g.qemu.qmp().quit()
        #expect(g.qemu.waitForExit(seconds: 10))
        #expect(g.relayExits(seconds: 10) == 0)
        #expect(!Files.exists(g.relay.listenSocket))
    }

    /// The path vmadm uses: QEMU in a mount namespace of its own with its socket at /run/vm
    /// there (as PID 1 of a kvm zone), reached from the host through /proc/PID/root.
    @Test func relayReachesQEMUsSocketInsideItsMountNamespace() throws {
        let scratch = try Scratch("jail")
        defer { scratch.remove() }
        let script = "mount -t tmpfs -o mode=0700 lumos-vmt /run && mkdir /run/vm && exec \(QEMUCommand.binary) -nodefaults -no-user-config "
            + "-display none -machine q35 -accel tcg -m 64 -chardev socket,id=console,path=/run/vm/console.sock,server=on,wait=off -serial chardev:console"
        let qemu = try Exec.spawn(["unshare", "--mount", "--propagation", "private", "sh", "-c", script], stdout: .null, stderr: .null)
        var qemuReaped = false
        defer { if !qemuReaped { _ = kill(qemu, SIGKILL); _ = Exec.wait(qemu) } }
        // The socket is not in the host's /run.
        #expect(!Files.exists("/run/vm/console.sock") || Files.exists("/proc/\(qemu)/root/run/vm/console.sock"))
        let relay = ConsoleRelay.forZone(qemuPid: qemu, stateDirectory: "\(scratch.path)/state")
        #expect(relay.qemuSocket == "/proc/\(qemu)/root/run/vm/console.sock")
        let pid = try relay.spawn(initBinary: lumosInit)
        var relayReaped = false
        defer { if !relayReaped { _ = kill(pid, SIGKILL); _ = Exec.wait(pid) } }
        try relay.waitUntilListening(pid: pid)
        // Connected: QEMU's console socket is taken by the relay.
        let client = try PipedConsole(relay.listenSocket)
        client.close()
        #expect(client.result.flatMap { try? $0.get() } == .inputClosed)
        _ = kill(qemu, SIGKILL)
        _ = Exec.wait(qemu)
        qemuReaped = true
        let deadline = Monotonic.now + 10
        var status: Int32 = 0
        while Monotonic.now < deadline && !relayReaped {
            relayReaped = waitpid(pid, &status, WNOHANG) == pid
            if !relayReaped { usleep(20_000) }
        }
        #expect(relayReaped && status == 0, "the relay did not exit 0 after QEMU was killed (wait status \(status))")
        #expect(!Files.exists(relay.listenSocket))
    }

    /// A client that types a command producing ~450 KB and never reads: the guest is not held
    /// up (its later output reaches the log) and the client loses output instead.
    /// docs/vm.md, "How a VM ends": QEMU's SHUTDOWN reason, `crashed` without one, nothing when
    /// the relay itself is told to stop.
    @Test(arguments: ["quit", "kill", "term"]) func theRelaySaysHowQEMUEnded(_ ending: String) throws {
        let g = try RelayedGuest("end-\(ending)", maxBytes: 1 << 20, watchEvents: true)
        defer { g.stop() }
        let exitFile = try #require(g.relay.exitFile)
        #expect(try g.qemu.qmp().status().running)
        switch ending {
        case "quit": _ = try? g.qemu.qmp().execute("quit")
        case "kill": g.qemu.kill()
        default: #expect(kill(g.relayPid, SIGTERM) == 0)
        }
        #expect(g.relayExits(seconds: 10) == 0)
        let verdict = (try? FD.readText(exitFile)) ?? "none"
        #expect(verdict == ["quit": "host-qmp-quit\n", "kill": "crashed\n", "term": "none"][ending], "\(ending): \(verdict)")
    }

    @Test func aClientThatNeverReadsDoesNotStallTheGuest() throws {
        let g = try RelayedGuest("stk", maxBytes: 1 << 20)
        defer { g.stop() }
        #expect(g.waitForLog("lumos-guest: up", seconds: 120), "log:\n\(g.log.suffix(1500))")
        let stuck = try QMPClient.connect(g.relay.listenSocket)
        defer { close(stuck) }
        func type(_ text: String) {
            let bytes = Array(text.utf8)
            for start in stride(from: 0, to: bytes.count, by: 4) {
                _ = FD.writeAll(stuck, Array(bytes[start..<min(start + 4, bytes.count)]))
                usleep(20_000)
            }
        }
        let prompt = Monotonic.now + 30
        while !g.log.contains(":/# ") && Monotonic.now < prompt { type("\r"); usleep(500_000) }
        let before = g.log.utf8.count
        type("yes lumos-flood-line-0123456789abcdef | head -n 15000; echo lumos-flood-$((1000+1))\r")
        #expect(g.waitForLog("lumos-flood-1001", seconds: 180), "log grew \(g.log.utf8.count - before) bytes:\n\(g.log.suffix(600))")
        #expect(g.log.utf8.count - before > 400_000)
        // What the stuck client would read now is at most its socket buffers and the relay's
        // 64 KiB queue, far less than the guest wrote.
        var pending: Int32 = 0
        _ = ioctl(stuck, UInt(FIONREAD), &pending)
        #expect(Int(pending) < 400_000)
        close(stuck)
        // The guest still answers a new client.
        let client = try PipedConsole(g.relay.listenSocket)
        defer { client.close() }
        #expect(try client.command("echo lumos-after-$((6*7))", expect: "lumos-after-42"), "client saw:\n\(client.output.suffix(800))")
    }
}

/// A booted small guest with its console behind a relay; everything goes in `stop()`.
final class RelayedGuest {
    let scratch: Scratch
    let vm: VMDescription
    let qemu: QEMUProcess
    let relay: ConsoleRelay
    let relayPid: pid_t
    private var disk: Int32
    private var relayReaped = false

    init(_ tag: String, maxBytes: UInt64, watchEvents: Bool = false) throws {
        let scratch = try Scratch(tag)
        var ok = false
        defer { if !ok { scratch.remove() } }
        let guest = try SmallGuest.build(into: "\(scratch.path)/guest")
        let disk = try sys("open", guest.disk) { open(guest.disk, O_RDWR | O_CLOEXEC) }
        defer { if !ok { close(disk) } }
        let vm = VMDescription(name: "relay-\(tag)", machine: .microvm, accelerator: try AcceleratorProbe.choose().accelerator, memoryMiB: 128,
                               disks: [.init(descriptor: disk, boot: true)], kernelBoot: guest.kernelBoot(for: .microvm),
                               runDirectory: "\(scratch.path)/run", consoleLog: false)
        let qemu = try QEMUProcess(vm)
        defer { if !ok { qemu.kill() } }
        var relay = ConsoleRelay.forVM(vm, maxBytes: maxBytes)
        if watchEvents { (relay.eventsSocket, relay.exitFile) = (vm.eventsSocket, "\(scratch.path)/exit") }
        let relayPid = try relay.spawn(initBinary: lumosInit)
        defer { if !ok { _ = kill(relayPid, SIGKILL); _ = Exec.wait(relayPid) } }
        try relay.waitUntilListening(pid: relayPid)
        (self.scratch, self.disk, self.vm, self.qemu, self.relay, self.relayPid) = (scratch, disk, vm, qemu, relay, relayPid)
        ok = true
    }

    /// The whole log, the rotated part first.
    var log: String { ((try? FD.readText(relay.logPath + ".0")) ?? "") + ((try? FD.readText(relay.logPath)) ?? "") }

    func waitForLog(_ text: String, seconds: Double) -> Bool {
        let deadline = Monotonic.now + seconds
        repeat {
            if log.contains(text) { return true }
            usleep(100_000)
        } while Monotonic.now < deadline && qemu.isRunning
        return log.contains(text)
    }

    /// Whether the relay exited within `seconds` (it is reaped here).
    func relayExits(seconds: Double) -> Int32? {
        let deadline = Monotonic.now + seconds
        repeat {
            var status: Int32 = 0
            if waitpid(relayPid, &status, WNOHANG) == relayPid { relayReaped = true; return (status >> 8) & 0xff }
            usleep(20_000)
        } while Monotonic.now < deadline
        return nil
    }

    func stop() {
        qemu.kill()
        if !relayReaped {
            if relayExits(seconds: 5) == nil { _ = kill(relayPid, SIGKILL); _ = Exec.wait(relayPid) }
            relayReaped = true
        }
        if disk >= 0 { close(disk); disk = -1 }
        scratch.remove()
    }
}

/// `ConsoleClient.attach` on a thread, fed from a pipe and writing into pipes the test reads.
final class PipedConsole: @unchecked Sendable {
    private let inRead: Int32, inWrite: Int32, outRead: Int32, outWrite: Int32, noteRead: Int32, noteWrite: Int32
    let devNull: Int32
    private let lock = NSLock()
    private var ending: Result<ConsoleClient.Ending, any Error>?
    private var closed = false
    private(set) var output = ""
    private(set) var notices = ""

    init(_ socket: String) throws {
        var p = [Int32](repeating: -1, count: 6)
        for i in stride(from: 0, to: 6, by: 2) {
            try p.withUnsafeMutableBufferPointer { b in _ = try sys("pipe2") { clinux_pipe2(b.baseAddress! + i, O_CLOEXEC) } }
        }
        (inRead, inWrite, outRead, outWrite, noteRead, noteWrite) = (p[0], p[1], p[2], p[3], p[4], p[5])
        for fd in [outRead, noteRead] { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        devNull = open("/dev/null", O_RDWR | O_CLOEXEC)
        let (i, o, n) = (inRead, outWrite, noteWrite)
        let thread = Thread { [self] in
            let r = Result { try ConsoleClient.attach(socket: socket, input: i, output: o, notices: n) }
            lock.lock(); ending = r; lock.unlock()
        }
        thread.start()
    }

    /// Types a few bytes at a time: the guest's UART under TCG drops what it does not take in time.
    func type(_ bytes: [UInt8]) {
        for start in stride(from: 0, to: bytes.count, by: 4) {
            _ = FD.writeAll(inWrite, Array(bytes[start..<min(start + 4, bytes.count)]))
            usleep(20_000)
            drain()
        }
    }

    func typeAtOnce(_ bytes: [UInt8]) { _ = FD.writeAll(inWrite, bytes) }

    func waitFor(_ text: String, seconds: Double) -> Bool {
        let deadline = Monotonic.now + seconds
        while Monotonic.now < deadline && !output.contains(text) { usleep(50_000); drain() }
        return output.contains(text)
    }

    func drain() {
        var buf = [UInt8](repeating: 0, count: 65536)
        for (fd, isOutput) in [(outRead, true), (noteRead, false)] {
            while true {
                let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n <= 0 { break }
                let text = String(decoding: buf[0..<n], as: UTF8.self)
                if isOutput { output += text } else { notices += text }
            }
        }
    }

    /// Gets the shell's prompt, types `line` and waits for `expect` in what comes back.
    func command(_ line: String, expect: String, seconds: Double = 30) throws -> Bool {
        let start = output.count
        let deadline = Monotonic.now + seconds
        type(Array("\r".utf8))
        while Monotonic.now < deadline && !output.dropFirst(start).contains(":/# ") {
            usleep(300_000)
            drain()
            if !output.dropFirst(start).contains(":/# ") { type(Array("\r".utf8)) }
            if case .failure(let e)? = result { throw e }
        }
        type(Array((line + "\r").utf8))
        while Monotonic.now < deadline && !output.contains(expect) {
            usleep(50_000)
            drain()
        }
        return output.contains(expect)
    }

    var result: Result<ConsoleClient.Ending, any Error>? { lock.lock(); defer { lock.unlock() }; return ending }

    /// How attach ended, once it has (nil after `seconds`).
    func wait(seconds: Double) -> ConsoleClient.Ending? {
        let deadline = Monotonic.now + seconds
        while Monotonic.now < deadline {
            drain()
            if let r = result { return try? r.get() }
            usleep(20_000)
        }
        return nil
    }

    /// End of input detaches the client if it still runs; then every pipe goes.
    func close() {
        if closed { return }
        closed = true
        Glibc.close(inWrite)
        _ = wait(seconds: 10)
        for fd in [inRead, outRead, outWrite, noteRead, noteWrite, devNull] { Glibc.close(fd) }
    }
}
