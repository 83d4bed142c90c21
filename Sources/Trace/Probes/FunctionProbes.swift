import LumosCore

/// The pid provider's function boundary probes (`pid1234:libc.so.6:malloc:entry`,
/// `pid1234::main:return`): uprobes at the file offset of a function symbol in the files a
/// process maps (its executable and libraries), or in one file for a -c command.
///
/// Public API:
///   FunctionProbes.sites(pid:module:function:) throws -> [UprobeSite]
///   FunctionProbes.sites(file:attachPath:module:function:) throws -> [UprobeSite]
///   UprobeSite: path, attachPath, module (file base name), function, address, fileOffset
/// `module` and `function` are probe-description globs ("" or "*" for any).
public struct UprobeSite: Sendable, Hashable {
    public var path: String
    public var attachPath: String
    public var module: String
    public var function: String
    public var address: UInt64
    public var fileOffset: UInt64
}

public enum FunctionProbes {
    public static func sites(pid: Int32, module: String = "", function: String) throws -> [UprobeSite] {
        let files = ProcessMaps.mappedFiles(pid: pid)
        if files.isEmpty { throw LumosError.notFound("process \(pid) does not exist or maps no files") }
        var out: [UprobeSite] = []
        for f in files where module.isEmpty || Glob.matches(module, Files.basename(f)) {
            let attach = ProcessMaps.attachPath(pid: pid, path: f)
            guard let s = try? sites(file: attach, attachPath: attach, module: "", function: function) else { continue }
            out += s.map { var x = $0; x.path = f; x.module = Files.basename(f); return x }
        }
        return out
    }

    public static func sites(file: String, attachPath: String? = nil, module: String = "", function: String) throws -> [UprobeSite] {
        let base = Files.basename(file)
        if !module.isEmpty && !Glob.matches(module, base) { return [] }
        let elf = try ELFFile(path: file)
        var seen = Set<UInt64>()
        var out: [UprobeSite] = []
        for sym in try elf.symbols() where sym.kind == .function && sym.size > 0 {
            guard function.isEmpty || Glob.matches(function, sym.name), !seen.contains(sym.value),
                  let off = elf.fileOffset(forAddress: sym.value) else { continue }
            seen.insert(sym.value)
            out.append(UprobeSite(path: file, attachPath: attachPath ?? file, module: base, function: sym.name,
                                  address: sym.value, fileOffset: off))
        }
        return out.sorted { ($0.function, $0.address) < ($1.function, $1.address) }
    }
}
