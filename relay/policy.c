/* policy.c: peer address policy (see policy.h). The tables follow the IANA special-purpose
 * address registries (RFC 6890 and successors); anything they mark as not globally reachable is
 * refused. */
#include "policy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    uint8_t addr[16];
    int prefix;
    rpol_reason reason;
} range;

#define V4(a, b, c, d) {a, b, c, d}

/* Order matters only where ranges nest: the first match gives the reason. */
static const range v4_refused[] = {
    {V4(169, 254, 169, 254), 32, RPOL_METADATA}, /* AWS, GCP, Azure, OpenStack, ... */
    {V4(100, 100, 100, 200), 32, RPOL_METADATA}, /* Alibaba Cloud */
    {V4(192, 0, 0, 192), 32, RPOL_METADATA},     /* Oracle Cloud (legacy) */
    {V4(0, 0, 0, 0), 32, RPOL_UNSPECIFIED},
    {V4(0, 0, 0, 0), 8, RPOL_RESERVED}, /* "this network" */
    {V4(10, 0, 0, 0), 8, RPOL_PRIVATE},
    {V4(100, 64, 0, 0), 10, RPOL_PRIVATE}, /* shared address space (CGN) */
    {V4(127, 0, 0, 0), 8, RPOL_LOOPBACK},
    {V4(169, 254, 0, 0), 16, RPOL_LINK_LOCAL},
    {V4(172, 16, 0, 0), 12, RPOL_PRIVATE},
    {V4(192, 0, 0, 0), 24, RPOL_RESERVED}, /* IETF protocol assignments */
    {V4(192, 0, 2, 0), 24, RPOL_DOCUMENTATION},
    {V4(192, 88, 99, 0), 24, RPOL_RESERVED}, /* deprecated 6to4 relay anycast */
    {V4(192, 168, 0, 0), 16, RPOL_PRIVATE},
    {V4(198, 18, 0, 0), 15, RPOL_BENCHMARKING},
    {V4(198, 51, 100, 0), 24, RPOL_DOCUMENTATION},
    {V4(203, 0, 113, 0), 24, RPOL_DOCUMENTATION},
    {V4(224, 0, 0, 0), 4, RPOL_MULTICAST},
    {V4(255, 255, 255, 255), 32, RPOL_BROADCAST},
    {V4(240, 0, 0, 0), 4, RPOL_RESERVED},
};

#define V6(...) {__VA_ARGS__}

/* IPv6 ranges refused outright; the IPv4-embedding forms are handled in embedded_v4. */
static const range v6_refused[] = {
    {V6(0), 128, RPOL_UNSPECIFIED},                              /* :: */
    {V6(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1), 128, RPOL_LOOPBACK}, /* ::1 */
    {V6(0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54), 128,
     RPOL_METADATA},                                             /* AWS fd00:ec2::254 */
    {V6(0x00, 0x64, 0xff, 0x9b, 0x00, 0x01), 48, RPOL_PRIVATE},  /* NAT64 local use */
    {V6(0x01, 0x00), 64, RPOL_RESERVED},                         /* discard-only 100::/64 */
    {V6(0x20, 0x01, 0x00, 0x02, 0x00, 0x00), 48, RPOL_BENCHMARKING}, /* 2001:2::/48 */
    {V6(0x20, 0x01, 0x00, 0x10), 28, RPOL_RESERVED},             /* ORCHID */
    {V6(0x20, 0x01, 0x00, 0x20), 28, RPOL_RESERVED},             /* ORCHIDv2 */
    {V6(0x20, 0x01, 0x0d, 0xb8), 32, RPOL_DOCUMENTATION},
    {V6(0x3f, 0xff), 20, RPOL_DOCUMENTATION},                    /* 3fff::/20 (RFC 9637) */
    {V6(0x5f, 0x00), 16, RPOL_RESERVED},                         /* SRv6 SIDs */
    {V6(0xfc), 7, RPOL_PRIVATE},                                 /* unique local */
    {V6(0xfe, 0x80), 10, RPOL_LINK_LOCAL},
    {V6(0xfe, 0xc0), 10, RPOL_PRIVATE},                          /* deprecated site-local */
    {V6(0xff), 8, RPOL_MULTICAST},
};

