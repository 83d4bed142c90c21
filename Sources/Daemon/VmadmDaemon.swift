import Foundation
import Glibc
import Hummingbird
import HummingbirdTLS
import Images
import LumosCore
import NIOSSL
import Storage
import Zones

/// vmadmd (docs/daemon.md): the REST API on a root-only unix socket (and on TCP only with TLS
/// and a bearer token), autoboot at start and after the `zones` pool comes back, and the
/// modules' background work. It runs in the foreground; systemd (scripts/lumos-vmadmd.service)
/// or a test starts it. Every request goes through the same library calls as the CLI, and all
/// state is on disk, so a kill -9 loses nothing: the next start (or the next CLI command)
/// finishes or undoes what was in flight (Vmadm.recover).
public struct VmadmDaemon: Sendable {
    public struct Options: Sendable {
        public var root: StateRoot
        public var socket = VmadmDaemon.defaultSocket
        /// `HOST:PORT` for the TLS listener; needs `tlsCert`, `tlsKey` and `tokenFile`.
        public var listen: String?
        public var tlsCert: String?
        public var tlsKey: String?
        public var tokenFile: String?
        /// Start autoboot tenants at start and when the pool is imported (on by default).
        public var autoboot = true
        /// Where the OpenAPI document is read from (default: VmadmDaemon.openAPIPath()).
        public var openAPIDocument: String?

        public init(root: StateRoot) { self.root = root }
    }

    public static let defaultSocket = "/run/lumos/vmadmd.sock"

    public let options: Options
    public let modules: [any DaemonModule]

    /// `modules`: the standard ones (`VmadmDaemon.standardModules`) plus any the caller adds,
    /// e.g. Analytics' `/ca` routes and its web page.
    public init(options: Options, modules: [any DaemonModule]) throws {
        self.options = options
        self.modules = modules
        try Self.check(options)
    }

    /// The API without Analytics: tenants, images, datasets, networks, the OpenAPI document.
    public static func standardModules(options: Options) -> [any DaemonModule] {
        [TenantsModule(), EventsModule(), ImagesModule(), DatasetsModule(), NetworksModule(),
         OpenAPIModule(path: options.openAPIDocument ?? openAPIPath())]
    }

    /// Refuses a TCP listener without TLS and a token, before anything starts.
    static func check(_ o: Options) throws {
        if o.listen == nil {
            if o.tlsCert != nil || o.tlsKey != nil || o.tokenFile != nil {
                throw LumosError.usage("daemon: --tls-cert, --tls-key and --token-file are for a TCP listener; give --listen HOST:PORT too")
            }
            return
        }
        guard let cert = o.tlsCert, let key = o.tlsKey, let tokenFile = o.tokenFile else {
            throw LumosError.usage("daemon: --listen needs --tls-cert, --tls-key and --token-file (the API is never served on TCP without TLS and a token)")
        }
        for f in [cert, key, tokenFile] where !Files.exists(f) {
            throw LumosError.notFound("daemon: \(f) does not exist")
        }
        _ = try readToken(tokenFile)
        _ = try parseListen(o.listen!)
    }

