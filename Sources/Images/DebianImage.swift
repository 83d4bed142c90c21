import Foundation
import LumosCore

/// `imgadm build debian [--suite bookworm]`: debootstrap --variant=minbase from the Debian
/// mirror the host already uses (apt's sources), so no other image server is needed.
public enum DebianImage {
    /// What the image runs as the zone's PID 1 (vmadm's init_name is /sbin/init).
    public enum InitSystem: String, Sendable, CaseIterable {
        /// minbase has no /sbin/init: Lumos's init is PID 1 and idles.
        case none
        /// systemd (systemd-sysv's /sbin/init) with dbus; booted as a system container
        /// (docs/vmadm.md, "Zones with systemd").
        case systemd

        /// debootstrap --include. netbase (/etc/services, /etc/protocols: minbase leaves it out)
        /// with systemd, as every installed Debian has it: without it getservbyname fails, so
        /// `wrk http://HOST/` says "Servname not supported" (the Debian kvm guest has it too).
        var packages: [String] {
            switch self {
            case .none: return []
            case .systemd: return ["systemd", "systemd-sysv", "dbus", "netbase"]
            }
        }
    }

    /// One-line errors for names debootstrap's --include cannot take (Debian policy: lower-case
    /// letters, digits and + - ., starting with a letter or digit, at least two characters).
    public static func checkPackages(_ names: [String]) throws {
        for name in names {
            let ok = name.count >= 2 && name.first.map { $0.isASCII && ($0.isLowercase || $0.isNumber) } == true
                && name.allSatisfy { $0.isASCII && ($0.isLowercase || $0.isNumber || "+-.".contains($0)) }
            if !ok { throw LumosError.invalid("package name \"\(name)\": Debian package names are lower-case letters, digits and + - . (at least 2, starting with a letter or digit)") }
        }
    }

    /// `include`: more packages for debootstrap's --include (with their dependencies).
    public static func build(into rootfs: String, suite: String, mirror: String, initSystem: InitSystem = .none, include: [String] = [],
                             progress: Bool) throws {
        try checkPackages(include)
        let packages = initSystem.packages + include
        guard Exec.which("debootstrap") != nil else {
            throw LumosError.notFound("debootstrap is missing; apt-get install debootstrap")
        }
        // debootstrap runs the new system's programs (chroot) and opens its /dev/null, but a
        // pool is mounted noexec and nodev on the host (docs/security.md). In a private mount
        // namespace of its own, debootstrap gets a bind mount of the target with both allowed;
        // it vanishes with the process, so a killed build leaves no mount behind.
        let argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                    "mount --bind \"$1\" \"$1\" && mount -o remount,bind,exec,dev,nosuid \"$1\" && exec debootstrap --variant=minbase $4 \"$2\" \"$1\" \"$3\"",
                    "debootstrap", rootfs, suite, mirror, packages.isEmpty ? "" : "--include=" + packages.joined(separator: ",")]
        if progress {
            // debootstrap prints its own I: lines; show them on a terminal.
            let pid = try Exec.spawn(argv, stdout: .fd(2), stderr: .inherit)
            let status = Exec.wait(pid)
            if status != 0 { throw LumosError.failed("debootstrap \(suite) from \(mirror) failed (exit \(status)); see the messages above") }
        } else {
            try Exec.run(argv)
        }
        // A zone's hostname, resolvers and init come from its manifest; leave no host values.
        try Files.writeAtomically("\(rootfs)/etc/hostname", "debian\n")
        try Files.writeAtomically("\(rootfs)/etc/resolv.conf", "")
        // Every zone gets its own machine id: systemd makes one at first boot when the file is
        // empty (from the container_uuid Lumos passes), so the image must not carry the build's.
        if initSystem == .systemd {
            try Files.writeAtomically("\(rootfs)/etc/machine-id", "")
            _ = try? Exec.run(["rm", "-f", "\(rootfs)/var/lib/dbus/machine-id"], check: false)
        }
        _ = try? Exec.run(["rm", "-rf", "\(rootfs)/var/cache/apt/archives", "\(rootfs)/var/lib/apt/lists"], check: false)
        try Files.makeDirectories("\(rootfs)/var/cache/apt/archives/partial")
        try Files.makeDirectories("\(rootfs)/var/lib/apt/lists/partial")
    }
}

/// The host's configured Debian mirror, read from apt's sources (one-line `.list` files or
/// deb822 `.sources` files).
public enum AptSources {
    public static func debianMirror(etc: String = "/etc/apt") throws -> String {
        var texts: [(String, String)] = []
        if let t = try? FD.readText("\(etc)/sources.list") { texts.append(("sources.list", t)) }
        for name in Files.list("\(etc)/sources.list.d") where name.hasSuffix(".list") || name.hasSuffix(".sources") {
            if let t = try? FD.readText("\(etc)/sources.list.d/\(name)") { texts.append((name, t)) }
        }
        for (name, text) in texts {
            let found = name.hasSuffix(".sources") ? fromDeb822(text) : fromOneLine(text)
            if let m = found { return m }
        }
        throw LumosError.notFound("no Debian mirror in \(etc)/sources.list or sources.list.d; pass --mirror URL")
    }

    /// The first `deb` source that is a Debian archive (not security or a third party).
    static func isDebianArchive(_ uri: String) -> Bool {
        (uri.contains("debian") || uri.contains("deb.debian.org")) && !uri.contains("security")
    }

    public static func fromOneLine(_ text: String) -> String? {
        for line in text.split(separator: "\n") {
            var words = line.split(separator: " ").map(String.init).filter { !$0.isEmpty }
            guard words.first == "deb" else { continue }
            words.removeFirst()
            if words.first?.hasPrefix("[") == true {
                while let w = words.first, !w.hasSuffix("]") { words.removeFirst() }
                if !words.isEmpty { words.removeFirst() }
            }
            if let uri = words.first, isDebianArchive(uri) { return uri }
        }
        return nil
    }

    public static func fromDeb822(_ text: String) -> String? {
        for stanza in text.components(separatedBy: "\n\n") {
            var fields: [String: String] = [:]
            for line in stanza.split(separator: "\n") where !line.hasPrefix("#") {
                guard let c = line.firstIndex(of: ":") else { continue }
                fields[String(line[..<c]).lowercased()] = String(line[line.index(after: c)...]).trimmingSpaces()
            }
            guard fields["types"]?.split(separator: " ").contains("deb") == true, fields["enabled"] != "no",
                  let uris = fields["uris"] else { continue }
            if let uri = uris.split(separator: " ").map(String.init).first(where: isDebianArchive) { return uri }
        }
        return nil
    }
}
