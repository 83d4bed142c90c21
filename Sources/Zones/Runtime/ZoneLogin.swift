import CLinux
import Glibc
import LumosCore

extension ZoneRuntime {
    /// zlogin: runs `argv` inside a running zone with the zone's own restrictions (its user,
    /// mount, pid, uts, ipc, net and cgroup namespaces and cgroups, the same capabilities,
    /// no_new_privs and seccomp filter) and returns its exit status (128+signal when killed).
    /// With `tty`, the command gets a pseudo-terminal from the zone's own /dev/pts, relayed to
    /// our stdin/stdout (raw mode while it runs when stdin is a terminal). Without it, the
    /// command uses `stdin`/`stdout`/`stderr` (default: ours).
    /// `allowIOUring` must be what the zone was started with (ZoneSpec.allowIOUring).
    public func exec(_ uuid: String, _ argv: [String], tty: Bool = false, environment: [String] = ZoneSpec.defaultEnvironment,
                     allowIOUring: Bool = false, stdin: Int32 = 0, stdout: Int32 = 1, stderr: Int32 = 2) throws -> Int32 {
        guard !argv.isEmpty else { throw LumosError.invalid("zlogin \(uuid): no command given") }
        guard let initPid = initPid(uuid) else {
            throw LumosError.invalid("zone \(uuid) is not running; start it with `vmadm start \(uuid)`")
        }
        // A session born in a frozen zone would freeze with it (and so would our thread while
        // it stands in the zone's v1 freezer cgroup to clone it).
        if cgroup(uuid).isFrozen {
            throw LumosError.busy("zone \(uuid) is frozen; thaw it first")
        }
        var nsFDs: [Int32] = []
        defer { for fd in nsFDs { close(fd) } }
        for ns in ["user", "mnt", "pid", "uts", "ipc", "net", "cgroup"] {
            let path = "/proc/\(initPid)/ns/\(ns)"
            nsFDs.append(try sys("open", path) { open(path, O_RDONLY | O_CLOEXEC) })
        }
        // The zone's capability set, read from its init (a jail's sessions get none either).
        let capabilities = ZoneCapabilities.of(pid: initPid)
        // A zone whose df shows its quota: the session's statfs go to the same supervisor.
        let statfs = Self.connectStatfs(uuid)
        defer { if let statfs { close(statfs) } }
        let seccomp = try SeccompProgram(allowIOUring: allowIOUring, capabilities: capabilities, notifyStatfs: statfs != nil)
        let args = CStringArray(argv)
        let env = CStringArray(environment)
        let cwd = CStringArray(["/"])
        var pair: [Int32] = [-1, -1]
        try sys("socketpair") { clinux_socketpair_seqpacket(&pair) }
        var config = clinux_zone_enter_config()
        withUnsafeMutableBytes(of: &config.ns_fds) { raw in
            let fds = raw.bindMemory(to: Int32.self)
            for i in 0..<7 { fds[i] = nsFDs[i] }
        }
        config.cwd = UnsafePointer(cwd.pointers[0])
        config.tty = tty ? 1 : 0
        config.stdin_fd = stdin
        config.stdout_fd = stdout
        config.stderr_fd = stderr
        config.caps_keep = capabilities.mask
        config.cap_last = ZoneSecurity.lastCapability()
        config.seccomp = seccomp.filter
        config.seccomp_len = seccomp.count
        config.notify_statfs = statfs != nil ? 1 : 0
        // The session gets the zone's locked-memory limit, like every process the zone forks.
        config.memlock_bytes = UInt64.max
        if let zoneLimit = MemlockLimit.current(initPid) {
            try MemlockLimit.allow(zoneLimit >> 20, zone: uuid)
            config.memlock_bytes = zoneLimit
        }
        config.sync_fd = pair[1]
        config.parent_fd = pair[0]
        // Born in the zone's cgroups, like the zone's init (see ZoneCgroup.withThreadInZone).
        var e: Int32 = 0
        let pid: pid_t
        do {
            pid = try cgroup(uuid).withThreadInZone { cgroupFD in
                args.withPointer { a in
                    env.withPointer { en in
                        config.argv = a
                        config.envp = en
                        let pid = clinux_zone_enter(&config, cgroupFD)
                        e = errno
                        return pid
                    }
                }
            }
        } catch {
            close(pair[0])
            close(pair[1])
            throw error
        }
        close(pair[1])
        let sock = pair[0]
        defer { close(sock) }
        if pid < 0 { throw Errno(e, "clone3", "zlogin \(uuid)") }

        var master: Int32 = -1
        defer { if master >= 0 { close(master) } }
        let oomBefore = cgroup(uuid).oomKills
        do {
            try sys("sendmsg", "zlogin \(uuid)") { clinux_zone_release(sock, -1) }
            while true {
                var message = clinux_zone_message()
                let r = clinux_zone_wait_message(sock, &message)
                if r < 0 { throw Errno(errno, "recvmsg", "zlogin \(uuid)") }
                if r == 0 { break }
                if message.kind == Int32(CLINUX_ZONE_MSG_TTY) {
                    master = message.fd
                    continue
                }
                if message.kind == Int32(CLINUX_ZONE_MSG_LISTENER) {
                    defer { close(message.fd) }
                    if let statfs { try Self.hand(message.fd, to: statfs, uuid: uuid) }
                    continue
                }
                let step = String(cString: clinux_zone_step_name(message.step))
                throw LumosError(.failed, "zlogin \(uuid): failed while \(step) for \(argv[0]): \(String(cString: strerror(message.error)))", errno: message.error)
            }
        } catch {
            Glibc.kill(pid, SIGKILL)
            _ = Exec.wait(pid)
            throw error
        }
        if master >= 0 { TerminalRelay(master: master, input: stdin, output: stdout).run() }
        let status = Exec.wait(pid)
        // A session killed because the zone ran out of memory says so, instead of a bare 137.
        if status == 128 + SIGKILL, let before = oomBefore, let after = cgroup(uuid).oomKills, after > before {
            let cap = cgroup(uuid).value(controller: "memory", file: "memory.limit_in_bytes")
                ?? cgroup(uuid).value(controller: "memory", file: "memory.max")
            let mib = cap.flatMap { UInt64($0) }.map { " (max_physical_memory \($0 >> 20) MiB)" } ?? ""
            let line = "zlogin: \(argv[0]) was killed by the zone's OOM killer: zone \(uuid) is out of memory\(mib)\n"
            _ = FD.writeAll(stderr, Array(line.utf8))
        }
        return status
    }
}

