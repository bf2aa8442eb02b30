/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HTTP/1.1 for skiffd's control socket: parsers, server, client.
 *
 * The parsers are strict where leniency lets two readers disagree about
 * where a message ends (bare CR or LF, obsolete folding, conflicting or
 * malformed Content-Length, Transfer-Encoding): the peer is another local
 * process, possibly hostile, and nothing we talk to needs the leniency.
 */
#include "ctl.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../common/sk.h"

/* ---------------------------------------------------------------- parsing */

static bool is_tchar(unsigned char c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	    (c >= 'A' && c <= 'Z'))
		return true;
	return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* field-content and reason-phrase bytes: HTAB, SP, VCHAR, obs-text */
static bool is_field_byte(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static int ascii_lower(unsigned char c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* Header names and tokens compare ASCII case-insensitively, whatever the
 * locale says. */
static bool ascii_ieq(const char *a, size_t alen, const char *b)
{
	size_t blen = strlen(b);

	if (alen != blen)
		return false;
	for (size_t i = 0; i < alen; i++)
		if (ascii_lower((unsigned char)a[i]) !=
		    ascii_lower((unsigned char)b[i]))
			return false;
	return true;
}

/*
 * Finds the end of the head (just past CRLFCRLF) within the first
 * CTL_MAX_HEAD bytes, checking on the way what can be checked before
 * the head is complete: no NUL, CR only before LF, LF only after CR.
 * Empty lines before the start line are skipped (RFC 9112 2.2) and count
 * towards the limit. *start is the start line's offset.
 */
static int scan_head(const char *buf, size_t len, size_t *start,
		     size_t *head_end)
{
	size_t lim = SK_MIN(len, (size_t)CTL_MAX_HEAD), i = 0;

	while (i + 1 < lim && buf[i] == '\r' && buf[i + 1] == '\n')
		i += 2;
	*start = i;
	for (; i < lim; i++) {
		char c = buf[i];

		if (c == '\0')
			return -EINVAL;
		if (c == '\r') {
			if (i + 1 < len && buf[i + 1] != '\n')
				return -EINVAL;
			continue;
		}
		if (c != '\n')
			continue;
		if (i == 0 || buf[i - 1] != '\r')
			return -EINVAL;
		if (i >= *start + 3 && buf[i - 2] == '\n') {
			*head_end = i + 1;
			return 0;
		}
	}
	return len >= CTL_MAX_HEAD ? -E2BIG : -EAGAIN;
}

/* What the header fields say about framing and the connection. */
struct framing {
	uint64_t content_length;
	bool has_cl, has_te, conn_close, conn_keep_alive, expect_continue;
	const char *why;	/* static, on failure */
};

static int parse_content_length(const char *v, size_t n, uint64_t *out)
{
	uint64_t x = 0;

	if (n == 0)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		unsigned int d;

		if (v[i] < '0' || v[i] > '9')
			return -EINVAL;
		d = (unsigned int)(v[i] - '0');
		if (x > (UINT64_MAX - d) / 10)
			return -EOVERFLOW;
		x = x * 10 + d;
	}
	*out = x;
	return 0;
}

static void parse_connection(const char *v, size_t n, struct framing *f)
{
	size_t i = 0;

	while (i < n) {
		size_t s, e;

		while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
			i++;
		s = i;
		while (i < n && v[i] != ',')
			i++;
		e = i;
		while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t'))
			e--;
		if (ascii_ieq(v + s, e - s, "close"))
			f->conn_close = true;
		else if (ascii_ieq(v + s, e - s, "keep-alive"))
			f->conn_keep_alive = true;
	}
}

/*
 * Parses the header lines in [p, end), end being the start of the final
 * empty line. Every line ends in CRLF (scan_head made sure of it).
 */
static int parse_fields(const char *p, const char *end,
			struct ctl_header *hdrs, size_t *nhdrs,
			struct framing *f)
{
	*nhdrs = 0;
	while (p < end) {
		const char *eol = memchr(p, '\r', (size_t)(end - p));
		const char *name = p, *v, *ve;
		size_t name_len;

		if (!eol)	/* cannot happen after scan_head; stay safe */
			eol = end;
		if (*p == ' ' || *p == '\t') {
			f->why = "obsolete header line folding";
			return -EINVAL;
		}
		while (p < eol && is_tchar((unsigned char)*p))
			p++;
		name_len = (size_t)(p - name);
		/* no whitespace between name and colon (RFC 9112 5.1) */
		if (name_len == 0 || p == eol || *p != ':') {
			f->why = "malformed header line";
			return -EINVAL;
		}
		v = p + 1;
		while (v < eol && (*v == ' ' || *v == '\t'))
			v++;
		ve = eol;
		while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
			ve--;
		for (const char *q = v; q < ve; q++) {
			if (!is_field_byte((unsigned char)*q)) {
				f->why = "control character in a header value";
				return -EINVAL;
			}
		}
		if (*nhdrs == CTL_MAX_HEADERS) {
			f->why = "too many header fields";
			return -E2BIG;
		}
		hdrs[*nhdrs] = (struct ctl_header){
			.name = name, .name_len = name_len,
			.value = v, .value_len = (size_t)(ve - v),
		};
		(*nhdrs)++;

		if (ascii_ieq(name, name_len, "content-length")) {
			uint64_t cl;
			int ret = parse_content_length(v, (size_t)(ve - v), &cl);

			if (ret) {
				f->why = ret == -EOVERFLOW ?
					 "Content-Length overflows" :
					 "Content-Length is not a number";
				return -EINVAL;
			}
			/* equal duplicates are harmless (RFC 9110 8.6) */
			if (f->has_cl && f->content_length != cl) {
				f->why = "conflicting Content-Length headers";
				return -EINVAL;
			}
			f->has_cl = true;
			f->content_length = cl;
		} else if (ascii_ieq(name, name_len, "transfer-encoding")) {
			f->has_te = true;
		} else if (ascii_ieq(name, name_len, "connection")) {
			parse_connection(v, (size_t)(ve - v), f);
		} else if (ascii_ieq(name, name_len, "expect")) {
			if (ascii_ieq(v, (size_t)(ve - v), "100-continue"))
				f->expect_continue = true;
		}
		p = eol + 2;
	}
	return 0;
}

static int req_fail(struct ctl_req *req, int err, int status,
		    const char *why)
{
	req->err_status = status;
	req->err_msg = why;
	return err;
}

static int parse_request_line(const char *p, const char *eol,
			      struct ctl_req *req)
{
	const char *m = p, *t, *te, *q, *v;
	size_t n;

	while (p < eol && is_tchar((unsigned char)*p))
		p++;
	n = (size_t)(p - m);
	if (n == 0 || p == eol || *p != ' ')
		return req_fail(req, -EINVAL, 400, "malformed request line");
	if (n > CTL_MAX_METHOD)
		return req_fail(req, -EINVAL, 501, "unknown method");
	memcpy(req->method, m, n);
	req->method[n] = '\0';

	t = ++p;
	while (p < eol && *p != ' ') {
		/* visible ASCII only; a fragment is never sent */
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f ||
		    *p == '#')
			return req_fail(req, -EINVAL, 400,
					"invalid byte in the request target");
		p++;
	}
	te = p;
	if (te == t || *t != '/')	/* origin-form only */
		return req_fail(req, -EINVAL, 400,
				"request target is not an absolute path");
	if ((size_t)(te - t) > CTL_MAX_TARGET)
		return req_fail(req, -E2BIG, 414, "request target too long");
	if (p == eol)
		return req_fail(req, -EINVAL, 400, "malformed request line");

	v = p + 1;
	if (eol - v == 8 && !memcmp(v, "HTTP/1.", 7) &&
	    (v[7] == '0' || v[7] == '1')) {
		req->version_minor = v[7] - '0';
	} else if (eol - v == 8 && !memcmp(v, "HTTP/", 5) && v[5] >= '0' &&
		   v[5] <= '9' && v[6] == '.' && v[7] >= '0' && v[7] <= '9') {
		return req_fail(req, -EINVAL, 505, "HTTP version not supported");
	} else {
		return req_fail(req, -EINVAL, 400, "malformed request line");
	}

	q = memchr(t, '?', (size_t)(te - t));
	n = (size_t)((q ? q : te) - t);
	memcpy(req->path, t, n);
	req->path[n] = '\0';
	if (q) {
		n = (size_t)(te - q - 1);
		memcpy(req->query, q + 1, n);
		req->query[n] = '\0';
	}
	return 0;
}

