import Net

/// What QEMU is asked to run: the typed form of a kvm-brand VM that `QEMUCommand` turns into
/// argv. Disks and NICs are descriptors the caller already opened (a volume, a tap), so QEMU
/// never needs a path into the pool or access to the switch (docs/vm.md, "Descriptors").
public struct VMDescription: Sendable, Equatable {
    /// QEMU's -machine. `pc` (i440FX) and `q35` boot any x86 guest; `microvm` has no PCI and
    /// takes only virtio-mmio devices, for the fastest direct-kernel boots.
    public enum Machine: String, Sendable, CaseIterable { case pc, q35, microvm }

    public enum DiskModel: String, Sendable, CaseIterable { case virtio, ide, scsi }
    public enum Media: String, Sendable { case disk, cdrom }
    public enum NICModel: String, Sendable, CaseIterable { case virtio, e1000, rtl8139 }

    public struct Disk: Sendable, Equatable {
        /// An open descriptor on the raw image (a volume file or block device): O_RDWR, or
        /// O_RDONLY when `readOnly` (QEMU dups an fdset's descriptor only for the access mode it
        /// asks for); passed to QEMU through an fdset (/dev/fdset/N).
        public var descriptor: Int32
        public var model: DiskModel
        public var media: Media
        public var readOnly: Bool
        /// First in the firmware's boot order (vmadm `boot: true`).
        public var boot: Bool
        /// Logical and physical sector size in bytes (vmadm `block_size`), nil for QEMU's 512.
        public var blockSize: Int?

        public init(descriptor: Int32, model: DiskModel = .virtio, media: Media = .disk, readOnly: Bool = false, boot: Bool = false, blockSize: Int? = nil) {
            self.descriptor = descriptor; self.model = model; self.media = media
            self.readOnly = readOnly || media == .cdrom; self.boot = boot; self.blockSize = blockSize
        }
    }

    public struct NIC: Sendable, Equatable {
        /// An open tap descriptor (see `Tap`); QEMU reads and writes frames on it.
        public var tapDescriptor: Int32
        public var model: NICModel
        public var mac: MACAddress

        public init(tapDescriptor: Int32, model: NICModel = .virtio, mac: MACAddress) {
            self.tapDescriptor = tapDescriptor; self.model = model; self.mac = mac
        }
    }

    /// Direct-kernel boot (-kernel/-initrd/-append): the kernel comes from the host, the root
    /// from the boot disk (docs/vm.md, "The small guest").
    public struct KernelBoot: Sendable, Equatable {
        public var kernel: String
        public var initrd: String?
        public var commandLine: String

        public init(kernel: String, initrd: String? = nil, commandLine: String) {
            self.kernel = kernel; self.initrd = initrd; self.commandLine = commandLine
        }
    }

    /// VNC is off unless asked: on a unix socket in the run directory, or a TCP port on an
    /// address (vmadm `vnc_port`; the password is set over QMP, never on the command line).
    public enum VNC: Sendable, Equatable {
        case unixSocket
        case tcp(address: String, display: Int, password: Bool)
    }

    public var name: String
    public var machine: Machine
    public var accelerator: Accelerator
    /// QEMU's -cpu (vmadm `cpu_type`): qemu64, host (KVM only), max, a named model.
    public var cpu: String
    public var memoryMiB: Int
    public var vcpus: Int
    public var disks: [Disk]
    public var nics: [NIC]
    public var kernelBoot: KernelBoot?
    /// Where QMP (`qmp.sock`) and the serial console (`console.sock`, `console.log`) live.
    public var runDirectory: String
    /// QEMU itself keeps what the guest writes to its serial console in `console.log`
    /// (uncapped). false when the console relay keeps the log (`ConsoleRelay`, docs/vm.md
    /// "Console"), as vmadm's VMs do.
    public var consoleLog: Bool
    public var vnc: VNC?
    /// -vga (vmadm `vga`: std, cirrus, vmware, virtio); nil gives no display adapter.
    public var vga: String?
    /// TCG's translation cache in MiB (QEMU's default is 1 GiB of address space, filled as
    /// the guest runs); nil leaves QEMU's default. Ignored under KVM.
    public var tcgTranslationCacheMiB: Int?

    public init(name: String, machine: Machine = .q35, accelerator: Accelerator, cpu: String = "qemu64", memoryMiB: Int = 256, vcpus: Int = 1,
                disks: [Disk] = [], nics: [NIC] = [], kernelBoot: KernelBoot? = nil, runDirectory: String,
                consoleLog: Bool = true, vnc: VNC? = nil, vga: String? = nil, tcgTranslationCacheMiB: Int? = nil) {
        self.name = name; self.machine = machine; self.accelerator = accelerator; self.cpu = cpu
        self.memoryMiB = memoryMiB; self.vcpus = vcpus; self.disks = disks; self.nics = nics
        self.kernelBoot = kernelBoot; self.runDirectory = runDirectory; self.consoleLog = consoleLog
        self.vnc = vnc; self.vga = vga; self.tcgTranslationCacheMiB = tcgTranslationCacheMiB
    }

    public var qmpSocket: String { "\(runDirectory)/qmp.sock" }
    /// QMP for event watchers (see QEMUCommand).
    public var eventsSocket: String { "\(runDirectory)/events.sock" }
    public var consoleSocket: String { "\(runDirectory)/console.sock" }
    public var consoleLogPath: String { "\(runDirectory)/console.log" }
    public var vncSocket: String { "\(runDirectory)/vnc.sock" }
}
