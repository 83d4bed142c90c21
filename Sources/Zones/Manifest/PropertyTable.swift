import LumosCore

/// The vmadm manifest properties Lumos knows, with vmadm(8)'s names, units and defaults.
/// Memory sizes are MiB and quota is GiB, as in vmadm.
public enum PropertyTable {
    public static let minimumMemoryMiB: Int64 = 4
    static let maxMiB: Int64 = 1 << 40
    static let brands = ["lx"]
    /// Brands vmadm has that Lumos will add; named so the error can say "not yet" rather than "unknown".
    static let laterBrands = ["kvm": "brand \"kvm\" is not available in this Lumos yet; use \"lx\"",
                              "bhyve": "brand \"bhyve\" needs illumos; Lumos will run hardware VMs as brand \"kvm\"",
                              "joyent": "brand \"joyent\" runs illumos binaries, which Linux cannot; use \"lx\" with a Linux image",
                              "joyent-minimal": "brand \"joyent-minimal\" runs illumos binaries, which Linux cannot; use \"lx\""]

    public static let all: [PropertySpec] = [
        PropertySpec("uuid", .uuid, default: .none, "the VM's identifier; generated when omitted"),
        PropertySpec("alias", .string(maxLength: 255), update: .live, "a name for humans and tools (the tracer prints it)"),
        PropertySpec("brand", .brand, .required, "the kind of VM: lx (a Linux userland in a zone)"),
        PropertySpec("image_uuid", .uuid, .required, "the image the zone's root is cloned from"),
        PropertySpec("hostname", .hostname, default: .derived { $0["uuid"] }, update: .nextBoot, "the zone's hostname (default: the uuid)"),
        PropertySpec("autoboot", .boolean, default: .value(true), update: .live, "start the zone after create and when the host boots"),
        PropertySpec("max_physical_memory", .integer(min: minimumMemoryMiB, max: maxMiB, unit: "MiB"), default: .value(256), update: .live,
                     "memory cap in MiB"),
        PropertySpec("max_locked_memory", .integer(min: 0, max: maxMiB, unit: "MiB"), default: .derived { $0["max_physical_memory"] },
                     update: .live, "locked-memory cap in MiB (default: max_physical_memory)"),
        PropertySpec("max_swap", .integer(min: minimumMemoryMiB, max: maxMiB, unit: "MiB"),
                     default: .derived { .number(Double(max($0["max_physical_memory"]?.intValue ?? 256, 256))) },
                     update: .live, "memory+swap cap in MiB (default: max_physical_memory or 256, whichever is larger)"),
        PropertySpec("max_lwps", .integer(min: 1, max: 4_194_304, unit: "threads"), default: .value(2000), update: .live,
                     "cap on processes and threads in the zone"),
        PropertySpec("cpu_shares", .integer(min: 1, max: 262_144, unit: "shares"), default: .value(100), update: .live,
                     "relative CPU weight against other zones"),
        PropertySpec("cpu_cap", .integer(min: 0, max: 1_000_000, unit: "percent of one CPU"), update: .live,
                     "CPU cap in percent of one CPU (100 = one CPU; 0 or absent = no cap)"),
        PropertySpec("zfs_io_priority", .integer(min: 1, max: 1000, unit: "weight"), default: .value(100), update: .live,
                     "relative I/O weight against other zones"),
        PropertySpec("quota", .integer(min: 0, max: 1 << 30, unit: "GiB"), default: .value(10), update: .live,
                     "size cap of the zone's dataset in GiB (0 = none)"),
        PropertySpec("tmpfs", .integer(min: 0, max: maxMiB, unit: "MiB"),
                     default: .derived { p in p["max_physical_memory"]?.intValue.map { .number(Double(TmpfsBudget(maxPhysicalMemory: UInt64($0)).maxTmp)) } },
                     update: .nextBoot,
                     "size of the tmpfs on /tmp in MiB (0 = no tmpfs; at most what max_physical_memory leaves after /dev/shm and room for processes, the default)"),
        PropertySpec("resolvers", .ipAddressList, default: .value([]), update: .nextBoot, "DNS servers written to /etc/resolv.conf"),
        PropertySpec("customer_metadata", .stringMap(allowScalars: false), default: .value([:]), update: .live, "key/value metadata for the tenant"),
        PropertySpec("internal_metadata", .stringMap(allowScalars: false), default: .value([:]), update: .live, "key/value metadata for the operator"),
        PropertySpec("tags", .stringMap(allowScalars: true), default: .value([:]), update: .live, "key/value tags for searching (vmadm lookup tags.k=v)"),
        PropertySpec("filesystems", .filesystems, default: .value([]), update: .no, "host directories bind-mounted into the zone (type lofs)"),
        PropertySpec("init_name", .string(maxLength: 1024), default: .value("/sbin/init"), update: .nextBoot,
                     "the program run as the zone's PID 1"),
        PropertySpec("nics", .nics, default: .value([]), update: .live,
                     "virtual NICs (update with add_nics/remove_nics/update_nics, matched by mac; a running zone gets them at once)"),
        PropertySpec("owner_uuid", .uuid, default: .value("00000000-0000-0000-0000-000000000000"), update: .live, "the tenant owning the VM"),
        PropertySpec("billing_id", .uuid, default: .value("00000000-0000-0000-0000-000000000000"), update: .live, "the package the VM was created from"),
        PropertySpec("dns_domain", .hostname, default: .value("local"), update: .nextBoot, "the search domain in /etc/resolv.conf"),
        PropertySpec("zlog_max_size", .integer(min: 4096, max: 1 << 40, unit: "bytes"), update: .nextBoot,
                     "cap on the console log in bytes; past it the log is rotated to console.log.0 (default 5 MiB)"),
        PropertySpec("lumos_allow_io_uring", .boolean, default: .value(false), update: .nextBoot,
                     "let the zone use io_uring (the default seccomp profile refuses io_uring_setup/enter/register, as Docker's does)"),

        // Computed by Lumos and printed by get/list, as vmadm prints them.
        PropertySpec("type", .string(maxLength: 8), .readOnly, "LX for zones of brand lx (vmadm: OS, LX, KVM)"),
        PropertySpec("ram", .integer(min: 0, max: maxMiB, unit: "MiB"), .readOnly, "memory of the VM in MiB (for zones: max_physical_memory)"),
        PropertySpec("state", .string(maxLength: 32), .readOnly, "provisioning, running, stopped, failed, receiving"),
        PropertySpec("zone_state", .string(maxLength: 32), .readOnly, "the kernel's view: installed, running"),
        PropertySpec("pid", .integer(min: 0, max: Int64(Int32.max), unit: ""), .readOnly, "host pid of the zone's init while running"),
        PropertySpec("zoneid", .integer(min: 0, max: Int64(Int32.max), unit: ""), .readOnly, "numeric id of the running zone (its init's pid namespace)"),
        PropertySpec("zonename", .uuid, .readOnly, "the zone's name (the uuid)"),
        PropertySpec("zonepath", .string(maxLength: 4096), .readOnly, "directory of the zone's dataset"),
        PropertySpec("zfs_filesystem", .string(maxLength: 1024), .readOnly, "the zone's dataset (zones/<uuid>)"),
        PropertySpec("zpool", .string(maxLength: 255), .readOnly, "the pool holding the zone (zones)"),
        PropertySpec("create_timestamp", .timestamp, .readOnly, "when the VM was created (ISO 8601)"),
        PropertySpec("last_modified", .timestamp, .readOnly, "when the manifest last changed (ISO 8601)"),
        PropertySpec("boot_timestamp", .timestamp, .readOnly, "when the running zone last started"),
        PropertySpec("snapshots", .computed, .readOnly, "snapshots made with create-snapshot"),

        // vmadm properties that have no meaning on Linux: rejected with the reason, never ignored.
        PropertySpec("limit_priv", .string(maxLength: 4096), .unsupported("illumos privilege sets do not exist on Linux; zones get a fixed, reduced capability set"), ""),
        PropertySpec("fs_allowed", .string(maxLength: 4096), .unsupported("zones cannot mount file systems on Linux (no CAP_SYS_ADMIN); use filesystems[] bind mounts"), ""),
        PropertySpec("delegate_dataset", .boolean, .unsupported("delegated datasets need ZFS administration inside the zone, which Lumos storage does not offer"), ""),
        PropertySpec("kernel_version", .string(maxLength: 64), .unsupported("an lx zone runs on the host's Linux kernel; its version cannot be faked"), ""),
        PropertySpec("firewall_enabled", .boolean, .unsupported("Lumos has no per-zone firewall (fwadm) yet; use nics[].allowed_ips and blocked_outgoing_ports"), ""),
        PropertySpec("indestructible_zoneroot", .boolean, .unsupported("not implemented in Lumos; take a snapshot instead"), ""),
        PropertySpec("indestructible_delegated", .boolean, .unsupported("delegated datasets are not supported"), ""),
        PropertySpec("zfs_root_recsize", .integer(min: 0, max: 1 << 20, unit: "bytes"), .unsupported("btrfs has no per-dataset record size"), ""),
        PropertySpec("zfs_root_compression", .string(maxLength: 32), .unsupported("compression is a pool property in Lumos storage"), ""),
        PropertySpec("cpu_type", .string(maxLength: 64), .unsupported("cpu_type is for kvm VMs, which this Lumos does not run yet"), ""),
        PropertySpec("vcpus", .integer(min: 1, max: 64, unit: "CPUs"), .unsupported("vcpus is for kvm VMs; for zones use cpu_cap"), ""),
        PropertySpec("disks", .computed, .unsupported("disks are for kvm VMs, which this Lumos does not run yet"), ""),
        PropertySpec("docker", .boolean, .unsupported("docker-branded lx zones are not supported"), ""),
    ]

