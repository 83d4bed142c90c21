// AF_PACKET sockets for the built-in DHCP responder: <linux/if_packet.h> and sockaddr_ll are
// not visible to Swift's Glibc module.
#ifndef CLINUX_NET_H
#define CLINUX_NET_H
#include <stddef.h>
#include <sys/types.h>

// A SOCK_DGRAM packet socket for IPv4 frames on one interface (the kernel adds and strips the
// Ethernet header). Returns the fd or -1 with errno.
int clinux_packet_socket_ipv4(int ifindex);

// Receives one IPv4 packet; fills the sender's MAC. Returns the length, or -1 with errno.
// Frames this host sent (PACKET_OUTGOING) are reported with *outgoing = 1.
ssize_t clinux_packet_recv(int fd, void *buf, size_t len, unsigned char srcmac[6], int *outgoing);

// Sends one IPv4 packet to a MAC address on the interface.
ssize_t clinux_packet_send(int fd, int ifindex, const unsigned char dstmac[6], const void *buf, size_t len);
#endif
