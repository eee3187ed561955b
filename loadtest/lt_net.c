#include "lt_net.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <sys/resource.h>
#include <unistd.h>

#include "limits.h"
#include "url.h"

static int lt_is_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        const uint8_t *b = a->sin6_addr.s6_addr;
        static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
        if (IN6_IS_ADDR_LOOPBACK(&a->sin6_addr))
            return 1;
        return !memcmp(b, mapped, 12) && b[12] == 127;
    }
    return 0;
}

int lt_net_server(const char *url, lt_server *s, char *err, size_t cap)
{
    struct addrinfo hints, *res = NULL, *ai, *pick = NULL;
    char host[LT_ADDR_MAX];
    pc_status st;
    pc_url u;
    int rc;

    memset(s, 0, sizeof *s);
    if (pc_url_parse(url, &u, &st) < 0) {
        snprintf(err, cap, "bad --server %s: %s", url, st.msg);
        return -1;
    }
    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    rc = getaddrinfo(u.host, NULL, &hints, &res);
    if (rc) {
        snprintf(err, cap, "cannot resolve %s: %s", u.host, gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai; ai = ai->ai_next) {
        if (!lt_is_loopback(ai->ai_addr)) {
            char a[LT_ADDR_MAX] = "?";
            if (ai->ai_family == AF_INET)
                inet_ntop(AF_INET, &((struct sockaddr_in *)ai->ai_addr)->sin_addr, a, sizeof a);
            else if (ai->ai_family == AF_INET6)
                inet_ntop(AF_INET6, &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr, a,
                          sizeof a);
            snprintf(err, cap,
                     "refusing --server %s: %s is not a loopback address (the load test only "
                     "runs against a cluster on this machine: 127.0.0.0/8 or ::1)",
                     url, a);
            freeaddrinfo(res);
            return -1;
        }
        /* IPv4 first: the source addresses are IPv4 */
        if (!pick || (pick->ai_family != AF_INET && ai->ai_family == AF_INET))
            pick = ai;
    }
    if (!pick) {
        snprintf(err, cap, "cannot resolve %s", u.host);
        freeaddrinfo(res);
        return -1;
    }
    if (pick->ai_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)pick->ai_addr)->sin_addr, host, sizeof host);
        snprintf(s->url, sizeof s->url, "%s://%s:%d%s", u.tls ? "wss" : "ws", host, u.port,
                 u.path);
    } else {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)pick->ai_addr)->sin6_addr, host,
                  sizeof host);
        snprintf(s->url, sizeof s->url, "%s://[%s]:%d%s", u.tls ? "wss" : "ws", host, u.port,
                 u.path);
        s->v6 = 1;
    }
    freeaddrinfo(res);
    return 0;
}

void lt_net_source(uint32_t k, char out[LT_ADDR_MAX])
{
    snprintf(out, LT_ADDR_MAX, "127.%u.%u.%u", (unsigned)(k / (254u * 255u)),
             (unsigned)(1 + (k / 254u) % 255u), (unsigned)(1 + k % 254u));
}

int lt_net_check_source(const char *addr, char *err, size_t cap)
{
    struct sockaddr_in sa;
    int fd, rc, e;

    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
        snprintf(err, cap, "%s is not an IPv4 address", addr);
        return -1;
    }
    if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
        snprintf(err, cap, "cannot create a socket: %s", strerror(errno));
        return -1;
    }
    rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    e = errno;
    close(fd);
    if (rc < 0) {
        snprintf(err, cap, "cannot use source address %s: %s", addr, strerror(e));
        return -1;
    }
    return 0;
}

long lt_net_raise_nofile(uint64_t conns, char *err, size_t cap)
{
    uint64_t need = conns + LT_FD_SPARE;
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        snprintf(err, cap, "cannot read the open file limit");
        return -1;
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
        struct rlimit want = rl;
        want.rlim_cur = need;
        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
            want.rlim_max = need; /* only a privileged process may raise the hard limit */
        if (setrlimit(RLIMIT_NOFILE, &want) < 0) {
            snprintf(err, cap,
                     "the open file limit is %llu (hard %llu) but %llu connections need %llu: "
                     "run as root or raise it (ulimit -Hn; /proc/sys/fs/nr_open)",
                     (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max,
                     (unsigned long long)conns, (unsigned long long)need);
            return -1;
        }
        rl = want;
    }
    return rl.rlim_cur == RLIM_INFINITY ? (long)need : (long)rl.rlim_cur;
}