int ctl_parse_request(const char *buf, size_t len, struct ctl_req *req,
		      size_t *consumed)
{
	struct framing f = { 0 };
	size_t start, head_end;
	const char *eol;
	int ret;

	memset(req, 0, sizeof(*req));
	ret = scan_head(buf, len, &start, &head_end);
	if (ret == -EINVAL)
		return req_fail(req, ret, 400, "bad line ending or NUL byte");
	if (ret == -E2BIG)
		return req_fail(req, ret, 431, "request head too large");
	if (ret)
		return ret;

	eol = memchr(buf + start, '\r', head_end - start);
	ret = parse_request_line(buf + start, eol, req);
	if (ret)
		return ret;
	ret = parse_fields(eol + 2, buf + head_end - 2, req->headers,
			   &req->nheaders, &f);
	if (ret)
		return req_fail(req, ret, ret == -E2BIG ? 431 : 400, f.why);
	if (f.has_te)
		return f.has_cl ?
		       req_fail(req, -EINVAL, 400,
				"Transfer-Encoding with Content-Length") :
		       req_fail(req, -EINVAL, 411,
				"Transfer-Encoding is not supported; send Content-Length");
	if (f.content_length > CTL_MAX_BODY)
		return req_fail(req, -E2BIG, 413, "request body too large");
	req->keep_alive = !f.conn_close &&
			  (req->version_minor == 1 || f.conn_keep_alive);
	if (len - head_end < f.content_length) {
		/* an HTTP/1.0 client would not understand a 100 */
		req->expect_continue = f.expect_continue &&
				       req->version_minor == 1;
		return -EAGAIN;
	}
	req->body_len = (size_t)f.content_length;
	req->body = req->body_len ? buf + head_end : NULL;
	*consumed = head_end + req->body_len;
	return 0;
}

