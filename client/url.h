/* url.h: parses the server URL the client connects to: ws://host[:port][/path] or wss://...
 * (default ports 80/443, default path /v1/ws). IPv6 literals go in brackets. */
#ifndef PC_URL_H
#define PC_URL_H

#include "status.h"

#define PC_URL_HOST_MAX 256
#define PC_URL_PATH_MAX 512

typedef struct {
    int tls;
    char host[PC_URL_HOST_MAX]; /* without brackets */
    int port;
    char path[PC_URL_PATH_MAX];
} pc_url;

int pc_url_parse(const char *url, pc_url *out, pc_status *st);

#endif