/// Copies bytes between our terminal and a zone's pseudo-terminal master until the session
/// ends (the master reports EIO/EOF once every slave descriptor is closed).
struct TerminalRelay {
    let master: Int32
    let input: Int32
    let output: Int32

    func run() {
        var saved = [UInt8](repeating: 0, count: 256)
        let terminal = isatty(input) == 1
        let raw = terminal && clinux_tty_set_raw(input, &saved, saved.count) == 0
        defer { if raw { _ = clinux_tty_restore(input, saved, saved.count) } }
        let winch = terminal ? clinux_winch_pipe() : -1
        defer { if winch >= 0 { clinux_winch_close(winch) } }
        if terminal { _ = clinux_tty_copy_winsize(input, master) }
        var fds = [pollfd(fd: master, events: Int16(POLLIN), revents: 0), pollfd(fd: input, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: winch, events: Int16(POLLIN), revents: 0)]
        var buf = [UInt8](repeating: 0, count: 16384)
        while true {
            if poll(&fds, 3, -1) < 0 {
                if errno == EINTR { continue }
                return
            }
            if fds[2].revents != 0 {
                _ = buf.withUnsafeMutableBytes { read(winch, $0.baseAddress, $0.count) }
                _ = clinux_tty_copy_winsize(input, master)
            }
            if fds[0].revents != 0 {
                let n = buf.withUnsafeMutableBytes { read(master, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return }
                _ = buf.withUnsafeBytes { FD.writeAll(output, UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            }
            if fds[1].revents != 0 {
                let n = buf.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 {
                    fds[1].fd = -1      // our input ended; keep showing the zone's output
                    continue
                }
                _ = buf.withUnsafeBytes { FD.writeAll(master, UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            }
        }
    }
}
