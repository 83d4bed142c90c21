import Glibc
import LumosCore

/// The root file system QEMU runs in as PID 1 of its own zone (docs/vm.md, "The jail"): the
/// host's qemu-system-x86_64, the shared libraries and dynamic loader it needs, the TCG module,
/// the firmware and data it loads for q35, pc and microvm, and empty mount points. No shell and
/// no other program. Files are copied (the root becomes a dataset snapshot cloned per VM), with
/// their permission bits but never a set-uid, set-gid or sticky bit.
///
///   let qemu = QEMUJail.findQEMU()!                  // /usr/bin/qemu-system-x86_64
///   let key = try QEMUJail.fingerprint(qemu: qemu)    // one jail image per key
///   try QEMUJail.populate(root: emptyDir, qemu: qemu)
///   // zone: .image([QEMUJail.binaryPath] + argv.dropFirst()), runDirectory QEMUJail.runDirectory
public enum QEMUJail {
    /// Where the binary sits inside the jail. QEMU finds its firmware relative to it
    /// (`../share/qemu`, `../share/seabios`, `../lib/ipxe/qemu` on Debian).
    public static let binaryPath = "/usr/bin/qemu-system-x86_64"
    /// The VM's run directory inside the jail: QEMU creates qmp.sock and console.sock there;
    /// the host reaches them as /proc/<init pid>/root/run/vm/.
    public static let runDirectory = "/run/vm"

    /// A socket QEMU made in `runDirectory`, as the host reaches it through the jail's root
    /// (`/proc/PID/root/run/vm/NAME`: a short path, under sun_path's 108 bytes).
    public static func hostSocket(qemuPid: pid_t, _ name: String) -> String {
        "/proc/\(qemuPid)/root\(runDirectory)/\(name)"
    }
    /// Changes whenever `populate` picks other files, so old jails get a new fingerprint.
    static let layoutVersion = "1"

    /// The host's qemu-system-x86_64 (PATH, then the usual places).
    public static func findQEMU() -> String? {
        guard let path = Exec.which(QEMUCommand.binary) else { return nil }
        return realPath(path) ?? path
    }

