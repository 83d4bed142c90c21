import CLinux
import Glibc
import LumosCore

/// One zone PID 1 between clone and exec: owns everything the C child reads (built before
/// clone, because the child may not allocate) and the parent's end of the sync socket.
final class ZoneChild {
    let spec: ZoneSpec
    private let argv: CStringArray
    private let envp: CStringArray
    private let strings: CStringArray          // rootfs, hostname, tmpfs options, mount paths
    private let mounts: UnsafeMutablePointer<clinux_zone_mount>
    private let passFDs: UnsafeMutablePointer<Int32>
    private let deviceFDs: UnsafeMutablePointer<Int32>
    private let deviceNames: CStringArray
    private let deviceNamePointers: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>
    private let seccomp: SeccompProgram
    private var ownedFDs: [Int32] = []          // /dev/null and the init binary, closed in deinit
    private var config = clinux_zone_config()
    private var parentEnd: Int32 = -1
    private var pidfd: Int32 = -1

    init(spec: ZoneSpec, initBinary: String) throws {
        self.spec = spec
        var args: [String]
        var initFD: Int32 = -1
        switch spec.initProcess {
        case .image(let command):
            args = command
        case .restarting(let command):
            args = ["lumos-init", "--restart"] + command
            initFD = open(initBinary, CLINUX_O_PATH | O_CLOEXEC)
            if initFD < 0 { throw Errno(errno, "open", initBinary) }
        case .lumos(let command):
            args = ["lumos-init"]
            if let command {
                args += command
            } else {
                // lstat, not stat: an absolute symlink in the image must not be resolved on the host.
                var st = stat()
                if lstat(spec.rootfs + "/sbin/init", &st) == 0 { args.append("/sbin/init") }
            }
            initFD = open(initBinary, CLINUX_O_PATH | O_CLOEXEC)
            if initFD < 0 { throw Errno(errno, "open", initBinary) }
        }
        if initFD >= 0 { ownedFDs.append(initFD) }
        argv = CStringArray(args)
        envp = CStringArray(spec.environment)
        seccomp = try SeccompProgram(allowIOUring: spec.allowIOUring, capabilities: spec.capabilities, notifyStatfs: spec.quotaGroup != nil)

        // Fixed slots: 0 landing, 1 hostname, 2 dev, 3 shm, 4 tmp, then source/target pairs.
        let budget = TmpfsBudget(maxPhysicalMemory: spec.limits.maxPhysicalMemory)
        var texts = [try ZoneRuntime.landingDirectory(), spec.hostname,
                     "mode=755,size=\(TmpfsBudget.devKiB)k,nr_inodes=\(TmpfsBudget.devInodes)",
                     "mode=1777,size=\(budget.shm)m", "mode=1777,size=\(spec.tmpfsSize)m"]
        for fs in spec.filesystems {
            texts.append(fs.source)
            texts.append(String(fs.target.drop(while: { $0 == "/" })))
        }
        strings = CStringArray(texts)
        let p = strings.pointers
        mounts = .allocate(capacity: max(spec.filesystems.count, 1))
        for (i, fs) in spec.filesystems.enumerated() {
            mounts[i] = clinux_zone_mount(source: p[5 + 2 * i], target: p[6 + 2 * i], read_only: fs.readOnly ? 1 : 0, noexec: fs.noExec ? 1 : 0)
        }

        passFDs = .allocate(capacity: max(spec.descriptors.count, 1))
        for (i, fd) in spec.descriptors.enumerated() { passFDs[i] = fd }
        deviceNames = CStringArray(spec.devices.map { String($0.split(separator: "/").last ?? "") })
        deviceNamePointers = .allocate(capacity: spec.devices.count + 1)
        for (i, p) in deviceNames.pointers.enumerated() { deviceNamePointers[i] = p }
        deviceFDs = .allocate(capacity: max(spec.devices.count, 1))
        // Private nodes owned by the zone's root (host uid base), made before clone: the child
        // inherits them and moves each onto its /dev (clinux_device_tree).
        for (i, device) in spec.devices.enumerated() {
            let tree = clinux_device_tree(device, spec.idRange.base, spec.idRange.base)
            // deinit closes what was made so far.
            if tree < 0 { throw Errno(errno, "a private node for", "zone \(spec.uuid) \(device)") }
            deviceFDs[i] = tree
            ownedFDs.append(tree)
        }

        func stdio(_ fd: Int32?, _ mode: Int32) throws -> Int32 {
            if let fd { return fd }
            let null = try sys("open", "/dev/null") { open("/dev/null", mode | O_CLOEXEC) }
            ownedFDs.append(null)
            return null
        }
        config.landing = UnsafePointer(p[0])
        config.hostname = UnsafePointer(p[1])
        config.dev_data = UnsafePointer(p[2])
        config.shm_data = UnsafePointer(p[3])
        config.tmp_data = spec.tmpfsSize > 0 ? UnsafePointer(p[4]) : nil
        config.init_fd = initFD
        config.stdin_fd = try stdio(spec.stdin, O_RDONLY)
        config.stdout_fd = try stdio(spec.stdout, O_WRONLY)
        config.stderr_fd = try stdio(spec.stderr, O_WRONLY)
        config.mounts = UnsafePointer(mounts)
        config.mount_count = Int32(spec.filesystems.count)
        config.caps_keep = spec.capabilities.mask
        config.system = spec.capabilities == .system ? 1 : 0
        config.console = spec.consoleSocket != nil && spec.consoleLog != nil ? 1 : 0
        config.notify_statfs = spec.quotaGroup != nil ? 1 : 0
        config.cap_last = ZoneSecurity.lastCapability()
        config.seccomp = seccomp.filter
        config.seccomp_len = seccomp.count
        config.memlock_bytes = spec.limits.maxLockedMemory.map { $0 << 20 } ?? UInt64.max
        config.pass_fds = UnsafePointer(passFDs)
        config.pass_count = Int32(spec.descriptors.count)
        config.device_fds = UnsafePointer(deviceFDs)
        config.device_names = UnsafePointer(deviceNamePointers)
        config.device_count = Int32(spec.devices.count)
    }

