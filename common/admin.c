/* admin.c: the admin HTTP listener (/healthz, /readyz, /metrics) as a minimal HTTP/1.x
 * responder on a uv_tcp listener of the caller's loop: one bounded request per connection,
 * then the response and close. Owns the listener, its connections and their buffers.
 *
 * Why not libwebsockets: lws 4.1 contexts on a foreign libuv loop need a second
 * lws_context_destroy after the loop ran to free themselves, and destroying one whose vhost
 * failed to bind crashes inside lws. This module only needs to answer three GETs. */
#include "admin.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "limits.h"
#include "log.h"

#define PADMIN_REQUEST_MAX PARLEY_ADMIN_REQUEST_MAX
#define PADMIN_TIMEOUT_MS PARLEY_ADMIN_TIMEOUT_MS
#define PADMIN_CONNS_MAX PARLEY_ADMIN_CONNS_MAX
#define PADMIN_BACKLOG 128

typedef struct padmin_conn padmin_conn;

struct padmin {
    uv_loop_t *loop;
    uv_tcp_t server;
    pmetrics *metrics;
    int (*ready)(void *ud);
    void *ud;
    int port;
    int handles;  /* open uv handles (server + 2 per connection); a is freed at 0 once stopped */
    int stopping;
    int nconns;
    padmin_conn *conns; /* doubly linked, for stop */
};

struct padmin_conn {
    padmin *a;
    padmin_conn *prev, *next;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wreq;
    char *resp;   /* response being written */
    size_t len;   /* bytes of req used */
    int closing;
    int open_handles; /* tcp + timer; c is freed when both closed (libuv closes LIFO) */
    char req[PADMIN_REQUEST_MAX];
};

static void padmin_maybe_free(padmin *a)
{
    if (a->stopping && a->handles == 0)
        free(a);
}

static void padmin_conn_handle_closed(uv_handle_t *h)
{
    padmin_conn *c = h->data;
    padmin *a = c->a;
    a->handles--;
    if (--c->open_handles == 0) {
        free(c->resp);
        free(c);
    }
    padmin_maybe_free(a);
}

static void padmin_conn_close(padmin_conn *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    padmin *a = c->a;
    if (c->prev)
        c->prev->next = c->next;
    else
        a->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    a->nconns--;
    uv_close((uv_handle_t *)&c->tcp, padmin_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, padmin_conn_handle_closed);
}

static void padmin_write_done(uv_write_t *w, int status)
{
    (void)status; /* the client may be gone; we close either way */
    padmin_conn *c = w->data;
    padmin_conn_close(c);
}

static const char *padmin_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

/* Writes the whole response (headers + body) and closes when it is sent. body is borrowed. */
static void padmin_send(padmin_conn *c, int status, const char *ctype, const char *body,
                        size_t blen)
{
    uv_read_stop((uv_stream_t *)&c->tcp);
    char head[320];
    int hlen = snprintf(head, sizeof head,
                        "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                        "Cache-Control: no-store\r\n%sConnection: close\r\n\r\n",
                        status, padmin_reason(status), ctype, blen,
                        status == 405 ? "Allow: GET\r\n" : "");
    if (hlen < 0 || (size_t)hlen >= sizeof head || !(c->resp = malloc((size_t)hlen + blen))) {
        padmin_conn_close(c);
        return;
    }
    memcpy(c->resp, head, (size_t)hlen);
    if (blen)
        memcpy(c->resp + hlen, body, blen);
    uv_buf_t b = uv_buf_init(c->resp, (unsigned)((size_t)hlen + blen));
    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, padmin_write_done) != 0)
        padmin_conn_close(c);
}

static void padmin_send_text(padmin_conn *c, int status, const char *text)
{
    padmin_send(c, status, "text/plain; charset=utf-8", text, strlen(text));
}

/* Answers the request in c->req (complete headers, NUL-terminated). */
static void padmin_route(padmin_conn *c)
{
    padmin *a = c->a;
    /* request line: METHOD SP TARGET SP HTTP/x.y */
    char *line_end = strpbrk(c->req, "\r\n");
    if (line_end)
        *line_end = '\0';
    char *sp1 = strchr(c->req, ' ');
    char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0) {
        padmin_send_text(c, 400, "bad request\n");
        return;
    }
    *sp1 = '\0';
    *sp2 = '\0';
    const char *method = c->req, *target = sp1 + 1;
    if (strcmp(method, "GET") != 0) {
        padmin_send_text(c, 405, "method not allowed\n");
        return;
    }
    size_t plen = strcspn(target, "?");
    if (plen == 8 && strncmp(target, "/healthz", 8) == 0) {
        padmin_send_text(c, 200, "ok\n");
    } else if (plen == 7 && strncmp(target, "/readyz", 7) == 0) {
        int ready = a->ready ? a->ready(a->ud) : 1;
        padmin_send_text(c, ready ? 200 : 503, ready ? "ready\n" : "not ready\n");
    } else if (plen == 8 && strncmp(target, "/metrics", 8) == 0) {
        size_t len = 0;
        char *text = a->metrics ? pmetrics_render(a->metrics, &len) : NULL;
        if (!text) {
            padmin_send_text(c, 500, "metrics unavailable\n");
            return;
        }
        padmin_send(c, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
        free(text);
    } else {
        padmin_send_text(c, 404, "not found\n");
    }
}

