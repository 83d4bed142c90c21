import Glibc
import LumosCore
import VM

/// What the runtime needs to boot a tenant's zone, taken from its manifest and dataset.
public struct ZoneLaunch: Sendable {
    public var uuid: String
    public var hostname: String
    public var rootfs: String
    /// argv of the zone's init (init_name), run under Lumos's reaping init.
    public var initCommand: [String] = []
    public var limits = ZoneLimits()
    public var mounts: [FilesystemMount] = []
    public var tmpfsMiB: UInt64 = 0
    /// Where the zone's console output (its init's stdout/stderr) is kept, capped.
    public var consoleLog: ConsoleLog?
    /// An lx zone's /dev/console as a pseudo-terminal: where its relay listens for vmadm
    /// console (ZoneSpec.consoleSocket); its output goes to `consoleLog`.
    public var consoleSocket: String?
    /// lumos_allow_io_uring.
    public var allowIOUring = false
    /// restart_init: init_name is started again when it exits (under Lumos's init).
    public var restartInit = false
    /// A kvm VM: QEMU is the zone's PID 1, with its descriptors and devices (docs/vm.md "The jail").
    public var hypervisor: HypervisorLaunch?
    /// A standalone zone's services: the metadata socket and the mdata-* tools (ZoneMetadata)
    /// and the views of its limits in /proc and /sys (Lxcfs) bound into the zone.
    public var metadata = false
    /// The sysfs directory of the qgroup holding the zone's quota, so df in the zone shows it
    /// (ZoneSpec.quotaGroup); nil: df shows the pool.
    public var quotaGroup: String?

    /// The launch of `m`'s zone: the boot settings of the property table (`.boot` rows) and
    /// its limits (`.limit` rows), each from the manifest's value or its default.
    public init(_ m: Manifest, rootfs: String, consoleLog: ConsoleLog?) {
        uuid = m.uuid
        hostname = m.hostname
        self.rootfs = rootfs
        self.consoleLog = consoleLog
        limits = ZoneLimits(m)
        for spec in PropertyTable.all {
            guard case .boot(let setting) = spec.application, let v = m.value(spec.name) else { continue }
            setting.apply(&self, v)
        }
    }
}

/// How a kvm VM's jail runs QEMU: argv (argv[0] a path inside the jail), the descriptors it
/// gets as fd 3, 4, ... (disks, taps), and the host devices it may open (/dev/kvm under KVM).
public struct HypervisorLaunch: Sendable {
    public var argv: [String]
    public var descriptors: [Int32]
    public var devices: [String]

    public init(argv: [String], descriptors: [Int32], devices: [String]) {
        self.argv = argv
        self.descriptors = descriptors
        self.devices = devices
    }
}

/// The kernel side of zones as vmadm uses it. The real one is the zone runtime
/// (`RuntimeZones`); tests use a fake, so tenant logic is checked without root.
public protocol ZoneControl: AnyObject {
    /// Boots the zone; `beforeRelease` runs with the init's host pid before it executes
    /// (the network hook point).
    func start(_ launch: ZoneLaunch, beforeRelease: (pid_t) throws -> Void) throws -> pid_t
    func isRunning(_ uuid: String) -> Bool
    /// Whether a running zone's init has come up (systemd: its manager listens); vmadm shows
    /// `ready` rather than `running` until then.
    func initReady(_ uuid: String) -> Bool
    func initPid(_ uuid: String) -> pid_t?
    /// SIGTERM to init, SIGKILL to everything after `timeout` (at once with force).
    func stop(_ uuid: String, force: Bool, timeout: Double) throws
    func kill(_ uuid: String, signal: Int32) throws
    func updateLimits(_ uuid: String, _ limits: ZoneLimits) throws
    /// A number for the zone that stays the same across boots (vmadm's zonedid), if it has one.
    func zonedid(_ uuid: String) -> Int64?    /// Ends every process and removes the zone's cgroups; idempotent (crash repair, delete).
    func cleanup(_ uuid: String) throws
    /// Gives back per-zone host resources kept between boots (the uid range).
    func release(_ uuid: String)
    /// Takes the per-zone host resources kept between boots (the uid range, whose slot is the
    /// zone's zonedid) before the first boot; `release` gives them back.
    func reserve(_ uuid: String) throws
    /// Runs a command in the running zone (zlogin); returns its exit status.
    func login(_ uuid: String, _ argv: [String], tty: Bool, allowIOUring: Bool) throws -> Int32
    /// Starts a kvm VM's console relay in the VM's cgroups (so it ends with the VM) and
    /// returns once it listens.
    func startConsoleRelay(_ uuid: String, _ relay: ConsoleRelay) throws
    /// Starts the zone's metadata server (from `beforeRelease`: `initPid` is not running yet).
    func startMetadataServer(_ uuid: String, keysDirectory: String, initPid: pid_t) throws
    /// Runs `script` inside the running zone as its root, detached (vmadm's user-script).
    func runUserScript(_ uuid: String, allowIOUring: Bool) throws
}

