import LumosCore

/// A rule between properties, checked once for every create and update (the runtime and the
/// kernel get only manifests that passed it).
struct PropertyRule: Sendable {
    /// The property the error names.
    let property: String
    /// The message when the rule is broken, nil when it holds.
    let violation: @Sendable (Manifest) -> String?
}

/// vmadm(8)'s rules between properties. The rules across NICs (one primary, distinct MACs
/// and addresses) are the Net module's (`NicValidation.checkAcross`).
enum PropertyRules {
    /// The least a jail may have beyond ram: QEMU's own memory under TCG (docs/vm.md "Memory").
    static let kvmMinimumOverheadMiB: Int64 = 128
    static let all: [PropertyRule] = [
        PropertyRule(property: "max_swap") { m in
            guard let ram = m.integer("max_physical_memory"), let swap = m.integer("max_swap"), swap < ram else { return nil }
            return "max_swap: \(swap) MiB is below max_physical_memory (\(ram) MiB); max_swap counts memory plus swap, so set it to at least \(ram)"
        },
        PropertyRule(property: "max_locked_memory") { m in
            guard let ram = m.integer("max_physical_memory"), let locked = m.integer("max_locked_memory"), locked > ram else { return nil }
            return "max_locked_memory: \(locked) MiB is above max_physical_memory (\(ram) MiB); lower it or raise max_physical_memory"
        },
        // /tmp, /dev/shm and /dev are charged to the zone's memory (docs/security.md, "Memory").
        PropertyRule(property: "tmpfs") { m in
            guard let ram = m.integer("max_physical_memory"), let tmpfs = m.integer("tmpfs") else { return nil }
            let budget = TmpfsBudget(maxPhysicalMemory: UInt64(ram))
            guard tmpfs > budget.maxTmp else { return nil }
            return "tmpfs: \(tmpfs) MiB leaves too little of max_physical_memory (\(ram) MiB) once /dev/shm (\(budget.shm) MiB) and room for processes (\(budget.reserve) MiB) are counted; use at most \(budget.maxTmp)"
        },
        PropertyRule(property: "max_shm_memory") { m in
            guard let ram = m.integer("max_physical_memory"), let shm = m.integer("max_shm_memory"), shm > ram else { return nil }
            return "max_shm_memory: \(shm) MiB is above max_physical_memory (\(ram) MiB); shared memory is the zone's memory, so lower it"
        },
        // QEMU needs room beyond the guest's memory in its jail (docs/vm.md "Memory").
        PropertyRule(property: "max_physical_memory") { m in
            guard m.brand == "kvm", let ram = m.integer("ram"), let cap = m.integer("max_physical_memory"), cap < ram + kvmMinimumOverheadMiB else { return nil }
            return "max_physical_memory: \(cap) MiB cannot hold the guest's ram (\(ram) MiB) and QEMU itself; give at least \(ram + kvmMinimumOverheadMiB), or leave it out (ram + \(PropertyTable.kvmOverheadMiB))"
        },
        PropertyRule(property: "disks") { m in
            guard m.brand == "kvm" else { return nil }
            let disks = m.disks
            guard let boot = disks.first(where: \.boot) ?? disks.first else { return nil }
            if boot.media == .disk && boot.imageUUID == nil && !disks.contains(where: { $0.media == .cdrom }) {
                return "disks: the boot disk has no image_uuid and there is no cdrom to install from; give the boot disk an image_uuid"
            }
            let ide = disks.filter { $0.model == .ide }.count
            if ide > 4 { return "disks: \(ide) ide disks; the pc machine's IDE buses hold 4, use virtio or scsi for the others" }
            return nil
        },
        PropertyRule(property: "nics") { m in
            guard m.brand != "kvm", let i = m.nics.firstIndex(where: { $0.objectValue?["model"] != nil }) else { return nil }
            return "nics[\(i)].model: NIC models are for kvm VMs; remove it for an lx zone"
        },
        PropertyRule(property: "routes") { m in
            let nics = m.nics.compactMap(\.objectValue)
            for (dest, gw) in m.routes {
                switch RouteGateway(gw) {
                case .nic(let i) where i >= nics.count:
                    return "routes.\(dest): \(gw) names a NIC this VM does not have (it has \(nics.count)); use nics[0] to nics[\(max(nics.count - 1, 0))]"
                case .mac(let mac) where !nics.contains(where: { $0["mac"]?.stringValue?.lowercased() == mac }):
                    return "routes.\(dest): \(gw) names a MAC no NIC of this VM has; see vmadm get UUID for its NICs"
                default: continue
                }
            }
            return nil
        },
    ]
}

/// The gateway of a vmadm route: an address, or a link-local route over a NIC named by its
/// index (`nics[1]`) or its MAC (`macs[aa:bb:cc:12:34:56]`) (vmadm(8) "routes").
enum RouteGateway: Equatable {
    case address(String)
    case nic(Int)
    case mac(String)
    case invalid

    init(_ text: String) {
        func inside(_ prefix: String) -> String? {
            guard text.hasPrefix(prefix + "["), text.hasSuffix("]") else { return nil }
            return String(text.dropFirst(prefix.count + 1).dropLast())
        }
        if ValueChecks.isIP(text) { self = .address(text) }
        else if let n = inside("nics").flatMap({ Int($0) }), n >= 0 { self = .nic(n) }
        else if let m = inside("macs"), ValueChecks.isUnicastMAC(m) { self = .mac(m.lowercased()) }
        else { self = .invalid }
    }
}
