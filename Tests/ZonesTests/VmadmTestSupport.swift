import Glibc
import Images
import LumosCore
@testable import Zones

/// A zone runtime that records what vmadm asked of it (the real one is tested with root).
final class FakeZones: ZoneControl {
    var running: [String: pid_t] = [:]
    var limits: [String: ZoneLimits] = [:]
    var launches: [ZoneLaunch] = []
    var cleaned: [String] = []
    var released: [String] = []
    var failStart = false
    var nextPid: pid_t = 4242

    func start(_ launch: ZoneLaunch, beforeRelease: (pid_t) throws -> Void) throws -> pid_t {
        if failStart { throw LumosError.failed("fake start failure") }
        nextPid += 1
        try beforeRelease(nextPid)
        running[launch.uuid] = nextPid
        limits[launch.uuid] = launch.limits
        launches.append(launch)
        return nextPid
    }
    func isRunning(_ uuid: String) -> Bool { running[uuid] != nil }
    func initPid(_ uuid: String) -> pid_t? { running[uuid] }
    func stop(_ uuid: String, force: Bool, timeout: Double) throws { running[uuid] = nil }
    func kill(_ uuid: String, signal: Int32) throws {}
    func updateLimits(_ uuid: String, _ l: ZoneLimits) throws { limits[uuid] = l }
    func cleanup(_ uuid: String) throws { running[uuid] = nil; cleaned.append(uuid) }
    func release(_ uuid: String) { released.append(uuid) }
    func login(_ uuid: String, _ argv: [String], tty: Bool, allowIOUring: Bool) throws -> Int32 { 0 }
}

final class RecordingNetwork: TenantNetwork {
    var attached: [String: pid_t] = [:]
    var detached: [String] = []
    var applied: [Manifest] = []
    var resets: [Manifest] = []
    /// Makes the next apply fail, as a kernel error midway would.
    var failApply = false
    /// Makes resets fail while the manifest has more NICs than this.
    var failResetAbove: Int?
    /// MACs and interfaces to report for NICs (as if the network had chosen them).
    var chosen: [NicResult] = []
    func validate(vm: Manifest) throws {}
    func attach(vm: Manifest, pid: pid_t) throws -> [NicResult] { attached[vm.uuid] = pid; return chosen }
    func apply(vm: Manifest, pid: pid_t) throws -> [NicResult] {
        if failApply { failApply = false; throw LumosError.failed("fake apply failure") }
        applied.append(vm)
        return chosen
    }
    func reset(vm: Manifest, pid: pid_t) throws -> [NicResult] {
        if let n = failResetAbove, vm.nics.count > n { throw LumosError.failed("fake reset failure") }
        resets.append(vm)
        return chosen
    }
    func detach(vm: Manifest) throws { detached.append(vm.uuid) }
}

/// A state root, directory pool, installed tiny image and a Vmadm over fakes.
final class ScratchHost {
    let dir: String
    let root: StateRoot
    let datasets: DirectoryDatasets
    let zones = FakeZones()
    let network = RecordingNetwork()
    let vmadm: Vmadm
    let imageUUID: String

    init() throws {
        dir = "/tmp/lumos-vmadmtest-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        root = StateRoot(dir + "/state")
        datasets = try DirectoryDatasets(base: dir + "/pool")
        vmadm = Vmadm(root: root, datasets: datasets, zones: zones, network: network)
        try Files.makeDirectories(dir + "/src/etc")
        try Files.writeAtomically(dir + "/src/etc/motd", "image\n")
        try Files.makeDirectories(dir + "/out")
        let packed = try ImageStore.pack(rootfs: dir + "/src", name: "tiny", version: "1", description: "t", compression: "none", prefix: dir + "/out/tiny")
        imageUUID = try vmadm.images.importImage(manifest: packed.manifestPath, file: packed.filePath).uuid
    }

    func payload(_ extra: [String: JSONValue] = [:]) -> JSONValue {
        var o: [String: JSONValue] = ["brand": "lx", "image_uuid": .string(imageUUID), "alias": "t1"]
        for (k, v) in extra { o[k] = v }
        return .object(o)
    }

    deinit { _ = try? Exec.run(["rm", "-rf", dir], check: false) }
}
