/// Bandwidth caps with tc, as docs/architecture.md measured them here (tc police and matchall are missing):
/// - to the tenant: a tbf on the host side of its veth (that side's egress is the tenant's rx);
/// - from the tenant: an ingress qdisc on the host side, a u32 match-all filter whose mirred
///   action redirects every frame to an ifb, and a tbf on the ifb's egress.
public enum Bandwidth {
    /// tc's rate text for Mbit/s (fractions as kbit).
    public static func rate(_ mbps: Double) -> String {
        let kbit = (mbps * 1000).rounded()
        return kbit.truncatingRemainder(dividingBy: 1000) == 0 ? "\(Int(kbit / 1000))mbit" : "\(Int(kbit))kbit"
    }

    /// Bucket size: 20 ms of traffic, at least 16 KiB so one TSO burst and the kernel's timer
    /// granularity (rate/HZ) fit; smaller buckets undershoot the rate.
    public static func burst(_ mbps: Double) -> Int {
        max(16 * 1024, Int(mbps * 1_000_000 / 8 / 50))
    }

    public static func tbf(dev: String, mbps: Double) -> String {
        "qdisc replace dev \(dev) root tbf rate \(rate(mbps)) burst \(burst(mbps)) latency 50ms"
    }

    /// tc lines that send everything `dev` receives through `ifb`, then cap the ifb.
    public static func ingressCap(dev: String, ifb: String, mbps: Double) -> [String] {
        [
            "qdisc replace dev \(dev) handle ffff: ingress",
            "filter replace dev \(dev) parent ffff: protocol all prio 1 handle 800::800 u32 match u32 0 0 action mirred egress redirect dev \(ifb)",
            tbf(dev: ifb, mbps: mbps),
        ]
    }

    /// tc lines that set the caps of one NIC; nil means no cap in that direction.
    /// `force` batches (tc -force) ignore deleting what is not there.
    public static func lines(hostLink: String, ifb: String, rxMbps: Double?, txMbps: Double?) -> [String] {
        var out: [String] = []
        if let rx = rxMbps { out.append(tbf(dev: hostLink, mbps: rx)) }
        if let tx = txMbps { out += ingressCap(dev: hostLink, ifb: ifb, mbps: tx) }
        return out
    }

    /// tc lines that remove caps (run with -force: a missing qdisc is not an error).
    public static func removalLines(hostLink: String, rx: Bool, tx: Bool) -> [String] {
        (rx ? ["qdisc del dev \(hostLink) root"] : []) + (tx ? ["qdisc del dev \(hostLink) ingress"] : [])
    }
}
