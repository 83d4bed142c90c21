import CLinux
import Glibc
import LumosCore

/// A guest NIC's host end: a tap created in a switch's network namespace and held open by
/// Lumos, so QEMU gets it as a descriptor and needs no access to the switch (docs/vm.md).
/// The tap is not persistent: it disappears when the last descriptor (ours and QEMU's copy)
/// is closed, so a killed VM leaves no link behind. A plain port with no anti-spoofing; a
/// tenant's NICs as taps come from `TenantNetwork.attachTaps` (docs/net.md, "Tenant taps").
public final class Tap {
    public let name: String
    public let namespace: NetNamespace
    public private(set) var descriptor: Int32

    /// Creates the tap in `namespace` and, when given, makes it a port of `bridge` there (up).
    public init(name: String, namespace: NetNamespace = .current, bridge: String? = nil) throws {
        if name.isEmpty || name.utf8.count > 15 || name.contains("/") || name.contains(" ") {
            throw LumosError.invalid("tap name \"\(name)\": use 1-15 characters without '/' or spaces")
        }
        self.name = name
        self.namespace = namespace
        descriptor = try Self.open(name: name, namespace: namespace)
        do {
            var lines = ["link set dev \(name) up"]
            if let bridge { lines.insert("link set dev \(name) master \(bridge)", at: 0) }
            try NetTools(namespace).ipBatch(lines)
        } catch {
            close()   // deinit runs too (the object is whole): close() closes only once
            throw error
        }
    }

    /// Creates (or attaches to) the non-persistent tap `name` in `namespace`, with a virtio-net
    /// header (QEMU passes offloads through); returns its descriptor, O_CLOEXEC.
    static func open(name: String, namespace: NetNamespace) throws -> Int32 {
        let open = { try sys("open /dev/net/tun", name) { clinux_tap_open(name, 1) } }
        guard let path = namespace.path else { return try open() }
        try namespace.check()
        return try NetTools.withThread(inNamespace: path, open)
    }

    /// Closes Lumos's descriptor; the link goes once QEMU's copy is closed too.
    public func close() {
        if descriptor >= 0 { Glibc.close(descriptor); descriptor = -1 }
    }

    deinit { close() }
}