const char *ctl_header_find(const struct ctl_header *headers,
			    size_t nheaders, const char *name,
			    size_t *value_len)
{
	for (size_t i = 0; i < nheaders; i++) {
		if (ascii_ieq(headers[i].name, headers[i].name_len, name)) {
			if (value_len)
				*value_len = headers[i].value_len;
			return headers[i].value;
		}
	}
	return NULL;
}

/* no_body: the response to a HEAD request, whose Content-Length describes
 * a body that is not sent. */
static int parse_response(const char *buf, size_t len,
			  struct ctl_reply *rep, size_t *consumed,
			  bool no_body)
{
	struct framing f = { 0 };
	size_t start, head_end;
	const char *p, *eol;
	int ret, minor;

	memset(rep, 0, sizeof(*rep));
	ret = scan_head(buf, len, &start, &head_end);
	if (ret == -EINVAL)
		return -EPROTO;
	if (ret == -E2BIG)
		return -EMSGSIZE;
	if (ret)
		return ret;

	p = buf + start;
	eol = memchr(p, '\r', head_end - start);
	if (eol - p < 12 || memcmp(p, "HTTP/1.", 7) ||
	    (p[7] != '0' && p[7] != '1') || p[8] != ' ')
		return -EPROTO;
	minor = p[7] - '0';
	for (int i = 9; i < 12; i++)
		if (p[i] < '0' || p[i] > '9')
			return -EPROTO;
	rep->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
	/* a 1xx would only answer an Expect we never send */
	if (rep->status < 200 || rep->status > 599)
		return -EPROTO;
	p += 12;
	if (p < eol && *p != ' ')
		return -EPROTO;
	for (; p < eol; p++)
		if (!is_field_byte((unsigned char)*p))
			return -EPROTO;

	ret = parse_fields(eol + 2, buf + head_end - 2, rep->headers,
			   &rep->nheaders, &f);
	if (ret == -E2BIG)
		return -EMSGSIZE;
	if (ret || f.has_te)
		return -EPROTO;
	rep->keep_alive = !f.conn_close && (minor == 1 || f.conn_keep_alive);
	if (no_body || rep->status == 204 || rep->status == 304)
		f.content_length = 0;
	else if (!f.has_cl)	/* our server always sends one */
		return -EPROTO;
	if (f.content_length > CTL_MAX_RESP_BODY)
		return -EMSGSIZE;
	if (len - head_end < f.content_length)
		return -EAGAIN;
	rep->body_len = (size_t)f.content_length;
	rep->body = rep->body_len ? buf + head_end : NULL;
	*consumed = head_end + rep->body_len;
	return 0;
}

int ctl_parse_response(const char *buf, size_t len,
		       struct ctl_reply *rep, size_t *consumed)
{
	return parse_response(buf, len, rep, consumed, false);
}

const char *ctl_reason(int status)
{
	static const struct {
		int status;
		const char *reason;
	} tab[] = {
		{ 100, "Continue" }, { 200, "OK" }, { 201, "Created" },
		{ 202, "Accepted" }, { 204, "No Content" },
		{ 400, "Bad Request" }, { 401, "Unauthorized" },
		{ 403, "Forbidden" }, { 404, "Not Found" },
		{ 405, "Method Not Allowed" }, { 408, "Request Timeout" },
		{ 409, "Conflict" }, { 410, "Gone" },
		{ 411, "Length Required" }, { 413, "Content Too Large" },
		{ 414, "URI Too Long" }, { 415, "Unsupported Media Type" },
		{ 422, "Unprocessable Content" }, { 423, "Locked" },
		{ 429, "Too Many Requests" },
		{ 431, "Request Header Fields Too Large" },
		{ 500, "Internal Server Error" }, { 501, "Not Implemented" },
		{ 502, "Bad Gateway" }, { 503, "Service Unavailable" },
		{ 504, "Gateway Timeout" },
		{ 505, "HTTP Version Not Supported" },
		{ 507, "Insufficient Storage" },
	};

	for (size_t i = 0; i < SK_ARRAY_SIZE(tab); i++)
		if (tab[i].status == status)
			return tab[i].reason;
	return "Unknown";
}

/* -------------------------------------------------------------- responses */

static void resp_set(struct ctl_resp *resp, int status, const char *ctype,
		     char *body, size_t len)
{
	free(resp->body);
	resp->status = status;
	snprintf(resp->content_type, sizeof(resp->content_type), "%s", ctype);
	resp->body = body;
	resp->body_len = len;
}

static int resp_oom(struct ctl_resp *resp)
{
	resp_set(resp, 500, "", NULL, 0);
	return -ENOMEM;
}

int ctl_resp_json(struct ctl_resp *resp, int status, const json_t *json)
{
	const size_t flags = JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY;
	size_t n;
	char *s;

	if (!json) {
		resp_set(resp, 500, "", NULL, 0);
		return -EINVAL;
	}
	/* our own buffer rather than json_dumps', so that the server's free()
	 * matches whatever allocator jansson was given */
	n = json_dumpb(json, NULL, 0, flags);
	if (n == 0)
		return resp_oom(resp);
	s = malloc(n + 2);
	if (!s)
		return resp_oom(resp);
	if (json_dumpb(json, s, n, flags) != n) {
		free(s);
		return resp_oom(resp);
	}
	s[n] = '\n';	/* friendlier for curl users; JSON allows it */
	s[n + 1] = '\0';
	resp_set(resp, status, "application/json", s, n + 1);
	return 0;
}

