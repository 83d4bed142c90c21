import Glibc
import Images
import LumosCore
import Storage
@testable import Zones

/// A real host for one test: a private state root with an embedded `zones` pool, an
/// installed busybox image and a Vmadm over the zone runtime. `close()` deletes every VM,
/// destroys the pool and removes the directory; call it with defer.
final class RealHost {
    let dir: String
    let root: StateRoot
    let pool: Pool
    let vmadm: Vmadm
    let imageUUID: String
    var lastCloseError: String?

    init(_ name: String) throws {
        dir = "/tmp/lumos-vmadm-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try Files.makeDirectories(dir)
        root = StateRoot(dir)
        // A step that fails after the directory exists must not leak it, the pool or its loop device.
        var made: Pool?
        do {
            var options = Pool.CreateOptions()
            options.size = 2 << 30
            let pool = try Pool.create("zones", options: options, root: root).0
            made = pool
            let vmadm = Vmadm(root: root, datasets: PoolDatasets(pool), zones: try RuntimeZones(root: root))
            imageUUID = try vmadm.images.installBuilt(name: "busybox", version: "test", description: "test") {
                try BusyboxImage.build(into: $0)
            }.uuid
            self.pool = pool
            self.vmadm = vmadm
        } catch {
            if let error = Self.remove(pool: made, dir: dir) { print("RealHost.init: pool in \(dir) not destroyed: \(error)") }
            throw error
        }
    }

    func payload(_ extra: [String: JSONValue] = [:]) -> JSONValue {
        var o: [String: JSONValue] = ["brand": "lx", "image_uuid": .string(imageUUID), "alias": "itest", "max_physical_memory": 128]
        for (k, v) in extra { o[k] = v }
        return .object(o)
    }

    /// Runs the built `lumos` executable (next to the test bundle) with this state root.
    func lumos(_ args: [String], stdin: String? = nil, stdinBytes: [UInt8]? = nil, env: [String: String] = [:]) throws -> Exec.Result {
        let exe = Files.parent(Self.selfExe()) + "/lumos"
        var argv = ["env", "LUMOS_ROOT=\(dir)"]
        for (k, v) in env { argv.append("\(k)=\(v)") }
        return try Exec.run(argv + [exe] + args, input: stdinBytes ?? stdin.map { Array($0.utf8) }, check: false)
    }

    static func selfExe() -> String {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        return String(decoding: buf[0..<max(0, n)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Nothing of a tenant is left: no manifest, dataset, cgroup, process or intent.
    func leftovers(_ uuid: String) -> [String] { vmadm.remnants(of: uuid) }

    func close() {
        for uuid in vmadm.store.uuids() { try? vmadm.delete(uuid) }
        try? vmadm.recover()
        lastCloseError = Self.remove(pool: pool, dir: dir)
        if let lastCloseError { print("RealHost.close: pool in \(dir) not destroyed: \(lastCloseError)") }
    }

    /// Destroys the pool (when there is one) and removes the directory; returns the pool's
    /// last destroy error when it could not be destroyed.
    static func remove(pool: Pool?, dir: String) -> String? {
        // A zone's last process can hold the pool's mount for a moment after its cgroup
        // empties; retry before giving up, and say so rather than leak silently.
        var lastError: String?
        if let pool {
            var destroyed = false
            for _ in 0..<20 where !destroyed {
                do { try pool.destroy(force: true); destroyed = true } catch {
                    lastError = "\(error)"
                    usleep(100_000)
                }
            }
            if destroyed { lastError = nil }
        }
        _ = try? Exec.run(["rm", "-rf", dir], check: false)
        return lastError
    }
}
