/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the control socket's parsers (ctl/). The first
 * input byte picks one (bit 0: request or response parser) and a start
 * line to put before the rest of the input (bits 1-2; 0 for none):
 * without one, a blind fuzzer takes minutes to spell "HTTP/1.1" in the
 * right place and rarely gets past the request line. The buffer is
 * parsed as a pipeline of messages.
 *
 * Beyond memory safety (the sanitizers), it aborts when a promise that
 * callers rely on breaks: results are one of the documented codes; a
 * parsed message and everything it points at lie inside the buffer;
 * bytes after a message do not change it; every proper prefix of a
 * message is -EAGAIN (the server waits for more bytes exactly when it
 * should); and a request rebuilt from its parsed fields parses the same.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../ctl/ctl.h"
#include "fuzz.h"

static bool inside(const char *p, size_t n, const char *lo, size_t len)
{
	return n == 0 || (p >= lo && n <= len && (size_t)(p - lo) <= len - n);
}

static void check_headers(const struct ctl_header *h, size_t n,
			  const char *msg, size_t used)
{
	CHECK(n <= CTL_MAX_HEADERS);
	for (size_t i = 0; i < n; i++) {
		CHECK(h[i].name_len > 0);
		CHECK(inside(h[i].name, h[i].name_len, msg, used));
		CHECK(inside(h[i].value, h[i].value_len, msg, used));
		CHECK(!memchr(h[i].value, '\r', h[i].value_len));
		CHECK(!memchr(h[i].value, '\n', h[i].value_len));
		CHECK(!memchr(h[i].value, '\0', h[i].value_len));
	}
}

/* Serializes req canonically: one space after each colon, no leading
 * empty lines, the body as it was. */
static size_t rebuild(const struct ctl_req *req, char *out)
{
	size_t n = (size_t)sprintf(out, "%s %s%s%s HTTP/1.%d\r\n", req->method,
				   req->path, req->query[0] ? "?" : "",
				   req->query, req->version_minor);

	for (size_t i = 0; i < req->nheaders; i++) {
		memcpy(out + n, req->headers[i].name, req->headers[i].name_len);
		n += req->headers[i].name_len;
		memcpy(out + n, ": ", 2);
		n += 2;
		memcpy(out + n, req->headers[i].value, req->headers[i].value_len);
		n += req->headers[i].value_len;
		memcpy(out + n, "\r\n", 2);
		n += 2;
	}
	memcpy(out + n, "\r\n", 2);
	n += 2;
	if (req->body_len)
		memcpy(out + n, req->body, req->body_len);
	return n + req->body_len;
}

static void check_request(const char *msg, size_t used,
			  const struct ctl_req *req)
{
	struct ctl_req *again = malloc(sizeof(*again));
	size_t u2 = 0, n;
	char *canon;
	int ret;

	CHECK(again);
	CHECK(used > 0);
	CHECK(req->method[0] && strlen(req->method) <= CTL_MAX_METHOD);
	CHECK(req->path[0] == '/');
	CHECK(strlen(req->path) + strlen(req->query) <= CTL_MAX_TARGET);
	CHECK(req->version_minor == 0 || req->version_minor == 1);
	CHECK(req->body_len <= CTL_MAX_BODY);
	CHECK((req->body == NULL) == (req->body_len == 0));
	if (req->body_len)
		CHECK(req->body + req->body_len == msg + used);
	check_headers(req->headers, req->nheaders, msg, used);

	CHECK(ctl_parse_request(msg, used - 1, again, &u2) == -EAGAIN);
	CHECK(ctl_parse_request(msg, used, again, &u2) == 0 && u2 == used);

	/* generous: ": " may replace ":" on every line */
	canon = malloc(used + 3 * CTL_MAX_HEADERS + 64);
	CHECK(canon);
	n = rebuild(req, canon);
	ret = ctl_parse_request(canon, n, again, &u2);
	if (ret == -E2BIG) {	/* the added spaces crossed the head limit */
		CHECK(n - req->body_len > CTL_MAX_HEAD);
	} else {
		CHECK(ret == 0 && u2 == n);
		CHECK(!strcmp(again->method, req->method));
		CHECK(!strcmp(again->path, req->path));
		CHECK(!strcmp(again->query, req->query));
		CHECK(again->version_minor == req->version_minor);
		CHECK(again->keep_alive == req->keep_alive);
		CHECK(again->nheaders == req->nheaders);
		CHECK(again->body_len == req->body_len);
		if (req->body_len)
			CHECK(!memcmp(again->body, req->body, req->body_len));
	}
	free(canon);
	free(again);
}

static void fuzz_requests(const char *buf, size_t len)
{
	struct ctl_req *req = malloc(sizeof(*req));
	size_t off = 0;

	CHECK(req);
	for (;;) {
		size_t used = 0;
		int ret = ctl_parse_request(buf + off, len - off, req, &used);

		if (ret == 0) {
			CHECK(used <= len - off);
			check_request(buf + off, used, req);
			off += used;
			continue;
		}
		CHECK(ret == -EAGAIN || ret == -EINVAL || ret == -E2BIG);
		if (ret != -EAGAIN)
			CHECK(req->err_status >= 400 && req->err_status <= 599 &&
			      req->err_msg);
		break;
	}
	free(req);
}

static void fuzz_responses(const char *buf, size_t len)
{
	struct ctl_reply *rep = malloc(sizeof(*rep));
	struct ctl_reply *again = malloc(sizeof(*again));
	size_t off = 0;

	CHECK(rep && again);
	for (;;) {
		size_t used = 0, u2 = 0;
		const char *msg = buf + off;
		int ret = ctl_parse_response(msg, len - off, rep, &used);

		if (ret != 0) {
			CHECK(ret == -EAGAIN || ret == -EPROTO ||
			      ret == -EMSGSIZE);
			break;
		}
		CHECK(used > 0 && used <= len - off);
		CHECK(rep->status >= 200 && rep->status <= 599);
		CHECK(rep->body_len <= CTL_MAX_RESP_BODY);
		CHECK((rep->body == NULL) == (rep->body_len == 0));
		if (rep->body_len)
			CHECK(rep->body + rep->body_len == msg + used);
		check_headers(rep->headers, rep->nheaders, msg, used);
		CHECK(ctl_parse_response(msg, used - 1, again, &u2) == -EAGAIN);
		CHECK(ctl_parse_response(msg, used, again, &u2) == 0 &&
		      u2 == used && again->status == rep->status &&
		      again->body_len == rep->body_len);
		off += used;
	}
	free(again);
	free(rep);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const starts[2][4] = {
		{ "", "GET /metrics HTTP/1.1\r\n",
		  "POST /v1/images?x=1 HTTP/1.1\r\nContent-Length: ",
		  "PUT / HTTP/1.0\r\nConnection: " },
		{ "", "HTTP/1.1 200 OK\r\n",
		  "HTTP/1.1 404 Not Found\r\nContent-Length: ",
		  "HTTP/1.0 204 \r\nConnection: " },
	};
	const char *start;
	size_t slen, len;
	char *buf;

	if (size == 0)
		return 0;
	start = starts[data[0] & 1][(data[0] >> 1) & 3];
	slen = strlen(start);
	len = slen + size - 1;
	/* an exact-size copy, so that ASan sees any read past the end */
	buf = malloc(len ? len : 1);
	if (!buf)
		return 0;
	memcpy(buf, start, slen);
	memcpy(buf + slen, data + 1, size - 1);
	if (data[0] & 1)
		fuzz_responses(buf, len);
	else
		fuzz_requests(buf, len);
	free(buf);
	return 0;
}
