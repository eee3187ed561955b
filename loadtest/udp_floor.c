/* udp_floor.c: parley-udp-floor, what this machine's kernel charges per UDP datagram on
 * loopback, whoever the program is: the floor under any relay's CPU per relayed packet
 * (docs/BENCHMARKS.md, "TURN relay"). A relayed packet costs at least one send (which on
 * loopback also delivers the datagram into the receiver's socket, in the sender's system call)
 * and a share of one receive. Measured with the receiver not waiting, so no wakeup is counted:
 * the figures are a lower bound. Bounded: a fixed number of datagrams, a few seconds. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* recvmmsg */
#endif
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define FLOOR_DATAGRAMS 200000 /* per measurement */
#define FLOOR_CHUNK     100    /* sent before they are read back: stays inside a socket buffer */
#define FLOOR_BYTES     170    /* the relay benchmark's message size */
#define FLOOR_BATCH     32     /* recvmmsg slots, as the relay's PARLEY_RELAY_UDP_BATCH */

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int bound_socket(struct sockaddr_in *a)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0)
        return -1;
    memset(a, 0, sizeof *a);
    a->sin_family = AF_INET;
    a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof *a;
    if (bind(fd, (struct sockaddr *)a, sizeof *a) != 0 ||
        getsockname(fd, (struct sockaddr *)a, &len) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads n datagrams from fd, batched (recvmmsg) or one call each. 0, or -1 when one is missing. */
static int drain(int fd, int n, int batched)
{
    static char bufs[FLOOR_BATCH][2048];
    struct mmsghdr m[FLOOR_BATCH];
    struct iovec iov[FLOOR_BATCH];
    while (n > 0) {
        if (!batched) {
            if (recv(fd, bufs[0], sizeof bufs[0], MSG_DONTWAIT) < 0)
                return -1;
            n--;
            continue;
        }
        int want = n < FLOOR_BATCH ? n : FLOOR_BATCH;
        memset(m, 0, sizeof m);
        for (int i = 0; i < want; i++) {
            iov[i].iov_base = bufs[i];
            iov[i].iov_len = sizeof bufs[i];
            m[i].msg_hdr.msg_iov = &iov[i];
            m[i].msg_hdr.msg_iovlen = 1;
        }
        int got = recvmmsg(fd, m, (unsigned)want, MSG_DONTWAIT, NULL);
        if (got <= 0)
            return -1;
        n -= got;
    }
    return 0;
}

/* Sends FLOOR_DATAGRAMS from s to `to` (NULL: s is connected), reading them back from r in
 * chunks; adds the seconds spent sending and receiving. 0, or -1 on a lost datagram. */
static int measure(int s, int r, const struct sockaddr_in *to, int batched, double *send_s,
                   double *recv_s)
{
    char msg[FLOOR_BYTES] = {0};
    *send_s = *recv_s = 0;
    for (int done = 0; done < FLOOR_DATAGRAMS; done += FLOOR_CHUNK) {
        double t0 = now_s();
        for (int i = 0; i < FLOOR_CHUNK; i++) {
            ssize_t n = to ? sendto(s, msg, sizeof msg, 0, (const struct sockaddr *)to, sizeof *to)
                           : send(s, msg, sizeof msg, 0);
            if (n != (ssize_t)sizeof msg)
                return -1;
        }
        double t1 = now_s();
        if (drain(r, FLOOR_CHUNK, batched) != 0)
            return -1;
        *send_s += t1 - t0;
        *recv_s += now_s() - t1;
    }
    return 0;
}

int main(void)
{
    struct sockaddr_in ra, sa;
    int r = bound_socket(&ra), s = bound_socket(&sa), c = bound_socket(&sa);
    if (r < 0 || s < 0 || c < 0 || connect(c, (struct sockaddr *)&ra, sizeof ra) != 0) {
        perror("parley-udp-floor: sockets");
        return 1;
    }
    double t0 = now_s();
    for (int i = 0; i < FLOOR_DATAGRAMS; i++)
        syscall(SYS_getppid);
    double sys_ns = (now_s() - t0) / FLOOR_DATAGRAMS * 1e9;

    double send_s, recv_s, csend_s, brecv_s;
    if (measure(s, r, &ra, 0, &send_s, &recv_s) != 0 ||
        measure(c, r, NULL, 1, &csend_s, &brecv_s) != 0) {
        fprintf(stderr, "parley-udp-floor: a datagram was lost on loopback\n");
        return 1;
    }
    double per = 1e9 / FLOOR_DATAGRAMS;
    printf("empty system call (getppid)           %6.0f ns\n", sys_ns);
    printf("sendto, unconnected, incl. delivery   %6.0f ns per datagram\n", send_s * per);
    printf("send, connected, incl. delivery       %6.0f ns per datagram\n", csend_s * per);
    printf("recv, one call per datagram           %6.0f ns per datagram\n", recv_s * per);
    printf("recvmmsg, %d per call                 %6.0f ns per datagram\n", FLOOR_BATCH,
           brecv_s * per);
    printf("floor per relayed packet (send + batched receive): %.0f ns\n",
           (send_s + brecv_s) * per);
    return 0;
}