    /// Read-only properties computed from the kernel and pool when printing, never stored
    /// (create_timestamp and last_modified are stored).
    public static let runtimeComputed: Set<String> = ["type", "ram", "state", "zone_state", "pid", "zoneid", "zonename", "zonepath",
                                                      "zfs_filesystem", "zpool", "boot_timestamp", "snapshots"]

    public static let byName: [String: PropertySpec] = {
        var d: [String: PropertySpec] = [:]
        for p in all { d[p.name] = p }
        return d
    }()

    public static func spec(_ name: String) -> PropertySpec? { byName[name] }

    /// The closest known property name, for "did you mean" in errors.
    public static func suggestion(for name: String) -> String? {
        let candidates = all.filter { if case .unsupported = $0.access { return false }; return true }.map(\.name)
        let scored = candidates.map { ($0, editDistance(name, $0)) }.min { $0.1 < $1.1 }
        if let best = scored, best.1 <= max(2, name.count / 3) { return best.0 }
        // Abbreviations (max_physmem): the longest shared prefix, when it is a real word's worth.
        let byPrefix = candidates.map { ($0, zip($0, name).prefix { $0 == $1 }.count) }.max { $0.1 < $1.1 }
        guard let p = byPrefix, p.1 >= 6 else { return nil }
        return p.0
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var prev = Array(0...b.count)
        for i in 1...a.count {
            var cur = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            prev = cur
        }
        return prev[b.count]
    }
}