int ctl_resp_text(struct ctl_resp *resp, int status, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return resp_oom(resp);
	resp_set(resp, status, "text/plain; charset=utf-8", s, (size_t)n);
	return 0;
}

/* jansson refuses strings that are not UTF-8, and error messages carry
 * path names, which need not be: replace each stray byte by '?'. */
static void utf8_sanitize(unsigned char *s)
{
	while (*s) {
		unsigned int cp, n;
		unsigned int i;

		if (*s < 0x80) {
			s++;
			continue;
		}
		if (*s >= 0xc2 && *s <= 0xdf)
			n = 1, cp = *s & 0x1fu;
		else if (*s >= 0xe0 && *s <= 0xef)
			n = 2, cp = *s & 0x0fu;
		else if (*s >= 0xf0 && *s <= 0xf4)
			n = 3, cp = *s & 0x07u;
		else
			n = 0, cp = 0;
		/* the terminating NUL fails the continuation test */
		for (i = 1; i <= n && (s[i] & 0xc0) == 0x80; i++)
			cp = cp << 6 | (s[i] & 0x3fu);
		if (n == 0 || i <= n || (n == 2 && cp < 0x800) ||
		    (cp >= 0xd800 && cp <= 0xdfff) ||
		    (n == 3 && (cp < 0x10000 || cp > 0x10ffff))) {
			*s++ = '?';
			continue;
		}
		s += n + 1;
	}
}

int ctl_resp_error(struct ctl_resp *resp, int status, const char *fmt, ...)
{
	json_t *obj;
	va_list ap;
	char *msg;
	int n, ret;

	va_start(ap, fmt);
	n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		return resp_oom(resp);
	utf8_sanitize((unsigned char *)msg);
	obj = json_pack("{s:s}", "error", msg);
	free(msg);
	if (!obj)
		return resp_oom(resp);
	ret = ctl_resp_json(resp, status, obj);
	json_decref(obj);
	return ret;
}

/* ------------------------------------------------------------------ I/O */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* 0 once fd is ready for events (or in error or hung up, which the next
 * read or write reports), -ETIMEDOUT at the deadline. */
static int wait_fd(int fd, short events, int64_t deadline)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = events };
		int64_t left = deadline - now_ms();
		int n;

		if (left <= 0)
			return -ETIMEDOUT;
		n = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n > 0)
			return 0;
	}
}

/*
 * Sends head then body. MSG_NOSIGNAL: a peer that went away must cost us
 * an EPIPE, not the daemon. With deadline < 0 the socket is blocking and
 * bounded by SO_SNDTIMEO; otherwise it is non-blocking and we poll.
 */
static int send_all(int fd, const char *head, size_t hlen, const char *body,
		    size_t blen, int64_t deadline)
{
	struct iovec iov[2] = {
		{ .iov_base = (void *)head, .iov_len = hlen },
		{ .iov_base = (void *)body, .iov_len = body ? blen : 0 },
	};
	struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 2 };

	while (iov[0].iov_len || iov[1].iov_len) {
		ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
		int ret;

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return -errno;
			if (deadline < 0)	/* SO_SNDTIMEO expired */
				return -ETIMEDOUT;
			ret = wait_fd(fd, POLLOUT, deadline);
			if (ret)
				return ret;
			continue;
		}
		for (int i = 0; i < 2 && n > 0; i++) {
			size_t k = SK_MIN((size_t)n, iov[i].iov_len);

			if (!k)
				continue;
			iov[i].iov_base = (char *)iov[i].iov_base + k;
			iov[i].iov_len -= k;
			n -= (ssize_t)k;
		}
		/* skip an exhausted head so msg_iov never starts empty */
		if (!iov[0].iov_len) {
			msg.msg_iov = &iov[1];
			msg.msg_iovlen = 1;
		}
	}
	return 0;
}

static int format_head(char *out, size_t outlen, int status,
		       const char *ctype, size_t body_len, bool close_conn)
{
	int n = snprintf(out, outlen,
			 "HTTP/1.1 %d %s\r\n%s%s%sContent-Length: %zu\r\n"
			 "Connection: %s\r\n\r\n",
			 status, ctl_reason(status),
			 ctype[0] ? "Content-Type: " : "", ctype,
			 ctype[0] ? "\r\n" : "", body_len,
			 close_conn ? "close" : "keep-alive");

	if (n < 0 || (size_t)n >= outlen)
		return -EOVERFLOW;
	return n;
}

/* A content type from a handler goes into our head verbatim: anything but
 * printable ASCII could forge headers. */
