/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HTTP(S) transport for the network sources, on libcurl: one curl multi
 * handle driven by one thread per transport, so connections (and TLS
 * sessions, HTTP/2 streams) are reused and many requests run at once.
 * Callers on any thread build a request, be_http_do() hands it to the
 * thread and waits. Retries (connection errors, 5xx, 429, bodies whose
 * length or range does not match) back off exponentially with jitter and
 * are bounded, so every call ends in bounded time.
 *
 * Header parsers used by the transport and the registry client are pure
 * functions on strings (fuzzed by tests/fuzz/fuzz_remote.c).
 */
#ifndef SKIFF_BACKEND_HTTP_H
#define SKIFF_BACKEND_HTTP_H

#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "../common/sk.h"

struct be_http_opts {
	unsigned int connect_timeout_ms;	/* 10000 */
	/* a transfer slower than low_speed_limit bytes/s for low_speed_time_s
	 * seconds (a stalled server, also before the answer) is abandoned */
	unsigned int low_speed_time_s;		/* 15 */
	unsigned int low_speed_limit;		/* 1024 */
	unsigned int max_attempts;		/* 5: tries of one request */
	unsigned int backoff_ms;		/* 200: delay before the 1st retry */
	unsigned int backoff_max_ms;		/* 5000: cap of one delay */
	unsigned int retry_after_max_ms;	/* 10000: cap of a Retry-After */
	unsigned int max_host_connections;	/* 16 */
	char ca_file[PATH_MAX];			/* "": the system's */
};

void be_http_opts_defaults(struct be_http_opts *o);

/* What went wrong with one attempt; counted per transport. */
enum be_http_errkind {
	BE_HE_CONNECT,		/* refused, reset, DNS, closed early */
	BE_HE_TIMEOUT,		/* connect timeout or stalled transfer */
	BE_HE_TLS,		/* handshake or verification */
	BE_HE_HTTP_5XX,
	BE_HE_HTTP_429,
	BE_HE_HTTP_4XX,		/* final answers such as 404 (not 401) */
	BE_HE_MISMATCH,		/* body length or Content-Range not as asked */
	BE_HE_OTHER,
	BE_HE_COUNT
};
extern const char *const be_http_errkind_names[BE_HE_COUNT];

struct be_http_stats {
	_Atomic uint64_t requests;	/* attempts sent (redirects included) */
	_Atomic uint64_t retries;	/* attempts after a failed one */
	_Atomic uint64_t bytes;		/* body bytes received */
	_Atomic uint64_t sent_bytes;	/* body bytes uploaded */
	_Atomic uint64_t redirects;
	_Atomic uint64_t http2;		/* answers that came over HTTP/2 */
	_Atomic uint64_t errors[BE_HE_COUNT];
};

struct be_http;

int be_http_new(const struct be_http_opts *o, struct be_http **out,
		struct sk_err *e);
void be_http_destroy(struct be_http *h);
struct be_http_stats *be_http_stats(struct be_http *h);

#define BE_HTTP_MAX_HEADERS 16

struct be_http_req {
	const char *method;		/* NULL: GET */
	const char *url;
	/* "Name: value" lines; an "Authorization:" one is dropped when a
	 * redirect leads to another host (or scheme or port) */
	const char *headers[BE_HTTP_MAX_HEADERS];
	unsigned int nheaders;
	/* whether TLS to url goes unverified: asked for every URL actually
	 * requested, redirect targets included, so a host's setting never
	 * follows a redirect to another host (NULL: always verified) */
	bool (*insecure)(const void *arg, const char *url);
	const void *insecure_arg;
	bool no_redirect;		/* hand 3xx back to the caller */
	/* ranged: [off, off+len) into buf, exact: 206 with that
	 * Content-Range, or 200 only when off is 0 and the object is len
	 * bytes; anything else is an error, never data */
	bool ranged;
	uint64_t off;
	size_t len;
	void *buf;
	/* not ranged: the body into resp->body, at most max_body bytes
	 * (more is an error); 0: 16 MiB */
	size_t max_body;
	/* request body (POST/PUT/PATCH) */
	const void *body;
	size_t body_len;
	unsigned int max_attempts;	/* 0: the transport's */
	/* sk_now() by which the call ends, all attempts, backoffs and
	 * redirects included: no attempt starts after it, a running one is
	 * cut at it, a backoff never sleeps past it (0: none) */
	double deadline;
};

struct be_http_resp {
	long status;			/* final status; 0: no answer */
	char *body;			/* malloc'd (not ranged), NUL-terminated */
	size_t body_len;
	char url[2048];			/* where the answer came from */
	char location[2048];		/* redirect target, absolute */
	char www_auth[2048];
	char digest[128];		/* Docker-Content-Digest */
	char content_type[256];
	int64_t content_length;		/* -1: none */
};

void be_http_resp_free(struct be_http_resp *r);

/*
 * Runs a request, with redirects and retries. Returns 0 with resp->status
 * set when an HTTP answer was final (any status: the caller judges 401,
 * 404...), a ranged read returning 0 has status 200/206 and buf filled.
 * Errors: -ETIMEDOUT (also the deadline passed), -ECONNREFUSED, -EPROTO
 * (answers that never matched, TLS), -EIO (5xx/429 to the last attempt),
 * -EMSGSIZE (body over max_body).
 */
int be_http_do(struct be_http *h, const struct be_http_req *rq,
	       struct be_http_resp *resp, struct sk_err *e);

/* Parsers (pure, bounded, on untrusted header values). */

/* "bytes FIRST-LAST/TOTAL" (TOTAL may be "*": *total = UINT64_MAX). */
int be_parse_content_range(const char *v, uint64_t *first, uint64_t *last,
			   uint64_t *total);
/* Retry-After: delay-seconds or an HTTP-date (relative to now). */
int be_parse_retry_after(const char *v, time_t now, uint64_t *ms);

#define BE_CHAL_PARAMS 8
struct be_challenge {
	char scheme[16];	/* "bearer", "basic" (lowercased) */
	char realm[1024];
	char service[256];
	char scope[512];
	char error[64];
};
/* The first challenge of a WWW-Authenticate value. */
int be_parse_www_auth(const char *v, struct be_challenge *c);

/* A redirect's Location made absolute against the URL it came from: 0
 * with an http:// or https:// URL in out (NUL-terminated), -EINVAL when
 * it is not one, -ENAMETOOLONG when it does not fit. */
int be_resolve_location(const char *base, const char *loc, char *out,
			size_t outlen);
/* The host part of an http(s) URL, as configuration keys spell it:
 * HOST, or HOST:PORT when the URL names a port. */
int be_url_hostport(const char *url, char *out, size_t outlen);

#endif
