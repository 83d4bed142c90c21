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
    /// The function containing the probe, when the file has symbols ("" otherwise).
    public var function: String

    /// DTrace spells double underscores as dashes: query__start is query-start.
    public var dtraceName: String { name.replacing("__", with: "-") }
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
            let args = try USDTArgument.parseList(argText)
            let fn = (try? elf.symbol(containing: pc))??.name ?? ""
            out.append(USDTProbe(provider: provider, name: name, path: path, attachPath: attachPath ?? path, pid: pid,
                                 address: pc, fileOffset: offset,
                                 semaphoreOffset: semaphore == 0 ? nil : elf.fileOffset(forAddress: semaphore),
                                 arguments: args, function: fn))
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
