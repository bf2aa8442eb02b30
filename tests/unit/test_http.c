/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for ctl/, the control socket: the request and response
 * parsers (good input, each kind of malformed input, every proper
 * prefix), the response helpers, and the server and client talking over
 * a socket in a temporary directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../common/sk.h"
#include "../../ctl/ctl.h"
#include "tap.h"

static char g_tmp[] = "/tmp/skiff-http-XXXXXX";
static char g_sock[64];

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A ctl_call's result ret and the status it got, as test points: the
 * status is skipped when the call failed. Returns whether it succeeded,
 * for the checks of what it answered. */
static int answered(int ret, int status, int want, const char *what)
{
	if (!is_int(ret, 0, "%s", what)) {
		skip(1, "no answer");
		return 0;
	}
	is_int(status, want, "... status %d", want);
	return 1;
}

/* ------------------------------------------------------------- parser */

static int parse_str(const char *s, struct ctl_req *req, size_t *used)
{
	return ctl_parse_request(s, strlen(s), req, used);
}

/* Header name among hs[0..n) has the value want: found, its length, its
 * bytes, each a test point; what cannot be checked is skipped. */
static void header_is(const struct ctl_header *hs, size_t n, const char *name,
		      const char *want, const char *what)
{
	size_t vlen = 0, len = strlen(want);
	const char *v = ctl_header_find(hs, n, name, &vlen);

	if (!ok(v != NULL, "%s: %s found", what, name)) {
		skip(2, "no %s", name);
		return;
	}
	if (!is_int(vlen, len, "... its value's length")) {
		skip(1, "another length");
		return;
	}
	is_mem(v, want, len, "... its value");
}

