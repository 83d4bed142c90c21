import ArgumentParser

/// `lumos <group> ...`: one executable, one group per SmartOS part.
struct Lumos: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lumos",
        abstract: "A hypervisor host for Linux: zones, VMs, virtual networks, ZFS-like storage and D tracing.",
        subcommands: [PoolCommand.self, DatasetCommand.self, VolumeCommand.self, TraceCommand.self, Zlogin.self, ZoneCommand.self, VmadmCommand.self, ImgadmCommand.self, NetCommand.self, DaemonCommand.self]
    )
}
