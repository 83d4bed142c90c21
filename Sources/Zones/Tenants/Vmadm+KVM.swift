import Foundation
import Glibc
import Images
import LumosCore
import Net
import VM

/// Brand kvm (docs/vm.md): a hardware VM is QEMU running as PID 1 of its own zone, the jail.
/// The jail's root is a clone of Lumos's minimal QEMU root (`QEMUJail`, one dataset per
/// QEMU build), its disks are volumes `<pool>/<uuid>-disk<N>` (the boot disk an O(1) clone of
/// its image's snapshot), its NICs taps on their switches. Disks and taps are opened here
/// and handed to QEMU as descriptors, so the jail needs no path into the pool or the switch.
extension Vmadm {
    /// Volume slot N of a VM. Slots are given at create in disks[] order and stay with their
    /// disk (its zfs_filesystem), so removing a disk renames no other.
    public func diskDataset(_ uuid: String, _ slot: Int) -> String { "\(dataset(uuid))-disk\(slot)" }

    /// The volume of a disk: its recorded slot, on this host's pool.
    func volume(of disk: VMDisk, _ uuid: String, index: Int) -> String {
        guard let recorded = disk.dataset, let slot = recorded.split(separator: "-").last.flatMap({ Int($0.dropFirst(4)) }),
              recorded.hasSuffix("-disk\(slot)") else { return diskDataset(uuid, index) }
        return diskDataset(uuid, slot)
    }

    /// The volumes a VM has now (for delete and for undoing a create, whatever the manifest says).
    func existingDiskDatasets(_ uuid: String) -> [String] {
        (0..<DiskChecks.maxDisks).map { diskDataset(uuid, $0) }.filter { datasets.exists($0) }
    }

    /// Every dataset of a tenant: the zone's, then a kvm VM's volumes.
    func tenantDatasets(_ uuid: String) -> [String] { ([dataset(uuid)] + existingDiskDatasets(uuid)).filter { datasets.exists($0) } }

    func qemuLog(_ uuid: String) -> String { store.tenantDirectory(uuid) + "/qemu.log" }
    func acceleratorFile(_ uuid: String) -> String { store.tenantDirectory(uuid) + "/accelerator" }

    /// QMP of a running VM, through its jail's root.
    public func qmpSocket(_ uuid: String) -> String? {
        zones.initPid(uuid).map { QEMUJail.hostSocket(qemuPid: $0, "qmp.sock") }
    }

    /// Where `vmadm console` attaches: the relay's socket (QEMU's own has one client, the relay).
    public func consoleSocket(_ uuid: String) -> String { store.tenantDirectory(uuid) + "/console.sock" }

    // MARK: the jail's root

    /// The snapshot kvm jails are cloned from, made on first use for this host's QEMU.
    func jailImage() throws -> String {
        guard let qemu = QEMUJail.findQEMU() else {
            throw LumosError.notFound("qemu-system-x86_64 is not installed; run scripts/install-deps.sh (Debian: apt-get install qemu-system-x86)")
        }
        let name = "\(datasets.poolName)/lumos-qemu-\(try QEMUJail.fingerprint(qemu: qemu))"
        let snap = "\(name)@\(ImageStore.finalSnapshot)"
        if datasets.exists(snap) { return snap }
        let lock = try store.journal.lock("lumos-qemu-jail")
        defer { withExtendedLifetime(lock) {} }
        if datasets.exists(snap) { return snap }
        // A build that died halfway: start it again.
        if datasets.exists(name) { try datasets.destroy(name, recursive: true) }
        try datasets.createFilesystem(name)
        do {
            let root = try datasets.mountpoint(name) + "/root"
            try Files.makeDirectories(root, mode: 0o755)
            try QEMUJail.populate(root: root, qemu: qemu)
            try datasets.snapshot(snap)
        } catch {
            try? datasets.destroy(name, recursive: true)
            throw error
        }
        return snap
    }

    // MARK: create