    static func parseListen(_ text: String) throws -> (String, Int) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port) else {
            throw LumosError.usage("daemon: --listen \(text): give HOST:PORT, e.g. 127.0.0.1:9443")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return (host.isEmpty ? "0.0.0.0" : host, port)
    }

    /// The token file: one line, at least 16 characters, readable by root only.
    static func readToken(_ path: String) throws -> [UInt8] {
        var st = stat()
        guard stat(path, &st) == 0 else { throw Errno(errno, "stat", path) }
        if st.st_mode & 0o077 != 0 {
            throw LumosError(.permission, "daemon: token file \(path) is readable by others (mode \(String(st.st_mode & 0o777, radix: 8))); chmod 600 it")
        }
        var bytes = try FD.readFile(path)
        while let last = bytes.last, last == 0x0a || last == 0x0d || last == 0x20 { bytes.removeLast() }
        guard bytes.count >= 16, !bytes.contains(where: { $0 < 0x21 || $0 > 0x7e }) else {
            throw LumosError.invalid("daemon: token file \(path) must hold one token of at least 16 printable characters")
        }
        return bytes
    }

    /// The OpenAPI document (docs/api/openapi.yaml): $LUMOS_OPENAPI, the installed copy, or
    /// the source tree this binary was built from.
    public static func openAPIPath() -> String {
        if let env = getenv("LUMOS_OPENAPI"), env.pointee != 0 { return String(cString: env) }
        let installed = "/usr/local/share/lumos/openapi.yaml"
        if Files.exists(installed) { return installed }
        // Sources/Daemon/VmadmDaemon.swift → the repository's docs/api/openapi.yaml.
        let repo = Files.parent(Files.parent(Files.parent(#filePath)))
        return repo + "/docs/api/openapi.yaml"
    }

    func router(environment: DaemonEnvironment, token: [UInt8]?) -> DaemonRouter {
        let router = DaemonRouter(context: DaemonContext.self)
        router.add(middleware: JSONErrorMiddleware())
        if let token { router.add(middleware: BearerTokenMiddleware(token: token)) }
        router.get("ping") { _, _ in JSONResponse(["ok": true]) }
        for module in modules { module.addRoutes(to: router, daemon: environment) }
        return router
    }

    /// Runs until SIGTERM or SIGINT.
    public func run() async throws {
        let environment = DaemonEnvironment(root: options.root)
        try Files.makeDirectories(options.root.sub("run"))
        // One daemon per state root: a second would autoboot the same tenants and take over
        // the socket (Hummingbird removes a stale socket file before binding).
        let lock: FileLock
        do { lock = try FileLock(options.root.sub("run", "vmadmd.lock"), wait: false) } catch let e as LumosError where e.kind == .busy {
            throw LumosError.busy("daemon: another vmadmd runs on state root \(options.root.path); stop it first")
        }
        defer { withExtendedLifetime(lock) {} }
        try Files.makeDirectories(Files.parent(options.socket), mode: 0o755)

        // Killed creates, deletes and updates are finished or undone before anything else.
        Self.log("starting on \(options.socket)\(options.listen.map { " and https://\($0)" } ?? "") (state root \(options.root.path))")
        do { _ = try await environment.vmadm { _ in true } } catch {
            Self.log("tenants not available yet: \(oneLine(error)) (autoboot waits for the pool)")
        }

        let socketPath = options.socket
        // The socket is created by bind(2) under a umask that leaves it 0600, then chmod'ed
        // again, so no moment exists at which others could connect.
        let oldMask = umask(0o177)
        let unixApp = Application(
            router: router(environment: environment, token: nil),
            configuration: .init(address: .unixDomainSocket(path: socketPath), serverName: "vmadmd"),
            onServerRunning: { _ in
                chmod(socketPath, 0o600)
                umask(oldMask)
                Self.log("listening on \(socketPath)")
            }
        )
        var tcpRun: (@Sendable () async throws -> Void)?
        if let listen = options.listen, let cert = options.tlsCert, let key = options.tlsKey, let tokenFile = options.tokenFile {
            let (host, port) = try Self.parseListen(listen)
            let tls = TLSConfiguration.makeServerConfiguration(
                certificateChain: try NIOSSLCertificate.fromPEMFile(cert).map { .certificate($0) },
                privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
            let tcpApp = Application(
                router: router(environment: environment, token: try Self.readToken(tokenFile)),
                server: try .tls(.http1(), tlsConfiguration: tls),
                configuration: .init(address: .hostname(host, port: port), serverName: "vmadmd"),
                onServerRunning: { channel in Self.log("listening on https://\(channel.localAddress.map { "\($0)" } ?? listen)") }
            )
            tcpRun = { try await tcpApp.runService() }
        }
        let autoboot = options.autoboot
        let modules = self.modules
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await unixApp.runService() }
            if let tcpRun { group.addTask { try await tcpRun() } }
            // Background work ends with the servers: cancelled once a server returns.
            group.addTask {
                try await withThrowingTaskGroup(of: Void.self) { bg in
                    if autoboot { bg.addTask { await Autoboot(environment: environment).watch() } }
                    bg.addTask { await Self.reapZombies() }
                    for m in modules { bg.addTask { try await m.run(daemon: environment) } }
                    try await bg.waitForAll()
                }
            }
            // The first server to return (SIGTERM) ends the daemon.
            _ = try await group.next()
            group.cancelAll()
        }
        unlink(socketPath)
        Self.log("stopped")
    }

    /// Zone inits started by this process are its children: reaped when they exit.
    static func reapZombies() async {
        while !Task.isCancelled {
            ZoneRuntime.reapExitedInits()
            try? await Task.sleep(for: .seconds(2))
        }
    }

    static func log(_ line: String) {
        FileHandle.standardError.write(Data("vmadmd: \(line)\n".utf8))
    }
}
