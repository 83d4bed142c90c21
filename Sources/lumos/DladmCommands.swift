import ArgumentParser
import Foundation
import LumosCore
import Net

// `dladm ...` (argv[0] alias) and `lumos net ...`: switches, VNICs and tenant links.
// Output follows dladm(8): upper-case columns, `-o field,...`, `-p` for colon-separated
// parseable lines (colons in values escaped as `\:`), plus `--json`.

/// Output options shared by every show-* command.
struct DatalinkOutput: ParsableArguments {
    @Option(name: .short, help: "Fields to print, comma separated.")
    var o: String?
    @Flag(name: .short, help: "Parseable output: fields separated by ':' without a header.")
    var p = false
    @Flag(name: .long, help: "Print JSON.")
    var json = false

    func print<T: Encodable>(_ items: [T], fields: [String], columns: (T) -> [String: String]) throws {
        if json { try CLI.printJSON(items); return }
        let chosen = try o.map { list in
            try list.lowercased().split(separator: ",").map { f -> String in
                let name = String(f)
                guard fields.contains(name) else {
                    throw LumosError.invalid("-o \(name): unknown field; fields are \(fields.joined(separator: ","))")
                }
                return name
            }
        } ?? fields
        if p {
            for item in items {
                let c = columns(item)
                Swift.print(chosen.map { (c[$0] ?? "").replacingOccurrences(of: ":", with: "\\:") }.joined(separator: ":"))
            }
            return
        }
        var table = Table(columns: chosen)
        for item in items { let c = columns(item); table.add(chosen.map { c[$0] ?? "" }) }
        Swift.print(table.render(), terminator: "")
    }
}

enum NetCLI {
    static func host(_ g: GlobalOptions) throws -> NetworkHost { try NetworkHost.fromEnvironment(root: g.stateRoot) }

    static let datalinkCommands: [ParsableCommand.Type] = [
        ShowLink.self, ShowVNIC.self, CreateVNIC.self, DeleteVNIC.self,
        CreateEtherstub.self, SetEtherstub.self, DeleteEtherstub.self, ShowEtherstub.self,
    ]
}

struct Dladm: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dladm",
        abstract: "Administer data links: virtual switches (etherstubs), VNICs and tenant links.",
        subcommands: NetCLI.datalinkCommands)
}

struct NetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "net",
        abstract: "Virtual networks: switches, nic tags, VNICs, host addresses, tenant NICs, DHCP.",
        subcommands: NetCLI.datalinkCommands + [
            CreateNicTag.self, CreateAddr.self, DeleteAddr.self, ShowAddr.self,
            Attach.self, Detach.self, Repair.self, DHCPd.self,
        ])
}

struct ShowLink: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show-link", abstract: "Show every link of the host's network.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var out: DatalinkOutput
    @Argument(help: "Only this link.") var link: String?

    func run() throws {
        var rows = try NetCLI.host(global).linkViews()
        if let link {
            rows = rows.filter { $0.link == link }
            if rows.isEmpty { throw LumosError.notFound("link \(link) does not exist; see `dladm show-link`") }
        }
        try out.print(rows, fields: LinkView.fields) { $0.columns }
    }
}

struct ShowVNIC: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show-vnic", abstract: "Show VNICs: tenant NICs and hand-made ones, with counters.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var out: DatalinkOutput
    @Option(name: .short, help: "Only the VNICs of this tenant (zone uuid).") var z: String?
    @Argument(help: "Only this VNIC.") var link: String?

    func run() throws {
        var rows = try NetCLI.host(global).vnicViews()
        if let z { rows = rows.filter { $0.zone == z } }
        if let link {
            rows = rows.filter { $0.link == link }
            if rows.isEmpty { throw LumosError.notFound("vnic \(link) does not exist; see `dladm show-vnic`") }
        }
        try out.print(rows, fields: VNICView.fields) { $0.columns }
    }
}

