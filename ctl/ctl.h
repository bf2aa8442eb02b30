/* SPDX-License-Identifier: Apache-2.0 */
/*
 * skiffd's control transport: HTTP/1.1 over a root-only Unix socket.
 *
 * Three parts that know nothing about the routes:
 *  - pure parsers for one request and one response held in a buffer
 *    (fuzzed by tests/fuzz/fuzz_http.c), strict about framing because every
 *    byte comes from another process;
 *  - a server that owns the listening socket and one thread per
 *    connection, and hands each complete request to a handler;
 *  - a blocking client with an overall deadline, for the `skiff` CLI.
 *
 * Functions return 0 or -errno.
 */
#ifndef SKIFF_CTL_CTL_H
#define SKIFF_CTL_CTL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define CTL_MAX_HEAD	(16u * 1024)	/* request line + headers + CRLFCRLF */
#define CTL_MAX_BODY	(1u << 20)	/* request body */
#define CTL_MAX_RESP_BODY	(16u << 20)	/* response body, client side */
#define CTL_MAX_HEADERS	64
#define CTL_MAX_METHOD	15
#define CTL_MAX_TARGET	2048	/* request-target, path + '?' + query */

/* Borrowed from the parsed buffer; not NUL-terminated. */
struct ctl_header {
	const char *name;
	size_t name_len;
	const char *value;	/* without surrounding whitespace */
	size_t value_len;
};

/*
 * One parsed request. method, path and query are copies; headers and body
 * point into the buffer given to ctl_parse_request and live as long as it.
 */
struct ctl_req {
	char method[CTL_MAX_METHOD + 1];	/* case-sensitive, e.g. "GET" */
	char path[CTL_MAX_TARGET + 1];	/* raw: not percent-decoded */
	char query[CTL_MAX_TARGET + 1];	/* after '?'; "" when none */
	int version_minor;			/* HTTP/1.0 or HTTP/1.1 */
	bool keep_alive;	/* from the version and Connection */
	/* set on -EAGAIN when the head is complete and the body pending */
	bool expect_continue;
	const char *body;	/* NULL when body_len is 0 */
	size_t body_len;
	struct ctl_header headers[CTL_MAX_HEADERS];
	size_t nheaders;
	/* on -EINVAL/-E2BIG: the status to answer and a static reason */
	int err_status;
	const char *err_msg;
};

/*
 * Parses one request at the start of buf[0..len). Returns 0 and sets
 * *consumed (head + body, so a pipelined request starts at buf+*consumed);
 * -EAGAIN while the message is incomplete (every proper prefix of a valid
 * request gives it; before the head is complete only NUL bytes and bad
 * line ends are caught); -EINVAL when malformed (err_status 400, 411 for
 * Transfer-Encoding without Content-Length, 501 for a method longer than
 * CTL_MAX_METHOD, 505 for another HTTP version); -E2BIG when the
 * head exceeds CTL_MAX_HEAD (431), there are more than
 * CTL_MAX_HEADERS headers (431), the target exceeds CTL_MAX_TARGET
 * (414) or Content-Length exceeds CTL_MAX_BODY (413).
 * Pure: no allocation, no state beyond *req.
 */
int ctl_parse_request(const char *buf, size_t len, struct ctl_req *req,
		      size_t *consumed);

/* The first header called name (ASCII case-insensitive), or NULL. */
const char *ctl_header_find(const struct ctl_header *headers,
			    size_t nheaders, const char *name,
			    size_t *value_len);

/* One parsed response; headers and body point into the parsed buffer. */
struct ctl_reply {
	int status;		/* 200..599 */
	bool keep_alive;
	const char *body;	/* NULL when body_len is 0 */
	size_t body_len;
	struct ctl_header headers[CTL_MAX_HEADERS];
	size_t nheaders;
};

/*
 * Parses one response to a request other than HEAD. It must carry a
 * Content-Length (except 204 and 304) and no Transfer-Encoding. Returns 0
 * and *consumed; -EAGAIN while incomplete; -EPROTO when malformed
 * (including 1xx); -EMSGSIZE when the head exceeds CTL_MAX_HEAD or the
 * body CTL_MAX_RESP_BODY. Pure.
 */
