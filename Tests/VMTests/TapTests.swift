import Glibc
import LumosCore
import Net
import Testing
import VMTestSupport
@testable import VM

@Suite(.serialized, .enabled(if: isRoot, "needs root: creates taps in a network namespace"))
struct TapTests {
    /// A tap lives as long as its descriptor: it is a port of the bridge while open and gone
    /// after close, so a VM that dies leaves no link.
    @Test func tapFollowsItsDescriptor() throws {
        let network = try GuestNetwork(tag: "vmtap", subnet: "10.80.0")
        defer { try? network.remove() }
        let name = "vtap\(String(UInt32.random(in: 0...0xffff), radix: 16))"
        let tap = try Tap(name: name, namespace: network.namespace, bridge: network.bridge)
        let link = try network.tools.link(name)
        #expect(link != nil)
        let detail = try network.tools.ip(["-d", "link", "show", "dev", name]).stdout
        #expect(detail.contains("master \(network.bridge)") && detail.contains("tun type tap"))
        // Not in the host's namespace.
        #expect(if_nametoindex(name) == 0)
        tap.close()
        #expect(try network.tools.link(name) == nil)
    }

    @Test func badInputCreatesNothing() throws {
        let network = try GuestNetwork(tag: "vmtap", subnet: "10.80.1")
        defer { try? network.remove() }
        let before = try network.tools.links().map(\.name).sorted()
        let long = #expect(throws: LumosError.self) { try Tap(name: "a-name-longer-than-15", namespace: network.namespace) }
        #expect(long?.message.contains("1-15 characters") == true)
        let gone = #expect(throws: LumosError.self) { try Tap(name: "vtapx", namespace: .named("lumos-no-such-netns-\(getpid())")) }
        #expect(gone?.message.contains("does not exist") == true)
        // A bridge that is not there: the tap is not left behind.
        #expect(throws: (any Error).self) { try Tap(name: "vtapy", namespace: network.namespace, bridge: "nobridge") }
        #expect(try network.tools.links().map(\.name).sorted() == before)
    }
}