struct CreateVNIC: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create-vnic", abstract: "Create a VNIC on a switch (dladm create-vnic -l SWITCH NAME).")
    @OptionGroup var global: GlobalOptions
    @Option(name: .short, help: "The switch (etherstub or nic tag) to create the VNIC on.") var l: String
    @Option(name: .short, help: "MAC address (default: generated, locally administered).") var m: String?
    @Argument(help: "VNIC name.") var name: String

    func run() throws {
        var mac: MACAddress? = nil
        if let m {
            guard let parsed = MACAddress(m) else { throw LumosError.invalid("-m \(m): not a MAC address (use aa:bb:cc:dd:ee:ff)") }
            mac = parsed
        }
        try NetCLI.host(global).createVNIC(name, over: l, mac: mac)
    }
}

struct DeleteVNIC: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delete-vnic", abstract: "Delete a hand-made VNIC.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "VNIC name.") var name: String
    func run() throws { try NetCLI.host(global).deleteVNIC(name) }
}

struct CreateEtherstub: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create-etherstub", abstract: "Create a switch with no uplink; its name is also its nic tag.")
    @OptionGroup var global: GlobalOptions
    @Option(name: .long, help: "MTU of the switch (default 1500).") var mtu: Int?
    @Option(name: .long, help: "The host's address on the etherstub that tenants route through, e.g. 10.0.0.1/24.") var gateway: String?
    @Option(name: .long, help: "Masquerade the gateway's subnet to this uplink (needs --gateway; docs/net.md, NAT).") var nat: String?
    @Argument(help: "Etherstub name (1-15 characters a-z, 0-9, _ . -).") var name: String
    func run() throws { try NetCLI.host(global).createEtherstub(name, mtu: mtu, gateway: gateway, nat: nat) }
}

struct SetEtherstub: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "set-etherstub",
        abstract: "Set an etherstub's gateway=CIDR and nat=UPLINK (none removes one).",
        discussion: "dladm set-etherstub -p gateway=10.0.0.1/24 -p nat=eth1 stub0; -p nat=none turns NAT off. docs/net.md, NAT.")
    @OptionGroup var global: GlobalOptions
    @Option(name: .short, help: "PROP=VALUE, repeatable: gateway=CIDR|none, nat=UPLINK|none.") var p: [String]
    @Argument(help: "Etherstub name.") var name: String

    func run() throws {
        var gateway: String?, nat: String?
        for item in p {
            guard let eq = item.firstIndex(of: "=") else { throw LumosError.invalid("-p \(item): use PROP=VALUE (gateway=CIDR|none, nat=UPLINK|none)") }
            let key = String(item[..<eq]), value = String(item[item.index(after: eq)...])
            switch key {
            case "gateway": gateway = value
            case "nat": nat = value
            default: throw LumosError.invalid("-p \(key): unknown property; properties are gateway, nat")
            }
        }
        if gateway == nil && nat == nil { throw LumosError.invalid("nothing to set; use -p gateway=CIDR and/or -p nat=UPLINK") }
        try NetCLI.host(global).setEtherstub(name, gateway: gateway, nat: nat)
    }
}

struct DeleteEtherstub: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delete-etherstub", abstract: "Delete a switch no tenant or VNIC uses.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "Etherstub name.") var name: String
    func run() throws { try NetCLI.host(global).deleteSwitch(name) }
}

struct ShowEtherstub: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show-etherstub", abstract: "Show switches (etherstubs and nic tags with uplinks).")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var out: DatalinkOutput
    @Argument(help: "Only this switch.") var name: String?

    func run() throws {
        var rows = try NetCLI.host(global).switchViews()
        if let name {
            rows = rows.filter { $0.link == name }
            if rows.isEmpty { throw LumosError.notFound("etherstub \(name) does not exist; see `dladm show-etherstub`") }
        }
        try out.print(rows, fields: SwitchView.fields) { $0.columns }
    }
}

struct CreateNicTag: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create-nictag", abstract: "Create a nic tag: a switch with a physical uplink (nictagadm add NAME LINK).")
    @OptionGroup var global: GlobalOptions
    @Option(name: .short, help: "The physical link to put on the switch.") var l: String
    @Option(name: .long, help: "MTU of the switch.") var mtu: Int?
    @Argument(help: "Nic tag name.") var name: String
    func run() throws { try NetCLI.host(global).createNicTag(name, uplink: l, mtu: mtu) }
}

