import Glibc
import LumosCore
import Testing

/// A hostile tenant against its metadata server (docs/security.md, "The metadata server"):
/// the server is a host process the zone feeds, so whatever the zone's root sends it must
/// neither crash nor hang it, nor let the zone fill the host's disk or change the sdc: keys.
/// Resources/mdata-attack.c is the attacker, run as root inside the zone.
@Suite(.serialized, .enabled(if: isRoot, "needs root: pools, namespaces and cgroups"))
struct MetadataAttackTests {
    @Test func hostileClientsLeaveTheServerServing() throws {
        let site = try AttackSite(network: false)
        defer { site.close() }
        let uuid = try site.create(alias: "mdata", extra: ",\"customer_metadata\":{\"k\":\"v\"}")
        let tool = site.dir + "/mdata-attack"
        try Exec.run(["cc", "-static", "-O1", "-o", tool, Files.parent(#filePath) + "/Resources/mdata-attack.c"])
        try Exec.run(["install", "-m", "0755", tool, site.zoneRoot(uuid) + "/bin/mdata-attack"])
        func attack(_ args: [String]) throws -> String {
            try site.zlogin(uuid, ["/bin/mdata-attack"] + args).stdout.trimmingSpaces()
        }
        func stillServing() throws -> Bool {
            try site.zlogin(uuid, ["/native/usr/sbin/mdata-get", "k"]).stdout == "v\n"
        }
        #expect(try stillServing())

        // A 16 MiB line: the connection is closed, the server goes on.
        #expect(try attack(["huge"]) == "huge closed")
        #expect(try stillServing())
        // Malformed frames close their connection; a payload that is not base64 is a FAILURE.
        #expect(try attack(["garbage"]) == "garbage closed FAILURE")
        #expect(try stillServing())
        // 200 connections held open: the least recently active make room for new ones.
        #expect(try attack(["flood", "200"]) == "flood 200 SUCCESS")
        #expect(try stillServing())
        // A client that never reads its replies stalls only itself.
        let noread = try attack(["noread", "20000"])
        #expect(noread == "noread stalled SUCCESS", "\(noread)")
        #expect(try stillServing())

        // Filling: the caps hold (at most 1 MiB of values in at most 128 keys), and sdc: keys
        // cannot be forged.
        let fill = try attack(["fill"]).split(separator: " ")
        try #require(fill.count == 3, "\(fill)")
        let accepted = Int(fill[1]) ?? -1
        #expect(accepted >= 1 && accepted * 60000 <= 1 << 20)
        #expect(fill[2] == "sdc-put-FAILURE")
        let keys = "\(site.dir)/zones/\(uuid)/metadata"
        let bytes = Files.list(keys).reduce(0) { sum, name in
            var st = stat()
            return sum + (lstat("\(keys)/\(name)", &st) == 0 ? Int(st.st_size) : 0)
        }
        #expect(bytes <= (1 << 20) + 64 * 1024, "keys directory holds \(bytes) bytes")
        #expect(try site.zlogin(uuid, ["/native/usr/sbin/mdata-get", "sdc:uuid"]).stdout == "\(uuid)\n")
        #expect(try stillServing())

        // Only the zone's root reaches the socket.
        #expect(try attack(["nobody"]) == "nobody EACCES")

        // The tools and the socket directory are read-only in the zone.
        let write = try site.zlogin(uuid, ["/bin/sh", "-c", "echo x > /native/usr/sbin/mdata-get || echo refused; touch /native/.zonecontrol/x || echo refused"])
        #expect(write.stdout == "refused\nrefused\n")
    }
}