extension TenantNetwork {
    public func attachTaps(vm: Manifest) throws -> [TapPort] {
        if vm.nics.isEmpty { return [] }
        throw LumosError.unsupported("this network does not attach taps for kvm VMs")
    }
}

extension ZoneControl {
    public func initReady(_ uuid: String) -> Bool { true }
    public func startConsoleRelay(_ uuid: String, _ relay: ConsoleRelay) throws {}
    public func startMetadataServer(_ uuid: String, keysDirectory: String, initPid: pid_t) throws {}
    public func runUserScript(_ uuid: String, allowIOUring: Bool) throws {}
    public func zonedid(_ uuid: String) -> Int64? { nil }
    public func reserve(_ uuid: String) throws {}
}

/// What the network made of one NIC, written back to the manifest so `vmadm get` shows it.
public struct NicResult: Sendable, Equatable {
    public var mac: String
    public var interface: String

    public init(mac: String, interface: String) {
        self.mac = mac
        self.interface = interface
    }
}

/// A kvm VM's NIC as a tap on its switch: the open descriptor QEMU gets, the MAC and the
/// interface name vmadm shows.
public struct TapPort: Sendable {
    public var descriptor: Int32
    public var mac: String
    public var interface: String

    public init(descriptor: Int32, mac: String, interface: String) {
        self.descriptor = descriptor
        self.mac = mac
        self.interface = interface
    }
}

/// The hook where the Net module plugs in a tenant's NICs: attach runs after the zone's
/// namespaces exist and before its init runs; apply changes a running zone's NICs (vmadm
/// update); detach when it stops or is deleted.
public protocol TenantNetwork: AnyObject {
    /// Checks nics[] against this host (switches exist, MACs are free) before anything changes.
    func validate(vm: Manifest) throws
    /// Wires the manifest's nics[] into a booting zone.
    func attach(vm: Manifest, pid: pid_t) throws -> [NicResult]
    /// A kvm VM's NICs as taps with the zones' anti-spoofing, caps and DHCP service; the
    /// caller hands the descriptors to QEMU and closes its copies.
    func attachTaps(vm: Manifest) throws -> [TapPort]
    /// Brings a running zone's NICs to the manifest's nics[] (matched by mac): NICs gone are
    /// removed, changed ones changed in place, new ones added. Idempotent.
    func apply(vm: Manifest, pid: pid_t) throws -> [NicResult]
    /// Crash repair for a running zone: removes whatever its NICs are in and wires nics[] afresh.
    func reset(vm: Manifest, pid: pid_t) throws -> [NicResult]
    /// Removes every NIC of the zone; idempotent (also after a killed attach).
    func detach(vm: Manifest) throws
}

/// No networking: a zone gets only its own loopback (the default until Net is wired).
public final class NoTenantNetwork: TenantNetwork {
    public init() {}
    public func validate(vm: Manifest) throws {}
    public func attach(vm: Manifest, pid: pid_t) throws -> [NicResult] { [] }
    public func attachTaps(vm: Manifest) throws -> [TapPort] { [] }
    public func apply(vm: Manifest, pid: pid_t) throws -> [NicResult] { [] }
    public func reset(vm: Manifest, pid: pid_t) throws -> [NicResult] { [] }
    public func detach(vm: Manifest) throws {}
}
