import LumosCore

/// Every vmadm(8) manifest property, with vmadm's names, units, defaults and list headers
/// (src/vm/man/vmadm.8.md, src/vm/node_modules/proptable.js and LIST_FIELDS in
/// src/vm/sbin/vmadm.js). Each property is defined here and nowhere else: validation,
/// defaults, `list` columns, what `get` computes, which properties update live and the
/// runtime's limits are all read from these rows (docs/vmadm.md shows how to add one).
/// Memory sizes are MiB and quota is GiB, as in vmadm.
public enum PropertyTable {
    public static let minimumMemoryMiB: Int64 = 4
    static let maxMiB: Int64 = 1 << 40
    /// MiB a kvm VM's jail gets beyond the guest's ram: QEMU's own memory (about 130 MiB
    /// measured under TCG with a 64 MiB translation cache, docs/vm.md "Memory"), with room.
    /// vmadm adds 1024 for illumos KVM; QEMU needs less.
    public static let kvmOverheadMiB: Int64 = 256
    /// Brands this Lumos runs: lx zones and kvm hardware VMs (QEMU jailed in a zone, docs/vm.md).
    public static let runningBrands: Set<Brand> = [.lx, .kvm]
    /// Brands vmadm has that this Lumos does not run, with the reason (so the error says
    /// "not yet" or "cannot" rather than "unknown").
    static let otherBrands = ["bhyve": "brand \"bhyve\" needs illumos; Lumos will run hardware VMs as brand \"kvm\"",
                              "joyent": "brand \"joyent\" runs illumos binaries, which Linux cannot; use \"lx\" with a Linux image",
                              "joyent-minimal": "brand \"joyent-minimal\" runs illumos binaries, which Linux cannot; use \"lx\"",
                              "builder": "brand \"builder\" runs illumos binaries, which Linux cannot; use \"lx\""]

    static let zeroUUID: JSONValue = "00000000-0000-0000-0000-000000000000"
    static let bhyveOnly = "is for bhyve VMs; bhyve needs illumos, and Lumos will run hardware VMs as brand kvm"
    static let receiveOnly = "appears only in SmartOS vmadm receive streams; vmadm send/receive between Lumos hosts carries the manifest itself"
    static let delegated = "delegated datasets need ZFS administration inside the zone, which Lumos storage does not offer"
    static let spiceLater = "SPICE needs a TCP listener that the jail's network namespace cannot offer the host; use vnc_port 0 (a unix socket) or the serial console"

    private static func mib(_ n: Int64) -> UInt64? { n > 0 ? UInt64(n) : nil }

