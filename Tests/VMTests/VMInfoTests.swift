import Glibc
import LumosCore
import Testing
@testable import VM

/// `vmadm info` (VMInfo) and the pure parts of the console: escape handling and the relay's
/// command line.
struct ConsoleUnitTests {
    @Test func escapeDetachesOnCtrlBracketAnywhere() {
        var f = EscapeFilter(.standard)
        let (a, da) = f.feed(ArraySlice(Array("ls\r".utf8)))
        #expect(a == Array("ls\r".utf8) && !da)
        let (b, db) = f.feed(ArraySlice(Array("ab".utf8) + [0x1d] + Array("cd".utf8)))
        #expect(b == Array("ab".utf8) && db)
    }

    @Test func tildeDotOnlyAtTheStartOfALine() {
        var f = EscapeFilter(.standard)
        #expect(f.feed(ArraySlice(Array("a~.b".utf8))) == (Array("a~.b".utf8), false))
        #expect(f.feed(ArraySlice(Array("\r~~x".utf8))) == (Array("\r~x".utf8), false))
        #expect(f.feed(ArraySlice(Array("\n~x".utf8))) == (Array("\n~x".utf8), false))
        // "~" and "." in separate reads still detach; so does "~." as the very first input.
        var g = EscapeFilter(.standard)
        #expect(g.feed(ArraySlice(Array("~".utf8))) == ([], false))
        #expect(g.feed(ArraySlice(Array(".".utf8))) == ([], true))
        // A "~" held at the end of input is sent after all.
        var h = EscapeFilter(.standard)
        _ = h.feed(ArraySlice(Array("~".utf8)))
        #expect(h.finish() == Array("~".utf8))
        var none = EscapeFilter(.none)
        #expect(none.feed(ArraySlice([0x1d] + Array("~.".utf8))) == ([0x1d] + Array("~.".utf8), false))
        #expect(ConsoleClient.Escape.standard.description == "Ctrl-] or ~.")
    }

    @Test func relayArgumentsAndRefusals() throws {
        let r = ConsoleRelay.forZone(qemuPid: 4242, stateDirectory: "/var/lib/lumos/zones/u1", maxBytes: 1000)
        #expect(r.arguments(initBinary: "/usr/lib/lumos/lumos-init") == ["/usr/lib/lumos/lumos-init", "--console-relay", "/proc/4242/root/run/vm/console.sock",
                                                                         "/var/lib/lumos/zones/u1/console.sock", "/var/lib/lumos/zones/u1/console.log", "1000",
                                                                         "/proc/4242/root/run/vm/events.sock", "/var/lib/lumos/zones/u1/exit"])
        try r.validate()
        var long = r
        long.listenSocket = "/" + String(repeating: "d", count: 100) + "/console.sock"
        #expect(throws: LumosError.self) { try long.validate() }
        var zero = r
        zero.maxBytes = 0
        #expect(throws: LumosError.self) { try zero.validate() }
        let vm = VMDescription(name: "x", accelerator: .tcg, runDirectory: "/run/lumos/vm/x", consoleLog: false)
        #expect(ConsoleRelay.forVM(vm).qemuSocket == vm.consoleSocket && ConsoleRelay.forVM(vm).logPath == vm.consoleLogPath)
        #expect(try !QEMUCommand.build(vm).argv.contains { $0.contains("logfile=") })
    }

    @Test func infoTypes() throws {
        #expect(try VMInfo.parseTypes([]) == VMInfo.types)
        #expect(try VMInfo.parseTypes(["all"]) == VMInfo.types)
        #expect(try VMInfo.parseTypes(["vnc,block", "status", "block"]) == ["vnc", "block", "status"])
        let e = #expect(throws: LumosError.self) { try VMInfo.parseTypes(["block,disks"]) }
        #expect(e?.message == "vmadm info: unknown type \"disks\"; use all, block, blockstats, chardev, cpus, kvm, pci, spice, status, version, vnc")
        #expect(throws: LumosError.self) { try VMInfo.parseTypes(["all", "nope"]) }
        let vnc = VMInfo.shape("vnc", .object(["enabled": .bool(true), "host": .string("127.0.0.1"), "service": .string("5901"), "family": .string("ipv4")]))
        #expect(vnc.lookup("port")?.intValue == 5901 && vnc.lookup("display")?.intValue == 1 && vnc.lookup("host")?.stringValue == "127.0.0.1")
    }
}

/// VMInfo against a real QEMU: q35 with one virtio disk and no guest (the firmware idles).
@Suite(.serialized, .enabled(if: hasQEMU, "needs qemu-system-x86_64: run scripts/install-deps.sh"))
struct VMInfoTests {
    @Test func infoFromQMP() throws {
        let scratch = try Scratch("info")
        defer { scratch.remove() }
        let path = "\(scratch.path)/d.raw"
        let disk = try sys("open", path) { open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600) }
        defer { close(disk) }
        #expect(ftruncate(disk, 1 << 20) == 0)
        let qemu = try QEMUProcess(VMDescription(name: "info-test", machine: .q35, accelerator: .tcg, memoryMiB: 64,
                                                 disks: [.init(descriptor: disk)], runDirectory: scratch.path, vnc: .unixSocket))
        defer { qemu.kill() }
        let q = try qemu.qmp()
        let all = try VMInfo.query(q, types: ["all"])
        let keys = Set(all.objectValue?.keys.map { $0 } ?? [])
        #expect(keys == Set(VMInfo.types))
        #expect(all.lookup("status")?.objectValue?["status"]?.stringValue == "running")
        #expect(all.lookup("status")?.objectValue?["running"]?.boolValue == true)
        let block = all.lookup("block")?.arrayValue ?? []
        #expect(block.contains { $0.serialized(pretty: false).contains("\"node-name\":\"disk0\"") }, "block: \(block)")
        #expect(block.contains { $0.serialized(pretty: false).contains("/dev/fdset/1") })
        #expect((all.lookup("version")?.objectValue?["qemu"]?.objectValue?["major"]?.intValue ?? 0) >= 7)
        #expect((all.lookup("blockstats")?.arrayValue ?? []).count >= 1)
        #expect((all.lookup("cpus")?.arrayValue ?? []).count == 1)
        #expect(all.lookup("kvm")?.objectValue?["enabled"]?.boolValue == false)
        #expect(all.lookup("vnc")?.objectValue?["enabled"]?.boolValue == true)
        #expect(all.lookup("vnc")?.objectValue?["path"]?.stringValue == "\(scratch.path)/vnc.sock")
        #expect(all.lookup("spice")?.objectValue != nil)
        print("vmadm info spice on this QEMU: \(all.lookup("spice") ?? .null)")
        print("vmadm info vnc on this QEMU: \(all.lookup("vnc") ?? .null)")
        let one = try VMInfo.query(q, types: ["status,version"])
        #expect(Set(one.objectValue?.keys.map { $0 } ?? []) == ["status", "version"])
        let e = #expect(throws: LumosError.self) { try VMInfo.query(q, types: ["cpu"]) }
        #expect(e?.message.contains("unknown type \"cpu\"; use all, block") == true)
    }
}