static bool ctype_ok(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

static int send_resp(int fd, struct ctl_resp *resp, bool close_conn,
		     bool head_only)
{
	char head[256];
	int n;

	resp->content_type[sizeof(resp->content_type) - 1] = '\0';
	if (!ctype_ok(resp->content_type))
		resp->content_type[0] = '\0';
	if (!resp->body)
		resp->body_len = 0;
	n = format_head(head, sizeof(head), resp->status, resp->content_type,
			resp->body_len, close_conn);
	if (n < 0)
		return n;
	return send_all(fd, head, (size_t)n, head_only ? NULL : resp->body,
			resp->body_len, -1);
}

/* --------------------------------------------------------------- server */

enum { SLOT_FREE, SLOT_RUNNING, SLOT_DONE };

struct ctl_conn {
	struct ctl_server *srv;
	pthread_t tid;		/* valid unless SLOT_FREE */
	int fd;			/* owned; -1 once closed */
	int state;		/* SLOT_*, under srv->lock */
};

struct ctl_server {
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int listen_fd;		/* owned */
	int wake_fd;		/* owned eventfd: tells the accept thread to stop */
	dev_t dev;		/* the socket inode we put at path, so that */
	ino_t ino;		/* stop never unlinks a successor's socket */
	uid_t euid;
	ctl_handler handler;
	void *ctx;		/* the caller's */
	struct ctl_server_opts opts;
	pthread_t accept_tid;
	pthread_mutex_t lock;	/* guards stopping and every conns[].state/fd */
	pthread_cond_t slot_freed;	/* a connection ended, or stopping */
	bool stopping;
	struct ctl_conn *conns;	/* opts.max_conns slots, owned */
};

static bool server_stopping(struct ctl_server *srv)
{
	bool s;

	pthread_mutex_lock(&srv->lock);
	s = srv->stopping;
	pthread_mutex_unlock(&srv->lock);
	return s;
}

/* Serves one connection until it closes, errs, idles out or we stop. */
static void serve_conn(struct ctl_server *srv, int fd,
		       struct ctl_req *req)
{
	const size_t max = (size_t)CTL_MAX_HEAD + CTL_MAX_BODY;
	int64_t deadline = now_ms() + srv->opts.idle_timeout_ms;
	bool sent_continue = false;
	size_t len = 0, cap = 0;
	char *buf = NULL;

	for (;;) {
		struct ctl_resp resp = { 0 };
		size_t used = 0;
		bool close_conn;
		ssize_t n;
		int ret = ctl_parse_request(buf, len, req, &used);

		if (ret == -EAGAIN) {
			if (req->expect_continue && !sent_continue) {
				static const char cont[] =
					"HTTP/1.1 100 Continue\r\n\r\n";

				if (send_all(fd, cont, sizeof(cont) - 1, NULL,
					     0, -1))
					break;
				sent_continue = true;
			}
			if (len == cap) {
				size_t ncap = cap ? SK_MIN(cap * 2, max) : 4096;
				char *nbuf;

				if (ncap == cap)	/* the parser caps first */
					break;
				nbuf = realloc(buf, ncap);
				if (!nbuf)
					break;
				buf = nbuf;
				cap = ncap;
			}
			ret = wait_fd(fd, POLLIN, deadline);
			if (ret == -ETIMEDOUT && len > 0) {
				/* a half-sent request is worth a word; we
				 * close whether or not it gets through */
				if (!ctl_resp_error(&resp, 408,
						    "request not received within %d ms",
						    srv->opts.idle_timeout_ms))
					(void)send_resp(fd, &resp, true, false);
				free(resp.body);
			}
			if (ret)
				break;
			n = recv(fd, buf + len, cap - len, 0);
			if (n == 0)
				break;
			if (n < 0) {
				if (errno == EINTR || errno == EAGAIN)
					continue;
				break;
			}
			len += (size_t)n;
			continue;
		}
		if (ret < 0) {
			/* the framing is lost: answer and hang up */
			if (!ctl_resp_error(&resp, req->err_status ?
						   req->err_status : 400,
					    "%s", req->err_msg ?
						  req->err_msg : "bad request"))
				(void)send_resp(fd, &resp, true, false);
			free(resp.body);
			break;
		}

		srv->handler(srv->ctx, req, &resp);
		if (resp.status < 200 || resp.status > 599)
			(void)ctl_resp_error(&resp, 500,
					     "handler set no valid status");
		close_conn = !req->keep_alive || resp.close ||
			     server_stopping(srv);
		ret = send_resp(fd, &resp, close_conn,
				!strcmp(req->method, "HEAD"));
		free(resp.body);
		if (ret || close_conn)
			break;
		memmove(buf, buf + used, len - used);
		len -= used;
		sent_continue = false;
		deadline = now_ms() + srv->opts.idle_timeout_ms;
	}
	free(buf);
}

static void *conn_main(void *arg)
{
	struct ctl_conn *c = arg;
	struct ctl_server *srv = c->srv;
	/* a request is ~6 KiB of fixed fields: keep it off the stack */
	struct ctl_req *req = malloc(sizeof(*req));

	if (req)
		serve_conn(srv, c->fd, req);
	free(req);
	/* under the lock, so that stop never shuts down a recycled fd */
	pthread_mutex_lock(&srv->lock);
	close(c->fd);
	c->fd = -1;
	c->state = SLOT_DONE;
	pthread_cond_signal(&srv->slot_freed);
	pthread_mutex_unlock(&srv->lock);
	return NULL;
}

/* For connections we refuse: one short response that fits the empty
 * socket buffer, never waiting on the peer. */
static void refuse(int fd, int status, const char *why)
{
	struct ctl_resp resp = { 0 };
	char head[256];
	int n;

	if (!ctl_resp_error(&resp, status, "%s", why)) {
		n = format_head(head, sizeof(head), status, resp.content_type,
				resp.body_len, true);
		/* best effort: the connection is closed either way */
		if (n > 0) {
			struct iovec iov[2] = {
				{ .iov_base = head, .iov_len = (size_t)n },
				{ .iov_base = resp.body, .iov_len = resp.body_len },
			};
			struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 2 };

			(void)sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
		}
	}
	free(resp.body);
	close(fd);
}

