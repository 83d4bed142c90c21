import Testing
import LumosCore
@testable import Storage

@Suite struct DatasetNameTests {
    @Test func parsesDatasetsAndSnapshots() throws {
        let d = try DatasetName("tank/a/b")
        #expect(d.pool == "tank")
        #expect(d.path == ["a", "b"])
        #expect(d.snapshot == nil)
        #expect(d.parent == (try DatasetName("tank/a")))
        let s = try DatasetName("tank/a@yesterday-1.2:x")
        #expect(s.snapshot == "yesterday-1.2:x")
        #expect(s.dataset.description == "tank/a")
        #expect(try DatasetName("tank").isPoolRoot)
    }

    @Test(arguments: ["", "/tank", "tank/", "tank//a", "tank/a b", "tank/.hidden", "tank/a@", "tank/a@b@c", "1tank/a", "mirror/a", "tank/-x", "tank/a/@s"])
    func rejectsBadNames(_ text: String) {
        #expect(throws: LumosError.self) { try DatasetName(text) }
    }

    @Test func errorsNameTheProblem() {
        do { _ = try DatasetName("tank//a"); Issue.record("accepted") } catch {
            #expect("\(error)".contains("empty component"))
        }
    }

    @Test func withinAndOrdering() throws {
        let a = try DatasetName("tank/a"), ab = try DatasetName("tank/a/b"), ax = try DatasetName("tank/ax")
        #expect(ab.isWithin(a))
        #expect(!ax.isWithin(a))
        #expect(a < ab && ab < ax)
    }
}

@Suite struct PropertyTableTests {
    @Test func validatesAndNormalizes() throws {
        #expect(try PropertyTable.validate("quota", "10M", type: .filesystem) == String(10 << 20))
        #expect(try PropertyTable.validate("quota", "none", type: .filesystem) == "none")
        #expect(try PropertyTable.validate("compression", "on", type: .filesystem) == "zstd")
        #expect(try PropertyTable.validate("compression", "gzip", type: .volume) == "zlib")
        #expect(try PropertyTable.validate("com.example:tier", "gold", type: .filesystem) == "gold")
    }

    @Test func rejectsWithReasons() {
        #expect(throws: LumosError.self) { try PropertyTable.validate("used", "1G", type: .filesystem) }
        #expect(throws: LumosError.self) { try PropertyTable.validate("quota", "lots", type: .filesystem) }
        #expect(throws: LumosError.self) { try PropertyTable.validate("volsize", "1G", type: .filesystem) }
        #expect(throws: LumosError.self) { try PropertyTable.validate("nosuch", "1", type: .filesystem) }
        do { _ = try PropertyTable.validate("compression", "lz4", type: .filesystem) } catch {
            #expect("\(error)".contains("not available on btrfs"))
        }
    }
}
