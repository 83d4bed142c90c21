import LumosCore

/// filesystems[]: vmadm's `lofs` mounts, which are bind mounts on Linux.
enum FilesystemChecks {
    static let keys = ["type", "source", "target", "options", "raw"]
    static let options = ["ro", "rw", "nodevice", "nosuid", "noexec"]

    /// A whole list (filesystems, or add_filesystems' entries): each entry, and no target twice.
    static func check(_ value: JSONValue, name: String = "filesystems") throws {
        guard let list = value.arrayValue else {
            throw LumosError.invalid("\(name): expected an array of {type, source, target, options}, got \(value.typeName)")
        }
        var targets: Set<String> = []
        for (i, entry) in list.enumerated() {
            let at = "\(name)[\(i)]"
            guard let o = entry.objectValue else { throw LumosError.invalid("\(at): expected an object {type, source, target}, got \(entry.typeName)") }
            try checkEntry(o, at: at, partial: false)
            if let target = o["target"]?.stringValue, !targets.insert(target).inserted {
                throw LumosError.invalid("\(at).target: \(target) is mounted twice; use one entry per target")
            }
        }
    }

    /// One entry; `partial` for update_filesystems, whose entries give only what changes.
    static func checkEntry(_ o: [String: JSONValue], at: String, partial: Bool) throws {
        for k in o.keys.sorted() where !keys.contains(k) {
            throw LumosError.invalid("\(at): unknown key \"\(k)\"; known keys are \(keys.joined(separator: ", "))")
        }
        if o["raw"] != nil { throw LumosError.unsupported("\(at).raw: raw devices are a ZFS feature Lumos zones do not have; remove it") }
        if !partial || o["type"] != nil {
            let type = o["type"]?.stringValue ?? "lofs"
            guard type == "lofs" else {
                throw LumosError.unsupported("\(at).type: \"\(type)\" cannot be mounted by a Linux zone; only \"lofs\" (a bind mount of a host directory) is supported")
            }
        }
        if !partial || o["source"] != nil {
            guard let source = o["source"]?.stringValue, source.hasPrefix("/") else {
                throw LumosError.invalid("\(at).source: needs an absolute host path, e.g. \"/data/www\"")
            }
            try checkPath(source, "source", at)
        }
        guard let target = o["target"]?.stringValue, target.hasPrefix("/"), target != "/" else {
            throw LumosError.invalid("\(at).target: needs an absolute path inside the zone other than \"/\", e.g. \"/srv/www\"")
        }
        try checkPath(target, "target", at)
        if let opts = o["options"] {
            guard let a = opts.arrayValue, a.allSatisfy({ $0.stringValue != nil }) else {
                throw LumosError.invalid("\(at).options: expected an array of strings like [\"ro\", \"nodevice\"]")
            }
            let names = a.compactMap(\.stringValue)
            for n in names where !options.contains(n) {
                throw LumosError.invalid("\(at).options: unknown option \"\(n)\"; use \(options.joined(separator: ", "))")
            }
            if names.contains("ro") && names.contains("rw") { throw LumosError.invalid("\(at).options: both \"ro\" and \"rw\"; choose one") }
        }
    }

    static func checkPath(_ path: String, _ field: String, _ at: String) throws {
        if path.split(separator: "/").contains("..") || ValueChecks.hasControlCharacters(path) {
            throw LumosError.invalid("\(at).\(field): \"..\" and control characters are not allowed in \(path)")
        }
    }
}
