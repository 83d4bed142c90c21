import Images
import LumosCore
import Storage
import Zones

/// vmadmd's autoboot (vmadm(8) autoboot): every tenant with autoboot=true that is not running
/// is started, all at once (a task each, no order: tenants do not depend on one another), when
/// the daemon starts and whenever the `zones` pool becomes available again: at once after
/// `lumos pool import` (its notice), and otherwise when the pool poll (every two seconds)
/// finds it back.
struct Autoboot: Sendable {
    let environment: DaemonEnvironment

    func watch() async {
        var available = false
        let notice = PoolImportNotice(root: environment.root)
        var lastNotice = notice.current()
        var tick = 0
        while !Task.isCancelled {
            // `pool import` replaces its notice file (Storage's PoolImportNotice): looked at
            // four times a second, so the tenants come back at once, also after an export and
            // import quicker than the pool poll below.
            let n = notice.current()
            let imported = n != lastNotice
            lastNotice = n
            if imported { VmadmDaemon.log("autoboot: pool import noticed") }
            if imported || tick % 8 == 0 {
                let now = await poolAvailable()
                if now && (!available || imported) { await bootAll() }
                available = now
            }
            tick += 1
            try? await Task.sleep(for: .milliseconds(250))
        }
    }

    func poolAvailable() async -> Bool {
        let root = environment.root
        return (try? await Detached.run { _ = try PoolDatasets.open(root: root); return true }) ?? false
    }

    /// Starts the autoboot tenants that are not running; returns the uuids started.
    @discardableResult
    func bootAll() async -> [String] {
        let pending: [String]
        do {
            pending = try await environment.vmadm { v in
                v.store.all().filter { $0.autoboot && !v.zones.isRunning($0.uuid) }.map(\.uuid)
            }
        } catch {
            VmadmDaemon.log("autoboot: \(oneLine(error))")
            return []
        }
        if pending.isEmpty { return [] }
        VmadmDaemon.log("autoboot: starting \(pending.count) tenant(s)")
        let environment = self.environment
        return await withTaskGroup(of: String?.self) { group in
            for uuid in pending {
                group.addTask {
                    do {
                        try await environment.vmadm { v in
                            // Checked again: a CLI start may have come first.
                            if !v.zones.isRunning(uuid) { try v.start(uuid) }
                        }
                        VmadmDaemon.log("autoboot: started VM \(uuid)")
                        return uuid
                    } catch {
                        VmadmDaemon.log("autoboot: VM \(uuid) did not start: \(oneLine(error))")
                        return nil
                    }
                }
            }
            var started: [String] = []
            for await u in group { if let u { started.append(u) } }
            return started
        }
    }
}