static void admit(struct ctl_server *srv, int fd)
{
	struct timeval tv = {
		.tv_sec = srv->opts.idle_timeout_ms / 1000,
		.tv_usec = (srv->opts.idle_timeout_ms % 1000) * 1000,
	};
	struct ctl_conn *slot = NULL;
	bool timed_out = false, stopping;
	struct timespec until;
	struct ucred cr;
	socklen_t crlen = sizeof(cr);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crlen) < 0 ||
	    crlen != sizeof(cr)) {
		close(fd);
		return;
	}
	if (cr.uid != 0 && cr.uid != srv->euid) {
		refuse(fd, 403, "only root may use this socket");
		return;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0) {
		refuse(fd, 500, "cannot set a send timeout");
		return;
	}

	/* all slots busy: hold this one connection (the rest wait in the
	 * listen backlog) until a slot frees, for at most the idle timeout,
	 * which bounds how long an idle client keeps its slot */
	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += srv->opts.idle_timeout_ms / 1000;
	until.tv_nsec += (long)(srv->opts.idle_timeout_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&srv->lock);
	for (;;) {
		for (unsigned int i = 0; i < srv->opts.max_conns; i++) {
			struct ctl_conn *c = &srv->conns[i];

			if (c->state == SLOT_DONE) {
				/* it has let go of the lock and is only
				 * returning */
				pthread_join(c->tid, NULL);
				c->state = SLOT_FREE;
			}
			if (c->state == SLOT_FREE && !slot)
				slot = c;
		}
		if (slot || srv->stopping || timed_out)
			break;
		timed_out = pthread_cond_timedwait(&srv->slot_freed, &srv->lock,
						   &until) == ETIMEDOUT;
	}
	stopping = srv->stopping;
	if (stopping)
		slot = NULL;
	if (slot) {
		slot->srv = srv;
		slot->fd = fd;
		slot->state = SLOT_RUNNING;
		if (pthread_create(&slot->tid, NULL, conn_main, slot)) {
			slot->fd = -1;
			slot->state = SLOT_FREE;
			slot = NULL;
		}
	}
	pthread_mutex_unlock(&srv->lock);
	if (!slot)
		refuse(fd, 503, stopping ? "shutting down" :
				    "too many connections; try again");
}

static void *accept_main(void *arg)
{
	struct ctl_server *srv = arg;

	for (;;) {
		struct pollfd pfd[2] = {
			{ .fd = srv->listen_fd, .events = POLLIN },
			{ .fd = srv->wake_fd, .events = POLLIN },
		};
		int fd;

		if (poll(pfd, 2, -1) < 0) {
			if (errno != EINTR)
				(void)poll(NULL, 0, 100);	/* ENOMEM: back off */
			continue;
		}
		if (pfd[1].revents || server_stopping(srv))
			break;
		if (!(pfd[0].revents & POLLIN))
			continue;
		fd = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			/* out of fds or memory: let the backlog wait rather
			 * than spin */
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM)
				(void)poll(NULL, 0, 100);
			continue;
		}
		admit(srv, fd);
	}
	return NULL;
}

static int fill_sun(struct sockaddr_un *sun, const char *path)
{
	size_t n = strlen(path);

	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (n == 0)
		return -EINVAL;
	if (n >= sizeof(sun->sun_path))
		return -ENAMETOOLONG;
	memcpy(sun->sun_path, path, n);
	return 0;
}

/* Is a live server behind the socket at path? 0 if not (stale), else
 * -EADDRINUSE or an error. */
static int probe_stale(const char *path)
{
	struct sockaddr_un sun;
	int fd, ret;

	ret = fill_sun(&sun, path);
	if (ret)
		return ret;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
		ret = -EADDRINUSE;
	else if (errno == ECONNREFUSED || errno == ENOENT)
		ret = 0;
	else if (errno == EAGAIN)	/* backlog full: very much alive */
		ret = -EADDRINUSE;
	else
		ret = -errno;
	close(fd);
	return ret;
}

static void wake_accept(struct ctl_server *srv)
{
	uint64_t one = 1;

	pthread_mutex_lock(&srv->lock);
	srv->stopping = true;
	pthread_cond_broadcast(&srv->slot_freed);
	pthread_mutex_unlock(&srv->lock);
	/* the eventfd counter cannot overflow from one write; if it somehow
	 * fails, shutting the listener down wakes poll too */
	while (write(srv->wake_fd, &one, sizeof(one)) < 0) {
		if (errno != EINTR) {
			shutdown(srv->listen_fd, SHUT_RDWR);
			break;
		}
	}
}

