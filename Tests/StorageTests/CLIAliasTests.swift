import Glibc
import LumosCore
import Testing

/// Invoked by a SmartOS name (argv[0]), a group's usage and help speak that name.
@Suite struct CLIAliasTests {
    @Test func usageNamesTheCommandAsInvoked() throws {
        let dir = "/tmp/lumos-alias-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try Files.makeDirectories(dir)
        defer { _ = try? Exec.run(["rm", "-rf", dir]) }
        for (alias, group) in [("vmadm", "vm"), ("imgadm", "img"), ("zfs", "dataset"), ("zpool", "pool"), ("zlogin", "login")] {
            symlink(lumosBinary, "\(dir)/\(alias)")
            let help = try Exec.run(["\(dir)/\(alias)", "--help"], check: false).stdout
            #expect(help.contains("USAGE: \(alias)"), "\(alias) --help: \(help.prefix(200))")
            let under = try Exec.run([lumosBinary, group, "--help"], check: false).stdout
            #expect(under.contains("USAGE: lumos \(group)"), "lumos \(group) --help: \(under.prefix(200))")
        }
        symlink(lumosBinary, "\(dir)/dtrace")
        #expect(try Exec.run(["\(dir)/dtrace", "-h"]).stdout.hasPrefix("Usage: dtrace "))
        #expect(try Exec.run([lumosBinary, "trace", "-h"]).stdout.hasPrefix("Usage: lumos trace "))
    }
}
