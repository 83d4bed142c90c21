import Glibc
import LumosCore
import Testing
@testable import Trace

@Suite struct SymbolTests {
    @Test func kallsymsParsing() {
        let k = KernelSymbols.parse("""
        ffffffff81000000 T _stext
        ffffffff81000100 t helper
        ffffffff81000200 D some_data
        0000000000000000 T hidden
        ffffffffc0a01000 t kvm_exit_handler\t[kvm]
        """)
        #expect(k.symbolize(0xffffffff81000000) == "vmlinux`_stext")
        #expect(k.symbolize(0xffffffff81000150) == "vmlinux`helper+0x50")
        // Data symbols are not text: the address belongs to the preceding function.
        #expect(k.symbolize(0xffffffff81000210) == "vmlinux`helper+0x110")
        #expect(k.symbolize(0xffffffffc0a01008) == "kvm`kvm_exit_handler+0x8")
        #expect(k.symbolize(0x1000) == nil)
        #expect(k.format(0x1000) == "0x1000")
    }

    @Test(.enabled(if: isRoot, "kallsyms shows addresses only to root"))
    func realKallsyms() {
        let k = KernelSymbols.load()
        let text = TextFile.read("/proc/kallsyms") ?? ""
        let line = text.split(separator: "\n").first { $0.hasSuffix(" T _stext") }
        let addr = line.flatMap { UInt64($0.split(separator: " ")[0], radix: 16) }
        #expect(addr != nil)
        if let addr { #expect(k.symbolize(addr + 4)?.hasPrefix("vmlinux`") == true) }
    }

    @Test func ownProcessAddresses() throws {
        let syms = ProcessSymbols(pid: getpid())
        // The address of a libc function seen from this process resolves to its name.
        let handle = try #require(dlopen(nil, RTLD_NOW))
        defer { dlclose(handle) }
        let p = try #require(dlsym(handle, "getpid"))
        let addr = UInt64(UInt(bitPattern: p))
        let name = try #require(syms.symbolize(addr))
        #expect(name.hasPrefix("libc.so"))
        #expect(name.hasSuffix("`getpid") || name.contains("getpid"))
        #expect(syms.symbolize(addr + 1)?.hasSuffix("+0x1") == true)
        #expect(syms.format(8) == "0x8")
    }

    @Test func mapsParsing() {
        let m = ProcessSymbols.parseMaps("""
        55d0c0a00000-55d0c0a20000 r-xp 00002000 fe:01 1234  /usr/bin/prog
        7f0000000000-7f0000001000 rw-p 00000000 00:00 0
        7f0000100000-7f0000200000 r-xp 00028000 fe:01 99  /usr/lib/x86_64-linux-gnu/libc.so.6
        """)
        #expect(m.count == 2)
        #expect(m[0].offset == 0x2000 && m[1].path.hasSuffix("libc.so.6"))
    }
}
