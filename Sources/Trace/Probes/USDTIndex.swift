import Glibc
import LumosCore

/// Which files had USDT providers at the last scan of every process, kept across sessions so
/// a provider pattern can be attached before the scan (docs/trace.md, "USDT start-up").
///
/// The index only says which files to read first. Probe offsets and arguments always come
/// from reading the file itself, and a file whose device or inode changed is skipped. So a
/// stale or wrong index costs a late attach, never a uprobe at a wrong address. It is
/// trusted only when it is owned by this user and nobody else can write it or its
/// directory. A malformed index counts as empty.
///
/// Format, one file per line: `device<TAB>inode<TAB>provider[,provider...]<TAB>path`.
///
/// Public API:
///   USDTIndex(directory:)                       -- LUMOS_TRACE_CACHE or /var/cache/lumos/trace
///   USDTIndex.defaultDirectory
///   .files(providerMatching:) -> [Entry]        -- glob on the provider
///   .record(_ probes:)                          -- the scan's host files, written atomically
public struct USDTIndex: Sendable {
    public struct Entry: Sendable, Equatable {
        public var id: FileID
        public var providers: [String]
        public var path: String
    }

    public let directory: String
    public var path: String { directory + "/usdt-files" }

    public static var defaultDirectory: String {
        getenv("LUMOS_TRACE_CACHE").map { String(cString: $0) } ?? "/var/cache/lumos/trace"
    }

    public init(directory: String = USDTIndex.defaultDirectory) {
        self.directory = directory
    }

    /// The entries, or none when the index is missing, not private or malformed.
    public func entries() -> [Entry] {
        guard Self.isPrivate(directory), Self.isPrivate(path), let text = TextFile.read(path) else { return [] }
        var out: [Entry] = []
        for line in text.split(separator: "\n") {
            let f = line.split(separator: "\t", maxSplits: 3, omittingEmptySubsequences: false)
            guard f.count == 4, let dev = UInt64(f[0]), let ino = UInt64(f[1]), f[3].hasPrefix("/") else { return [] }
            let providers = f[2].split(separator: ",").map(String.init)
            guard !providers.isEmpty else { return [] }
            out.append(Entry(id: FileID(device: dev, inode: ino), providers: providers, path: String(f[3])))
        }
        return out
    }

    /// Files with a provider the glob matches (DTrace's provider field: `postgresql*`).
    public func files(providerMatching pattern: String) -> [Entry] {
        entries().filter { e in e.providers.contains { globMatch(pattern, $0) } }
    }

    /// Replaces the index with the files of a scan (pid nil, opened by their own path: the
    /// files of other mount namespaces are named through /proc/PID/root and are not kept).
    /// Best effort: a cache that cannot be written is no error.
    public func record(_ probes: [USDTProbe]) {
        var providers: [String: (id: FileID, names: [String])] = [:]
        var order: [String] = []
        for p in probes where p.attachPath == p.path && p.path.hasPrefix("/") && !p.path.hasPrefix("/proc/") {
            if providers[p.path] == nil {
                guard let id = FileID(path: p.path) else { continue }
                providers[p.path] = (id, [])
                order.append(p.path)
            }
            if !providers[p.path]!.names.contains(p.provider) { providers[p.path]!.names.append(p.provider) }
        }
        var text = ""
        for path in order {
            let e = providers[path]!
            // A path with a tab or newline cannot be written in this format; it is scanned.
            guard !path.contains("\t") && !path.contains("\n") else { continue }
            text += "\(e.id.device)\t\(e.id.inode)\t\(e.names.joined(separator: ","))\t\(path)\n"
        }
        if text == (Self.isPrivate(path) ? TextFile.read(path) : nil) { return }
        if !Files.exists(directory) {
            _ = mkdir(Files.parent(directory), 0o755)
            _ = mkdir(directory, 0o700)
        }
        guard Self.isPrivate(directory) else { return }
        try? Files.writeAtomically(path, Array(text.utf8), mode: 0o600)
    }

    /// Owned by this user and writable by nobody else (a directory or a regular file).
    static func isPrivate(_ path: String) -> Bool {
        var st = stat()
        guard lstat(path, &st) == 0 else { return false }
        let type = st.st_mode & S_IFMT
        return (type == S_IFDIR || type == S_IFREG) && st.st_uid == geteuid() && st.st_mode & 0o022 == 0
    }
}