static void server_free(struct ctl_server *srv)
{
	if (srv->listen_fd >= 0)
		close(srv->listen_fd);
	if (srv->wake_fd >= 0)
		close(srv->wake_fd);
	pthread_cond_destroy(&srv->slot_freed);
	pthread_mutex_destroy(&srv->lock);
	free(srv->conns);
	free(srv);
}

int ctl_server_start_opts(struct ctl_server **out,
			  const char *sock_path, ctl_handler handler,
			  void *ctx, const struct ctl_server_opts *opts)
{
	char tmp[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct ctl_server *srv;
	pthread_condattr_t cattr;
	struct sockaddr_un sun;
	struct stat st;
	int ret, n;

	*out = NULL;
	if (!handler || !sock_path)
		return -EINVAL;
	ret = fill_sun(&sun, sock_path);
	if (ret)
		return ret;
	/* the temporary name sits next to the final one, as rename needs */
	n = snprintf(tmp, sizeof(tmp), "%s.tmp%d", sock_path, (int)gettid());
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -ENAMETOOLONG;

	if (lstat(sock_path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode))
			return -EEXIST;
		ret = probe_stale(sock_path);
		if (ret)
			return ret;
	} else if (errno != ENOENT) {
		return -errno;
	}

	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -ENOMEM;
	srv->listen_fd = srv->wake_fd = -1;
	pthread_mutex_init(&srv->lock, NULL);
	pthread_condattr_init(&cattr);
	pthread_condattr_setclock(&cattr, CLOCK_MONOTONIC);
	pthread_cond_init(&srv->slot_freed, &cattr);
	pthread_condattr_destroy(&cattr);
	memcpy(srv->path, sun.sun_path, sizeof(srv->path));
	srv->handler = handler;
	srv->ctx = ctx;
	srv->euid = geteuid();
	srv->opts.idle_timeout_ms = opts && opts->idle_timeout_ms > 0 ?
				    opts->idle_timeout_ms : CTL_IDLE_TIMEOUT_MS;
	srv->opts.max_conns = opts && opts->max_conns ? opts->max_conns :
				     CTL_MAX_CONNS;
	srv->conns = calloc(srv->opts.max_conns, sizeof(*srv->conns));
	if (!srv->conns) {
		ret = -ENOMEM;
		goto err;
	}
	for (unsigned int i = 0; i < srv->opts.max_conns; i++)
		srv->conns[i].fd = -1;
	srv->wake_fd = eventfd(0, EFD_CLOEXEC);
	if (srv->wake_fd < 0) {
		ret = -errno;
		goto err;
	}
	srv->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (srv->listen_fd < 0) {
		ret = -errno;
		goto err;
	}

	ret = fill_sun(&sun, tmp);
	if (ret)
		goto err;
	/* a leftover from a crashed thread with our tid */
	if (unlink(tmp) < 0 && errno != ENOENT) {
		ret = -errno;
		goto err;
	}
	if (bind(srv->listen_fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		ret = -errno;
		goto err;
	}
	/* before listen(): until then nobody can connect, whatever the umask
	 * gave the file */
	if (chmod(tmp, 0600) < 0 || stat(tmp, &st) < 0 ||
	    listen(srv->listen_fd, 64) < 0) {
		ret = -errno;
		goto err_unlink;
	}
	srv->dev = st.st_dev;
	srv->ino = st.st_ino;
	ret = -pthread_create(&srv->accept_tid, NULL, accept_main, srv);
	if (ret)
		goto err_unlink;
	/* from here the socket is served, so it may appear */
	if (rename(tmp, sock_path) < 0) {
		ret = -errno;
		wake_accept(srv);
		pthread_join(srv->accept_tid, NULL);
		goto err_unlink;
	}
	*out = srv;
	return 0;

err_unlink:
	unlink(tmp);
err:
	server_free(srv);
	return ret;
}

int ctl_server_start(struct ctl_server **out, const char *sock_path,
		     ctl_handler handler, void *ctx)
{
	return ctl_server_start_opts(out, sock_path, handler, ctx, NULL);
}

void ctl_server_stop(struct ctl_server *srv)
{
	struct stat st;

	if (!srv)
		return;
	/* gone from the file system first: no socket == not serving */
	if (lstat(srv->path, &st) == 0 && st.st_dev == srv->dev &&
	    st.st_ino == srv->ino)
		unlink(srv->path);
	wake_accept(srv);
	pthread_join(srv->accept_tid, NULL);
	close(srv->listen_fd);
	srv->listen_fd = -1;

	/* SHUT_RD wakes a connection waiting for a request; one inside the
	 * handler still sends its response (with Connection: close) */
	pthread_mutex_lock(&srv->lock);
	for (unsigned int i = 0; i < srv->opts.max_conns; i++)
		if (srv->conns[i].state == SLOT_RUNNING)
			shutdown(srv->conns[i].fd, SHUT_RD);
	pthread_mutex_unlock(&srv->lock);
	for (unsigned int i = 0; i < srv->opts.max_conns; i++) {
		bool used;

		pthread_mutex_lock(&srv->lock);
		used = srv->conns[i].state != SLOT_FREE;
		pthread_mutex_unlock(&srv->lock);
		if (used)
			pthread_join(srv->conns[i].tid, NULL);
	}
	server_free(srv);
}

/* --------------------------------------------------------------- client */

static bool client_target_ok(const char *method, const char *path)
{
	size_t n = strlen(method);

	if (n == 0 || n > CTL_MAX_METHOD)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_tchar((unsigned char)method[i]))
			return false;
	n = strlen(path);
	if (n == 0 || n > CTL_MAX_TARGET || path[0] != '/')
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)path[i] <= 0x20 ||
		    (unsigned char)path[i] >= 0x7f)
			return false;
	return true;
}

