import Glibc
import Testing
@testable import Zones

@Test(.enabled(if: isRoot, "needs root")) func debugZone() throws {
    let zone = try BusyboxZone("dbg")
    defer { zone.close() }
    try zone.start()
    for s in ["mount -t tmpfs none /mnt; echo rc=$?", "date -s @$(date +%s); echo rc=$?", "grep -E 'Cap|Seccomp' /proc/self/status", "cat /proc/kcore | wc -c; ls -la /proc/kcore; grep kcore /proc/self/mountinfo", "hostname inside-name; echo rc=$?; hostname"] {
        let r = try zone.sh(s)
        print("== \(s)\n\(r.status) \(r.output)")
    }
}
