import Glibc
import LumosCore

let isRoot = getuid() == 0
let hasQEMU = Exec.which("qemu-system-x86_64") != nil

/// A directory for one test, unique to the run, removed by `remove()`. Short, because unix
/// socket paths inside it must fit in 108 bytes.
struct Scratch {
    let path: String

    init(_ tag: String) throws {
        path = "/tmp/lumos-vmt-\(tag)-\(getpid())-\(String(UInt32.random(in: 0...0xffffff), radix: 16))"
        try Files.makeDirectories(path, mode: 0o700)
    }

    func remove() { _ = try? Exec.run(["rm", "-rf", "--one-file-system", path]) }
}

/// Whether a process exists (not yet reaped or another with that pid): kill(pid, 0).
func processExists(_ pid: pid_t) -> Bool { kill(pid, 0) == 0 || errno == EPERM }

/// Waits up to `seconds` for `text` in a console log; returns the log as last read.
func waitForConsole(_ path: String, containing text: String, seconds: Double) -> String {
    let deadline = Monotonic.now + seconds
    var log = ""
    repeat {
        log = (try? FD.readText(path)) ?? ""
        if log.contains(text) { break }
        usleep(50_000)
    } while Monotonic.now < deadline
    return log
}
