import CLinux
import Foundation
import Glibc
import LumosCore
import Net

/// Test and bench support (not shipped): a DHCP server for one guest, in a thread inside the test's network namespace, made of Net's
/// own DHCP code (DHCPPacket, DHCPLease.reply, UDPDatagram and the packet socket the switch
/// responder uses, Sources/Net/DHCP): it answers only the lease's MAC, as the responder does.
public final class GuestDHCP: @unchecked Sendable {
    public let lease: DHCPLease
    private let lock = NSLock()
    private var stopping = false
    private var served: [DHCPPacket.MessageType] = []
    private var failure: String?
    private let done = DispatchSemaphore(value: 0)

    public init(namespacePath: String, bridge: String, lease: DHCPLease) throws {
        self.lease = lease
        let ready = DispatchSemaphore(value: 0)
        let thread = Thread { [self] in
            do {
                try NetTools.withThread(inNamespace: namespacePath) {
                    let ifindex = Int32(if_nametoindex(bridge))
                    let fd = try sys("socket", bridge) { clinux_packet_socket_ipv4(ifindex) }
                    defer { close(fd) }
                    ready.signal()
                    serve(fd: fd, ifindex: ifindex)
                }
            } catch {
                lock.withLock { failure = "\(error)" }
                ready.signal()
            }
            done.signal()
        }
        thread.start()
        ready.wait()
        if let failure = lock.withLock({ failure }) { throw LumosError.failed("test DHCP server: \(failure)") }
    }

    /// The message types sent so far (offer, ack, nak).
    public var replies: [DHCPPacket.MessageType] { lock.withLock { served } }

    public func stop() {
        let first = lock.withLock { () -> Bool in defer { stopping = true }; return !stopping }
        if first { done.wait() }
    }

    private func serve(fd: Int32, ifindex: Int32) {
        var buf = [UInt8](repeating: 0, count: 2048)
        while !lock.withLock({ stopping }) {
            var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&pfd, 1, 100) <= 0 { continue }
            var src = [UInt8](repeating: 0, count: 6)
            var outgoing: Int32 = 0
            let n = buf.withUnsafeMutableBytes { clinux_packet_recv(fd, $0.baseAddress, $0.count, &src, &outgoing) }
            if n <= 0 || outgoing != 0 { continue }
            guard let (_, payload) = UDPDatagram.parseIPv4(Array(buf[0..<n]), port: 67), let request = DHCPPacket.decode(payload),
                  request.chaddr == MACAddress(bytes: src), let reply = lease.reply(to: request), let type = reply.messageType else { continue }
            let broadcast = reply.broadcastFlag || type == .nak
            let dstIP = broadcast ? IPAddress(ipv4: 0xffff_ffff) : reply.yiaddr
            let dstMAC = broadcast ? [UInt8](repeating: 0xff, count: 6) : lease.mac.bytes
            let packet = UDPDatagram.ipv4(source: lease.serverID, destination: dstIP, sourcePort: 67, destinationPort: 68, payload: reply.encode())
            _ = packet.withUnsafeBytes { clinux_packet_send(fd, ifindex, dstMAC, $0.baseAddress, $0.count) }
            lock.withLock { served.append(type) }
        }
    }
}
