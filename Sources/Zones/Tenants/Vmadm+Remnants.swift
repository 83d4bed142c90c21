import LumosCore

extension Vmadm {
    /// What is left of tenant `uuid` (empty once `delete` has finished): its manifest or
    /// directory, dataset, cgroup, processes, and any pending intent on this state root.
    /// The check tests of vmadm and of the daemon make after a delete.
    public func remnants(of uuid: String) -> [String] {
        var out: [String] = []
        if store.exists(uuid) || Files.exists(store.tenantDirectory(uuid)) { out.append("manifest") }
        if datasets.exists("zones/\(uuid)") { out.append("dataset") }
        if let z = zones as? RuntimeZones {
            if z.runtime.cgroup(uuid).exists { out.append("cgroup") }
            if z.isRunning(uuid) { out.append("process") }
        }
        if !store.journal.pendingSubjects().isEmpty { out.append("intent") }
        return out
    }
}
