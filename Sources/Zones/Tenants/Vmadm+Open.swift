import Images
import LumosCore
import Net

extension Vmadm {
    /// Opens the host's tenants as every vmadm command and every vmadmd request does: the
    /// `zones` pool, the zone runtime and the host's network, then finishes or undoes what a
    /// killed command left (docs/architecture.md). Nothing is cached between calls, so the
    /// daemon sees exactly what the CLI sees (docs/daemon.md).
    public static func openHost(root: StateRoot) throws -> Vmadm {
        let datasets = try PoolDatasets.open(root: root)
        // NICs go on switches in the host's network namespace, or in $LUMOS_NET_NETNS when set.
        let network = NetAttachment(host: try NetworkHost.fromEnvironment(root: root))
        let vmadm = Vmadm(root: root, datasets: datasets, zones: try RuntimeZones(root: root), network: network)
        try vmadm.recover()
        return vmadm
    }
}
