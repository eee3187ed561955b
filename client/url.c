#include "url.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "wire.h"

int pc_url_parse(const char *url, pc_url *out, pc_status *st)
{
    const char *p, *host_end, *port_at = NULL, *path;
    size_t hlen;

    memset(out, 0, sizeof *out);
    if (!url)
        return pc_status_set(st, PC_ERR_LOCAL, "no server URL");
    if (!strncasecmp(url, "ws://", 5)) {
        p = url + 5;
        out->port = 80;
    } else if (!strncasecmp(url, "wss://", 6)) {
        p = url + 6;
        out->tls = 1;
        out->port = 443;
    } else {
        return pc_status_set(st, PC_ERR_LOCAL, "server URL %s: must start with ws:// or wss://",
                             url);
    }
    path = p + strcspn(p, "/?#");
    if (*p == '[') {
        host_end = memchr(p, ']', (size_t)(path - p));
        if (!host_end)
            return pc_status_set(st, PC_ERR_LOCAL, "server URL %s: unclosed [", url);
        hlen = (size_t)(host_end - p - 1);
        p++;
        if (host_end[1] == ':')
            port_at = host_end + 2;
        else if (host_end + 1 != path)
            return pc_status_set(st, PC_ERR_LOCAL, "server URL %s: bad host", url);
    } else {
        const char *colon = memchr(p, ':', (size_t)(path - p));
        host_end = colon ? colon : path;
        hlen = (size_t)(host_end - p);
        if (colon)
            port_at = colon + 1;
    }
    if (hlen == 0 || hlen >= sizeof out->host)
        return pc_status_set(st, PC_ERR_LOCAL, "server URL %s: bad host", url);
    memcpy(out->host, p, hlen);
    if (port_at) {
        char *end;
        long port = strtol(port_at, &end, 10);
        if (end == port_at || end != path || port < 1 || port > 65535)
            return pc_status_set(st, PC_ERR_LOCAL, "server URL %s: bad port", url);
        out->port = (int)port;
    }
    if (*path != '\0' && *path != '/')
        return pc_status_set(st, PC_ERR_LOCAL, "server URL %s: bad path", url);
    /* "ws://host/" means the default endpoint too: nobody serves WebSockets on "/" here */
    if (*path == '\0' || !strcmp(path, "/"))
        path = PWIRE_PATH;
    if (strlen(path) >= sizeof out->path)
        return pc_status_set(st, PC_ERR_LOCAL, "server URL %s: path too long", url);
    strcpy(out->path, path);
    return 0;
}
