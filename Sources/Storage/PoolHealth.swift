import CLinux
import Foundation
import Glibc
import LumosCore

/// `pool status`: size, use, devices with their error counters, and health.
public struct PoolStatus: Codable, Sendable {
    public struct Device: Codable, Sendable {
        public var path: String
        public var backing: String?
        public var size: UInt64
        public var allocated: UInt64
        public var writeErrors: UInt64, readErrors: UInt64, flushErrors: UInt64
        public var corruptionErrors: UInt64, generationErrors: UInt64
        public var missing: Bool
    }
    public var name: String
    public var health: String
    public var layout: PoolLayout
    public var checksum: ChecksumAlgorithm
    public var size: UInt64
    public var used: UInt64
    public var available: UInt64
    public var mountpoint: String
    public var quotaMode: String
    public var devices: [Device]
    public var lastScrub: ScrubSummary?
}

extension PoolStatus {
    /// A pool that is known but not mounted (exported, or its devices are missing).
    public static func unavailable(_ c: PoolConfig) -> PoolStatus {
        PoolStatus(name: c.name, health: c.exported ? "EXPORTED" : "UNAVAIL", layout: c.layout, checksum: c.checksum,
                   size: 0, used: 0, available: 0, mountpoint: c.mountpoint, quotaMode: "-", devices: [], lastScrub: c.lastScrub)
    }
}

extension Pool {
    public func status() throws -> PoolStatus {
        guard isMountedHere else { return .unavailable(config) }
        let fd = try openRoot()
        defer { close(fd) }
        var raw = [clinux_dev_stats](repeating: clinux_dev_stats(), count: 64)
        let n = clinux_btrfs_devices(fd, &raw, Int32(raw.count))
        if n < 0 { throw Errno(errno, "BTRFS_IOC_DEV_INFO", mountpoint) }
        var fsid = [UInt8](repeating: 0, count: 16)
        var numDevices: UInt64 = 0, csum: UInt16 = 0
        try sys("BTRFS_IOC_FS_INFO") { clinux_btrfs_fs_info(fd, &fsid, &numDevices, &csum) }
        let loops = Dictionary(LoopDevice.all().map { ($0.device, $0.backing) }, uniquingKeysWith: { a, _ in a })
        var devices: [PoolStatus.Device] = []
        for d in raw.prefix(Int(n)) {
            let path = withUnsafeBytes(of: d.path) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            devices.append(.init(path: path, backing: loops[path], size: d.total_bytes, allocated: d.bytes_used,
                                 writeErrors: d.counters.0, readErrors: d.counters.1, flushErrors: d.counters.2,
                                 corruptionErrors: d.counters.3, generationErrors: d.counters.4, missing: path.isEmpty || !Files.exists(path)))
        }
        var s = statfs()
        fstatfs(fd, &s)
        let size = UInt64(s.f_blocks) * UInt64(s.f_bsize)
        let free = UInt64(s.f_bfree) * UInt64(s.f_bsize)
        let missing = devices.contains { $0.missing } || UInt64(devices.count) < numDevices
        let errors = devices.contains { $0.readErrors + $0.writeErrors + $0.flushErrors + $0.corruptionErrors + $0.generationErrors > 0 }
        let health = missing ? "DEGRADED" : (errors ? "ONLINE (errors recorded)" : "ONLINE")
        let mode = (try? FD.readText("/sys/fs/btrfs/\(config.uuid)/qgroups/mode"))?.trimmingSpaces() ?? "qgroup"
        return PoolStatus(name: name, health: health, layout: config.layout, checksum: ChecksumAlgorithm(btrfsType: csum) ?? config.checksum,
                          size: size, used: size - free, available: UInt64(s.f_bavail) * UInt64(s.f_bsize), mountpoint: mountpoint,
                          quotaMode: mode, devices: devices, lastScrub: config.lastScrub)
    }

    /// Scrubs every device in parallel (BTRFS_IOC_SCRUB), reading all data and metadata and
    /// repairing from a good copy where one exists. `progress` is called about twice a second
    /// with the fraction of allocated bytes scrubbed.
    public func scrub(progress: ((Double) -> Void)? = nil) throws -> ScrubSummary {
        try requireMounted()
        let st = try status()
        let fd = try openRoot()
        defer { close(fd) }
        let start = Date()
        let ids = (1...max(1, st.devices.count)).map { UInt64($0) }
        let devIDs: [UInt64] = {
            var raw = [clinux_dev_stats](repeating: clinux_dev_stats(), count: 64)
            let n = clinux_btrfs_devices(fd, &raw, Int32(raw.count))
            return n > 0 ? raw.prefix(Int(n)).map(\.devid) : ids
        }()
        let total = max(1, st.devices.reduce(0) { $0 + $1.allocated })
        final class Results: @unchecked Sendable {
            var counters: [UInt64: [UInt64]] = [:]
            var errors: [String] = []
            let lock = NSLock()
        }
        let results = Results()
        let group = DispatchGroup()
        for id in devIDs {
            group.enter()
            Thread.detachNewThread {
                var out = [UInt64](repeating: 0, count: 15)
                let r = clinux_btrfs_scrub(fd, id, 0, &out)
                let e = errno
                results.lock.lock()
                results.counters[id] = out
                if r != 0 && e != ECANCELED { results.errors.append("device \(id): \(String(cString: strerror(e)))") }
                results.lock.unlock()
                group.leave()
            }
        }
        if let progress {
            while group.wait(timeout: .now() + 0.5) == .timedOut {
                var done: UInt64 = 0
                for id in devIDs {
                    var out = [UInt64](repeating: 0, count: 15)
                    if clinux_btrfs_scrub_progress(fd, id, &out) == 0 { done += out[2] + out[3] }
                }
                progress(min(1, Double(done) / Double(total)))
            }
            progress(1)
        } else {
            group.wait()
        }
        if !results.errors.isEmpty { throw LumosError.failed("scrub of pool '\(name)' failed: \(results.errors.joined(separator: "; "))") }
        let sum = { (i: Int) in results.counters.values.reduce(UInt64(0)) { $0 + $1[i] } }
        let summary = ScrubSummary(finished: Int(time(nil)), seconds: Date().timeIntervalSince(start), bytesScrubbed: sum(2) + sum(3),
                                   corrected: sum(12), uncorrectable: sum(11), csumErrors: sum(5), readErrors: sum(4), cancelled: false)
        let lock = try self.lock()
        defer { _ = lock }
        config.lastScrub = summary
        try config.save(root: root)
        return summary
    }
}
