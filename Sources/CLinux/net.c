#include "clinux_net.h"
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <string.h>
#include <sys/socket.h>
#include <errno.h>
#include <unistd.h>

int clinux_packet_socket_ipv4(int ifindex) {
    int fd = socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, htons(ETH_P_IP));
    if (fd < 0) return -1;
    struct sockaddr_ll sll;
    memset(&sll, 0, sizeof sll);
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_IP);
    sll.sll_ifindex = ifindex;
    if (bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

ssize_t clinux_packet_recv(int fd, void *buf, size_t len, unsigned char srcmac[6], int *outgoing) {
    struct sockaddr_ll sll;
    socklen_t sl = sizeof sll;
    ssize_t n = recvfrom(fd, buf, len, 0, (struct sockaddr *)&sll, &sl);
    if (n < 0) return n;
    memcpy(srcmac, sll.sll_addr, 6);
    *outgoing = sll.sll_pkttype == PACKET_OUTGOING;
    return n;
}

ssize_t clinux_packet_send(int fd, int ifindex, const unsigned char dstmac[6], const void *buf, size_t len) {
    struct sockaddr_ll sll;
    memset(&sll, 0, sizeof sll);
    sll.sll_family = AF_PACKET;
    sll.sll_protocol = htons(ETH_P_IP);
    sll.sll_ifindex = ifindex;
    sll.sll_halen = 6;
    memcpy(sll.sll_addr, dstmac, 6);
    return sendto(fd, buf, len, 0, (struct sockaddr *)&sll, sizeof sll);
}