static void padmin_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    padmin_conn *c = h->data;
    /* keep one byte for the terminating NUL */
    *buf = uv_buf_init(c->req + c->len, (unsigned)(sizeof c->req - 1 - c->len));
}

static void padmin_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    padmin_conn *c = s->data;
    if (c->closing || c->resp)
        return;
    if (n < 0) {
        padmin_conn_close(c); /* EOF or error before a complete request */
        return;
    }
    c->len += (size_t)n;
    c->req[c->len] = '\0';
    if (memchr(c->req, '\0', c->len)) {
        padmin_send_text(c, 400, "bad request\n");
        return;
    }
    if (strstr(c->req, "\r\n\r\n") || strstr(c->req, "\n\n")) {
        padmin_route(c);
        return;
    }
    if (c->len >= sizeof c->req - 1)
        padmin_send_text(c, 431, "request too large\n");
}

static void padmin_timeout(uv_timer_t *t)
{
    padmin_conn *c = t->data;
    if (c->resp)
        padmin_conn_close(c); /* a client that does not read its response */
    else
        padmin_send_text(c, 408, "request timeout\n");
}

static void padmin_on_conn(uv_stream_t *server, int status)
{
    padmin *a = server->data;
    if (status < 0 || a->stopping) {
        if (status < 0)
            plog_warn("admin_accept_failed", "reason=%s", uv_strerror(status));
        return;
    }
    padmin_conn *c = calloc(1, sizeof *c);
    if (!c) {
        plog_error("admin_accept_failed", "reason=out_of_memory");
        return;
    }
    c->a = a;
    uv_tcp_init(a->loop, &c->tcp);
    uv_timer_init(a->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->open_handles = 2;
    a->handles += 2;
    c->next = a->conns;
    if (a->conns)
        a->conns->prev = c;
    a->conns = c;
    a->nconns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 || a->nconns > PADMIN_CONNS_MAX) {
        padmin_conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, padmin_timeout, PADMIN_TIMEOUT_MS, 0);
    if (uv_read_start((uv_stream_t *)&c->tcp, padmin_alloc, padmin_read) != 0)
        padmin_conn_close(c);
}

/* A listening, non-blocking socket on host:port, or -1 (logged). */
static int padmin_listen_fd(const char *host, int port)
{
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int rc = getaddrinfo(host && host[0] ? host : NULL, service, &hints, &res);
    if (rc != 0) {
        plog_error("admin_start_failed", "host=%s port=%d reason=\"%s\"", host ? host : "",
                   port, gai_strerror(rc));
        return -1;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            err = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, PADMIN_BACKLOG) == 0)
            break;
        err = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        plog_error("admin_start_failed", "host=%s port=%d reason=\"%s\"", host ? host : "", port,
                   strerror(err));
    return fd;
}

static int padmin_bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}

static void padmin_server_closed(uv_handle_t *h)
{
    padmin *a = h->data;
    a->handles--;
    padmin_maybe_free(a);
}

padmin *padmin_start(uv_loop_t *loop, const char *host, int port, pmetrics *metrics,
                     int (*ready)(void *ud), void *ud)
{
    if (!loop || port < 0 || port > 65535) {
        plog_error("admin_start_failed", "port=%d reason=\"bad arguments\"", port);
        return NULL;
    }
    padmin *a = calloc(1, sizeof *a);
    if (!a) {
        plog_error("admin_start_failed", "reason=out_of_memory");
        return NULL;
    }
    /* bind with plain sockets first: a failure then leaves no uv handle to close */
    int fd = padmin_listen_fd(host, port);
    if (fd < 0) {
        free(a);
        return NULL;
    }
    a->loop = loop;
    a->metrics = metrics;
    a->ready = ready;
    a->ud = ud;
    a->port = padmin_bound_port(fd);
    uv_tcp_init(loop, &a->server);
    a->server.data = a;
    a->handles = 1;
    int rc = uv_tcp_open(&a->server, fd);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&a->server, PADMIN_BACKLOG, padmin_on_conn);
    if (rc != 0) {
        plog_error("admin_start_failed", "host=%s port=%d reason=\"%s\"", host ? host : "", port,
                   uv_strerror(rc));
        a->stopping = 1;
        uv_close((uv_handle_t *)&a->server, padmin_server_closed); /* closes fd too */
        return NULL;
    }
    plog_info("admin_listening", "host=%s port=%d", host && host[0] ? host : "*", a->port);
    return a;
}

int padmin_port(const padmin *a)
{
    return a ? a->port : -1;
}

void padmin_stop(padmin *a)
{
    if (!a || a->stopping)
        return;
    a->stopping = 1;
    while (a->conns)
        padmin_conn_close(a->conns);
    uv_close((uv_handle_t *)&a->server, padmin_server_closed);
}
