import Glibc
import LumosCore
import Testing

/// `makeDirectories(path, mode:)` is `mkdir -p -m MODE`: the mode is the leaf's only.
@Suite struct MakeDirectoriesTests {
    func mode(_ path: String) -> mode_t {
        var st = stat()
        return stat(path, &st) == 0 ? st.st_mode & 0o7777 : 0
    }

    @Test func privateLeafLeavesNewParentsSearchable() throws {
        let base = "/tmp/lumos-mkdirs-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        defer { _ = try? Exec.run(["rm", "-rf", base]) }
        // The state root's first directory may be a private one (the uid-range registry):
        // the root itself must stay passable for zones' unprivileged roots.
        try Files.makeDirectories(base + "/state/idranges", mode: 0o700)
        #expect(mode(base) == 0o755)
        #expect(mode(base + "/state") == 0o755)
        #expect(mode(base + "/state/idranges") == 0o700)
        // An existing directory keeps its mode.
        chmod(base + "/state", 0o711)
        try Files.makeDirectories(base + "/state/zones", mode: 0o700)
        #expect(mode(base + "/state") == 0o711)
        #expect(mode(base + "/state/zones") == 0o700)
    }
}