struct CreateAddr: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create-addr", abstract: "Give the host an address on a switch (the global zone's admin network).")
    @OptionGroup var global: GlobalOptions
    @Option(name: .short, help: "Address with prefix, e.g. 10.0.0.1/24.") var a: String
    @Argument(help: "Switch name.") var name: String
    func run() throws { try NetCLI.host(global).addHostAddress(name, a) }
}

struct DeleteAddr: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "delete-addr", abstract: "Remove a host address from a switch.")
    @OptionGroup var global: GlobalOptions
    @Option(name: .short, help: "Address with prefix.") var a: String
    @Argument(help: "Switch name.") var name: String
    func run() throws { try NetCLI.host(global).removeHostAddress(name, a) }
}

struct ShowAddr: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "show-addr", abstract: "Show the host's addresses on switches.")
    @OptionGroup var global: GlobalOptions
    @OptionGroup var out: DatalinkOutput

    struct Row: Encodable { var link: String; var addr: String }
    func run() throws {
        let rows = try NetCLI.host(global).switches().flatMap { s in s.hostAddresses.map { Row(link: s.name, addr: $0) } }
        try out.print(rows, fields: ["link", "addr"]) { ["link": $0.link, "addr": $0.addr] }
    }
}

struct Attach: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Attach NICs (a JSON nics[] array) to a tenant's network namespace.")
    @OptionGroup var global: GlobalOptions
    @Option(name: .long, help: "Tenant uuid.") var tenant: String
    @Option(name: .long, help: "The tenant's network namespace: a pid, a path or an `ip netns` name.") var netns: String
    @Option(name: .short, help: "File with the nics[] JSON array ('-' for stdin).") var f: String
    @Option(name: .long, help: "Hostname handed out by DHCP.") var hostname: String?
    @Option(name: .long, help: "Resolver, repeatable.") var resolver: [String] = []
    @Flag(name: .long, help: "The tenant takes its addresses by DHCP from the built-in responder.") var dhcp = false
    @Flag(name: .long, help: "Print JSON.") var json = false

    func run() throws {
        let data = f == "-" ? FileHandle.standardInput.readDataToEndOfFile() : Data(try FD.readFile(f))
        let nics: [NicSpec]
        do { nics = try JSONDecoder().decode([NicSpec].self, from: data) } catch let e as LumosError { throw e } catch {
            throw LumosError.invalid("\(f): not a JSON nics[] array (\(oneLine(error)))")
        }
        let attached = try TenantNetwork(host: NetCLI.host(global)).attach(
            tenant: tenant, nics: nics, netns: NetNamespace.parse(netns), hostname: hostname, resolvers: resolver, addressesByDHCP: dhcp)
        if json { try CLI.printJSON(attached.map(\.spec)); return }
        for n in attached { print("\(n.interface) \(n.hostLink) \(n.mac) \(n.spec.ips.joined(separator: ","))") }
    }
}

struct Detach: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Remove every NIC of a tenant (idempotent with --force).")
    @OptionGroup var global: GlobalOptions
    @Flag(name: .long, help: "Clean up whatever is left, even with no record (crash recovery).") var force = false
    @Argument(help: "Tenant uuid.") var tenant: String
    func run() throws {
        let t = TenantNetwork(host: try NetCLI.host(global))
        if force { try t.cleanup(tenant: tenant) } else { try t.detach(tenant: tenant) }
    }
}

struct Repair: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Remove leaked tenant links, rebuild anti-spoofing and DHCP from the records.")
    @OptionGroup var global: GlobalOptions
    func run() throws { try NetCLI.host(global).repair() }
}

struct DHCPd: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dhcpd", abstract: "Run the DHCP responder of a switch (started and stopped by Lumos).", shouldDisplay: false)
    @OptionGroup var global: GlobalOptions
    @Argument(help: "Switch name.") var name: String
    func run() throws {
        try DHCPResponder(store: NetStore(root: global.stateRoot), switchName: name).run()
    }
}