    /// A short hex string that changes when the host's QEMU binary, a library it loads, its TCG
    /// module or a firmware file changes (each file's size, mtime and inode, and where it
    /// goes in the jail). vmadm keeps one jail image dataset per fingerprint.
    public static func fingerprint(qemu: String) throws -> String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ text: String) {
            for b in text.utf8 { hash = (hash ^ UInt64(b)) &* 0x100_0000_01b3 }
            hash = (hash ^ 0xff) &* 0x100_0000_01b3
        }
        mix(layoutVersion)
        for file in try files(qemu: qemu) {
            var st = stat()
            try sys("stat", file.source) { stat(file.source, &st) }
            mix("\(file.destination) \(st.st_size) \(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec) \(st.st_dev):\(st.st_ino)")
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// Fills the empty directory `root` with the jail (see the type's comment).
    public static func populate(root: String, qemu: String) throws {
        guard Files.isDirectory(root) else {
            throw LumosError.invalid("QEMU jail: \(root) is not a directory; create it first")
        }
        guard Files.list(root).isEmpty else {
            throw LumosError.invalid("QEMU jail: \(root) is not empty; populate an empty directory")
        }
        for file in try files(qemu: qemu) {
            try copy(file.source, to: root + file.destination)
        }
        for dir in ["/dev", "/proc", "/sys"] { try makeDirectory(root + dir, mode: 0o755) }
        try makeDirectory(root + "/tmp", mode: 0o1777)
        try makeDirectory(root + "/run", mode: 0o755)
        try makeDirectory(root + runDirectory, mode: 0o700)
    }

    // MARK: what goes in

    struct File: Equatable {
        var source: String        // on the host (symlinks are followed)
        var destination: String   // absolute, inside the jail
    }

    /// Every file of the jail, in a stable order.
    static func files(qemu: String) throws -> [File] {
        guard access(qemu, X_OK) == 0 else {
            throw LumosError.notFound("QEMU jail: \(qemu) is not an executable; install qemu-system-x86")
        }
        var out = [File(source: qemu, destination: binaryPath)]
        var seen: Set<String> = [binaryPath]
        func add(_ source: String, _ destination: String) {
            if seen.insert(destination).inserted { out.append(File(source: source, destination: destination)) }
        }
        let loader = try interpreter(of: qemu)
        for lib in try sharedLibraries(of: qemu, loader: loader) { add(lib, lib) }
        // Modules QEMU dlopens from its compiled-in module directory (Debian builds TCG as one).
        let hostPrefix = Files.parent(Files.parent(qemu))            // /usr for /usr/bin/qemu-...
        for dir in moduleDirectories(prefix: hostPrefix) {
            for name in Files.list(dir).sorted() where modules.contains(name) {
                let module = "\(dir)/\(name)"
                add(module, module)
                for lib in try sharedLibraries(of: module, loader: loader) { add(lib, lib) }
            }
        }
        // Firmware and data: QEMU searches these directories relative to its binary, in this
        // order; the jail mirrors each below /usr (the binary is /usr/bin there).
        for sub in ["share/qemu", "share/seabios", "lib/ipxe/qemu"] {
            let dir = "\(hostPrefix)/\(sub)"
            for name in Files.list(dir).sorted() where isFirmware(name) {
                let path = "\(dir)/\(name)"
                guard let real = realPath(path), isRegularFile(real) else { continue }
                add(real, "/usr/\(sub)/\(name)")
            }
            let keymaps = "\(dir)/keymaps"
            for name in Files.list(keymaps).sorted() {
                if let real = realPath("\(keymaps)/\(name)"), isRegularFile(real) { add(real, "/usr/\(sub)/keymaps/\(name)") }
            }
        }
        return out
    }

    /// The TCG accelerator and the display modules whose libraries the binary already has.
    static let modules: Set<String> = [
        "accel-tcg-x86_64.so", "hw-display-virtio-gpu.so", "hw-display-virtio-gpu-pci.so", "hw-display-virtio-vga.so",
    ]

    static func moduleDirectories(prefix: String) -> [String] {
        ["\(prefix)/lib/x86_64-linux-gnu/qemu", "\(prefix)/lib64/qemu", "\(prefix)/lib/qemu"].filter { Files.isDirectory($0) }
    }

    /// SeaBIOS (bios.bin, bios-256k.bin for pc/q35, bios-microvm.bin/qboot.rom for microvm), the
    /// VGA BIOSes, iPXE option ROMs for virtio-net, e1000 and rtl8139, the direct-kernel-boot
    /// ROMs (linuxboot, linuxboot_dma, pvh, multiboot) and kvmvapic.
    static func isFirmware(_ name: String) -> Bool {
        let exact: Set<String> = [
            "bios.bin", "bios-256k.bin", "bios-microvm.bin", "qboot.rom", "kvmvapic.bin",
            "linuxboot.bin", "linuxboot_dma.bin", "pvh.bin", "multiboot.bin", "multiboot_dma.bin",
        ]
        if exact.contains(name) { return true }
        if name.hasPrefix("vgabios") && name.hasSuffix(".bin") { return true }
        for nic in ["virtio", "e1000", "rtl8139"] where name == "efi-\(nic).rom" || name == "pxe-\(nic).rom" { return true }
        return false
    }

    /// The shared libraries `elf` loads and its dynamic loader, as the loader itself resolves
    /// them (`ld.so --list`, which maps but never runs the program), at the paths it reports.
    static func sharedLibraries(of elf: String, loader: String) throws -> [String] {
        let r = try Exec.run([loader, "--list", elf], check: false)
        guard r.status == 0 else {
            throw LumosError.failed("QEMU jail: \(loader) --list \(elf) failed: \(r.stderr.trimmingSpaces())")
        }
        var libs: [String] = []
        for line in r.stdout.split(separator: "\n") {
            let text = String(line).trimmingSpaces()
            if text.contains("not found") {
                throw LumosError.notFound("QEMU jail: \(elf) needs a library the host lacks: \(text)")
            }
            // "libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)"
            let path: Substring
            if let arrow = text.range(of: "=> ") { path = text[arrow.upperBound...] } else { path = Substring(text) }
            guard path.hasPrefix("/") else { continue }   // linux-vdso.so.1
            libs.append(String(path.split(separator: " ").first ?? ""))
        }
        if !libs.contains(loader) { libs.append(loader) }
        return libs
    }

    /// PT_INTERP of a 64-bit little-endian ELF executable.
    static func interpreter(of elf: String) throws -> String {
        let fd = try sys("open", elf) { open(elf, O_RDONLY | O_CLOEXEC) }
        defer { close(fd) }
        func read(_ count: Int, at offset: Int) throws -> [UInt8] {
            var buf = [UInt8](repeating: 0, count: count)
            let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress, count, off_t(offset)) }
            guard n == count else { throw LumosError.invalid("QEMU jail: \(elf) is not a 64-bit ELF executable") }
            return buf
        }
        func u(_ b: [UInt8], _ at: Int, _ size: Int) -> Int {
            var v = 0
            for i in (0..<size).reversed() { v = v << 8 | Int(b[at + i]) }
            return v
        }
        let header = try read(64, at: 0)
        guard header[0...3] == [0x7f, 0x45, 0x4c, 0x46], header[4] == 2, header[5] == 1 else {
            throw LumosError.invalid("QEMU jail: \(elf) is not a 64-bit little-endian ELF file")
        }
        let phoff = u(header, 32, 8), phentsize = u(header, 54, 2), phnum = u(header, 56, 2)
        for i in 0..<phnum {
            let ph = try read(56, at: phoff + i * phentsize)
            guard u(ph, 0, 4) == 3 else { continue }   // PT_INTERP
            let bytes = try read(u(ph, 32, 8), at: u(ph, 8, 8))
            return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
        }
        throw LumosError.invalid("QEMU jail: \(elf) has no program interpreter (a static binary is not expected)")
    }

    // MARK: copying

    private static func copy(_ source: String, to destination: String) throws {
        try makeDirectory(Files.parent(destination), mode: 0o755)
        var st = stat()
        try sys("stat", source) { stat(source, &st) }
        let input = try sys("open", source) { open(source, O_RDONLY | O_CLOEXEC) }
        defer { close(input) }
        // Permission bits only: no set-uid, set-gid or sticky bit enters the jail.
        let mode = mode_t(st.st_mode & 0o777)
        let output = try sys("open", destination) { open(destination, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode) }
        defer { close(output) }
        var buf = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let n = buf.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; throw Errno(errno, "read", source) }
            if n == 0 { break }
            let ok = buf.withUnsafeBytes { FD.writeAll(output, UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            if !ok { throw Errno(errno, "write", destination) }
        }
        try sys("fchmod", destination) { fchmod(output, mode) }
    }

    private static func makeDirectory(_ path: String, mode: mode_t) throws {
        if !Files.isDirectory(path) { try Files.makeDirectories(path, mode: 0o755) }
        try sys("chmod", path) { chmod(path, mode) }
    }

    private static func isRegularFile(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
    }

    static func realPath(_ path: String) -> String? {
        guard let p = realpath(path, nil) else { return nil }
        defer { free(p) }
        return String(cString: p)
    }
}