    /// What a kvm create needs from this host: its disks' images are installed zvol images,
    /// a cdrom's ISO exists, QEMU is installed. Nothing is changed.
    func validateKVM(_ m: Manifest) throws {
        guard QEMUJail.findQEMU() != nil else {
            throw LumosError.notFound("brand kvm: qemu-system-x86_64 is not installed; run scripts/install-deps.sh")
        }
        for (i, d) in m.disks.enumerated() {
            if let image = d.imageUUID {
                guard images.isInstalled(image) else {
                    throw LumosError.notFound("disks[\(i)].image_uuid: image \(image) is not installed; see imgadm list, or imgadm build small-guest")
                }
                guard images.isVolumeImage(image) else {
                    throw LumosError.invalid("disks[\(i)].image_uuid: image \(image) is a zone image, not a disk (type zvol); use a zvol image such as imgadm build small-guest makes")
                }
            }
            // Volumes are thin, but a disk the pool could never hold is refused up front.
            if d.media == .disk, d.dataset == nil, let size = d.size, let free = datasets.availableBytes(), UInt64(size) << 20 > free {
                throw LumosError(.noSpace, "disks[\(i)].size: \(size) MiB is more than the pool \(datasets.poolName) has free (\(free >> 20) MiB); give a smaller size or add space to the pool")
            }
            if d.media == .cdrom, let path = d.path {
                var st = stat()
                guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
                    throw LumosError.notFound("disks[\(i)].path: \(path) is not an ISO file on this host")
                }
            }
        }
    }

    /// Makes the VM's volumes and records each one's dataset, file and size in disks[].
    func createDisks(_ m: Manifest) throws -> Manifest {
        var list = m["disks"]?.arrayValue ?? []
        var taken = Set(m.disks.compactMap(\.dataset).map { "\(datasets.poolName)/\($0.split(separator: "/").last ?? "")" })
        for (i, d) in m.disks.enumerated() where d.media == .disk && d.dataset == nil {
            var slot = 0
            while taken.contains(diskDataset(m.uuid, slot)) || datasets.exists(diskDataset(m.uuid, slot)) { slot += 1 }
            guard slot < DiskChecks.maxDisks else { throw LumosError.invalid("disks: no free volume slot; a VM has at most \(DiskChecks.maxDisks) disks") }
            let name = diskDataset(m.uuid, slot)
            taken.insert(name)
            var o = list[i].objectValue ?? [:]
            if let image = d.imageUUID {
                try datasets.clone(images.finalSnapshot(image), to: name)
                let imageBytes = try datasets.volumeSize(name)
                o["image_size"] = .number(Double(imageBytes >> 20))
                if let size = d.size, UInt64(size) << 20 > imageBytes { try datasets.growVolume(name, bytes: UInt64(size) << 20) }
            } else {
                try datasets.createVolume(name, bytes: UInt64(d.size ?? 0) << 20)
            }
            CrashPoint.hit("create.disk")
            o["zfs_filesystem"] = .string(name)
            o["path"] = .string(try datasets.volumeFile(name))
            o["size"] = .number(Double(try datasets.volumeSize(name) >> 20))
            o["model"] = .string(d.model.rawValue)
            o["media"] = .string(d.media.rawValue)
            list[i] = .object(o)
        }
        var out = m
        out["disks"] = .array(list)
        return out
    }

    /// vmadm update of disks[] (add_disks, remove_disks, update_disks): new disks get their
    /// volumes now, removed disks' volumes are destroyed, a larger size grows a volume. The VM
    /// sees the change at its next boot; a running VM keeps its disks until then, so removing
    /// one from it is refused.
    func applyDiskChanges(from current: Manifest, to new: Manifest, running: Bool) throws -> Manifest {
        let kept = Set(new.disks.compactMap(\.dataset))
        let removed = current.disks.enumerated().filter { $0.element.media == .disk && !kept.contains($0.element.dataset ?? "") }
        if running, !removed.isEmpty {
            throw LumosError.busy("remove_disks: VM \(current.uuid) is running and using the disk; stop it first")
        }
        for (i, d) in new.disks.enumerated() where d.media == .disk && d.dataset != nil {
            let name = volume(of: d, new.uuid, index: i)
            if let size = d.size, UInt64(size) << 20 != (try datasets.volumeSize(name)) {
                try datasets.growVolume(name, bytes: UInt64(size) << 20)
            }
        }
        try validateKVM(new)
        let made = try createDisks(new)
        for (i, d) in removed { try datasets.destroy(volume(of: d, current.uuid, index: i), recursive: true) }
        return made
    }

    // MARK: boot and stop

    /// Boots a kvm VM: opens its disks, attaches its taps, builds QEMU's command line and
    /// runs QEMU as the jail's PID 1; returns once QMP answers (a QEMU that exits at start is
    /// an error with its last words).
    func bootKVM(_ m: Manifest) throws {
        let uuid = m.uuid
        Files.remove(exitFile(uuid))  // how the last boot ended is no longer news
        var owned: [Int32] = []
        defer { for fd in owned { close(fd) } }
        var disks: [VMDescription.Disk] = []
        let bootOrder = (m.value("boot")?.stringValue ?? "order=cd").replacingOccurrences(of: "order=", with: "")
        let cdromFirst = bootOrder.first == "d" && m.disks.contains { $0.media == .cdrom }
        for (i, d) in m.disks.enumerated() {
            let cdrom = d.media == .cdrom
            let path = cdrom ? (d.path ?? "") : try datasets.volumeFile(volume(of: d, uuid, index: i))
            let fd = open(path, (cdrom ? O_RDONLY : O_RDWR) | O_CLOEXEC)
            if fd < 0 { throw Errno(errno, "open", "disks[\(i)] \(path)") }
            owned.append(fd)
            disks.append(.init(descriptor: fd, model: VMDescription.DiskModel(rawValue: d.model.rawValue) ?? .virtio,
                               media: cdrom ? .cdrom : .disk, boot: cdromFirst ? false : d.boot, blockSize: d.blockSize))
        }
        if cdromFirst, let i = disks.firstIndex(where: { $0.media == .cdrom }) { disks[i].boot = true }
        if !disks.contains(where: \.boot), let i = disks.firstIndex(where: { $0.media == .disk }) { disks[i].boot = true }

        let taps = try network.attachTaps(vm: m)
        owned += taps.map(\.descriptor)
        do {
            let defaultModel = m.value("nic_driver")?.stringValue ?? "virtio"
            let nics: [VMDescription.NIC] = try zip(m.nics, taps).map { nic, tap in
                guard let mac = MACAddress(tap.mac) else { throw LumosError.invalid("nics: \(tap.mac) is not a MAC address") }
                let model = nic.objectValue?["model"]?.stringValue ?? defaultModel
                return VMDescription.NIC(tapDescriptor: tap.descriptor, model: VMDescription.NICModel(rawValue: model) ?? .virtio, mac: mac)
            }
            let choice = try AcceleratorProbe.choose()
            let vm = VMDescription(name: m.alias ?? uuid, machine: .q35, accelerator: choice.accelerator,
                                   cpu: m.value("cpu_type")?.stringValue ?? "qemu64",
                                   memoryMiB: Int(m.integer("ram") ?? 256), vcpus: Int(m.integer("vcpus") ?? 1),
                                   disks: disks, nics: nics, runDirectory: QEMUJail.runDirectory, consoleLog: false,
                                   vnc: m.integer("vnc_port") == 0 ? .unixSocket : nil, vga: m.value("vga")?.stringValue,
                                   tcgTranslationCacheMiB: choice.accelerator == .tcg ? Self.tcgCacheMiB : nil)
            var command = try QEMUCommand.build(vm)
            command.argv[0] = QEMUJail.binaryPath
            command.argv += Self.txOptions(m)
            command.argv += (m.value("qemu_extra_opts")?.stringValue ?? "").split(separator: " ").map(String.init)
            var launch = ZoneLaunch(m, rootfs: try rootfs(uuid), consoleLog: ConsoleLog(path: qemuLog(uuid)))
            launch.hypervisor = HypervisorLaunch(argv: command.argv, descriptors: command.descriptors,
                                                 devices: choice.accelerator == .kvm ? ["/dev/kvm"] : [])
            try Files.replaceAtomically(acceleratorFile(uuid), Array("\(choice)\n".utf8))
            let pid = try zones.start(launch) { _ in }
            try waitForQEMU(uuid, pid: pid)
            // The guest's serial console: the relay keeps it (capped, zlog_max_size) and serves vmadm console.
            let cap = m.integer("zlog_max_size").map { UInt64($0) } ?? ConsoleRelay.defaultMaxBytes
            try zones.startConsoleRelay(uuid, ConsoleRelay.forZone(qemuPid: pid, stateDirectory: store.tenantDirectory(uuid), maxBytes: cap))
        } catch {
            try? zones.cleanup(uuid)
            try? network.detach(vm: m)
            throw error
        }
        try writeBack(m, taps.map { NicResult(mac: $0.mac, interface: $0.interface) })
    }

    /// TCG's translation cache: QEMU's default reserves 1 GiB and fills it as the guest runs,
    /// all charged to the jail's memory; 64 MiB keeps a small guest fast (docs/vm.md "Memory").
    static let tcgCacheMiB = 64

    /// virtio_txtimer / virtio_txburst: QEMU's tx=timer mode of virtio-net.
    static func txOptions(_ m: Manifest) -> [String] {
        var out: [String] = []
        if let t = m.integer("virtio_txtimer") { out += ["-global", "virtio-net-pci.tx=timer", "-global", "virtio-net-pci.x-txtimer=\(t)"] }
        if let b = m.integer("virtio_txburst") {
            if m.integer("virtio_txtimer") == nil { out += ["-global", "virtio-net-pci.tx=timer"] }
            out += ["-global", "virtio-net-pci.x-txburst=\(b)"]
        }
        return out
    }

    /// Waits until QEMU answers QMP; when it exits first, says why from its log.
    func waitForQEMU(_ uuid: String, pid: pid_t, timeout: Double = 20) throws {
        let deadline = Monotonic.now + timeout
        let socket = QEMUJail.hostSocket(qemuPid: pid, "qmp.sock")
        while Monotonic.now < deadline {
            if !zones.isRunning(uuid) { break }
            if let q = try? QMPClient(socketPath: socket, timeout: 0.2), (try? q.status()) != nil { return }
            usleep(10_000)
        }
        let log = (try? FD.readText(qemuLog(uuid))) ?? ""
        let last = log.split(whereSeparator: \.isNewline).last.map(String.init) ?? "no output"
        throw LumosError.failed("VM \(uuid): QEMU did not start: \(last)")
    }

    /// ACPI power button through QMP, then the jail is killed after `timeout` (at once with force).
    func stopKVM(_ uuid: String, force: Bool, timeout: Double) throws {
        if !force, let socket = qmpSocket(uuid), let q = try? QMPClient(socketPath: socket, timeout: 2) {
            if (try? q.powerdown()) != nil {
                let deadline = Monotonic.now + timeout
                while zones.isRunning(uuid) && Monotonic.now < deadline { usleep(20_000) }
            }
        }
        try zones.cleanup(uuid)
        Files.remove(exitFile(uuid))  // stopped by its owner: no verdict to show
    }

    func exitFile(_ uuid: String) -> String { ConsoleRelay.exitFile(stateDirectory: store.tenantDirectory(uuid)) }

    /// Whether a kvm VM has failed and why, or how it ended (docs/vm.md, "How a VM ends"): a
    /// running QEMU's run state and log (a guest stopped on a KVM internal error or a panic sits
    /// there "running" otherwise), a stopped one's verdict from its console relay.
    func kvmHealth(_ uuid: String, running: Bool) -> (failed: Bool, reason: String?) {
        if running {
            let log = (try? FD.readText(qemuLog(uuid))) ?? ""
            // A short timeout: QMP serves one client at a time, and a VM whose QMP another
            // vmadm holds is not failed for that.
            let state = qmpSocket(uuid).flatMap { try? QMPClient(socketPath: $0, timeout: 0.5) }.flatMap { try? $0.status() }
            let why = QEMUProcess.failure(log: log, exitStatus: nil, state: state)
            return (why != nil, why)
        }
        guard let word = try? FD.readText(exitFile(uuid)).trimmingCharacters(in: .whitespacesAndNewlines), !word.isEmpty else {
            return (false, nil)
        }
        return Self.exitVerdict(word)
    }

    /// The console relay's one word (QEMU's SHUTDOWN reason, or `crashed`) as the owner reads it.
    static func exitVerdict(_ word: String) -> (failed: Bool, reason: String) {
        switch word {
        case "guest-shutdown": return (false, "the guest powered off")
        case "guest-panic": return (true, "the guest kernel panicked")
        case "crashed": return (true, "QEMU exited without the guest shutting down (it crashed or was killed)")
        case "host-signal": return (false, "QEMU was ended by a signal")
        default: return (false, "QEMU ended (\(word))")
        }
    }

    /// The accelerator the running VM was started with, and why (for get and info).
    func runningAccelerator(_ uuid: String) -> String? {
        (try? FD.readText(acceleratorFile(uuid)))?.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
