import Glibc
import LumosCore

/// Userland statically defined tracing: probes that <sys/sdt.h> (systemtap-sdt-dev) leaves
/// in an ELF file's .note.stapsdt section. A probe is a uprobe on the file offset of its
/// note's pc, its arguments are decoded from the note's argument string, and a non-zero
/// semaphore (a counter the program tests before doing expensive argument work) is passed
/// to the kernel as the uprobe's reference-counter offset so it is raised while traced.
///
/// Public API:
///   USDT.probes(inFile:) throws -> [USDTProbe]                  -- one binary or library
///   USDT.probes(inProcess:) throws -> [USDTProbe]               -- every mapped file of a pid
///   USDT.probes(forCommand:) throws -> [USDTProbe]              -- the -c command's binary
///   USDTProbe: provider, name, dtraceName ("query-start" for query__start), path,
///     attachPath (what the kernel opens: /proc/PID/root/... for files of other mount
///     namespaces), pid, address, fileOffset, semaphoreOffset, arguments, function
///   ProcessMaps.mappedFiles(pid:) -> [String]
public struct USDTProbe: Sendable, Hashable {
    public var provider: String
    public var name: String
    /// The file as named in the process (or as given).
    public var path: String
    /// The path the kernel should resolve for perf_event_open (same file).
    public var attachPath: String
    /// The process this was found in, or nil for a file.
    public var pid: Int32?
    /// The note's pc after prelink adjustment (a virtual address in the file).
    public var address: UInt64
    public var fileOffset: UInt64
    /// File offset of the semaphore, or nil when the probe has none.
    public var semaphoreOffset: UInt64?
    public var arguments: [USDTArgument]
    /// The note's argument string ("-4@%eax 8@%rdx"). USDTDiscovery reads notes without
    /// parsing it and parses it for the probes a program matched (`arguments` stays empty
    /// until then).
    public var argumentText = ""
    /// The function containing the probe, when the file has symbols ("" otherwise).
    public var function: String

