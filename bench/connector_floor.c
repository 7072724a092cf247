/* The cheapest reader of the kernel's process events connector: the
 * subscription `psdiff watch --backend connector` makes (NETLINK_CONNECTOR,
 * CN_IDX_PROC, PROC_CN_MCAST_LISTEN, the same 8 MiB receive buffer), every
 * event read and thrown away, /proc never read. What it costs the watched
 * processes is what the connector itself costs on this machine (the kernel
 * builds and sends each event in the forking and exiting process), the
 * floor under any connector reader; bench/watch.py runs it as a reference.
 * Prints "ready" once subscribed; SIGTERM ends it.
 *
 *     connector_floor
 */
#define _GNU_SOURCE
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(void) {
    int sock = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_CONNECTOR);
    if (sock < 0) { perror("socket"); return 1; }
    int size = 8 << 20;
    setsockopt(sock, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
    struct sockaddr_nl addr = { .nl_family = AF_NETLINK, .nl_groups = CN_IDX_PROC, .nl_pid = getpid() };
    if (bind(sock, (struct sockaddr *)&addr, sizeof addr) < 0) { perror("bind"); return 1; }
    struct {
        struct nlmsghdr header;
        struct cn_msg message;
        enum proc_cn_mcast_op op;
    } __attribute__((packed)) listen = {
        .header = { .nlmsg_len = sizeof listen, .nlmsg_type = NLMSG_DONE, .nlmsg_pid = getpid() },
        .message = { .id = { CN_IDX_PROC, CN_VAL_PROC }, .len = sizeof(enum proc_cn_mcast_op) },
        .op = PROC_CN_MCAST_LISTEN,
    };
    if (send(sock, &listen, sizeof listen, 0) < 0) { perror("send"); return 1; }
    printf("ready\n");
    fflush(stdout);
    static char buffer[64 * 1024];
    for (;;)
        recv(sock, buffer, sizeof buffer, 0);
}
