import ArgumentParser
import Glibc
import LumosCore
import Trace

// The multi-call entry point: `lumos <group> ...`, or a SmartOS name chosen by argv[0]
// (`zfs` and `zpool` map to the storage groups; vmadm, imgadm, zlogin, dladm and dtrace
// join as their modules land).
let invokedAs = Files.basename(CommandLine.arguments.first ?? "lumos")
let args = Array(CommandLine.arguments.dropFirst())

switch invokedAs {
case "zfs": CLI.run(DatasetCommand.self, args, name: "zfs")
case "zpool": CLI.run(PoolCommand.self, args, name: "zpool")
case "dtrace": exit(DTraceCommandLine.main(args, programName: "dtrace"))
case "zlogin": CLI.run(Zlogin.self, args, name: "zlogin")
case "vmadm": CLI.run(VmadmCommand.self, args, name: "vmadm", exitCodes: .vmadm)
case "imgadm": CLI.run(ImgadmCommand.self, args, name: "imgadm")
case "dladm": CLI.run(Dladm.self, args, name: "dladm")
default:
    if args.first == "trace" { exit(DTraceCommandLine.main(Array(args.dropFirst()), programName: "lumos", command: "lumos trace")) }
    CLI.run(Lumos.self, args, name: "lumos", exitCodes: args.first == "vm" ? .vmadm : .invalidIsUsage)
}
