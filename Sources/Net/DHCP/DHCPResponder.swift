import CLinux
import Foundation
import Glibc
import LumosCore

/// The built-in DHCP responder of one switch (what SmartOS's VNIC backend did for KVM guests):
/// listens on the bridge with a packet socket and answers only the MACs in the switch's lease
/// file with their manifest addresses. Runs as `lumos net dhcpd SWITCH` in the host namespace,
/// re-reads the lease file when it changes, and exits when the file is removed.
public struct DHCPResponder {
    public let store: NetStore
    public let switchName: String

    public init(store: NetStore, switchName: String) {
        self.store = store
        self.switchName = switchName
    }

    /// Serves until the lease file disappears. Writes the pid file once the socket is bound,
    /// which tells the starter the responder is ready.
    public func run() throws -> Never {
        let leasePath = DHCPService.leasePath(store, switchName)
        guard let sw = try store.switchConfig(switchName) else { throw LumosError.notFound("switch \(switchName) does not exist") }
        let ifindex = Int32(if_nametoindex(sw.bridge))
        if ifindex == 0 { throw LumosError.notFound("bridge \(sw.bridge) of switch \(switchName) is not in this network namespace") }
        let fd = try sys("socket", sw.bridge) { clinux_packet_socket_ipv4(ifindex) }
        let pidPath = DHCPService.pidPath(store, switchName)
        try Files.makeDirectories(Files.parent(pidPath))
        try Files.writeAtomically(pidPath, "\(getpid())\n")
        var leases: [MACAddress: DHCPLease] = [:]
        var loadedStamp = timespec()
        var buf = [UInt8](repeating: 0, count: 2048)
        while true {
            var st = stat()
            if stat(leasePath, &st) != 0 {
                Files.remove(pidPath)
                exit(0)
            }
            if st.st_mtim.tv_sec != loadedStamp.tv_sec || st.st_mtim.tv_nsec != loadedStamp.tv_nsec {
                if let data = try? FD.readFile(leasePath), let list = try? JSONDecoder().decode([DHCPLease].self, from: Data(data)) {
                    leases = Dictionary(list.map { ($0.mac, $0) }, uniquingKeysWith: { a, _ in a })
                    loadedStamp = st.st_mtim
                }
            }
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 1000) <= 0 { continue }
            var src = [UInt8](repeating: 0, count: 6)
            var outgoing: Int32 = 0
            let n = buf.withUnsafeMutableBytes { clinux_packet_recv(fd, $0.baseAddress, $0.count, &src, &outgoing) }
            if n <= 0 || outgoing != 0 { continue }
            guard let (_, payload) = UDPDatagram.parseIPv4(Array(buf[0..<n]), port: 67),
                  let request = DHCPPacket.decode(payload) else { continue }
            // Anti-spoofing pins a port's source MAC; requiring chaddr to match it means a tenant
            // cannot obtain another NIC's lease.
            guard request.chaddr == MACAddress(bytes: src), let lease = leases[request.chaddr],
                  let reply = lease.reply(to: request) else { continue }
            let toBroadcast = reply.broadcastFlag || reply.messageType == .nak
            let dstIP = toBroadcast ? IPAddress(ipv4: 0xffff_ffff) : (reply.yiaddr.uint32 != 0 ? reply.yiaddr : request.ciaddr)
            let dstMAC = toBroadcast ? [UInt8](repeating: 0xff, count: 6) : lease.mac.bytes
            let packet = UDPDatagram.ipv4(source: lease.serverID, destination: dstIP, sourcePort: 67, destinationPort: 68, payload: reply.encode())
            _ = packet.withUnsafeBytes { clinux_packet_send(fd, ifindex, dstMAC, $0.baseAddress, $0.count) }
        }
    }
}