    /// DTrace spells double underscores as dashes: query__start is query-start.
    public var dtraceName: String {
        let b = Array(name.utf8)
        guard b.indices.dropFirst().contains(where: { b[$0] == UInt8(ascii: "_") && b[$0 - 1] == UInt8(ascii: "_") }) else { return name }
        var out: [UInt8] = []
        var i = 0
        while i < b.count {
            if i + 1 < b.count, b[i] == UInt8(ascii: "_"), b[i + 1] == UInt8(ascii: "_") {
                out.append(UInt8(ascii: "-"))
                i += 2
            } else {
                out.append(b[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
    /// The provider as DTrace shows a process's probes: "postgresql1234".
    public var dtraceProvider: String { pid.map { "\(provider)\($0)" } ?? provider }
    /// The module column: the file's base name.
    public var module: String { Files.basename(path) }
}

public enum USDT {
    static let noteSection = ".note.stapsdt"
    static let baseSection = ".stapsdt.base"
    static let noteType: UInt32 = 3

    public static func probes(inFile path: String, attachPath: String? = nil, pid: Int32? = nil) throws -> [USDTProbe] {
        let elf = try ELFFile(path: path)
        var out = try probes(in: elf, path: path, attachPath: attachPath, pid: pid)
        let names = try elf.functionNames(containing: out.map(\.address))
        for i in out.indices { out[i].function = names[out[i].address] ?? "" }
        return out
    }

    /// The notes of an open file, functions left empty (USDTDiscovery fills them in for the
    /// probes that are matched), arguments parsed unless `parseArguments` is false (then a
    /// malformed argument string is found only when the probe is matched).
    static func probes(in elf: ELFFile, path: String, attachPath: String? = nil, pid: Int32? = nil,
                       parseArguments: Bool = true) throws -> [USDTProbe] {
        let notes = try elf.notes(inSection: noteSection).filter { $0.owner == "stapsdt" && $0.type == noteType }
        if notes.isEmpty { return [] }
        let base = elf.section(named: baseSection)?.address
        var out: [USDTProbe] = []
        for n in notes {
            let d = n.descriptor
            guard d.count >= 24 else { continue }
            var pc = d.u64(0)
            let noteBase = d.u64(8)
            var semaphore = d.u64(16)
            // Prelinked or relocated files: the note records where .stapsdt.base was at link
            // time; shift pc and semaphore by how far it moved.
            if let b = base, noteBase != 0 {
                pc = pc &+ b &- noteBase
                if semaphore != 0 { semaphore = semaphore &+ b &- noteBase }
            }
            let provider = d.cString(at: 24)
            let nameStart = 24 + provider.utf8.count + 1
            let name = d.cString(at: nameStart)
            let argStart = nameStart + name.utf8.count + 1
            let argText = d.cString(at: argStart)
            guard let offset = elf.fileOffset(forAddress: pc) else {
                throw LumosError(.corrupt, "\(path): USDT probe \(provider):\(name) at 0x\(String(pc, radix: 16)) is outside every loadable segment")
            }
            let args = parseArguments ? try USDTArgument.parseList(argText) : []
            out.append(USDTProbe(provider: provider, name: name, path: path, attachPath: attachPath ?? path, pid: pid,
                                 address: pc, fileOffset: offset,
                                 semaphoreOffset: semaphore == 0 ? nil : elf.fileOffset(forAddress: semaphore),
                                 arguments: args, argumentText: argText, function: ""))
        }
        return out
    }

    /// Probes of every file a running process maps executable (its binary and libraries).
    /// Files of processes in another mount namespace (zones) are read and attached through
    /// /proc/PID/root.
    public static func probes(inProcess pid: Int32) throws -> [USDTProbe] {
        let files = ProcessMaps.mappedFiles(pid: pid)
        if files.isEmpty && !Files.exists("/proc/\(pid)") {
            throw LumosError.notFound("process \(pid) does not exist")
        }
        var out: [USDTProbe] = []
        for f in files {
            let attach = ProcessMaps.attachPath(pid: pid, path: f)
            guard let probes = try? probes(inFile: attach, attachPath: attach, pid: pid) else { continue }
            out += probes.map { var p = $0; p.path = f; return p }
        }
        return out
    }

    /// Probes in the binary a -c command runs (looked up in PATH like execvp).
    public static func probes(forCommand command: String) throws -> [USDTProbe] {
        guard let path = ProcessMaps.resolveCommand(command) else {
            throw LumosError.notFound("command '\(command)' not found in PATH")
        }
        return try probes(inFile: path)
    }
}

/// /proc/PID/maps and /proc/PID/root helpers.
public enum ProcessMaps {
    /// Distinct files mapped executable, in first-mapped order.
    public static func mappedFiles(pid: Int32) -> [String] {
        guard let text = TextFile.read("/proc/\(pid)/maps") else { return [] }
        var seen = Set<String>()
        var out: [String] = []
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ", maxSplits: 5, omittingEmptySubsequences: true)
            guard f.count == 6, f[1].contains("x") else { continue }
            let path = String(f[5]).trimmingWhitespace()
            guard path.hasPrefix("/"), !path.hasSuffix(" (deleted)"), !seen.contains(path) else { continue }
            seen.insert(path)
            out.append(path)
        }
        return out
    }

    /// Distinct files mapped executable with the device and inode /proc/PID/maps gives for
    /// them (the identity USDTDiscovery caches by, without a stat(2) per mapping). Parsed as
    /// bytes: a path becomes a String only for ids `wanted` accepts (the host scan of every
    /// process spent most of its time in String splitting otherwise).
    public static func mappedFileIDs(pid: Int32, wanted: (FileID) -> Bool = { _ in true }) -> [(path: String, id: FileID)] {
        guard let bytes = readProc("/proc/\(pid)/maps") else { return [] }
        return parseMappedFileIDs(bytes, wanted: wanted)
    }

    /// A /proc file's bytes (its size is 0 in stat, so read until end of file).
    static func readProc(_ path: String) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; return out.isEmpty ? nil : out }
            if n == 0 { return out }
            out.append(contentsOf: chunk[0..<n])
        }
    }

    static func parseMappedFileIDs(_ b: [UInt8], wanted: (FileID) -> Bool = { _ in true }) -> [(path: String, id: FileID)] {
        var seen = Set<FileID>()
        var out: [(path: String, id: FileID)] = []
        let space = UInt8(ascii: " "), newline = UInt8(ascii: "\n")
        let n = b.count
        var i = 0
        func hex(_ c: UInt8) -> UInt64? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): return UInt64(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): return UInt64(c - UInt8(ascii: "a") + 10)
            default: return nil
            }
        }
        while i < n {
            var end = i
            while end < n && b[end] != newline { end += 1 }
            defer { i = end + 1 }
            // address perms offset dev inode path
            var j = i
            while j < end && b[j] != space { j += 1 }          // address
            j += 1
            guard j + 4 <= end, b[j + 2] == UInt8(ascii: "x") else { continue }
            j += 4
            while j < end && b[j] == space { j += 1 }
            while j < end && b[j] != space { j += 1 }          // offset
            while j < end && b[j] == space { j += 1 }
            var major: UInt64 = 0, minor: UInt64 = 0
            while j < end, let h = hex(b[j]) { major = major << 4 | h; j += 1 }
            guard j < end, b[j] == UInt8(ascii: ":") else { continue }
            j += 1
            while j < end, let h = hex(b[j]) { minor = minor << 4 | h; j += 1 }
            while j < end && b[j] == space { j += 1 }
            var inode: UInt64 = 0
            while j < end, b[j] >= UInt8(ascii: "0"), b[j] <= UInt8(ascii: "9") { inode = inode * 10 + UInt64(b[j] - UInt8(ascii: "0")); j += 1 }
            while j < end && b[j] == space { j += 1 }
            guard inode != 0, j < end, b[j] == UInt8(ascii: "/") else { continue }
            let id = FileID(device: FileID.makedev(major, minor), inode: inode)
            guard !seen.contains(id) else { continue }
            seen.insert(id)
            guard wanted(id) else { continue }
            let path = String(decoding: b[j..<end], as: UTF8.self)
            if path.hasSuffix(" (deleted)") { continue }
            out.append((path, id))
        }
        return out
    }

    /// The path our process should open for a file the target process maps: the plain path
    /// when it is the same inode here, else /proc/PID/root + path.
    public static func attachPath(pid: Int32, path: String) -> String {
        let viaRoot = "/proc/\(pid)/root\(path)"
        var a = stat(), b = stat()
        if stat(path, &a) == 0, stat(viaRoot, &b) == 0, a.st_ino == b.st_ino, a.st_dev == b.st_dev { return path }
        return Files.exists(viaRoot) ? viaRoot : path
    }

    /// execvp-style lookup of a command name.
    public static func resolveCommand(_ command: String) -> String? {
        if command.contains("/") { return Files.exists(command) ? command : nil }
        let pathVar = getenv("PATH").map { String(cString: $0) } ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in pathVar.split(separator: ":") {
            let candidate = "\(dir)/\(command)"
            if access(candidate, X_OK) == 0 && !Files.isDirectory(candidate) { return candidate }
        }
        return nil
    }
}