    public static let all: [PropertySpec] = [
        // Identity
        PropertySpec("uuid", .uuid, list: .init("UUID", width: 36), "the VM's identifier; generated when omitted"),
        PropertySpec("alias", .string(maxLength: 255), update: .live, list: .init("ALIAS", width: 10), "a name for humans and tools (the tracer prints it)"),
        PropertySpec("brand", .brand, .required, list: .init("BRAND", width: 14), "the kind of VM: lx (a Linux userland in a zone) or kvm (a hardware VM: QEMU in a jail zone)"),
        PropertySpec("image_uuid", .uuid, list: .init("IMAGE_UUID", width: 36), applied: .vmadm, "the image the zone's root is cloned from"),
        PropertySpec("zonename", .uuid, list: .init("ZONENAME", width: 12), source: .computed { .string($0.manifest.uuid) }, applied: .vmadm,
                     actions: [.create, .list, .get],
                     "the zone's name; Lumos names zones by their uuid, so it may only repeat the uuid (default: the uuid)"),
        PropertySpec("zpool", .pool, list: .init("ZPOOL", width: 12), source: .computed { .string($0.pool) }, applied: .vmadm, actions: [.create, .list, .get],
                     "the pool holding the zone's dataset; must be the pool vmadm uses (zones)"),
        PropertySpec("hostname", .hostname, default: .derived { $0["uuid"] }, update: .nextBoot, list: .init("HOSTNAME", width: 32),
                     applied: .zoneFiles(ZoneFilesSetting { $0.hostname = $1.stringValue ?? $0.hostname }),
                     "the zone's hostname, written to /etc/hostname and set in its uts namespace (default: the uuid)"),
        PropertySpec("owner_uuid", .uuid, default: .value(zeroUUID), update: .live, list: .init("OWNER_UUID", width: 36), "the tenant owning the VM"),
        PropertySpec("billing_id", .uuid, default: .value(zeroUUID), update: .live, list: .init("BILLING_ID", width: 36), "the billing category (package) of the VM"),
        PropertySpec("package_name", .string(maxLength: 255), update: .live, list: .init("PACKAGE_NAME", width: 32), "the package the VM was made from (kept for tools)"),
        PropertySpec("package_version", .string(maxLength: 255), update: .live, list: "PACKAGE_VER", "the version of that package (kept for tools)"),
        PropertySpec("do_not_inventory", .boolean, update: .live, list: .init("DNI", width: 5),
                     "keep the VM out of external inventories (kept for tools; shown only when true, as vmadm does)").omittedWhenFalse(),
        PropertySpec("autoboot", .boolean, default: .value(true), update: .live, list: "AUTOBOOT", applied: .vmadm,
                     "start the zone after create (and when the host boots, once the daemon exists); start sets it true and stop false, as vmadm does"),
        PropertySpec("nowait", .boolean, brands: [.lx], actions: [.create, .get],
                     "vmadm: the create is done once the zone first starts; Lumos's create always returns then"),

        // Memory and CPU: resource controls of the running zone.
        PropertySpec("max_physical_memory", .integer(min: minimumMemoryMiB, max: maxMiB, unit: "MiB"), default: .derived { p in
                         // vmadm: a kvm VM's cap is its ram plus the hypervisor's overhead.
                         guard p["brand"] == "kvm" else { return .number(256) }
                         return .number(Double((p["ram"]?.intValue ?? 256) + kvmOverheadMiB))
                     }, update: .live,
                     list: "MAX_PHYS", applied: .limit(LimitSetting(\.maxPhysicalMemory, mib)),
                     "memory cap in MiB (memory.max / memory.limit_in_bytes); kvm: of the jail around QEMU, default ram plus \(kvmOverheadMiB) MiB for QEMU itself"),
        PropertySpec("ram", .integer(min: minimumMemoryMiB, max: maxMiB, unit: "MiB"), default: .derived { $0["brand"] == "kvm" ? .number(256) : nil },
                     update: .live, list: .init("RAM", width: 7), applied: .sameAs("max_physical_memory"),
                     "kvm: the guest's memory in MiB (default 256; takes effect at the next boot), and the jail's max_physical_memory is ram plus QEMU's overhead; for zones the same as max_physical_memory (vmadm: setting ram on an OS VM sets it)"),
        PropertySpec("max_locked_memory", .integer(min: 0, max: maxMiB, unit: "MiB"), default: .derived { $0["max_physical_memory"] },
                     update: .live, list: "MAX_LOCKED", applied: .limit(LimitSetting(\.maxLockedMemory)),
                     "locked-memory cap in MiB, RLIMIT_MEMLOCK (default: max_physical_memory)"),
        PropertySpec("max_swap", .integer(min: 256, max: maxMiB, unit: "MiB"),
                     default: .derived { .number(Double(max($0["max_physical_memory"]?.intValue ?? 0, 256))) },
                     update: .live, list: "MAX_SWAP", applied: .limit(LimitSetting(\.maxSwap, mib)),
                     "memory+swap cap in MiB, at least 256 (default: max_physical_memory or 256, whichever is larger)"),
        PropertySpec("max_lwps", .integer(min: 1, max: 4_194_304, unit: "threads"), default: .value(2000), update: .live, list: "MAX_LWP",
                     applied: .limit(LimitSetting(\.maxLwps)), "cap on processes and threads in the zone (pids.max)"),
        PropertySpec("cpu_shares", .integer(min: 1, max: 262_144, unit: "shares"), default: .value(100), update: .live, list: "CPU_SHARE",
                     applied: .limit(LimitSetting(\.cpuShares)), "relative CPU weight against other zones (cpu.weight / cpu.shares)"),
        PropertySpec("cpu_cap", .integer(min: 0, max: 1_000_000, unit: "percent of one CPU"), update: .live, list: "CPU_CAP",
                     applied: .limit(LimitSetting(\.cpuCap, { $0 > 0 ? UInt64($0) : nil })),
                     "CPU cap in percent of one CPU (100 = one CPU; 0 or absent = no cap)"),
        PropertySpec("zfs_io_priority", .integer(min: 1, max: 1000, unit: "weight"), default: .value(100), update: .live, list: "IO_PRIORITY",
                     applied: .limit(LimitSetting(\.ioWeight)), "relative I/O weight against other zones (io.weight / blkio.bfq.weight)"),
        // System V IPC caps: sysctls of the zone's own ipc namespace, written from the host at
        // boot and on update (the zone's /proc/sys is read-only).
        PropertySpec("max_shm_memory", .integer(min: 1, max: maxMiB, unit: "MiB"), update: .live,
                     applied: .limit(LimitSetting(\.maxShmMemory)),
                     "System V shared memory in MiB the zone may hold (kernel.shmall and kernel.shmmax in its ipc namespace)"),
        PropertySpec("max_shm_ids", .integer(min: 1, max: 32768, unit: "segments"), update: .live,
                     applied: .limit(LimitSetting(\.maxShmIds)), "System V shared memory segments (kernel.shmmni in its ipc namespace)"),
        PropertySpec("max_sem_ids", .integer(min: 1, max: 32000, unit: "semaphore sets"), update: .live,
                     applied: .limit(LimitSetting(\.maxSemIds)), "System V semaphore sets (SEMMNI of kernel.sem in its ipc namespace)"),
        PropertySpec("max_msg_ids", .integer(min: 1, max: 32768, unit: "message queues"), update: .live,
                     applied: .limit(LimitSetting(\.maxMsgIds)), "System V message queues (kernel.msgmni in its ipc namespace)"),

        // Storage
        PropertySpec("quota", .integer(min: 0, max: 1 << 30, unit: "GiB"), default: .value(10), update: .live, list: "QUOTA",
                     applied: .dataset(DatasetSetting { d, v in d.quotaBytes = v.intValue.flatMap { $0 > 0 ? UInt64($0) << 30 : nil } }),
                     "size cap of the zone's dataset in GiB (0 = none)"),
        PropertySpec("tmpfs", .integer(min: 0, max: maxMiB, unit: "MiB"), brands: [.lx],
                     default: .derived { p in p["max_physical_memory"]?.intValue.map { .number(Double(TmpfsBudget(maxPhysicalMemory: UInt64($0)).maxTmp)) } },
                     update: .nextBoot, list: "TMPFS", applied: .boot(LaunchSetting { $0.tmpfsMiB = UInt64(max(0, $1.intValue ?? 0)) }),
                     "size of the tmpfs on /tmp in MiB (0 = no tmpfs; at most what max_physical_memory leaves after /dev/shm and room for processes, the default)"),
        PropertySpec("filesystems", .filesystems, brands: [.lx], default: .value([]), update: .nextBoot,
                     applied: .boot(LaunchSetting { l, v in l.mounts = (v.arrayValue ?? []).compactMap { FilesystemMount(json: $0) } }), actions: [.create, .get],
                     "host directories bind-mounted into the zone (type lofs); change with add_/remove_/update_filesystems, matched by target"),
        PropertySpec("indestructible_zoneroot", .boolean, update: .live, list: "INDESTR_ROOT", applied: .vmadm,
                     "a held snapshot @indestructible of the zone's dataset: delete, and a destroy of the dataset, refuse until this is set false (shown only when true)").omittedWhenFalse(),

        // Inside the zone
        PropertySpec("init_name", .string(maxLength: 1024), brands: [.lx], default: .value("/sbin/init"), update: .nextBoot,
                     applied: .boot(LaunchSetting { l, v in l.initCommand = v.stringValue.map { [$0] } ?? [] }),
                     "the program run as the zone's PID 1"),
        PropertySpec("restart_init", .boolean, brands: [.lx], update: .nextBoot,
                     applied: .boot(LaunchSetting { $0.restartInit = $1.boolValue ?? false }),
                     "start init_name again when it exits (it then runs as the child of Lumos's init, not as PID 1, so not for inits that must be PID 1 such as busybox init or systemd); false or absent: the zone stops"),
        PropertySpec("resolvers", .ipAddressList, default: .value([]), update: .nextBoot,
                     applied: .zoneFiles(ZoneFilesSetting { $0.resolvers = $1.arrayValue?.compactMap(\.stringValue) ?? [] }),
                     "DNS servers written to /etc/resolv.conf at boot (and at once when maintain_resolvers is true)"),
        PropertySpec("maintain_resolvers", .boolean, brands: [.lx], update: .live,
                     applied: .zoneFiles(ZoneFilesSetting { $0.maintainResolvers = $1.boolValue ?? false }),
                     "rewrite a running zone's /etc/resolv.conf when resolvers change"),
        PropertySpec("dns_domain", .hostname, brands: [.lx], default: .value("local"), update: .nextBoot, list: .init("DOMAIN", width: 32),
                     applied: .zoneFiles(ZoneFilesSetting { $0.searchDomain = $1.stringValue.flatMap { $0 == "local" ? nil : $0 } }),
                     "the search domain in /etc/resolv.conf"),
        PropertySpec("nics", .nics, default: .value([]), update: .live, applied: .network, actions: [.create, .get],
                     "virtual NICs (change with add_nics/remove_nics/update_nics, matched by mac; a running zone gets them at once)"),
        PropertySpec("zlog_max_size", .integer(min: 4096, max: 1 << 40, unit: "bytes"), update: .nextBoot,
                     applied: .boot(LaunchSetting { l, v in l.consoleLog?.maxBytes = v.intValue.map { UInt64($0) } ?? ConsoleLog.defaultMaxBytes }),
                     "cap on the console log in bytes (a kvm VM's serial console); past it the log is rotated to console.log.0 (default 5 MiB)"),
        PropertySpec("lumos_allow_io_uring", .boolean, default: .value(false), update: .nextBoot,
                     applied: .boot(LaunchSetting { $0.allowIOUring = $1.boolValue ?? false }),
                     "let the zone use io_uring (the default seccomp profile refuses io_uring_setup/enter/register, as Docker's does)"),
        PropertySpec("routes", .routes, default: .value([:]), update: .live, applied: .network,
                     "static routes in the zone: destination (address or CIDR) → gateway address, \"nics[N]\" or \"macs[MAC]\" (link-local)"),

        // Metadata and tags
        PropertySpec("customer_metadata", .stringMap(allowScalars: false), default: .value([:]), update: .live,
                     "key/value metadata for the tenant; served inside lx zones by mdata-get, changed there by mdata-put/mdata-delete (docs/vmadm.md, Metadata)"),
        PropertySpec("internal_metadata", .stringMap(allowScalars: false), default: .value([:]), update: .live,
                     "key/value metadata for the operator; stored, not yet served inside the zone"),
        PropertySpec("internal_metadata_namespaces", .stringList, update: .live,
                     "key prefixes that come from internal_metadata (kept for the metadata service)"),
        PropertySpec("tags", .stringMap(allowScalars: true), default: .value([:]), update: .live, "key/value tags for searching (vmadm lookup tags.k=v)"),

        // Edits of list and map properties in update payloads (vmadm(8) "update").
        PropertySpec.edit("set_tags", .set, of: "tags"),
        PropertySpec.edit("remove_tags", .remove, of: "tags"),
        PropertySpec.edit("set_customer_metadata", .set, of: "customer_metadata"),
        PropertySpec.edit("remove_customer_metadata", .remove, of: "customer_metadata"),
        PropertySpec.edit("set_internal_metadata", .set, of: "internal_metadata"),
        PropertySpec.edit("remove_internal_metadata", .remove, of: "internal_metadata"),
        PropertySpec.edit("set_routes", .set, of: "routes"),
        PropertySpec.edit("remove_routes", .remove, of: "routes"),
        PropertySpec.edit("add_nics", .add, of: "nics"),
        PropertySpec.edit("remove_nics", .remove, of: "nics"),
        PropertySpec.edit("update_nics", .update, of: "nics"),
        PropertySpec.edit("add_filesystems", .add, of: "filesystems", brands: [.lx]),
        PropertySpec.edit("remove_filesystems", .remove, of: "filesystems", brands: [.lx]),
        PropertySpec.edit("update_filesystems", .update, of: "filesystems", brands: [.lx]),

        // Computed by Lumos and printed by get/list, as vmadm prints them.
        PropertySpec("type", .string(maxLength: 8), .readOnly, list: "TYPE", source: .computed { $0.manifest.brand == "kvm" ? "KVM" : "LX" },
                     "LX for zones of brand lx, KVM for hardware VMs (vmadm: OS, LX, KVM, BHYVE)"),
        PropertySpec("hvm", .boolean, .readOnly, list: "HVM", source: .computed { .bool($0.manifest.brand == "kvm") }, "whether the VM is hardware virtualized"),
        PropertySpec("state", .string(maxLength: 32), .readOnly, list: .init("STATE", width: 16),
                     source: .computed { .string($0.failed ? "failed" : $0.running ? ($0.initReady ? "running" : "ready") : $0.busy ? "provisioning" : $0.hasDataset ? "stopped" : "failed") },
                     "provisioning, ready (its processes run but its init has not come up: systemd booting or stuck), running, stopped, failed (also a kvm guest stopped on an error or panic, or whose QEMU crashed: see lumos_state_reason), receiving"),
        PropertySpec("lumos_state_reason", .string(maxLength: 1024), .readOnly, brands: [.kvm], list: .init("STATE_REASON", width: 40),
                     source: .computed { f in f.stateReason.map { .string($0) } },
                     "why a kvm VM is failed, or how it last ended by itself (the guest powered off, panicked, QEMU crashed); none after vmadm stop"),
        PropertySpec("zone_state", .string(maxLength: 32), .readOnly, list: "ZONE_STATE",
                     source: .computed { .string($0.running ? "running" : "installed") }, "the kernel's view: installed, running"),
        PropertySpec("pid", .integer(min: 0, max: Int64(Int32.max), unit: ""), .readOnly, list: .init("PID", width: 6),
                     source: .computed { f in f.pid.map { .number(Double($0)) } }, "host pid of the zone's init while running"),
        PropertySpec("zoneid", .integer(min: 0, max: Int64(Int32.max), unit: ""), .readOnly, list: "ZONEID",
                     source: .computed { f in f.pid.map { .number(Double($0)) } }, "numeric id of the running zone (its init's host pid); changes at every boot"),
        PropertySpec("zonedid", .integer(min: 0, max: Int64(Int32.max), unit: ""), .readOnly, list: "ZONEDID",
                     source: .computed { f in f.zonedid.map { .number(Double($0)) } }, "numeric id of the zone that stays across boots (its uid range slot)"),
        PropertySpec("zonepath", .string(maxLength: 4096), .readOnly, list: .init("ZONEPATH", width: 40), source: .computed { f in f.zonepath.map { .string($0) } },
                     "directory of the zone's dataset"),
        PropertySpec("zfs_filesystem", .string(maxLength: 1024), .readOnly, source: .computed { .string($0.dataset) },
                     "the zone's dataset (zones/<uuid>)"),
        PropertySpec("datasets", .computed, .readOnly, source: .computed { _ in [] }, "extra datasets of the VM (always none: no delegated datasets)"),
        PropertySpec("server_uuid", .uuid, .readOnly, source: .computed { f in f.serverUUID.map { .string($0) } },
                     "the host's uuid (SMBIOS product uuid, else /etc/machine-id)"),
        PropertySpec("create_timestamp", .timestamp, .readOnly, list: .init("CREATE_TIMESTAMP", width: 24), "when the VM was created (ISO 8601)"),
        PropertySpec("last_modified", .timestamp, .readOnly, "when the manifest last changed (ISO 8601)"),
        PropertySpec("boot_timestamp", .timestamp, .readOnly, list: "BOOT_TIMESTAMP",
                     source: .computed { f in f.bootTimestamp.map { .string($0) } }, "when the running zone last started"),
        PropertySpec("snapshots", .computed, .readOnly, source: .computed { f in f.snapshots.map { .array($0.map { ["name": .string($0)] }) } },
                     "snapshots made with create-snapshot"),
        // vmadm's list-only fields: listable, never stored; Lumos has no value for them yet.
        PropertySpec("exit_status", .integer(min: -1, max: 255, unit: ""), .readOnly, list: "EXIT_STATUS", source: .computed { _ in nil },
                     "exit status of the zone's last init (not recorded by Lumos yet: no daemon watches inits)"),
        PropertySpec("exit_timestamp", .timestamp, .readOnly, list: "EXIT_TIMESTAMP", source: .computed { _ in nil },
                     "when the zone's last init exited (not recorded by Lumos yet)"),
        PropertySpec("free_space", .integer(min: 0, max: maxMiB, unit: "MiB"), .readOnly, brands: [.kvm], list: "FREE_SPACE",
                     source: .computed { _ in nil }, "space of a hardware VM neither in disks nor snapshots (kvm; none for zones)"),
        PropertySpec("lumos_accelerator", .string(maxLength: 256), .readOnly, brands: [.kvm], list: "ACCEL",
                     source: .computed { f in f.accelerator.map { .string($0) } },
                     "a running kvm VM's accelerator and why: kvm (hardware KVM) or tcg (QEMU's emulator, when /dev/kvm is missing or not a hardware KVM; LUMOS_VM_ACCEL overrides)"),
        PropertySpec("transition_to", .string(maxLength: 32), .readOnly, source: .computed { _ in nil }, "the state a VM is moving to (none: Lumos changes state synchronously)"),
        PropertySpec("transition_expire", .integer(min: 0, max: Int64.max, unit: ""), .readOnly, source: .computed { _ in nil },
                     "when a hardware VM's state change times out (none for zones)"),
        PropertySpec("zlog_mode", .string(maxLength: 3), .readOnly, source: .computed { _ in nil }, "the zlog mode of docker zones (none: no docker zones)"),

        // vmadm properties that have no meaning on Linux, or need what Lumos does not have:
        // rejected with the reason, never ignored.
        PropertySpec("limit_priv", .string(maxLength: 4096), .unsupported("illumos privilege sets do not exist on Linux; zones get a fixed, reduced capability set"), ""),
        PropertySpec("fs_allowed", .string(maxLength: 4096), .unsupported("zones cannot mount file systems on Linux (no CAP_SYS_ADMIN); use filesystems[] bind mounts"), ""),
        PropertySpec("kernel_version", .string(maxLength: 64), .unsupported("an lx zone runs on the host's Linux kernel; its version cannot be faked"), ""),
        PropertySpec("firewall_enabled", .boolean, .unsupported("Lumos has no per-zone firewall (fwadm) yet; use nics[].allowed_ips and blocked_outgoing_ports"), list: "FIREWALL_ENABLED", ""),
        PropertySpec("archive_on_delete", .boolean, .unsupported("Lumos has no zones/archive dataset and no illumos debug data (cores, SMF logs) to save; keep a copy with vmadm send UUID > FILE before delete"), ""),
        PropertySpec("docker", .boolean, .unsupported("docker-branded lx zones are not supported"), ""),
        PropertySpec("mdata_exec_timeout", .integer(min: 0, max: 1 << 31, unit: "seconds"), .unsupported("there is no mdata:execute service with a start timeout: vmadm runs the user-script once, detached, at first boot, with no time limit (docs/vmadm.md, Metadata)"), ""),
        PropertySpec("delegate_dataset", .boolean, .unsupported(delegated), ""),
        PropertySpec("indestructible_delegated", .boolean, .unsupported("delegated datasets are not supported: \(delegated)"), list: "INDESTR_DATA", ""),
        PropertySpec("zfs_data_compression", .string(maxLength: 32), .unsupported("delegated datasets are not supported: \(delegated)"), ""),
        PropertySpec("zfs_data_recsize", .integer(min: 0, max: 1 << 20, unit: "bytes"), .unsupported("delegated datasets are not supported: \(delegated)"), ""),
        PropertySpec("zfs_root_recsize", .integer(min: 0, max: 1 << 20, unit: "bytes"), .unsupported("btrfs has no per-dataset record size"), ""),
        PropertySpec("zfs_root_compression", .string(maxLength: 32), .unsupported("compression is a pool property in Lumos storage (lumos pool create --compression)"), ""),
        PropertySpec("zfs_filesystem_limit", .integer(min: 0, max: 1 << 31, unit: "datasets"), .unsupported("btrfs has no dataset count limit, and zones cannot create datasets here anyway"), ""),
        PropertySpec("zfs_snapshot_limit", .integer(min: 0, max: 1 << 31, unit: "snapshots"), .unsupported("btrfs has no snapshot count limit, and zones cannot take snapshots here anyway"), ""),
        PropertySpec("dataset_uuid", .uuid, .unsupported("deprecated in vmadm; use image_uuid"), ""),
        PropertySpec("zfs_storage_pool_name", .string(maxLength: 255), .unsupported("deprecated in vmadm; use zpool"), ""),
        PropertySpec("create_only", .boolean, .unsupported(receiveOnly), ""),
        PropertySpec("transition", .stringMap(allowScalars: true), .unsupported(receiveOnly), ""),
        PropertySpec("v", .integer(min: 0, max: 100, unit: ""), .unsupported(receiveOnly), ""),

        // Hardware VM properties (vmadm's kvm brand). In the table so the kvm brand only has
        // to be switched on; refused for lx with the reason.
        PropertySpec("vcpus", .integer(min: 1, max: 64, unit: "CPUs"), brands: [.kvm], default: .value(1), update: .nextBoot, list: "VCPUS", "virtual CPUs of a hardware VM"),
        PropertySpec("cpu_type", .string(maxLength: 64), brands: [.kvm], default: .value("qemu64"), update: .nextBoot, list: "CPU_TYPE",
                     "the virtual CPU model: qemu64 (default), host (KVM only), or any model of qemu-system-x86_64 -cpu help"),
        PropertySpec("disks", .disks, brands: [.kvm], default: .value([]), update: .nextBoot, actions: [.create, .get],
                     "the virtual disks: volumes <pool>/<uuid>-disk<N>, the boot disk cloned from image_uuid, the others empty of size MiB, or a cdrom ISO (path); change with add_disks/remove_disks/update_disks, matched by path"),
        PropertySpec("disk_driver", .string(maxLength: 32), brands: [.kvm], default: .value("virtio"), update: .nextBoot, "default model of disks (virtio, ide, scsi)"),
        PropertySpec("nic_driver", .string(maxLength: 32), brands: [.kvm], default: .value("virtio"), update: .nextBoot, "default model of NICs (virtio, e1000, rtl8139)"),
        PropertySpec("boot", .string(maxLength: 64), brands: [.kvm], default: .value("order=cd"), update: .nextBoot,
                     "boot order: order= with c (the boot disk) and d (the cdrom), as QEMU's -boot"),
        PropertySpec("qemu_opts", .string(maxLength: 4096), .unsupported("Lumos builds QEMU's command line itself (disks and taps are handed over as descriptors into the jail); add options with qemu_extra_opts"), ""),
        PropertySpec("qemu_extra_opts", .string(maxLength: 4096), brands: [.kvm], update: .nextBoot, list: "QEMU_EXTRA_OPTS",
                     "options appended to QEMU's command line (split at spaces; QEMU runs in its jail, so host paths are not reachable)"),
        PropertySpec("spice_opts", .string(maxLength: 4096), .unsupported(spiceLater), ""),
        PropertySpec("spice_password", .string(maxLength: 8), .unsupported(spiceLater), ""),
        PropertySpec("spice_port", .integer(min: -1, max: 65535, unit: "port"), .unsupported(spiceLater), ""),
        PropertySpec("vga", .string(maxLength: 16), brands: [.kvm], update: .nextBoot, "VGA emulation (std, cirrus, vmware, virtio, none; default none: serial console only)"),
        PropertySpec("vnc_password", .string(maxLength: 8), .unsupported("the VNC display is a unix socket only root on the host reaches (vnc_port 0), so there is nothing for a password to guard; remove it"), ""),
        PropertySpec("vnc_port", .integer(min: -1, max: 0, unit: "port"), brands: [.kvm], default: .value(-1), update: .nextBoot,
                     "-1 (default): no display; 0: a VNC display on the unix socket vnc.sock in the VM's run directory (a TCP port would need the jail's network namespace to reach the host, so only 0 and -1)"),
        PropertySpec("virtio_txburst", .integer(min: 1, max: 1 << 20, unit: "packets"), brands: [.kvm], update: .nextBoot, "virtio NICs: packets sent per tx timer tick (QEMU's x-txburst, with tx=timer)"),
        PropertySpec("virtio_txtimer", .integer(min: 1, max: 1 << 30, unit: "ns"), brands: [.kvm], update: .nextBoot, "virtio NICs: the tx timer in ns (QEMU's x-txtimer, with tx=timer)"),
        PropertySpec("zone_dataset_uuid", .uuid, .unsupported("the jail's root is Lumos's own minimal QEMU root (docs/vm.md \"The jail\"), not an image"), ""),
        PropertySpec.edit("add_disks", .add, of: "disks", brands: [.kvm]),
        PropertySpec.edit("remove_disks", .remove, of: "disks", brands: [.kvm]),
        PropertySpec.edit("update_disks", .update, of: "disks", brands: [.kvm]),
        PropertySpec("bhyve_extra_opts", .string(maxLength: 4096), .unsupported(bhyveOnly), ""),
        PropertySpec("bootrom", .string(maxLength: 4096), .unsupported(bhyveOnly), ""),
        PropertySpec("com1", .string(maxLength: 255), .unsupported(bhyveOnly), ""),
        PropertySpec("com2", .string(maxLength: 255), .unsupported(bhyveOnly), ""),
        PropertySpec("flexible_disk_size", .integer(min: 0, max: maxMiB, unit: "MiB"), .unsupported(bhyveOnly), ""),
        PropertySpec("virtio09", .boolean, .unsupported(bhyveOnly), ""),
        PropertySpec("virtio1", .boolean, .unsupported(bhyveOnly), ""),
    ]

    public static let byName: [String: PropertySpec] = {
        var d: [String: PropertySpec] = [:]
        for p in all {
            precondition(d[p.name] == nil, "property \(p.name) is defined twice in PropertyTable")
            d[p.name] = p
        }
        return d
    }()

    public static func spec(_ name: String) -> PropertySpec? { byName[name] }

    /// Properties that feed `ZoneLimits` (applied live to a running zone).
    public static let limitProperties: Set<String> = Set(all.compactMap { if case .limit = $0.application { return $0.name }; return nil })

    /// Properties computed when printing and never stored.
    public static let computedProperties: Set<String> = Set(all.filter(\.isComputed).map(\.name))

    /// `vmadm list -o` fields (vmadm's LIST_FIELDS, plus the list-only fields).
    public static let listable: [PropertySpec] = all.filter(\.isListable)

    /// The closest known property name, for "did you mean" in errors.
    public static func suggestion(for name: String) -> String? {
        let candidates = all.filter { $0.unsupportedReason == nil && $0.brands.contains(.lx) }.map(\.name)
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