static int client_connect(const char *sock_path, int64_t deadline, int *out)
{
	struct sockaddr_un sun;
	int fd, ret;

	ret = fill_sun(&sun, sock_path);
	if (ret)
		return ret;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	for (;;) {
		if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN) {
			/* the listen backlog is full: a busy daemon, so wait
			 * for room rather than fail */
			if (now_ms() >= deadline) {
				ret = -ETIMEDOUT;
				goto err;
			}
			(void)poll(NULL, 0, 10);
			continue;
		}
		if (errno == EINPROGRESS) {
			int err = 0;
			socklen_t elen = sizeof(err);

			ret = wait_fd(fd, POLLOUT, deadline);
			if (ret)
				goto err;
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
				err = errno;
			if (err) {
				ret = -err;
				goto err;
			}
			break;
		}
		ret = -errno;
		goto err;
	}
	*out = fd;
	return 0;
err:
	close(fd);
	return ret;
}

/* Reads until one whole response is in *buf; no_body for HEAD. */
static int client_read(int fd, int64_t deadline, bool no_body, char **bufp,
		       struct ctl_reply *rep)
{
	const size_t max = (size_t)CTL_MAX_HEAD + CTL_MAX_RESP_BODY;
	size_t len = 0, cap = 0, used;
	char *buf = NULL;
	int ret;

	for (;;) {
		ssize_t n;

		if (len) {
			ret = parse_response(buf, len, rep, &used, no_body);
			if (ret != -EAGAIN)
				break;
		}
		if (len == cap) {
			size_t ncap = cap ? SK_MIN(cap * 2, max) : 4096;
			char *nbuf;

			if (ncap == cap) {	/* the parser caps first */
				ret = -EMSGSIZE;
				break;
			}
			nbuf = realloc(buf, ncap);
			if (!nbuf) {
				ret = -ENOMEM;
				break;
			}
			buf = nbuf;
			cap = ncap;
		}
		ret = wait_fd(fd, POLLIN, deadline);
		if (ret)
			break;
		n = recv(fd, buf + len, cap - len, 0);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			ret = len ? -EPROTO : -errno;
			break;
		}
		if (n == 0) {	/* closed before a whole response */
			ret = len ? -EPROTO : -ECONNRESET;
			break;
		}
		len += (size_t)n;
	}
	*bufp = buf;
	return ret;
}

int ctl_call(const char *sock_path, const char *method, const char *path,
	     const char *body, size_t body_len, int timeout_ms, int *status,
	     char **resp_body, size_t *resp_len)
{
	int64_t deadline = now_ms() + timeout_ms;
	struct ctl_reply *rep = NULL;
	char head[CTL_MAX_TARGET + 256];
	char *buf = NULL;
	int fd = -1, ret, send_ret, n;

	if (resp_body)
		*resp_body = NULL;
	if (resp_len)
		*resp_len = 0;
	if (!sock_path || !method || !path || !status || timeout_ms <= 0 ||
	    (body_len && !body) || !client_target_ok(method, path))
		return -EINVAL;
	n = snprintf(head, sizeof(head),
		     "%s %s HTTP/1.1\r\nHost: localhost\r\n"
		     "Connection: close\r\n%sContent-Length: %zu\r\n\r\n",
		     method, path,
		     body_len ? "Content-Type: application/json\r\n" : "",
		     body_len);
	if (n < 0 || (size_t)n >= sizeof(head))
		return -EINVAL;

	ret = client_connect(sock_path, deadline, &fd);
	if (ret)
		return ret;
	/* a server that answers early (403, 413) may close before reading
	 * everything: its answer is still worth reading */
	send_ret = send_all(fd, head, (size_t)n, body, body_len, deadline);
	if (send_ret == -ETIMEDOUT) {
		ret = send_ret;
		goto out;
	}
	rep = malloc(sizeof(*rep));
	if (!rep) {
		ret = -ENOMEM;
		goto out;
	}
	ret = client_read(fd, deadline, !strcmp(method, "HEAD"), &buf, rep);
	if (ret) {
		if (send_ret && (ret == -ECONNRESET || ret == -EPIPE))
			ret = send_ret;
		goto out;
	}
	*status = rep->status;
	if (resp_body) {
		char *copy = malloc(rep->body_len + 1);

		if (!copy) {
			ret = -ENOMEM;
			goto out;
		}
		if (rep->body_len)
			memcpy(copy, rep->body, rep->body_len);
		copy[rep->body_len] = '\0';
		*resp_body = copy;
	}
	if (resp_len)
		*resp_len = rep->body_len;
out:
	free(rep);
	free(buf);
	close(fd);
	return ret;
}