/// A file's identity: device and inode (st_dev/st_ino, or the dev and inode columns of
/// /proc/PID/maps, which are the same numbers).
public struct FileID: Sendable, Hashable {
    public var device: UInt64
    public var inode: UInt64

    public init(device: UInt64, inode: UInt64) {
        self.device = device
        self.inode = inode
    }

    public init?(path: String) {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        self.init(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }

    /// glibc's makedev(3).
    static func makedev(_ major: UInt64, _ minor: UInt64) -> UInt64 {
        ((major & 0xffff_f000) << 32) | ((major & 0xfff) << 8) | ((minor & 0xffff_ff00) << 12) | (minor & 0xff)
    }
}

/// USDT discovery for one tracing session: every binary or library is read once, by device
/// and inode, whichever process or clause asks; function names are looked up only for the
/// probes a clause or listing matched (one pass over that file's symbol table); the scan of
/// every running process is done once and shared by all clauses. docs/trace.md has the
/// numbers.
///
/// Public API:
///   USDTDiscovery()
///   .probes(inFile:) throws -> [USDTProbe]        -- a binary by path (pid nil)
///   .probes(inProcess:) throws -> [USDTProbe]     -- every executable mapping of a pid
///   .probes(forCommand:) throws -> [USDTProbe]    -- the -c command's binary
///   .hasScannedHost                               -- whether hostProbes() has run
///   .hostProbes() -> [USDTProbe]                  -- every file mapped by any process, pid nil:
///                                                    a uprobe on the file, so processes that
///                                                    start later from it are traced too
///   .withFunctions(_ probes:) -> [USDTProbe]       -- function names filled in
///   .matched(_ probes:, functions:) -> [USDTProbe] -- arguments parsed, names if asked
///   .symbolValue(_ probe:, named:) -> UInt64?      -- for RIP-relative arguments
///   .filesRead                                    -- ELF files opened so far
///   .functionPasses                               -- symbol-table passes for function names
public final class USDTDiscovery: @unchecked Sendable {
    final class Entry {
        let elf: ELFFile?
        let probes: [USDTProbe]
        var functions: [UInt64: String]?
        init(elf: ELFFile?, probes: [USDTProbe]) { self.elf = elf; self.probes = probes }
    }

    private var files: [FileID: Entry] = [:]
    /// attachPath -> identity, so a matched probe finds its file again.
    private var byPath: [String: FileID] = [:]
    private var host: [USDTProbe]?
    private var processes: [Int32: [USDTProbe]] = [:]
    private let lock = PthreadMutex()
    public private(set) var filesRead = 0
    /// Passes over a file's symbol table made to name its probes' functions.
    public private(set) var functionPasses = 0

    public init() {}