int ctl_parse_response(const char *buf, size_t len,
		       struct ctl_reply *rep, size_t *consumed);

/*
 * What a handler answers. The server zeroes it before the call and frees
 * body after sending; status 0 or outside 200..599 is sent as 500.
 */
struct ctl_resp {
	int status;
	char content_type[64];	/* "" sends no Content-Type */
	char *body;		/* malloc'd, owned by resp; may be NULL */
	size_t body_len;
	bool close;		/* close the connection after this response */
};

/*
 * Called once per request. Several connections run at once, so a handler
 * may be called from several threads concurrently: it must lock whatever
 * ctx state it shares. req and its buffer are valid only during the call.
 */
typedef void (*ctl_handler)(void *ctx, const struct ctl_req *req,
			    struct ctl_resp *resp);

/*
 * Each helper replaces resp's body (freeing the old one) with a
 * NUL-terminated one (the NUL not counted in body_len). On -ENOMEM the
 * response is left as a bodiless 500.
 */
/* Dumps json compactly with sorted keys; json stays the caller's. */
int ctl_resp_json(struct ctl_resp *resp, int status, const json_t *json);
int ctl_resp_text(struct ctl_resp *resp, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* {"error": "<message>"}; bytes that are not UTF-8 become '?'. */
int ctl_resp_error(struct ctl_resp *resp, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

struct ctl_server_opts {
	/* a request must arrive whole within this long after the previous
	 * response (or the accept); also the send timeout */
	int idle_timeout_ms;
	/* connections served at once; the next waits up to idle_timeout_ms
	 * for a slot, then is answered 503 (later ones wait in the backlog) */
	unsigned int max_conns;
};
#define CTL_IDLE_TIMEOUT_MS	5000
#define CTL_MAX_CONNS	16

struct ctl_server;

/*
 * Binds a temporary name next to sock_path, makes it 0600, listens and
 * renames it onto sock_path, so the socket exists only once it is served.
 * The directory must exist. A stale socket at sock_path is replaced;
 * -EADDRINUSE when something answers there, -EEXIST when sock_path is not
 * a socket, -ENAMETOOLONG when the path does not fit a sockaddr_un.
 * Peers whose uid is neither 0 nor our euid get 403.
 */
int ctl_server_start(struct ctl_server **out, const char *sock_path,
		     ctl_handler handler, void *ctx);
/* The same with explicit options; a zero field takes its default. */
int ctl_server_start_opts(struct ctl_server **out,
			  const char *sock_path, ctl_handler handler,
			  void *ctx, const struct ctl_server_opts *opts);
/*
 * Unlinks sock_path (if it is still our socket), stops accepting, closes
 * idle connections, waits for running handlers, joins every thread and
 * frees srv. NULL is a no-op. Never from a handler: it would wait for
 * itself.
 */
void ctl_server_stop(struct ctl_server *srv);

/*
 * One request on a fresh connection (Connection: close), with
 * Content-Type application/json when body_len > 0. Everything, connect
 * included, finishes within timeout_ms. On 0, *status is the HTTP status
 * and *resp_body (if resp_body is not NULL) a malloc'd, NUL-terminated
 * copy of the body, *resp_len its length. Errors: -ENOENT or
 * -ECONNREFUSED when no daemon serves sock_path, -EACCES when we may not
 * connect, -ETIMEDOUT, -EPROTO for a malformed response, -EMSGSIZE for an
 * oversized one, -ECONNRESET when the server hung up without answering,
 * -EINVAL for a method or path that cannot be sent.
 */
int ctl_call(const char *sock_path, const char *method, const char *path,
	     const char *body, size_t body_len, int timeout_ms, int *status,
	     char **resp_body, size_t *resp_len);

/* "OK", "Not Found", ...; "Unknown" for codes we do not send. */
const char *ctl_reason(int status);

#endif
