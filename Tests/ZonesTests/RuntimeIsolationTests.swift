import Glibc
import LumosCore
import Testing
@testable import Zones

@Suite("Zone isolation", .serialized) struct RuntimeIsolationTests {
    @Test(.enabled(if: isRoot, "needs root")) func bootsAndRunsCommands() throws {
        let zone = try BusyboxZone("boot")
        defer { zone.close() }
        let pid = try zone.start()
        #expect(pid > 0)
        #expect(zone.runtime.state(zone.uuid) == .running)
        #expect(zone.runtime.initPid(zone.uuid) == pid)
        let r = try zone.sh("echo hello; hostname; exit 7")
        #expect(r.status == 7)
        #expect(r.output == "hello\nzone-\(getpid())\n")
    }
}
