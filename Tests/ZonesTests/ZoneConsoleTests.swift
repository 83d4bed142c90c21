import Glibc
import Images
import LumosCore
import Testing
import VM
@testable import Zones

/// An lx zone's /dev/console (docs/vmadm.md, "Console"): a pseudo-terminal of the zone's own
/// devpts whose master the console relay keeps on the host, logged with zlog_max_size and
/// attached by `vmadm console`. From a real busybox zone made by vmadm (busybox init offers a
/// root shell there once Enter is pressed).
@Suite(.serialized, .enabled(if: isRoot, "needs root: pools, namespaces and cgroups"))
struct ZoneConsoleTests {
    func size(_ path: String) -> Int {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_size) : -1
    }

    /// Waits (up to 30 s) until the console log holds `text`; returns the log as last read.
    @discardableResult
    func waitForLog(_ h: RealHost, _ uuid: String, _ text: String) -> String {
        let path = h.vmadm.store.consoleLog(uuid)
        let deadline = Monotonic.now + 30
        var log = ""
        while Monotonic.now < deadline {
            log = (try? FD.readText(path)) ?? ""
            if log.contains(text) { return log }
            usleep(20_000)
        }
        return log
    }

    @Test func theConsoleShowsTheBootAndTakesInput() throws {
        let h = try RealHost("console")
        defer { h.close() }
        let uuid = try h.vmadm.create(h.payload()).uuid
        // The boot: busybox init's prompt, written by the zone's init on /dev/console.
        let boot = waitForLog(h, uuid, "Please press Enter to activate this console.")
        #expect(boot.contains("Please press Enter to activate this console."), "console log: \(boot)")

        // Input through vmadm console (piped: end of input detaches): Enter starts the shell,
        // then a command whose output differs from its echo (MA""RK-$((6*7)) prints MARK-42),
        // and one that leaves a file in the zone.
        let typed = "\necho MA\"\"RK-$((6*7)) tty=$(tty)\ntouch /root/typed-at-the-console\n"
        let r = try h.lumos(["vm", "console", uuid], stdin: typed)
        #expect(r.status == 0, "vmadm console: \(r.stderr)")
        let log = waitForLog(h, uuid, "MARK-42")
        #expect(log.contains("MARK-42 tty=/dev/pts/0"), "console log: \(log)")
        let rootfs = try h.vmadm.rootfs(uuid)
        let deadline = Monotonic.now + 10
        while Monotonic.now < deadline, !Files.exists(rootfs + "/root/typed-at-the-console") { usleep(20_000) }
        #expect(Files.exists(rootfs + "/root/typed-at-the-console"))

        // A second session reaches the same shell.
        #expect(try h.lumos(["vm", "console", uuid], stdin: "echo AGA\"\"IN\n").status == 0)
        #expect(waitForLog(h, uuid, "AGAIN").contains("AGAIN"))

        // The console is the zone's own: /dev/console is the pts of the zone's devpts that its
        // init has as stdin, not a host terminal, and not the host's devpts.
        let inside = try h.lumos(["login", uuid, "/bin/sh", "-c", "stat -c '%d %i %t' /dev/console; stat -c '%d %i %t' /dev/pts/0; readlink /proc/1/fd/0; readlink /proc/1/fd/1"])
        let lines = inside.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 4, "\(inside.stdout) \(inside.stderr)")
        if lines.count == 4 {
            #expect(lines[0] == lines[1], "/dev/console is not the zone's /dev/pts/0: \(lines)")
            // Major 0x88 = 136, the pts driver's.
            #expect(lines[0].split(separator: " ").last == "88", "\(lines)")
            #expect(lines[2] == "/dev/pts/0" && lines[3] == "/dev/pts/0")
            var hostPts = stat()
            #expect(stat("/dev/pts/ptmx", &hostPts) == 0)
            #expect(lines[0].split(separator: " ").first != Substring(String(hostPts.st_dev)), "the zone's console is on the host's devpts")
        }
        // Only host root reaches the console socket.
        var st = stat()
        #expect(stat(h.vmadm.consoleSocket(uuid), &st) == 0 && st.st_uid == 0 && st.st_mode & 0o777 == 0o600)

        // The relay goes with the zone; a stopped zone has no console to attach.
        try h.vmadm.stop(uuid, force: false, timeout: 10)
        #expect(!h.vmadm.zones.isRunning(uuid))
        #expect(!Files.exists(h.vmadm.consoleSocket(uuid)))
        let stopped = try h.lumos(["vm", "console", uuid], stdin: "")
        #expect(stopped.status != 0 && stopped.stderr.contains("is not running"), "\(stopped.stderr)")
        // And comes back with the next boot.
        try h.vmadm.start(uuid)
        #expect(Files.exists(h.vmadm.consoleSocket(uuid)))
    }

    @Test func theConsoleLogIsCappedByZlogMaxSize() throws {
        let h = try RealHost("consolecap")
        defer { h.close() }
        let cap = 4096  // the smallest zlog_max_size
        let uuid = try h.vmadm.create(h.payload(["zlog_max_size": 4096])).uuid
        waitForLog(h, uuid, "Please press Enter")
        // 64 KiB through /dev/console from a zlogin session, then a last line.
        let r = try h.lumos(["login", uuid, "/bin/sh", "-c", "i=0; while [ $i -lt 1024 ]; do echo line-$i-0123456789012345678901234567890123456789012345678; i=$((i+1)); done > /dev/console; echo LAST-LINE > /dev/console"])
        #expect(r.status == 0, "\(r.stderr)")
        let log = waitForLog(h, uuid, "LAST-LINE")
        #expect(log.contains("LAST-LINE"), "the newest output is in console.log")
        let path = h.vmadm.store.consoleLog(uuid)
        #expect(size(path) > 0 && size(path) <= cap, "console.log is \(size(path)) bytes")
        #expect(size(path + ".0") > 0 && size(path + ".0") <= cap, "console.log.0 is \(size(path + ".0")) bytes")
        #expect(!Files.exists(path + ".1"))
    }
}