    /// The cached notes of a file (pid nil, path = attach path), read on first sight.
    private func entry(_ id: FileID, attachPath: String) -> Entry {
        if let e = files[id] { byPath[attachPath] = id; return e }
        filesRead += 1
        var e = Entry(elf: nil, probes: [])
        if let elf = try? ELFFile(path: attachPath), let probes = try? USDT.probes(in: elf, path: attachPath, parseArguments: false) {
            // Keep the file open only when it has probes (its symbols may be wanted).
            e = Entry(elf: probes.isEmpty ? nil : elf, probes: probes)
        }
        files[id] = e
        byPath[attachPath] = id
        return e
    }

    private func probes(file id: FileID, path: String, attachPath: String, pid: Int32?) -> [USDTProbe] {
        entry(id, attachPath: attachPath).probes.map {
            var p = $0
            p.path = path
            p.attachPath = attachPath
            p.pid = pid
            return p
        }
    }

    public func probes(inFile path: String) throws -> [USDTProbe] {
        guard let id = FileID(path: path) else { throw Errno(errno, "stat", path) }
        return lock.locked { probes(file: id, path: path, attachPath: path, pid: nil) }
    }

    public func probes(inProcess pid: Int32) throws -> [USDTProbe] {
        if let cached = lock.locked({ processes[pid] }) { return cached }
        let files = ProcessMaps.mappedFileIDs(pid: pid)
        if files.isEmpty && !Files.exists("/proc/\(pid)") {
            throw LumosError.notFound("process \(pid) does not exist")
        }
        return lock.locked {
            var out: [USDTProbe] = []
            for f in files {
                // Another mount namespace's file is opened through /proc/PID/root; only
                // files that have probes need the stat(2)s that decide it.
                let known = self.files[f.id]
                if let k = known, k.probes.isEmpty { continue }
                let attach = ProcessMaps.attachPath(pid: pid, path: f.path)
                out += probes(file: f.id, path: f.path, attachPath: attach, pid: pid)
            }
            processes[pid] = out
            return out
        }
    }

    public func probes(forCommand command: String) throws -> [USDTProbe] {
        guard let path = ProcessMaps.resolveCommand(command) else {
            throw LumosError.notFound("command '\(command)' not found in PATH")
        }
        return try probes(inFile: path)
    }

    /// Whether `hostProbes()` has run this session.
    public var hasScannedHost: Bool { lock.locked { host != nil } }

    /// Every file any running process maps executable, each once: the uprobe goes on the
    /// file (pid nil), so all its processes, also those that start later, fire it.
    public func hostProbes() -> [USDTProbe] {
        if let h = lock.locked({ host }) { return h }
        var out: [USDTProbe] = []
        var seen = Set<FileID>()
        for name in Files.list("/proc") {
            guard let pid = Int32(name) else { continue }
            for f in ProcessMaps.mappedFileIDs(pid: pid, wanted: { !seen.contains($0) }) where seen.insert(f.id).inserted {
                lock.locked {
                    let known = files[f.id]
                    if let k = known, k.probes.isEmpty { return }
                    let attach = ProcessMaps.attachPath(pid: pid, path: f.path)
                    out += probes(file: f.id, path: f.path, attachPath: attach, pid: nil)
                }
            }
        }
        lock.locked { host = out }
        return out
    }

    /// The probes with `function` set: the first time a file's probes need names, one pass
    /// over its symbol tables names all of them.
    public func withFunctions(_ probes: [USDTProbe]) -> [USDTProbe] {
        lock.locked {
            probes.map { p in
                guard p.function.isEmpty, let id = byPath[p.attachPath], let e = files[id] else { return p }
                if e.functions == nil {
                    functionPasses += 1
                    e.functions = (try? e.elf?.functionNames(containing: e.probes.map(\.address))) ?? [:]
                }
                var q = p
                q.function = e.functions?[p.address] ?? ""
                return q
            }
        }
    }

    /// The probes a description matched, ready to attach: arguments parsed (a probe whose
    /// argument string this reader cannot parse is left out, as a file whose notes cannot be
    /// read is), and function names filled in when `functions` (they cost a pass over the
    /// file's symbol table, so a program that never shows them goes without).
    public func matched(_ probes: [USDTProbe], functions: Bool) -> [USDTProbe] {
        var out: [USDTProbe] = []
        for var p in functions ? withFunctions(probes) : probes {
            if p.arguments.isEmpty && !p.argumentText.isEmpty {
                guard let args = try? USDTArgument.parseList(p.argumentText) else { continue }
                p.arguments = args
            }
            out.append(p)
        }
        return out
    }

    /// A symbol's value in the probe's file (RIP-relative USDT arguments name one).
    public func symbolValue(_ p: USDTProbe, named name: String) -> UInt64? {
        lock.locked {
            guard let id = byPath[p.attachPath], let elf = files[id]?.elf else { return nil }
            return (try? elf.symbol(named: name))??.value
        }
    }
}