    /// Clones the child into the cgroup v2 directory `cgroupFD` (-1: no cgroup placement);
    /// it waits for `release`.
    func spawn(cgroupFD: Int32) throws -> pid_t {
        var pair: [Int32] = [-1, -1]
        try sys("socketpair") { clinux_socketpair_seqpacket(&pair) }
        config.sync_fd = pair[1]
        config.parent_fd = pair[0]
        let pid = argv.withPointer { a in
            envp.withPointer { e in
                config.argv = a
                config.envp = e
                return clinux_zone_spawn(&config, cgroupFD, &pidfd)
            }
        }
        let e = errno
        close(pair[1])
        if pid < 0 {
            close(pair[0])
            throw LumosError(.failed, "zone \(spec.uuid): clone failed: \(String(cString: strerror(e))) (needs root and user namespaces)", errno: e)
        }
        parentEnd = pair[0]
        return pid
    }

    func release(passing fd: Int32) throws {
        try sys("sendmsg", "zone \(spec.uuid) release") { clinux_zone_release(parentEnd, fd) }
    }

    /// Returns once the child exec'd; throws naming the step that failed. The seccomp
    /// listener (`config.notify_statfs`), sent just before exec, goes to `listener`, which
    /// owns it.
    func waitForExec(listener: (Int32) throws -> Void = { close($0) }) throws {
        defer { closeParentEnd() }
        while true {
            var message = clinux_zone_message()
            let r = clinux_zone_wait_message(parentEnd, &message)
            if r < 0 { throw Errno(errno, "recvmsg", "zone \(spec.uuid) start") }
            if r == 0 { return }
            if message.kind == Int32(CLINUX_ZONE_MSG_LISTENER), message.fd >= 0 {
                try listener(message.fd)
                continue
            }
            if message.fd >= 0 { close(message.fd) }
            throw failure(message)
        }
    }

    /// The master of the zone's /dev/console (`config.console`), sent by the child once its
    /// mounts are done; throws naming the step when the child failed before.
    func receiveConsole() throws -> Int32 {
        var message = clinux_zone_message()
        let r = clinux_zone_wait_message(parentEnd, &message)
        if r < 0 { throw Errno(errno, "recvmsg", "zone \(spec.uuid) console") }
        if r == 0 { throw LumosError.failed("zone \(spec.uuid): the zone's first process exited before its console was made") }
        if message.kind == Int32(CLINUX_ZONE_MSG_TTY), message.fd >= 0 { return message.fd }
        if message.fd >= 0 { close(message.fd) }
        throw failure(message)
    }

    private func failure(_ message: clinux_zone_message) -> LumosError {
        let step = String(cString: clinux_zone_step_name(message.step))
        return LumosError(.failed, "zone \(spec.uuid): start failed while \(step): \(String(cString: strerror(message.error)))", errno: message.error)
    }

    func closeParentEnd() {
        if parentEnd >= 0 { close(parentEnd) }
        parentEnd = -1
    }

    deinit {
        closeParentEnd()
        if pidfd >= 0 { close(pidfd) }
        for fd in ownedFDs { close(fd) }
        mounts.deallocate()
        passFDs.deallocate()
        deviceFDs.deallocate()
        deviceNamePointers.deallocate()
    }
}
