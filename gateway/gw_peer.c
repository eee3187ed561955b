#include "gw_peer.h"

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

void gw_peer_from_sockaddr(gw_peer *p, const struct sockaddr *sa)
{
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    memset(p, 0, sizeof *p);
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)sa;
        p->family = AF_INET;
        memcpy(p->addr, &s4->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        /* the rate limit counts an IPv4 client as its IPv4 address, whatever the listener */
        if (memcmp(s6->sin6_addr.s6_addr, v4mapped, sizeof v4mapped) == 0) {
            p->family = AF_INET;
            memcpy(p->addr, s6->sin6_addr.s6_addr + 12, 4);
        } else {
            p->family = AF_INET6;
            memcpy(p->addr, s6->sin6_addr.s6_addr, 16);
        }
    }
}

void gw_peer_from_fd(gw_peer *p, int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    memset(p, 0, sizeof *p);
    if (fd >= 0 && getpeername(fd, (struct sockaddr *)&ss, &len) == 0)
        gw_peer_from_sockaddr(p, (const struct sockaddr *)&ss);
}

const char *gw_peer_text(const gw_peer *p, char out[GW_PEER_TEXT_MAX])
{
    if ((p->family != AF_INET && p->family != AF_INET6) ||
        !inet_ntop(p->family, p->addr, out, GW_PEER_TEXT_MAX))
        strcpy(out, "unknown");
    return out;
}
