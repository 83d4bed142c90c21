import Glibc
import LumosCore

/// The files Lumos writes into a zone's /etc before it boots (and resolv.conf again when
/// maintain_resolvers is set), as vmadm does for OS VMs: /etc/hostname and /etc/resolv.conf.
/// Built from the property table's `.zoneFiles` rows.
public struct ZoneFiles: Sendable, Equatable {
    public var hostname: String
    public var resolvers: [String] = []
    /// dns_domain, unless it is vmadm's default "local" (no search line then).
    public var searchDomain: String?
    public var maintainResolvers = false

    public init(_ m: Manifest) {
        hostname = m.uuid
        for spec in PropertyTable.all {
            guard case .zoneFiles(let setting) = spec.application, let v = m.value(spec.name) else { continue }
            setting.apply(&self, v)
        }
    }

    public var resolvConf: String {
        var text = ""
        if let d = searchDomain { text += "search \(d)\n" }
        for r in resolvers { text += "nameserver \(r)\n" }
        return text
    }

    /// Writes them beneath `root`. The zone's root user owns its /etc and may have planted
    /// symlinks (/etc itself, the files, or the temp names): writeBeneath never follows one. A
    /// tenant that replaced /etc with a symlink simply does not get these files.
    public func write(root: String) throws {
        var st = stat()
        guard lstat(root + "/etc", &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else { return }
        for (name, text) in [("hostname", hostname + "\n"), ("resolv.conf", resolvConf)] {
            let path = "\(root)/etc/\(name)"
            if lstat(path, &st) == 0 && (st.st_mode & S_IFMT) != S_IFREG { continue }
            if name == "resolv.conf" && resolvers.isEmpty { continue }
            // Unchanged files are not rewritten. No fsync: both are derived from the manifest
            // again at every boot, so a power loss cannot leave them wrong for long.
            if (st.st_mode & S_IFMT) == S_IFREG, (try? FD.readText(path)) == text { continue }
            try Files.writeBeneath(root: root, "etc/\(name)", text, durable: false)
        }
    }
}
