import LumosCore

/// A "newc" cpio archive, the format the kernel unpacks as an initramfs
/// (Documentation/driver-api/early-userspace/buffer-format.rst): per entry a 110-byte ASCII
/// header of hex fields, the NUL-terminated name, the data, each padded to 4 bytes; ended by
/// "TRAILER!!!". Written in Swift so building a guest needs no cpio program.
public struct CPIOArchive {
    public private(set) var bytes: [UInt8] = []
    private var inode: UInt32 = 1

    public init() {}

    public mutating func directory(_ name: String, mode: UInt32 = 0o755) {
        append(name, mode: 0o040000 | mode, data: [], links: 2)
    }

    public mutating func file(_ name: String, _ data: [UInt8], mode: UInt32 = 0o644) {
        append(name, mode: 0o100000 | mode, data: data, links: 1)
    }

    public mutating func symlink(_ name: String, target: String) {
        append(name, mode: 0o120777, data: Array(target.utf8), links: 1)
    }

    /// Ends the archive and returns it.
    public mutating func finish() -> [UInt8] {
        append("TRAILER!!!", mode: 0, data: [], links: 1, isTrailer: true)
        return bytes
    }

    private mutating func append(_ name: String, mode: UInt32, data: [UInt8], links: UInt32, isTrailer: Bool = false) {
        let nameBytes = Array(name.utf8) + [0]
        let fields: [UInt32] = [
            isTrailer ? 0 : inode, mode, 0, 0, links, 0,    // ino, mode, uid, gid, nlink, mtime
            UInt32(data.count), 0, 0, 0, 0,                 // filesize, devmajor, devminor, rdevmajor, rdevminor
            UInt32(nameBytes.count), 0,                     // namesize, check
        ]
        if !isTrailer { inode += 1 }
        var header = Array("070701".utf8)
        for f in fields { header += Array(hex8(f).utf8) }
        bytes += header
        bytes += nameBytes
        pad()
        bytes += data
        pad()
    }

    private mutating func pad() {
        while bytes.count % 4 != 0 { bytes.append(0) }
    }

    private func hex8(_ v: UInt32) -> String {
        let s = String(v, radix: 16, uppercase: true)
        return String(repeating: "0", count: 8 - s.count) + s
    }
}
