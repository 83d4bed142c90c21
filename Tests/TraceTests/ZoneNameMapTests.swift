import CLinux
import Glibc
import LumosCore
import Testing
@testable import Trace

@Suite struct ZoneNameMapTests {
    @Test func aliasFromManifest() {
        #expect(ZoneNameMap.topLevelString("alias", inJSON: #"{"uuid":"abc","alias":"web01","nics":[{"alias":"no"}]}"#) == "web01")
        #expect(ZoneNameMap.topLevelString("alias", inJSON: #"{"nics":[{"alias":"no"}],"x":{"alias":"no"},"alias" : "db\"1"}"#) == "db\"1")
        #expect(ZoneNameMap.topLevelString("alias", inJSON: #"{"nics":[{"alias":"no"}]}"#) == nil)
        #expect(ZoneNameMap.topLevelString("alias", inJSON: #"{"alias": 5}"#) == nil)
        #expect(ZoneNameMap.topLevelString("alias", inJSON: #"{"max": 1.5e3, "ok": true, "alias": "caf\u00e9"}"#) == "café")
        #expect(ZoneNameMap.topLevelString("alias", inJSON: "not json") == nil)
    }

    /// A real cgroup v2 directory, created and removed by the test: its inode is its id,
    /// and the name comes from the manifest alias, else the uuid.
    @Test(.enabled(if: isRoot && MountTable.read().mountPoint(ofType: "cgroup2") != nil, "needs root and cgroup v2"))
    func realCgroupDirectories() throws {
        let cgroup2 = try #require(MountTable.read().mountPoint(ofType: "cgroup2"))
        let parent = "\(cgroup2)/lumos-trace-test-\(getpid())"
        let named = "11111111-2222-3333-4444-\(String(uuidTail: getpid()))"
        let unnamed = "aaaaaaaa-bbbb-cccc-dddd-\(String(uuidTail: getpid()))"
        var stateTemplate = Array("/tmp/lumos-trace-zones-XXXXXX".utf8CString)
        let state = String(cString: try #require(stateTemplate.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }))
        defer {
            rmdir("\(parent)/\(named)/inner")
            rmdir("\(parent)/\(named)")
            rmdir("\(parent)/\(unnamed)")
            rmdir(parent)
            unlink("\(state)/zones/\(named)/manifest.json")
            rmdir("\(state)/zones/\(named)")
            rmdir("\(state)/zones")
            rmdir(state)
        }
        for d in [parent, "\(parent)/\(named)", "\(parent)/\(named)/inner", "\(parent)/\(unnamed)"] {
            #expect(mkdir(d, 0o755) == 0)
        }
        try Files.makeDirectories("\(state)/zones/\(named)")
        try Files.writeAtomically("\(state)/zones/\(named)/manifest.json", #"{"uuid":"\#(named)","alias":"web01","brand":"joyent"}"#)

        let map = ZoneNameMap.load(cgroupParent: parent, zonesDirectory: "\(state)/zones")
        let namedID = try #require(ZoneNameMap.cgroupID(ofDirectory: "\(parent)/\(named)"))
        let innerID = try #require(ZoneNameMap.cgroupID(ofDirectory: "\(parent)/\(named)/inner"))
        let unnamedID = try #require(ZoneNameMap.cgroupID(ofDirectory: "\(parent)/\(unnamed)"))
        #expect(map == [namedID: "web01", innerID: "web01", unnamedID: unnamed])
        // The host's own cgroup is in no zone.
        #expect(map[try #require(ZoneNameMap.cgroupID(ofDirectory: cgroup2))] == nil)
    }

    /// The id in the map is the id the kernel reports: a BPF program on a tracepoint records
    /// bpf_get_current_cgroup_id() of a process moved into a zone-like cgroup directory.
    @Test(.enabled(if: isRoot && Exec.which("cc") != nil && MountTable.read().mountPoint(ofType: "cgroup2") != nil,
                   "needs root, a C compiler and cgroup v2"))
    func idIsWhatTheKernelReports() throws {
        let cgroup2 = try #require(MountTable.read().mountPoint(ofType: "cgroup2"))
        let dir = "\(cgroup2)/lumos-trace-id-\(getpid())"
        #expect(mkdir(dir, 0o755) == 0)
        defer { rmdir(dir) }
        let expected = try #require(ZoneNameMap.cgroupID(ofDirectory: dir))
        let prog = try TestProgram(["""
            #include <sched.h>
            #include <unistd.h>
            int main(void) { usleep(300000); sched_get_priority_min(SCHED_OTHER); return 0; }
            """], name: "cgchild")
        defer { prog.remove() }
        let recorder = try CounterProgram(type: Int32(CLINUX_BPF_PROG_TYPE_TRACEPOINT), storeCgroupID: true)
        let link = try ProbeAttach.tracepoint(TracepointName(category: "syscalls", name: "sys_enter_sched_get_priority_min"),
                                              program: recorder.program, tracefs: try Tracefs.locate())
        defer { link.detach() }
        // The child sleeps before its system call, so it is in the cgroup by then.
        let pid = try Exec.spawn([prog.binary])
        let fd = open(dir + "/cgroup.procs", O_WRONLY)
        let text = Array("\(pid)\n".utf8)
        let written = fd >= 0 ? write(fd, text, text.count) : -1
        if fd >= 0 { close(fd) }
        let status = Exec.wait(pid)
        #expect(written == text.count)
        #expect(status == 0)
        #expect(recorder.count == expected)
    }

    @Test func parentFollowsTheCgroup2Mount() {
        let hybrid = MountTable.parse("cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n")
        let pure = MountTable.parse("cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n")
        #expect(ZoneNameMap.cgroupParent(mounts: hybrid) == "/sys/fs/cgroup/unified/lumos")
        #expect(ZoneNameMap.cgroupParent(mounts: pure) == "/sys/fs/cgroup/lumos")
        #expect(ZoneNameMap.cgroupParent(mounts: MountTable.parse("")) == nil)
        #expect(ZoneNameMap.load(stateRoot: StateRoot("/nonexistent"), mounts: MountTable.parse("")) == [:])
    }
}

extension String {
    /// Twelve hex digits of a number, for unique but uuid-shaped test names.
    init(uuidTail n: Int32) {
        let hex = String(UInt32(bitPattern: n), radix: 16)
        self = String(repeating: "0", count: Swift.max(0, 12 - hex.count)) + hex
    }
}
