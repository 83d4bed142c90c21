import Foundation
import Glibc
import LumosCore
import Testing
@testable import Zones

/// The event journal of `vmadm events` (docs/vmadm.md "Events"), without zones: a tail opened
/// before many appends sees each event once and in order across rotations, a tail opened later
/// sees only what follows, history and last states read both generations, and lines that are
/// not events are skipped.
@Suite struct TenantEventLogTests {
    static func withRoot(_ body: (StateRoot) throws -> Void) throws {
        let dir = "/tmp/lumos-eventlog-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try Files.makeDirectories(dir)
        defer { _ = try? Exec.run(["rm", "-rf", dir], check: false) }
        try body(StateRoot(dir))
    }

    static func manifest(_ n: Int) -> Manifest {
        Manifest(["uuid": .string(String(format: "%08x-0000-4000-8000-000000000000", n)), "alias": .string("t\(n)"), "brand": "lx"])
    }

    @Test func aTailSeesEveryEventOnceInOrderAcrossRotations() throws {
        try Self.withRoot { root in
            let log = TenantEventLog(root: root, maxBytes: 4096)
            let tail = log.tail()
            var seen: [String] = []
            for i in 0..<200 {
                try log.append(.stateChange(Self.manifest(i), from: "stopped", to: "running"))
                if i % 7 == 0 { seen += tail.next().compactMap(\.alias) }
            }
            seen += tail.next().compactMap(\.alias)
            #expect(seen == (0..<200).map { "t\($0)" })
            #expect(Files.exists(log.path + ".0"), "rotated at 4096 bytes")
            // Only two generations are kept: history is the newest events, in order.
            let kept = log.history().compactMap(\.alias)
            #expect(!kept.isEmpty && kept.count < 200)
            #expect(kept == (200 - kept.count..<200).map { "t\($0)" })
            // A tail opened now sees only what comes after.
            let late = log.tail()
            #expect(late.next().isEmpty)
            try log.append(TenantEvent(type: "delete", Self.manifest(199), state: nil))
            #expect(late.next().map(\.type) == ["delete"])
            #expect(log.lastStates()[Self.manifest(199).uuid] == nil, "deleted")
            #expect(log.lastStates()[Self.manifest(198).uuid] == "running")
        }
    }

    @Test func partialAndForeignLinesAreNotEvents() throws {
        try Self.withRoot { root in
            let log = TenantEventLog(root: root)
            let tail = log.tail()
            try log.append(TenantEvent(type: "create", Self.manifest(1), state: "stopped"))
            let fd = open(log.path, O_WRONLY | O_APPEND)
            _ = FD.writeAll(fd, Array("not json\n{\"type\":\"modify\"}\n{\"uuid\":".utf8))
            #expect(tail.next().map(\.type) == ["create"], "the partial line waits, the foreign ones are skipped")
            _ = FD.writeAll(fd, Array("\"\(Self.manifest(1).uuid)\",\"type\":\"delete\",\"timestamp\":\"2026-12-03T00:00:00Z\"}\n".utf8))
            close(fd)
            let rest = tail.next()
            #expect(rest.map(\.type) == ["delete"] && rest.first?.uuid == Self.manifest(1).uuid)
            let e = try #require(log.history().first)
            #expect(TenantEvent(json: e.json) == e, "JSON round trip")
            #expect(e.line.hasSuffix("] 00000001 (t1) create: state stopped"), "\(e.line)")
        }
    }
}