static int prefix_match(const uint8_t *a, const uint8_t *net, int prefix)
{
    int full = prefix / 8, rest = prefix % 8;
    if (memcmp(a, net, (size_t)full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    uint8_t mask = (uint8_t)(0xFF << (8 - rest));
    return (a[full] & mask) == (net[full] & mask);
}

static rpol_reason check_v4(const uint8_t ip[4])
{
    for (size_t i = 0; i < sizeof v4_refused / sizeof v4_refused[0]; i++)
        if (prefix_match(ip, v4_refused[i].addr, v4_refused[i].prefix))
            return v4_refused[i].reason;
    return RPOL_OK;
}

/* Finds an IPv4 address carried inside an IPv6 one; returns how many (0, 1 or 2: Teredo carries
 * its server and its client), written to out[0..]. */
static int embedded_v4(const uint8_t a[16], uint8_t out[2][4])
{
    static const uint8_t zero[12] = {0};
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const uint8_t siit[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0};
    static const uint8_t nat64[12] = {0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
    /* ::a.b.c.d (IPv4-compatible), ::ffff:a.b.c.d (mapped), ::ffff:0:a.b.c.d (SIIT),
     * 64:ff9b::a.b.c.d (NAT64 well-known prefix) */
    if (!memcmp(a, zero, 12) || !memcmp(a, mapped, 12) || !memcmp(a, siit, 12) ||
        !memcmp(a, nat64, 12)) {
        memcpy(out[0], a + 12, 4);
        return 1;
    }
    if (a[0] == 0x20 && a[1] == 0x02) { /* 6to4: 2002:AABB:CCDD::/48 */
        memcpy(out[0], a + 2, 4);
        return 1;
    }
    if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0 && a[3] == 0) { /* Teredo 2001::/32 */
        memcpy(out[0], a + 4, 4); /* server */
        for (int i = 0; i < 4; i++)
            out[1][i] = (uint8_t)~a[12 + i]; /* client, obfuscated by inversion */
        return 2;
    }
    return 0;
}

static rpol_reason check_v6(const uint8_t a[16])
{
    for (size_t i = 0; i < sizeof v6_refused / sizeof v6_refused[0]; i++)
        if (prefix_match(a, v6_refused[i].addr, v6_refused[i].prefix))
            return v6_refused[i].reason;
    uint8_t v4[2][4];
    int n = embedded_v4(a, v4);
    for (int i = 0; i < n; i++) {
        rpol_reason r = check_v4(v4[i]);
        if (r != RPOL_OK)
            return r;
    }
    /* only 2000::/3 is allocated for global unicast; the rest is reserved (the embedding
     * forms outside it were judged by their IPv4 address above) */
    if (n == 0 && (a[0] & 0xE0) != 0x20)
        return RPOL_RESERVED;
    return RPOL_OK;
}

static int allowed(const rpol *p, const uint8_t *a, int v6)
{
    for (size_t i = 0; i < p->nallow; i++)
        if (p->allow[i].v6 == v6 && prefix_match(a, p->allow[i].addr, p->allow[i].prefix))
            return 1;
    return 0;
}

rpol_reason rpol_check(const rpol *p, const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const uint8_t *ip = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
        return allowed(p, ip, 0) ? RPOL_OK : check_v4(ip);
    }
    if (sa->sa_family == AF_INET6) {
        const uint8_t *a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        if (allowed(p, a, 1))
            return RPOL_OK;
        /* an allowed IPv4 address stays allowed when written as ::ffff:a.b.c.d (the only
         * embedding the kernel itself delivers as IPv4); the other forms go through
         * translators and need their own entry */
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (!memcmp(a, mapped, 12) && allowed(p, a + 12, 0))
            return RPOL_OK;
        return check_v6(a);
    }
    return RPOL_FAMILY;
}

/* Parses one "addr[/prefix]" entry of n bytes. */
static int parse_cidr(const char *s, size_t n, rpol_cidr *out)
{
    char buf[INET6_ADDRSTRLEN + 8];
    if (n == 0 || n >= sizeof buf)
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *slash = strchr(buf, '/');
    long prefix = -1;
    if (slash) {
        *slash = '\0';
        const char *d = slash + 1;
        if (*d == '\0' || strlen(d) > 3)
            return -1;
        prefix = 0;
        for (; *d; d++) {
            if (*d < '0' || *d > '9')
                return -1;
            prefix = prefix * 10 + (*d - '0');
        }
    }
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, buf, out->addr) == 1) {
        out->v6 = 0;
        if (prefix > 32)
            return -1;
        out->prefix = prefix < 0 ? 32 : (int)prefix;
    } else if (inet_pton(AF_INET6, buf, out->addr) == 1) {
        out->v6 = 1;
        if (prefix > 128)
            return -1;
        out->prefix = prefix < 0 ? 128 : (int)prefix;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (!memcmp(out->addr, mapped, 12) && out->prefix >= 96) {
            memmove(out->addr, out->addr + 12, 4);
            memset(out->addr + 4, 0, 12);
            out->v6 = 0;
            out->prefix -= 96;
        }
    } else {
        return -1;
    }
    return 0;
}

void rpol_init(rpol *p) { memset(p, 0, sizeof *p); }

int rpol_allow(rpol *p, const char *list, char *err, size_t errlen)
{
    if (!list)
        return 0;
    rpol_cidr tmp[PARLEY_RELAY_ALLOW_CIDRS_MAX];
    size_t n = 0;
    const char *s = list;
    for (;;) {
        const char *end = strchr(s, ',');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        const char *b = s, *e = s + len;
        while (b < e && (*b == ' ' || *b == '\t'))
            b++;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if (e > b) {
            if (p->nallow + n == PARLEY_RELAY_ALLOW_CIDRS_MAX) {
                snprintf(err, errlen, "more than %d allow entries", PARLEY_RELAY_ALLOW_CIDRS_MAX);
                return -1;
            }
            if (parse_cidr(b, (size_t)(e - b), &tmp[n]) != 0) {
                snprintf(err, errlen, "bad allow entry \"%.*s\"", (int)(e - b > 64 ? 64 : e - b),
                         b);
                return -1;
            }
            n++;
        } else if (end) {
            /* an empty entry before a comma is a typo worth refusing */
            snprintf(err, errlen, "empty allow entry");
            return -1;
        }
        if (!end)
            break;
        s = end + 1;
    }
    memcpy(p->allow + p->nallow, tmp, n * sizeof tmp[0]);
    p->nallow += n;
    return 0;
}

const char *rpol_reason_name(rpol_reason r)
{
    static const char *names[RPOL_NREASONS] = {
        "ok",           "loopback",      "private",  "link_local", "multicast", "unspecified",
        "documentation", "benchmarking", "broadcast", "metadata",   "reserved",  "family",
    };
    return (unsigned)r < RPOL_NREASONS ? names[r] : "unknown";
}