static void test_parse_good(void)
{
	static struct ctl_req req;
	size_t used;
	int ret;

	{
		const char *s = "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n";

		used = 0;
		ret = parse_str(s, &req, &used);
		is_int(ret, 0, "simple GET parses");
		is_int(used, strlen(s), "... whole");
		is_str(req.method, "GET", "GET: method");
		is_str(req.path, "/metrics", "... path");
		is_str(req.query, "", "... empty query");
		is_int(req.version_minor, 1, "GET: HTTP/1.1");
		ok(req.keep_alive, "... keeps alive");
		ok(!req.body, "... no body");
		is_int(req.body_len, 0, "... of no length");
		header_is(req.headers, req.nheaders, "host", "localhost",
			  "header lookup ignores case");
		ok(!ctl_header_find(req.headers, req.nheaders, "hos", NULL),
		   "header lookup needs the whole name");
	}
	{
		const char *s = "GET /status?name=a%20b&x=1 HTTP/1.1\r\n\r\n";

		ret = parse_str(s, &req, &used);
		is_int(ret, 0, "a target with a query parses");
		is_str(req.path, "/status", "... the path split from the query");
		is_str(req.query, "name=a%20b&x=1", "... the query left encoded");
	}
	{
		const char *s = "POST /mount HTTP/1.1\r\ncontent-LENGTH: 13\r\n"
				"Content-Type: application/json\r\n\r\n"
				"{\"a\": \"b c\"}\n";

		ret = parse_str(s, &req, &used);
		is_int(ret, 0, "POST with body parses");
		is_int(used, strlen(s), "... whole");
		if (is_int(req.body_len, 13, "body length (Content-Length in odd case)"))
			is_mem(req.body, "{\"a\": \"b c\"}\n", 13, "... the body");
		else
			skip(1, "another length");
		is_int(req.nheaders, 2, "two headers recorded");
	}
	{
		const char *s = "POST /a HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
				"GET /b?q HTTP/1.1\r\nConnection: close\r\n\r\n";
		size_t used2 = 0;

		ret = parse_str(s, &req, &used);
		is_int(ret, 0, "pipelined: first request parses");
		is_int(used, strlen(s) - 40, "... up to the second");
		is_str(req.path, "/a", "... its path");
		is_int(req.body_len, 3, "... its body");
		ret = ctl_parse_request(s + used, strlen(s) - used, &req, &used2);
		is_int(ret, 0, "pipelined: second request parses");
		is_int(used + used2, strlen(s), "... up to the end");
		is_str(req.path, "/b", "... its path");
		is_str(req.query, "q", "... its query");
		ok(!req.keep_alive, "... Connection: close");
	}
	{
		static const struct {
			const char *s;
			bool ka;
		} cases[] = {
			{ "GET / HTTP/1.0\r\n\r\n", false },
			{ "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true },
			{ "GET / HTTP/1.0\r\nconnection: Upgrade, Keep-Alive\r\n\r\n", true },
			{ "GET / HTTP/1.1\r\n\r\n", true },
			{ "GET / HTTP/1.1\r\nConnection: close\r\n\r\n", false },
			{ "GET / HTTP/1.1\r\nCONNECTION: foo ,CLOSE \r\n\r\n", false },
			{ "GET / HTTP/1.1\r\nConnection: closed\r\n\r\n", true },
			{ "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false },
		};

		for (size_t i = 0; i < SK_ARRAY_SIZE(cases); i++) {
			ret = parse_str(cases[i].s, &req, &used);
			is_int(ret, 0, "case %zu parses", i);
			is_int(req.keep_alive, cases[i].ka, "... keep-alive %d", cases[i].ka);
		}
	}
	{
		const char *s = "\r\n\r\nDELETE /m/x HTTP/1.1\r\nX-A:   v 1 \t\r\n"
				"X-Empty:\r\nContent-Length: 0005\r\n"
				"Content-Length: 5\r\n\r\nhello";

		ret = parse_str(s, &req, &used);
		is_int(ret, 0, "leading empty lines skipped");
		is_int(used, strlen(s), "... the whole request parsed");
		is_str(req.method, "DELETE", "... its method");
		header_is(req.headers, req.nheaders, "x-a", "v 1",
			  "value trimmed of surrounding whitespace only");
		header_is(req.headers, req.nheaders, "X-EMPTY", "", "empty header value");
		ok(req.body_len == 5, "equal duplicate Content-Length (0005, 5) accepted");
	}
	{
		const char *s = "POST /x HTTP/1.1\r\nExpect: 100-continue\r\n"
				"Content-Length: 4\r\n\r\nab";

		ret = parse_str(s, &req, &used);
		is_int(ret, -EAGAIN, "a body pending");
		ok(req.expect_continue, "... Expect: 100-continue flagged");
		ret = parse_str("POST /x HTTP/1.0\r\nExpect: 100-continue\r\n"
				"Content-Length: 4\r\n\r\nab", &req, &used);
		is_int(ret, -EAGAIN, "an HTTP/1.0 body pending");
		ok(!req.expect_continue, "... but not flagged for an HTTP/1.0 client");
	}
	{
		/* limits: exactly 16 KiB of head and 1 MiB of body are fine */
		size_t blen = CTL_MAX_BODY;
		size_t cap = CTL_MAX_HEAD + blen + 64;
		char *b = malloc(cap);
		int n, pad;

		if (!b)
			bail_out("out of memory");
		n = snprintf(b, cap, "PUT /big HTTP/1.1\r\nContent-Length: %zu\r\nX: ",
			     blen);
		pad = (int)CTL_MAX_HEAD - n - 4;
		memset(b + n, 'a', (size_t)pad);
		memcpy(b + n + pad, "\r\n\r\n", 4);
		memset(b + CTL_MAX_HEAD, 'z', blen);
		ret = ctl_parse_request(b, CTL_MAX_HEAD + blen, &req, &used);
		is_int(ret, 0, "16 KiB head and 1 MiB body at the limits");
		is_int(used, CTL_MAX_HEAD + blen, "... all of it parsed");
		is_int(req.body_len, blen, "... the body whole");
		/* one byte more of head */
		memmove(b + n + 1, b + n, (size_t)pad + 4);
		ret = ctl_parse_request(b, CTL_MAX_HEAD + 1 + blen, &req, &used);
		is_int(ret, -E2BIG, "16 KiB + 1 of head is -E2BIG");
		is_int(req.err_status, 431, "... 431");
		free(b);
	}
}

#define BAD(s, e, st, w) { s, sizeof(s) - 1, e, st, w }

struct bad_case {
	const char *s;
	size_t len;
	int err;
	int status;
	const char *what;
};

static void test_parse_bad(void)
{
	static const struct bad_case cases[] = {
		BAD("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", -EINVAL, 400, "NUL in a header value"),
		BAD("GET /\0 HTTP/1.1\r\n\r\n", -EINVAL, 400, "NUL in the target"),
		BAD("GET / HTTP/1.1\rX: y\r\n\r\n", -EINVAL, 400, "bare CR"),
		BAD("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", -EINVAL, 400, "bare CR in a value"),
		BAD("GET / HTTP/1.1\nHost: x\n\n", -EINVAL, 400, "bare LF line ends"),
		BAD("GET / HTTP/1.1\r\nHost: x\n\r\n", -EINVAL, 400, "bare LF in headers"),
		BAD("GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", -EINVAL, 400, "obsolete line folding"),
		BAD("GET / HTTP/1.1\r\n\tX: a\r\n\r\n", -EINVAL, 400, "whitespace before the first header"),
		BAD("POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", -EINVAL, 400, "conflicting Content-Length"),
		BAD("POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", -EINVAL, 400, "Content-Length abc"),
		BAD("POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", -EINVAL, 400, "Content-Length -1"),
		BAD("POST / HTTP/1.1\r\nContent-Length: +5\r\n\r\nabcde", -EINVAL, 400, "Content-Length +5"),
		BAD("POST / HTTP/1.1\r\nContent-Length: 5 5\r\n\r\nabcde", -EINVAL, 400, "Content-Length 5 5"),
		BAD("POST / HTTP/1.1\r\nContent-Length: 5,5\r\n\r\nabcde", -EINVAL, 400, "Content-Length list"),
		BAD("POST / HTTP/1.1\r\nContent-Length: 0x10\r\n\r\n", -EINVAL, 400, "Content-Length hex"),
		BAD("POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", -EINVAL, 400, "empty Content-Length"),
		BAD("POST / HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n", -EINVAL, 400, "Content-Length 2^64"),
		BAD("POST / HTTP/1.1\r\nContent-Length: 99999999999999999999999999\r\n\r\n", -EINVAL, 400, "Content-Length overflow"),
		BAD("POST / HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n", -E2BIG, 413, "body over 1 MiB"),
		BAD("POST / HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\n", -E2BIG, 413, "Content-Length 2^64-1"),
		BAD("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", -EINVAL, 411, "chunked body"),
		BAD("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", -EINVAL, 400, "Transfer-Encoding with Content-Length"),
		BAD("GET / HTTP/1.1\r\nHost : x\r\n\r\n", -EINVAL, 400, "space before the colon"),
		BAD("GET / HTTP/1.1\r\n: x\r\n\r\n", -EINVAL, 400, "empty header name"),
		BAD("GET / HTTP/1.1\r\nNoColon\r\n\r\n", -EINVAL, 400, "header without colon"),
		BAD("GET / HTTP/1.1\r\nX(y): z\r\n\r\n", -EINVAL, 400, "separator in a header name"),
		BAD("GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n", -EINVAL, 400, "control byte in a value"),
		BAD("GET / HTTP/1.1\r\nX: a\x7fz\r\n\r\n", -EINVAL, 400, "DEL in a value"),
		BAD("GET  / HTTP/1.1\r\n\r\n", -EINVAL, 400, "two spaces after the method"),
		BAD("GET / HTTP/1.1 \r\n\r\n", -EINVAL, 400, "trailing space on the request line"),
		BAD("GET /\r\n\r\n", -EINVAL, 400, "no version"),
		BAD("GET\r\n\r\n", -EINVAL, 400, "method only"),
		BAD(" GET / HTTP/1.1\r\n\r\n", -EINVAL, 400, "leading space"),
		BAD("G(T / HTTP/1.1\r\n\r\n", -EINVAL, 400, "separator in the method"),
		BAD("GETGETGETGETGETGET / HTTP/1.1\r\n\r\n", -EINVAL, 501, "method too long"),
		BAD("GET http://x/ HTTP/1.1\r\n\r\n", -EINVAL, 400, "absolute-form target"),
		BAD("OPTIONS * HTTP/1.1\r\n\r\n", -EINVAL, 400, "asterisk-form target"),
		BAD("GET /a#b HTTP/1.1\r\n\r\n", -EINVAL, 400, "fragment in the target"),
		BAD("GET /\x80 HTTP/1.1\r\n\r\n", -EINVAL, 400, "non-ASCII target"),
		BAD("GET /a\tb HTTP/1.1\r\n\r\n", -EINVAL, 400, "tab in the target"),
		BAD("GET / HTTP/2.0\r\n\r\n", -EINVAL, 505, "HTTP/2.0"),
		BAD("GET / HTTP/1.2\r\n\r\n", -EINVAL, 505, "HTTP/1.2"),
		BAD("GET / HTTP/1.10\r\n\r\n", -EINVAL, 400, "HTTP/1.10"),
		BAD("GET / http/1.1\r\n\r\n", -EINVAL, 400, "lowercase http"),
		BAD("GET / HTTP/1\r\n\r\n", -EINVAL, 400, "HTTP/1"),
	};
	static struct ctl_req req;
	size_t used;

	for (size_t i = 0; i < SK_ARRAY_SIZE(cases); i++) {
		int ret = ctl_parse_request(cases[i].s, cases[i].len, &req, &used);

		is_int(ret, cases[i].err, "rejects %s", cases[i].what);
		is_int(req.err_status, cases[i].status, "... status %d", cases[i].status);
		ok(req.err_msg != NULL, "... with a reason");
	}

	/* limits that need bigger buffers */
	{
		char *b = malloc(CTL_MAX_HEAD + 4096);
		size_t n;
		int ret;

		if (!b)
			bail_out("out of memory");
		/* no end of head within 16 KiB */
		n = (size_t)sprintf(b, "GET / HTTP/1.1\r\n");
		while (n < CTL_MAX_HEAD)
			n += (size_t)sprintf(b + n, "X-Pad: 0123456789\r\n");
		ret = ctl_parse_request(b, n, &req, &used);
		is_int(ret, -E2BIG, "head without an end beyond 16 KiB: -E2BIG");
		is_int(req.err_status, 431, "... 431");
		ok(ctl_parse_request(b, CTL_MAX_HEAD - 1, &req, &used) == -EAGAIN,
		   "... but -EAGAIN just below 16 KiB");

		n = (size_t)sprintf(b, "GET / HTTP/1.1\r\n");
		for (int i = 0; i <= CTL_MAX_HEADERS; i++)
			n += (size_t)sprintf(b + n, "X-%d: y\r\n", i);
		n += (size_t)sprintf(b + n, "\r\n");
		ret = ctl_parse_request(b, n, &req, &used);
		is_int(ret, -E2BIG, "%d headers: -E2BIG", CTL_MAX_HEADERS + 1);
		is_int(req.err_status, 431, "... 431");
		n -= 2 + strlen("X-64: y\r\n");
		n += (size_t)sprintf(b + n, "\r\n");
		is_int(ctl_parse_request(b, n, &req, &used), 0, "%d headers are fine",
		       CTL_MAX_HEADERS);
		is_int(req.nheaders, CTL_MAX_HEADERS, "... all recorded");

		n = (size_t)sprintf(b, "GET /");
		memset(b + n, 'p', CTL_MAX_TARGET);
		n += CTL_MAX_TARGET;
		n += (size_t)sprintf(b + n, " HTTP/1.1\r\n\r\n");
		ret = ctl_parse_request(b, n, &req, &used);
		is_int(ret, -E2BIG, "target over %d bytes: -E2BIG", CTL_MAX_TARGET);
		is_int(req.err_status, 414, "... 414");
		n = (size_t)sprintf(b, "GET /?");
		memset(b + n, 'q', CTL_MAX_TARGET - 2);
		n += CTL_MAX_TARGET - 2;
		n += (size_t)sprintf(b + n, " HTTP/1.1\r\n\r\n");
		ret = ctl_parse_request(b, n, &req, &used);
		is_int(ret, 0, "target of exactly %d bytes fits", CTL_MAX_TARGET);
		is_int(strlen(req.query), CTL_MAX_TARGET - 2, "... the query whole");
		is_str(req.path, "/", "... the path");
		free(b);
	}
	ok(ctl_parse_request(NULL, 0, &req, &used) == -EAGAIN,
	   "empty buffer: -EAGAIN");
}

static void test_parse_prefixes(void)
{
	static const char *const good[] = {
		"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n",
		("\r\n\r\nPOST /mount?x=1 HTTP/1.0\r\nConnection: keep-alive\r\n"
		 "Content-Length: 12\r\nExpect: 100-continue\r\n\r\n{\"a\":[1,2]}\n"),
		"PUT / HTTP/1.1\r\nX:\r\nY:  \t \r\nContent-Length: 1\r\n\r\nz",
	};
	static struct ctl_req req;

	for (size_t i = 0; i < SK_ARRAY_SIZE(good); i++) {
		size_t len = strlen(good[i]), used = 0, bad_at = SIZE_MAX;

		for (size_t n = 0; n < len && bad_at == SIZE_MAX; n++)
			if (ctl_parse_request(good[i], n, &req, &used) != -EAGAIN)
				bad_at = n;
		ok(bad_at == SIZE_MAX, "request %zu: all %zu proper prefixes give -EAGAIN (first miss %zd)",
		   i, len, bad_at == SIZE_MAX ? (ssize_t)-1 : (ssize_t)bad_at);
		is_int(ctl_parse_request(good[i], len, &req, &used), 0, "request %zu: whole parses", i);
		is_int(used, len, "... all of it used");
	}
}

static void test_parse_response(void)
{
	static struct ctl_reply rep;
	static const struct {
		const char *s;
		int err;
		const char *what;
	} bad[] = {
		{ "HTTP/1.1 200 OK\r\n\r\n", -EPROTO, "no Content-Length" },
		{ "HTTP/1.1 100 Continue\r\n\r\n", -EPROTO, "1xx" },
		{ "HTTP/1.1 099 X\r\nContent-Length: 0\r\n\r\n", -EPROTO, "status 99" },
		{ "HTTP/1.1 600 X\r\nContent-Length: 0\r\n\r\n", -EPROTO, "status 600" },
		{ "HTTP/1.1 2x0 X\r\nContent-Length: 0\r\n\r\n", -EPROTO, "non-digit status" },
		{ "HTTP/1.1 2000 X\r\nContent-Length: 0\r\n\r\n", -EPROTO, "four-digit status" },
		{ "HTTP/2 200 OK\r\nContent-Length: 0\r\n\r\n", -EPROTO, "HTTP/2" },
		{ "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", -EPROTO, "chunked" },
		{ "HTTP/1.1 200 OK\nContent-Length: 0\n\n", -EPROTO, "bare LF" },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", -EPROTO, "conflicting lengths" },
		{ "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", -EPROTO, "negative length" },
		{ "HTTP/1.1 200 OK\x01\r\nContent-Length: 0\r\n\r\n", -EPROTO, "control byte in the reason" },
		{ "HTTP/1.1 200 OK\r\nContent-Length: 16777217\r\n\r\n", -EMSGSIZE, "body over 16 MiB" },
		{ "garbage\r\n\r\n", -EPROTO, "garbage" },
	};
	size_t used;
	int ret;

	{
		const char *s = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
				"Content-Length: 2\r\n\r\n{}HTTP/1.1 ...";

		ret = ctl_parse_response(s, strlen(s), &rep, &used);
		is_int(ret, 0, "response parses");
		is_int(rep.status, 200, "... status");
		is_int(used, strlen(s) - 12, "... consumed up to the next");
		if (is_int(rep.body_len, 2, "... body length"))
			is_mem(rep.body, "{}", 2, "... body");
		else
			skip(1, "another length");
		ok(rep.keep_alive, "... keeps alive");
		header_is(rep.headers, rep.nheaders, "content-type", "application/json",
			  "response header lookup");
		size_t total = used, n;

		for (n = 0; n < total; n++)
			if (ctl_parse_response(s, n, &rep, &used) != -EAGAIN)
				break;
		/* got: the first proper prefix that is not -EAGAIN */
		is_int(n, total, "every proper prefix of a response gives -EAGAIN");
	}
	ret = ctl_parse_response("HTTP/1.1 204 No Content\r\n\r\n", 27, &rep, &used);
	is_int(ret, 0, "204 needs no Content-Length");
	is_int(rep.status, 204, "... status");
	is_int(used, 27, "... all of it consumed");
	{
		const char *s = "HTTP/1.0 404\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";

		ret = ctl_parse_response(s, strlen(s), &rep, &used);
	}
	is_int(ret, 0, "status line without a reason parses");
	is_int(rep.status, 404, "... status");
	ok(!rep.keep_alive, "... HTTP/1.0 closes");
	for (size_t i = 0; i < SK_ARRAY_SIZE(bad); i++) {
		ret = ctl_parse_response(bad[i].s, strlen(bad[i].s), &rep, &used);
		is_int(ret, bad[i].err, "response rejected: %s", bad[i].what);
	}
}

/* ------------------------------------------------------------- helpers */

static void test_resp_helpers(void)
{
	struct ctl_resp resp = { 0 };
	json_t *j = json_pack("{s:i,s:s}", "b", 2, "a", "x");
	int ret;

	ret = ctl_resp_json(&resp, 201, j);
	json_decref(j);
	is_int(ret, 0, "resp_json");
	is_int(resp.status, 201, "... status");
	is_str(resp.content_type, "application/json", "... content type");
	if (is_int(resp.body_len, 16, "... body length"))
		is_mem(resp.body, "{\"a\":\"x\",\"b\":2}\n", 16, "... compact, sorted keys, newline");
	else
		skip(1, "another length");
	ret = ctl_resp_text(&resp, 200, "up %d\n", 7);
	is_int(ret, 0, "resp_text");
	is_int(resp.status, 200, "... status");
	if (is_int(resp.body_len, 5, "... body length"))
		is_mem(resp.body, "up 7\n", 5, "... replaces the previous body");
	else
		skip(1, "another length");
	ok(!strncmp(resp.content_type, "text/plain", 10), "... text/plain (%s)", resp.content_type);
	ret = ctl_resp_error(&resp, 404, "no image %s", "caf\xc3\xa9 \xff\xc3(\xed\xa0\x80!");
	is_int(ret, 0, "resp_error");
	is_int(resp.status, 404, "... status");
	is_str(resp.body, "{\"error\":\"no image caf\xc3\xa9 \?\?(\?\?\?!\"}\n",
	       "... JSON, stray bytes become '?'");
	ret = ctl_resp_error(&resp, 400, "quote \" and \\ and \n");
	is_int(ret, 0, "resp_error with quotes");
	is_str(resp.body, "{\"error\":\"quote \\\" and \\\\ and \\n\"}\n", "... escaped");
	ret = ctl_resp_json(&resp, 200, NULL);
	is_int(ret, -EINVAL, "resp_json(NULL) fails");
	is_int(resp.status, 500, "... leaving a 500");
	ok(!resp.body, "... with no body");
	free(resp.body);
	is_str(ctl_reason(404), "Not Found", "reason phrase of 404");
	is_str(ctl_reason(299), "Unknown", "... of a status without one");
}

/* ------------------------------------------------------------- server */

struct srv_ctx {
	atomic_int calls;
};

static void handler(void *ctx, const struct ctl_req *req,
		    struct ctl_resp *resp)
{
	struct srv_ctx *c = ctx;

	atomic_fetch_add(&c->calls, 1);
	if (!strcmp(req->path, "/hello") &&
	    (!strcmp(req->method, "GET") || !strcmp(req->method, "HEAD"))) {
		json_t *j = json_pack("{s:s,s:s}", "hello", "world", "query",
				      req->query);

		if (ctl_resp_json(resp, 200, j))
			diag("resp_json failed");
		json_decref(j);
	} else if (!strcmp(req->path, "/echo") && !strcmp(req->method, "POST")) {
		json_error_t err;
		json_t *in = json_loadb(req->body ? req->body : "", req->body_len,
					JSON_DECODE_ANY, &err);
		json_t *out;

		if (!in) {
			(void)ctl_resp_error(resp, 400, "bad JSON: %s", err.text);
			return;
		}
		out = json_pack("{s:s,s:o}", "method", req->method, "echo", in);
		(void)ctl_resp_json(resp, 200, out);
		json_decref(out);
	} else if (!strcmp(req->path, "/slow")) {
		usleep(300 * 1000);
		(void)ctl_resp_text(resp, 200, "slow\n");
	} else if (!strcmp(req->path, "/slower")) {
		usleep(1000 * 1000);
		(void)ctl_resp_text(resp, 200, "slower\n");
	} else if (!strcmp(req->path, "/nostatus")) {
		/* the server must not send status 0 */
	} else {
		(void)ctl_resp_error(resp, 404, "no route %s", req->path);
	}
}

static int raw_connect(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	return fd;
}

/* Reads into buf (appending at *len) until it holds a whole response. */
static int raw_read_reply(int fd, char *buf, size_t cap, size_t *len,
			  struct ctl_reply *rep, size_t *used, int timeout_ms)
{
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int ret = ctl_parse_response(buf, *len, rep, used);
		ssize_t n;

		if (ret != -EAGAIN)
			return ret;
		if (poll(&pfd, 1, timeout_ms) <= 0)
			return -ETIMEDOUT;
		n = recv(fd, buf + *len, cap - *len, 0);
		if (n <= 0)
			return n ? -errno : -ECONNRESET;
		*len += (size_t)n;
	}
}

/* 0 if the peer closes within timeout_ms with nothing more to read. */
static int raw_wait_eof(int fd, int timeout_ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	char c;

	if (poll(&pfd, 1, timeout_ms) <= 0)
		return -ETIMEDOUT;
	return recv(fd, &c, 1, 0) <= 0 ? 0 : -EPROTO;
}

static bool body_has(const struct ctl_reply *rep, const char *s)
{
	return rep->body && memmem(rep->body, rep->body_len, s, strlen(s));
}

static int raw_send(int fd, const char *s)
{
	return sk_write_full(fd, s, strlen(s));
}

struct load_arg {
	int id, good;
};

static void *load_thread(void *p)
{
	struct load_arg *a = p;

	for (int i = 0; i < 50; i++) {
		char body[64], want[128], *resp = NULL;
		size_t rlen = 0;
		int status = 0, ret;

		snprintf(body, sizeof(body), "{\"t\":%d,\"i\":%d}", a->id, i);
		snprintf(want, sizeof(want),
			 "{\"echo\":{\"i\":%d,\"t\":%d},\"method\":\"POST\"}\n", i,
			 a->id);
		ret = ctl_call(g_sock, "POST", "/echo", body, strlen(body),
			       5000, &status, &resp, &rlen);
		if (ret == 0 && status == 200 && rlen == strlen(want) &&
		    !strcmp(resp, want))
			a->good++;
		else
			diag("thread %d call %d: %d %d %s", a->id, i, ret, status,
			     resp ? resp : "");
		free(resp);
	}
	return NULL;
}

static void *slow_call(void *p)
{
	int *status = p;
	char *resp = NULL;

	if (ctl_call(g_sock, "GET", "/slow", NULL, 0, 5000, status, &resp,
		     NULL))
		*status = -1;
	else if (strcmp(resp, "slow\n"))
		*status = -2;
	free(resp);
	return NULL;
}

static void *slower_call(void *p)
{
	int *status = p;

	if (ctl_call(g_sock, "GET", "/slower", NULL, 0, 5000, status, NULL,
		     NULL))
		*status = -1;
	return NULL;
}

static void test_server_basic(void)
{
	struct ctl_server *srv = NULL, *srv2 = NULL;
	struct srv_ctx ctx = { 0 };
	struct stat st;
	char *resp = NULL;
	size_t rlen = 0;
	int status = 0, ret;

	ret = ctl_server_start(&srv, g_sock, handler, &ctx);
	if (!is_int(ret, 0, "server starts at %s", g_sock))
		bail_out("no server");
	if (is_int(lstat(g_sock, &st), 0, "socket exists")) {
		ok(S_ISSOCK(st.st_mode), "... a socket");
		ok((st.st_mode & 07777) == 0600, "... with mode 0600 (%o)", st.st_mode & 07777);
	} else {
		skip(2, "no socket");
	}
	{
		char tmpname[300];

		snprintf(tmpname, sizeof(tmpname), "%s.tmp%d", g_sock, (int)gettid());
		is_int(access(tmpname, F_OK) < 0 ? -errno : 0, -ENOENT,
		       "no temporary name left behind");
	}

	ret = ctl_call(g_sock, "GET", "/hello?x=1", NULL, 0, 2000, &status,
		       &resp, &rlen);
	if (answered(ret, status, 200, "GET round trip")) {
		const char *want = "{\"hello\":\"world\",\"query\":\"x=1\"}\n";

		is_str(resp, want, "... the body");
		is_int(rlen, strlen(want), "... its length");
	} else {
		skip(2, "no answer");
	}
	free(resp);
	resp = NULL;

	{
		const char *body = "{\"name\":\"app\",\"list\":[1,2,3],\"u\":\"\\u00e9\"}";

		ret = ctl_call(g_sock, "POST", "/echo", body, strlen(body),
			       2000, &status, &resp, &rlen);
		if (answered(ret, status, 200, "POST JSON"))
			is_str(resp, "{\"echo\":{\"list\":[1,2,3],\"name\":\"app\",\"u\":\"\xc3\xa9\"},\"method\":\"POST\"}\n",
			       "... echoed");
		else
			skip(1, "no answer");
		free(resp);
		resp = NULL;
	}
	ret = ctl_call(g_sock, "POST", "/echo", "{", 1, 2000, &status, &resp, &rlen);
	if (answered(ret, status, 400, "handler error comes back as 400"))
		has_str(resp, "\"error\"", "... JSON");
	else
		skip(1, "no answer");
	free(resp);
	resp = NULL;
	ret = ctl_call(g_sock, "GET", "/nope", NULL, 0, 2000, &status, NULL, NULL);
	answered(ret, status, 404, "404 without asking for the body");
	ret = ctl_call(g_sock, "GET", "/nostatus", NULL, 0, 2000, &status, &resp, &rlen);
	answered(ret, status, 500, "a handler that sets no status gives 500");
	free(resp);
	resp = NULL;
	ret = ctl_call(g_sock, "HEAD", "/hello", NULL, 0, 2000, &status, &resp, &rlen);
	if (answered(ret, status, 200, "HEAD"))
		is_int(rlen, 0, "... no body");
	else
		skip(1, "no answer");
	free(resp);
	resp = NULL;
	{
		/* a body at the limit goes through; one byte more is 413 */
		size_t n = CTL_MAX_BODY;
		char *big = malloc(n + 1);

		if (!big)
			bail_out("out of memory");
		big[0] = '"';
		memset(big + 1, 'x', n - 2);
		big[n - 1] = '"';
		ret = ctl_call(g_sock, "POST", "/echo", big, n, 5000, &status,
			       &resp, &rlen);
		if (answered(ret, status, 200, "1 MiB body round trip"))
			is_int(rlen, n + 26, "... all of it echoed");
		else
			skip(1, "no answer");
		free(resp);
		resp = NULL;
		ret = ctl_call(g_sock, "POST", "/echo", big, n + 1, 5000,
			       &status, &resp, &rlen);
		answered(ret, status, 413, "1 MiB + 1 body: 413");
		free(resp);
		resp = NULL;
		free(big);
	}
	/* the client refuses targets and methods that would break the request */
	is_int(ctl_call(g_sock, "GET", "no-slash", NULL, 0, 2000, &status, NULL, NULL), -EINVAL,
	       "client refuses a target without a slash");
	is_int(ctl_call(g_sock, "GET", "/a b", NULL, 0, 2000, &status, NULL, NULL), -EINVAL,
	       "... one with a space");
	is_int(ctl_call(g_sock, "G T", "/", NULL, 0, 2000, &status, NULL, NULL), -EINVAL,
	       "... a method with a space");
	is_int(ctl_call(g_sock, "GET", "/\r\nX: y", NULL, 0, 2000, &status, NULL, NULL), -EINVAL,
	       "... a target with a line break");

	/* keep-alive and pipelining over one raw connection */
	{
		static char buf[8192];
		struct ctl_reply rep;
		size_t len = 0, used = 0;
		int fd = raw_connect(g_sock);

		ok(fd >= 0, "raw connect");
		ret = raw_send(fd, "GET /hello?a HTTP/1.1\r\n\r\n");
		ret = ret ? ret : raw_read_reply(fd, buf, sizeof(buf), &len, &rep, &used, 2000);
		if (is_int(ret, 0, "keep-alive: a first response")) {
			is_int(rep.status, 200, "... 200");
			ok(rep.keep_alive, "... says keep-alive");
		} else {
			skip(2, "no response");
		}
		memmove(buf, buf + used, len - used);
		len -= used;
		ret = raw_send(fd, "GET /hello?b HTTP/1.1\r\n\r\n");
		ret = ret ? ret : raw_read_reply(fd, buf, sizeof(buf), &len, &rep, &used, 2000);
		if (is_int(ret, 0, "keep-alive: second request, same connection")) {
			is_int(rep.status, 200, "... 200");
			ok(rep.body_len > 10, "... with a body (%zu)", rep.body_len);
			ok(body_has(&rep, "\"b\""), "... answering it");
		} else {
			skip(3, "no response");
		}
		memmove(buf, buf + used, len - used);
		len -= used;
		ret = raw_send(fd, "POST /echo HTTP/1.1\r\nContent-Length: 2\r\n\r\n[]"
				   "GET /hello?c HTTP/1.1\r\nconnection: CLOSE\r\n\r\n");
		ret = ret ? ret : raw_read_reply(fd, buf, sizeof(buf), &len, &rep, &used, 2000);
		if (is_int(ret, 0, "pipelined: first response")) {
			is_int(rep.status, 200, "... 200");
			ok(rep.body_len, "... with a body");
			ok(body_has(&rep, "\"echo\":[]"), "... answering the first request");
		} else {
			skip(3, "no response");
		}
		memmove(buf, buf + used, len - used);
		len -= used;
		ret = raw_read_reply(fd, buf, sizeof(buf), &len, &rep, &used, 2000);
		if (is_int(ret, 0, "pipelined: second response")) {
			is_int(rep.status, 200, "... 200");
			ok(!rep.keep_alive, "... Connection: close");
			ok(body_has(&rep, "\"c\""), "... answering the second request");
		} else {
			skip(3, "no response");
		}
		ok(raw_wait_eof(fd, 2000) == 0, "server closes after Connection: close");
		close(fd);
	}
	/* malformed requests get an answer and a hang-up */
	{
		static const struct {
			const char *req;
			int status;
		} cases[] = {
			{ "GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400 },
			{ "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 411 },
			{ "POST / HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n", 413 },
			{ "GET / HTTP/3.0\r\n\r\n", 505 },
		};

		for (size_t i = 0; i < SK_ARRAY_SIZE(cases); i++) {
			static char buf[4096];
			struct ctl_reply rep;
			size_t len = 0, used;
			int fd = raw_connect(g_sock);

			ret = fd < 0 ? fd : raw_send(fd, cases[i].req);
			ret = ret ? ret : raw_read_reply(fd, buf, sizeof(buf), &len, &rep, &used, 2000);
			if (is_int(ret, 0, "malformed request %zu: answered", i)) {
				is_int(rep.status, cases[i].status, "... %d", cases[i].status);
				ok(!rep.keep_alive, "... without keep-alive");
				ok(rep.body_len, "... with a body");
				ok(body_has(&rep, "\"error\""), "... a JSON error");
				is_int(raw_wait_eof(fd, 2000), 0, "... closed");
			} else {
				skip(5, "no response");
			}
			if (fd >= 0)
				close(fd);
		}
	}

	/* an idle connection does not hold up others */
	{
		int idle = raw_connect(g_sock), half = raw_connect(g_sock);
		double t0, el;

		ok(idle >= 0, "an idle connection open");
		if (ok(half >= 0, "... and one to half send on"))
			is_int(raw_send(half, "GET /hel"), 0, "... half a request sent");
		else
			skip(1, "no connection");
		t0 = now_s();
		ret = ctl_call(g_sock, "GET", "/hello", NULL, 0, 2000, &status, NULL, NULL);
		el = now_s() - t0;
		answered(ret, status, 200, "another client is served");
		ok(el < 1.0, "... at once (%.3f s)", el);
		close(idle);
		close(half);
	}

	/* 8 threads x 50 requests */
	{
		struct load_arg args[8];
		pthread_t th[8];
		int good = 0, before = atomic_load(&ctx.calls);

		for (int i = 0; i < 8; i++) {
			args[i] = (struct load_arg){ .id = i };
			if (pthread_create(&th[i], NULL, load_thread, &args[i]))
				bail_out("pthread_create");
		}
		for (int i = 0; i < 8; i++) {
			pthread_join(th[i], NULL);
			good += args[i].good;
		}
		is_int(good, 400, "8 concurrent clients x 50 requests all answered right");
		is_int(atomic_load(&ctx.calls) - before, 400, "handler called 400 times");
	}

	/* only root or our own uid */
	if (geteuid() == 0) {
		pid_t pid;
		int ws = 0;

		if (chmod(g_tmp, 0755) < 0 || chmod(g_sock, 0666) < 0)
			bail_out("chmod: %s", strerror(errno));
		pid = fork();
		if (pid == 0) {
			int st2 = 0;
			char *r = NULL;

			if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
				_exit(3);
			ret = ctl_call(g_sock, "GET", "/hello", NULL, 0, 2000, &st2, &r, NULL);
			/* the child cannot add test points: its exit status
			 * names the check that failed */
			if (ret)
				_exit(1);
			if (st2 != 403)
				_exit(2);
			if (!r)
				_exit(5);
			_exit(strstr(r, "root") ? 0 : 4);
		}
		waitpid(pid, &ws, 0);
		if (ok(WIFEXITED(ws), "a client as another uid exits"))
			is_int(WEXITSTATUS(ws), 0, "... having got a 403 that names root "
			       "(1: call failed, 2: another status, 3: no uid switch, "
			       "4: no root in the body, 5: no body)");
		else
			skip(1, "no exit status");
		if (chmod(g_sock, 0600) < 0 || chmod(g_tmp, 0700) < 0)
			bail_out("chmod: %s", strerror(errno));
		pid = fork();
		if (pid == 0) {
			int st2 = 0;

			if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
				_exit(3);
			ret = ctl_call(g_sock, "GET", "/hello", NULL, 0, 2000, &st2, NULL, NULL);
			_exit(ret == -EACCES ? 0 : 1);
		}
		waitpid(pid, &ws, 0);
		if (ok(WIFEXITED(ws), "a client as another uid exits"))
			is_int(WEXITSTATUS(ws), 0, "... with mode 0600 it cannot even connect: -EACCES "
			       "(1: another error, 3: no uid switch)");
		else
			skip(1, "no exit status");
	} else {
		skip(4, "peer credential checks need root to switch uid");
	}

	/* a second server on a live socket, on a non-socket */
	ret = ctl_server_start(&srv2, g_sock, handler, &ctx);
	is_int(ret, -EADDRINUSE, "second server on a live socket: -EADDRINUSE");
	ok(!srv2, "... no server");
	{
		char file[300];
		int fd;

		snprintf(file, sizeof(file), "%s/plain", g_tmp);
		fd = open(file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
		if (fd >= 0)
			close(fd);
		ret = ctl_server_start(&srv2, file, handler, &ctx);
		is_int(ret, -EEXIST, "a regular file at the path: -EEXIST");
		is_int(access(file, F_OK), 0, "... the file left alone");
		unlink(file);
	}
	{
		char longp[200];

		memset(longp, 'l', sizeof(longp) - 1);
		longp[0] = '/';
		longp[sizeof(longp) - 1] = '\0';
		is_int(ctl_server_start(&srv2, longp, handler, &ctx), -ENAMETOOLONG,
		       "server: path too long for sockaddr_un: -ENAMETOOLONG");
		is_int(ctl_call(longp, "GET", "/", NULL, 0, 100, &status, NULL, NULL), -ENAMETOOLONG,
		       "... client too");
	}

	/* stop waits for a running handler, then removes the socket */
	{
		pthread_t th;
		int slow_status = 0;

		if (pthread_create(&th, NULL, slow_call, &slow_status))
			bail_out("pthread_create");
		usleep(100 * 1000);
		ctl_server_stop(srv);
		pthread_join(th, NULL);
		is_int(slow_status, 200, "a request in flight during stop is answered");
	}
	is_int(lstat(g_sock, &st) < 0 ? -errno : 0, -ENOENT, "stop unlinks the socket");
	ret = ctl_call(g_sock, "GET", "/hello", NULL, 0, 1000, &status, NULL, NULL);
	ok(ret == -ENOENT || ret == -ECONNREFUSED,
	   "client without a daemon: -ENOENT or -ECONNREFUSED (%d)", ret);
}

/* A stale socket (a crashed daemon) refuses clients and is replaced. */
static void test_stale_and_timeouts(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct ctl_server *srv = NULL;
	struct srv_ctx ctx = { 0 };
	int fd, ret, status = 0;
	double t0, el;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", g_sock);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0)
		bail_out("bind: %s", strerror(errno));
	close(fd);	/* the file stays, nobody listens */
	ret = ctl_call(g_sock, "GET", "/hello", NULL, 0, 1000, &status, NULL, NULL);
	is_int(ret, -ECONNREFUSED, "client on a stale socket: -ECONNREFUSED");
	ret = ctl_server_start(&srv, g_sock, handler, &ctx);
	if (is_int(ret, 0, "server replaces a stale socket")) {
		ret = ctl_call(g_sock, "GET", "/hello", NULL, 0, 1000, &status, NULL, NULL);
		answered(ret, status, 200, "... and serves");
	} else {
		skip(2, "no server");
	}
	ctl_server_stop(srv);
	srv = NULL;

	/* a listener that never answers: the client gives up in time */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    listen(fd, 4) < 0)
		bail_out("listen: %s", strerror(errno));
	t0 = now_s();
	ret = ctl_call(g_sock, "GET", "/hello", NULL, 0, 200, &status, NULL, NULL);
	el = now_s() - t0;
	is_int(ret, -ETIMEDOUT, "silent server: -ETIMEDOUT");
	ok(el < 1.0, "... after 200 ms (%.3f s)", el);
	{
		/* and one that answers garbage; the timed-out connection is
		 * still in the backlog: take it out first */
		static const char garbage[] =
			"HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n";
		int c = accept(fd, NULL, NULL);
		pid_t pid;

		if (c >= 0)
			close(c);
		pid = fork();
		if (pid == 0) {
			c = accept(fd, NULL, NULL);
			if (c < 0 || sk_write_full(c, garbage, sizeof(garbage) - 1))
				_exit(1);
			usleep(200 * 1000);
			_exit(0);
		}
		ret = ctl_call(g_sock, "GET", "/hello", NULL, 0, 2000, &status, NULL, NULL);
		is_int(ret, -EPROTO, "malformed response: -EPROTO");
		waitpid(pid, NULL, 0);
	}
	close(fd);
	unlink(g_sock);

	/* short idle timeout and a single connection slot */
	{
		struct ctl_server_opts opts = { .idle_timeout_ms = 300, .max_conns = 1 };
		static char buf[4096];
		struct ctl_reply rep;
		size_t len = 0, used;
		int idle;

		ret = ctl_server_start_opts(&srv, g_sock, handler, &ctx, &opts);
		is_int(ret, 0, "server with a 300 ms idle timeout and 1 slot");
		idle = raw_connect(g_sock);
		usleep(50 * 1000);
		t0 = now_s();
		ret = ctl_call(g_sock, "GET", "/hello", NULL, 0, 2000, &status, NULL, NULL);
		el = now_s() - t0;
		answered(ret, status, 200, "with the only slot idle, the next client is served");
		ok(el > 0.15, "... after waiting for the idle timeout (%.3f s)", el);
		ok(el < 1.0, "... not much longer (%.3f s)", el);
		ok(raw_wait_eof(idle, 100) == 0, "the idle connection was closed");
		close(idle);
		usleep(50 * 1000);
		idle = raw_connect(g_sock);
		ret = idle < 0 ? idle : raw_send(idle, "GET /hello HTTP/1.1\r\nHo");
		ret = ret ? ret : raw_read_reply(idle, buf, sizeof(buf), &len, &rep, &used, 3000);
		if (is_int(ret, 0, "a half-sent request is answered")) {
			is_int(rep.status, 408, "... 408");
			is_int(raw_wait_eof(idle, 1000), 0, "... and a hang-up");
		} else {
			skip(2, "no response");
		}
		if (idle >= 0)
			close(idle);
		usleep(50 * 1000);
		ret = ctl_call(g_sock, "GET", "/hello", NULL, 0, 2000, &status, NULL, NULL);
		answered(ret, status, 200, "the slot is free again afterwards");
		{
			pthread_t th;
			int slower_status = 0;

			if (pthread_create(&th, NULL, slower_call, &slower_status))
				bail_out("pthread_create");
			usleep(100 * 1000);
			t0 = now_s();
			ret = ctl_call(g_sock, "GET", "/hello", NULL, 0, 2000, &status, NULL, NULL);
			el = now_s() - t0;
			answered(ret, status, 503, "with the only slot busy past the timeout: 503");
			ok(el < 0.9, "... at once (%.3f s)", el);
			pthread_join(th, NULL);
			is_int(slower_status, 200, "the busy request completes");
		}
		ctl_server_stop(srv);
	}
}

int main(void)
{
	/* SIGPIPE stays fatal: the library must never raise it */
	if (!mkdtemp(g_tmp))
		bail_out("mkdtemp: %s", strerror(errno));
	snprintf(g_sock, sizeof(g_sock), "%s/skiffd.sock", g_tmp);

	test_parse_good();
	test_parse_bad();
	test_parse_prefixes();
	test_parse_response();
	test_resp_helpers();
	test_server_basic();
	test_stale_and_timeouts();

	unlink(g_sock);
	if (rmdir(g_tmp) < 0)
		diag("rmdir %s: %s", g_tmp, strerror(errno));
	return done_testing();
}
