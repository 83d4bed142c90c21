import CLinux
import Glibc
import LumosCore

/// The zone's metadata server (lumos-init --metadata-server, Sources/lumos-init/metadata.c;
/// docs/architecture.md, "Metadata"), started on the host in the zone's cgroups
/// (`ZoneRuntime.startService`), so its memory is the zone's and cgroup.kill ends it.
extension ZoneRuntime {
    /// The tools and the socket directory as the zone sees them: the socket directory at
    /// /native/.zonecontrol and this very lumos-init, read-only, as each of `tools` in
    /// `toolDirectory` (the tools pick their role from argv[0]).
    public func metadataMounts(socketDirectory: String, zoneSocketDirectory: String, toolDirectory: String, tools: [String]) throws -> [BindMount] {
        try Files.makeDirectories(socketDirectory, mode: 0o755)
        unlink("\(socketDirectory)/metadata.sock")
        return [BindMount(source: socketDirectory, target: zoneSocketDirectory, readOnly: true, noExec: true)]
            + tools.map { BindMount(source: initBinary, target: "\(toolDirectory)/\($0)", readOnly: true) }
    }

    /// Listens on `socketDirectory`/metadata.sock (mode 0600, owned by the zone's root, so only
    /// root in the zone connects) and hands the socket to a server that serves `keysDirectory`
    /// until the zone's init (`initPid`, not yet released) exits. Called before the zone's own
    /// code runs, so the socket is there from its first instruction.
    public func startMetadataServer(_ uuid: String, keysDirectory: String, socketDirectory: String, zoneRoot: uid_t, initPid: pid_t) throws {
        let path = "\(socketDirectory)/metadata.sock"
        let fd = try UnixSocket.listen(path, owner: zoneRoot)
        defer { close(fd) }
        do {
            _ = try startService(uuid, [initBinary, "--metadata-server", keysDirectory, String(initPid)], stdin: fd, what: "metadata server")
        } catch {
            unlink(path)
            throw error
        }
    }
}

extension ZoneRuntime {
    /// vmadm's user-script: inside the running zone, as its root with the zone's own
    /// restrictions (a zlogin session, never host root), fetched with mdata-get into
    /// /var/svc/mdata-user-script and started in the background with its output in
    /// /var/svc/mdata-user-script.log. Returns once it is started.
    public func runUserScript(_ uuid: String, _ toolDirectory: String, allowIOUring: Bool) throws {
        let wrapper = "mkdir -p /var/svc && \(toolDirectory)/mdata-get user-script > /var/svc/mdata-user-script && chmod 700 /var/svc/mdata-user-script && (/var/svc/mdata-user-script > /var/svc/mdata-user-script.log 2>&1 < /dev/null &)"
        let null = try sys("open", "/dev/null") { open("/dev/null", O_RDWR | O_CLOEXEC) }
        defer { close(null) }
        let status = try exec(uuid, ["/bin/sh", "-c", wrapper], allowIOUring: allowIOUring, stdin: null, stdout: null, stderr: null)
        if status != 0 { throw LumosError.failed("zone \(uuid): the user-script could not be started (status \(status)); is there a /bin/sh in the image?") }
    }
}
