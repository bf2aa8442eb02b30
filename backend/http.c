/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP transport: one curl multi handle and the thread that drives
 * it. A caller's be_http_do() prepares an easy handle on its own thread,
 * queues it, wakes the driver and waits on its own condition variable;
 * the driver adds queued handles, runs transfers and signals each one
 * that completes. Retries and redirects are decided back on the caller's
 * thread, so the driver never sleeps and a backoff only delays its own
 * request. Connection reuse, HTTP/2 multiplexing and TLS session reuse
 * come from the multi handle's shared connection cache.
 */
#include "http.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define MAX_REDIRECTS 5
#define SIDE_MAX 4096		/* error bodies of ranged reads, for messages */
#define DEFAULT_MAX_BODY (16u << 20)

const char *const be_http_errkind_names[BE_HE_COUNT] = {
	"connect", "timeout", "tls", "http_5xx", "http_429", "http_4xx",
	"mismatch", "other",
};

struct xfer {
	CURL *easy;
	struct curl_slist *hdrs;
	const struct be_http_req *rq;
	bool head;
	/* the response being received (reset by each status line) */
	long status;
	char content_range[128];
	char retry_after[128];
	char www_auth[2048];
	char digest[128];
	char content_type[256];
	char location[2048];
	int64_t content_length;
	/* body sinks: ranged into rq->buf, else into dyn */
	size_t got;
	bool overflow;
	char *dyn;
	size_t dlen, dcap, dmax;
	char side[SIDE_MAX + 1];
	size_t side_len;
	uint64_t timeout_ms;		/* this attempt's limit: what is left of the deadline */
	CURLcode res;
	bool done;
	pthread_cond_t cond;
	struct xfer *next;
};

struct be_http {
	struct be_http_opts o;
	struct be_http_stats st;
	CURLM *multi;
	pthread_t thr;
	pthread_mutex_t lock;		/* pending, stop, done flags, spare */
	struct xfer *pending;
	bool stop;
	CURL *spare[32];		/* easy handles kept for reuse */
	unsigned int nspare;
};

void be_http_opts_defaults(struct be_http_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->connect_timeout_ms = 10000;
	o->low_speed_time_s = 15;
	o->low_speed_limit = 1024;
	o->max_attempts = 5;
	o->backoff_ms = 200;
	o->backoff_max_ms = 5000;
	o->retry_after_max_ms = 10000;
	o->max_host_connections = 16;
}

struct be_http_stats *be_http_stats(struct be_http *h)
{
	return &h->st;
}

void be_http_resp_free(struct be_http_resp *r)
{
	free(r->body);
	r->body = NULL;
	r->body_len = 0;
}

static void *driver(void *arg)
{
	struct be_http *h = arg;
	int running = 0;

	for (;;) {
		struct xfer *q;
		CURLMsg *msg;
		int left;

		pthread_mutex_lock(&h->lock);
		if (h->stop) {
			pthread_mutex_unlock(&h->lock);
			break;
		}
		q = h->pending;
		h->pending = NULL;
		pthread_mutex_unlock(&h->lock);
		for (; q; q = q->next) {
			CURLMcode mc = curl_multi_add_handle(h->multi, q->easy);

			if (mc != CURLM_OK) {
				pthread_mutex_lock(&h->lock);
				q->res = CURLE_FAILED_INIT;
				q->done = true;
				pthread_cond_signal(&q->cond);
				pthread_mutex_unlock(&h->lock);
			}
		}
		curl_multi_perform(h->multi, &running);
		while ((msg = curl_multi_info_read(h->multi, &left))) {
			struct xfer *x = NULL;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
			curl_multi_remove_handle(h->multi, msg->easy_handle);
			pthread_mutex_lock(&h->lock);
			x->res = msg->data.result;
			x->done = true;
			pthread_cond_signal(&x->cond);
			pthread_mutex_unlock(&h->lock);
		}
		curl_multi_poll(h->multi, NULL, 0, 1000, NULL);
	}
	return NULL;
}

static void global_init(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

int be_http_new(const struct be_http_opts *o, struct be_http **out,
		struct sk_err *e)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct be_http *h;

	/* curl_global_init is not thread-safe: once per process */
	pthread_once(&once, global_init);
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->o = *o;
	h->multi = curl_multi_init();
	if (!h->multi) {
		sk_err_set(e, "curl_multi_init failed");
		free(h);
		return -ENOMEM;
	}
	curl_multi_setopt(h->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
	curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
			  (long)(o->max_host_connections ? o->max_host_connections : 16));
	curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS,
			  (long)(o->max_host_connections ? o->max_host_connections : 16) * 4);
	pthread_mutex_init(&h->lock, NULL);
	if (pthread_create(&h->thr, NULL, driver, h)) {
		sk_err_set(e, "cannot start the HTTP thread");
		pthread_mutex_destroy(&h->lock);
		curl_multi_cleanup(h->multi);
		free(h);
		return -EAGAIN;
	}
	*out = h;
	return 0;
}

void be_http_destroy(struct be_http *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	h->stop = true;
	pthread_mutex_unlock(&h->lock);
	curl_multi_wakeup(h->multi);
	pthread_join(h->thr, NULL);
	/* callers are gone: nothing is pending or running any more */
	for (unsigned int i = 0; i < h->nspare; i++)
		curl_easy_cleanup(h->spare[i]);
	curl_multi_cleanup(h->multi);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	size_t len = size * n, vlen;
	const char *colon, *v;
	char *dst = NULL;
	size_t dlen = 0;

	if (len >= 5 && !strncmp(p, "HTTP/", 5)) {
		/* a new response (after a 1xx): forget the previous one */
		const char *sp = memchr(p, ' ', len);

		x->status = 0;
		if (sp && (size_t)(sp - p) + 4 <= len)
			x->status = strtol(sp + 1, NULL, 10);
		x->content_range[0] = x->retry_after[0] = x->www_auth[0] = '\0';
		x->digest[0] = x->content_type[0] = x->location[0] = '\0';
		x->content_length = -1;
		return len;
	}
	colon = memchr(p, ':', len);
	if (!colon)
		return len;
	v = colon + 1;
	while (v < p + len && (*v == ' ' || *v == '\t'))
		v++;
	vlen = (size_t)(p + len - v);
	while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' ||
			v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
		vlen--;
#define HDR(name, field)						\
	else if ((size_t)(colon - p) == sizeof(name) - 1 &&		\
		 !strncasecmp(p, name, sizeof(name) - 1)) {		\
		dst = x->field;						\
		dlen = sizeof(x->field);				\
	}
	if (0) {
	}
	HDR("Content-Range", content_range)
	HDR("Retry-After", retry_after)
	HDR("WWW-Authenticate", www_auth)
	HDR("Docker-Content-Digest", digest)
	HDR("Content-Type", content_type)
	HDR("Location", location)
#undef HDR
	else if ((size_t)(colon - p) == 14 && !strncasecmp(p, "Content-Length", 14)) {
		char num[24];

		if (vlen && vlen < sizeof(num)) {
			char *end;

			memcpy(num, v, vlen);
			num[vlen] = '\0';
			x->content_length = strtoll(num, &end, 10);
			if (*end || x->content_length < 0)
				x->content_length = -1;
		}
		return len;
	}
	/* only the first of a repeated header counts; too long: dropped,
	 * so a parser never sees a truncated value */
	if (dst && !dst[0] && vlen < dlen) {
		memcpy(dst, v, vlen);
		dst[vlen] = '\0';
	}
	return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	size_t len = size * n;

	if (x->rq->ranged && (x->status < 200 || x->status > 299)) {
		size_t k = SK_MIN(len, SIDE_MAX - x->side_len);

		memcpy(x->side + x->side_len, p, k);
		x->side_len += k;
		return len;
	}
	if (x->rq->ranged) {
		if (len > x->rq->len - x->got) {
			x->overflow = true;
			return 0;	/* more than asked: never data */
		}
		memcpy((char *)x->rq->buf + x->got, p, len);
		x->got += len;
		return len;
	}
	if (len > x->dmax - x->dlen) {
		x->overflow = true;
		return 0;
	}
	if (x->dlen + len + 1 > x->dcap) {
		size_t ncap = SK_MAX(x->dcap * 2, x->dlen + len + 1);
		char *nb;

		ncap = SK_MIN(ncap, x->dmax + 1);
		nb = realloc(x->dyn, ncap);
		if (!nb)
			return 0;
		x->dyn = nb;
		x->dcap = ncap;
	}
	memcpy(x->dyn + x->dlen, p, len);
	x->dlen += len;
	x->dyn[x->dlen] = '\0';
	return len;
}

static CURL *easy_get(struct be_http *h)
{
	CURL *c = NULL;

	pthread_mutex_lock(&h->lock);
	if (h->nspare)
		c = h->spare[--h->nspare];
	pthread_mutex_unlock(&h->lock);
	if (c)
		curl_easy_reset(c);
	else
		c = curl_easy_init();
	return c;
}

static void easy_put(struct be_http *h, CURL *c)
{
	pthread_mutex_lock(&h->lock);
	if (h->nspare < SK_ARRAY_SIZE(h->spare)) {
		h->spare[h->nspare++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&h->lock);
	if (c)
		curl_easy_cleanup(c);
}

/* Whether a and b name the same origin (scheme, host, port). */
static bool same_origin(const char *a, const char *b)
{
	CURLU *ua = curl_url(), *ub = curl_url();
	bool same = false;

	if (ua && ub && !curl_url_set(ua, CURLUPART_URL, a, 0) &&
	    !curl_url_set(ub, CURLUPART_URL, b, 0)) {
		static const CURLUPart parts[] = { CURLUPART_SCHEME, CURLUPART_HOST,
						   CURLUPART_PORT };

		same = true;
		for (size_t i = 0; i < SK_ARRAY_SIZE(parts) && same; i++) {
			char *pa = NULL, *pb = NULL;

			curl_url_get(ua, parts[i], &pa, CURLU_DEFAULT_PORT);
			curl_url_get(ub, parts[i], &pb, CURLU_DEFAULT_PORT);
			same = pa && pb && !strcasecmp(pa, pb);
			curl_free(pa);
			curl_free(pb);
		}
	}
	curl_url_cleanup(ua);
	curl_url_cleanup(ub);
	return same;
}

/* Whether s is printable ASCII without spaces, as URLs are. */
static bool printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

int be_resolve_location(const char *base, const char *loc, char *out,
			size_t outlen)
{
	CURLU *u = curl_url();
	char *abs = NULL, hp[256];	/* as a host config (be_host_cfg) names one */
	int ret = -EINVAL;

	if (outlen)
		out[0] = '\0';
	if (u && !curl_url_set(u, CURLUPART_URL, base, 0) &&
	    !curl_url_set(u, CURLUPART_URL, loc, 0) &&
	    !curl_url_get(u, CURLUPART_URL, &abs, 0)) {
		/* a redirect may only lead to what the transport speaks: a
		 * target of another scheme fails here, with its reason,
		 * rather than as an unsupported protocol later */
		if (strncasecmp(abs, "http://", 7) && strncasecmp(abs, "https://", 8))
			ret = -EINVAL;
		/* URLs are ASCII: a space, a control or a high byte curl lets
		 * through would go on the request line as it is */
		else if (!printable(abs))
			ret = -EINVAL;
		/* TLS settings and credentials are decided by the target's
		 * HOST[:PORT]: it must have one that a host config can name */
		else if (be_url_hostport(abs, hp, sizeof(hp)) || !hp[0])
			ret = -EINVAL;
		else if (snprintf(out, outlen, "%s", abs) < (int)outlen)
			ret = 0;
		else
			ret = -ENAMETOOLONG;
		curl_free(abs);
	}
	curl_url_cleanup(u);
	if (ret && outlen)
		out[0] = '\0';
	return ret;
}

int be_url_hostport(const char *url, char *out, size_t outlen)
{
	CURLU *u = curl_url();
	char *host = NULL, *port = NULL;
	int ret = -EINVAL;

	if (u && !curl_url_set(u, CURLUPART_URL, url, 0) &&
	    !curl_url_get(u, CURLUPART_HOST, &host, 0)) {
		/* no CURLU_DEFAULT_PORT: a port only when the URL names one,
		 * as "registries" keys spell hosts */
		curl_url_get(u, CURLUPART_PORT, &port, 0);
		ret = snprintf(out, outlen, "%s%s%s", host, port ? ":" : "", port ? port : "") <
		      (int)outlen ? 0 : -ENAMETOOLONG;
	}
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(u);
	return ret;
}

/* Sets up x->easy for one attempt at url. */
static int prepare(struct be_http *h, struct xfer *x, const char *url,
		   bool drop_auth)
{
	const struct be_http_req *rq = x->rq;
	const char *m = rq->method ? rq->method : "GET";
	CURL *c = x->easy;
	char range[64];

	x->head = !strcmp(m, "HEAD");
	for (unsigned int i = 0; i < rq->nheaders; i++) {
		struct curl_slist *n;

		if (drop_auth && !strncasecmp(rq->headers[i], "Authorization:", 14))
			continue;
		n = curl_slist_append(x->hdrs, rq->headers[i]);
		if (!n)
			return -ENOMEM;
		x->hdrs = n;
	}
	if (rq->body) {
		/* no 100-continue round trip */
		struct curl_slist *n = curl_slist_append(x->hdrs, "Expect:");

		if (!n)
			return -ENOMEM;
		x->hdrs = n;
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	/* waiting for a connection to multiplex on pays only where HTTP/2
	 * can come (TLS, by ALPN); over plain http curl would queue a
	 * request behind another still being answered, and a stalled
	 * answer would then stall every request to that host */
	curl_easy_setopt(c, CURLOPT_PIPEWAIT, strncmp(url, "https://", 8) ? 0L : 1L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(c, CURLOPT_BUFFERSIZE, 512L * 1024);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)h->o.connect_timeout_ms);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, (long)h->o.low_speed_limit);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)h->o.low_speed_time_s);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	if (x->timeout_ms)
		curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)x->timeout_ms);
	/* decided for this very URL: a redirect to another host gets that
	 * host's setting, not the first one's */
	if (rq->insecure && rq->insecure(rq->insecure_arg, url)) {
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	} else if (h->o.ca_file[0]) {
		curl_easy_setopt(c, CURLOPT_CAINFO, h->o.ca_file);
	}
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, x->hdrs);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(c, CURLOPT_PRIVATE, (char *)x);
	if (x->head)
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	else if (strcmp(m, "GET"))
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, m);
	if (rq->body || (strcmp(m, "GET") && !x->head && strcmp(m, "DELETE"))) {
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq->body ? rq->body : "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)(rq->body ? rq->body_len : 0));
	}
	if (rq->ranged) {
		snprintf(range, sizeof(range), "%llu-%llu",
			 (unsigned long long)rq->off,
			 (unsigned long long)(rq->off + rq->len - 1));
		curl_easy_setopt(c, CURLOPT_RANGE, range);
	}
	return 0;
}

/* Hands x to the driver and waits until it completed. */
static void run(struct be_http *h, struct xfer *x)
{
	pthread_mutex_lock(&h->lock);
	x->done = false;
	x->next = h->pending;
	h->pending = x;
	pthread_mutex_unlock(&h->lock);
	curl_multi_wakeup(h->multi);
	pthread_mutex_lock(&h->lock);
	while (!x->done)
		pthread_cond_wait(&x->cond, &h->lock);
	pthread_mutex_unlock(&h->lock);
}

static enum be_http_errkind curl_kind(CURLcode r)
{
	switch (r) {
	case CURLE_OPERATION_TIMEDOUT:
		return BE_HE_TIMEOUT;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_ISSUER_ERROR:
		return BE_HE_TLS;
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return BE_HE_CONNECT;
	default:
		return BE_HE_OTHER;
	}
}

/* A ranged answer is data only if it is exactly what was asked. */
static bool range_matches(const struct xfer *x)
{
	const struct be_http_req *rq = x->rq;
	uint64_t first, last, total;

	if (x->got != rq->len)
		return false;
	if (x->status == 200)
		return rq->off == 0 &&
		       (x->content_length < 0 || (uint64_t)x->content_length == rq->len);
	if (x->status != 206 ||
	    be_parse_content_range(x->content_range, &first, &last, &total))
		return false;
	return first == rq->off && last == rq->off + rq->len - 1;
}

static uint64_t backoff_ms(const struct be_http *h, unsigned int attempt,
			   unsigned int *seed)
{
	uint64_t d = h->o.backoff_ms;

	for (unsigned int i = 1; i < attempt && d < h->o.backoff_max_ms; i++)
		d *= 2;
	d = SK_MIN(d, (uint64_t)h->o.backoff_max_ms);
	/* jitter: somewhere in [d/2, d], so clients that failed together do
	 * not come back together */
	return d / 2 + (d / 2 ? (uint64_t)rand_r(seed) % (d / 2 + 1) : 0);
}

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* Clears what one attempt leaves in x. */
static void xfer_reset(struct xfer *x)
{
	x->hdrs = NULL;
	x->status = 0;
	x->got = x->dlen = x->side_len = 0;
	x->dmax = x->rq->max_body ? x->rq->max_body : DEFAULT_MAX_BODY;
	x->overflow = false;
	x->content_length = -1;
	x->content_range[0] = x->retry_after[0] = x->www_auth[0] = '\0';
	x->digest[0] = x->content_type[0] = x->location[0] = '\0';
}

/* Gives back what an attempt held: headers, the handle, the body. */
static void xfer_release(struct be_http *h, struct xfer *x)
{
	curl_slist_free_all(x->hdrs);
	x->hdrs = NULL;
	if (x->easy)
		easy_put(h, x->easy);
	x->easy = NULL;
	free(x->dyn);
	x->dyn = NULL;
	x->dcap = 0;
}

/*
 * Judges a finished attempt that is neither a redirect to follow nor a
 * final answer: -errno with *kind, *retry and *delay_ms set and the
 * message in e; 0 when the attempt gave an answer.
 */
static int attempt_error(struct be_http *h, struct xfer *x, const char *url,
			 enum be_http_errkind *kind, bool *retry,
			 uint64_t *delay_ms, struct sk_err *e)
{
	const struct be_http_req *rq = x->rq;
	const char *m = rq->method ? rq->method : "GET";
	uint64_t ra;

	*retry = true;
	if (x->res == CURLE_WRITE_ERROR && x->overflow) {
		*kind = BE_HE_MISMATCH;
		if (!rq->ranged) {
			*retry = false;
			sk_err_set(e, "%s %s: answer over %zu bytes", m, url, x->dmax);
			return -EMSGSIZE;
		}
		sk_err_set(e, "%s %s: more bytes than the %zu asked (HTTP %ld)",
			   m, url, rq->len, x->status);
		return -EPROTO;
	}
	if (x->res != CURLE_OK) {
		*kind = curl_kind(x->res);
		/* a certificate that does not verify will not start to */
		*retry = *kind == BE_HE_CONNECT || *kind == BE_HE_TIMEOUT ||
			 (*kind == BE_HE_TLS && x->res == CURLE_SSL_CONNECT_ERROR);
		sk_err_set(e, "%s %s: %s", m, url, curl_easy_strerror(x->res));
		return *kind == BE_HE_TIMEOUT ? -ETIMEDOUT :
		       x->res == CURLE_COULDNT_CONNECT ? -ECONNREFUSED :
		       *kind == BE_HE_TLS ? -EPROTO : -EIO;
	}
	if (x->status >= 500 || x->status == 429) {
		*kind = x->status == 429 ? BE_HE_HTTP_429 : BE_HE_HTTP_5XX;
		if (x->retry_after[0] &&
		    !be_parse_retry_after(x->retry_after, time(NULL), &ra))
			*delay_ms = SK_MIN(ra, (uint64_t)h->o.retry_after_max_ms);
		sk_err_set(e, "%s %s: HTTP %ld", m, url, x->status);
		return -EIO;
	}
	if (rq->ranged && x->status >= 200 && x->status < 300 && !range_matches(x)) {
		*kind = BE_HE_MISMATCH;
		sk_err_set(e, "%s %s: asked bytes %llu+%zu, got HTTP %ld with %zu bytes (Content-Range \"%s\")",
			   m, url, (unsigned long long)rq->off, rq->len, x->status,
			   x->got, x->content_range);
		return -EPROTO;
	}
	*retry = false;
	return 0;
}

/* A final answer into resp: the caller judges the status. */
static void answer(struct be_http *h, struct xfer *x, const char *url,
		   struct be_http_resp *resp)
{
	resp->status = x->status;
	snprintf(resp->url, sizeof(resp->url), "%s", url);
	memcpy(resp->www_auth, x->www_auth, sizeof(resp->www_auth));
	memcpy(resp->digest, x->digest, sizeof(resp->digest));
	memcpy(resp->content_type, x->content_type, sizeof(resp->content_type));
	resp->content_length = x->content_length;
	if (x->location[0] &&
	    be_resolve_location(url, x->location, resp->location, sizeof(resp->location)))
		resp->location[0] = '\0';
	if (!x->rq->ranged) {
		resp->body = x->dyn;
		resp->body_len = x->dlen;
		x->dyn = NULL;
	} else if (x->side_len && (resp->body = malloc(x->side_len + 1))) {
		/* an error page, for messages */
		memcpy(resp->body, x->side, x->side_len);
		resp->body[x->side_len] = '\0';
		resp->body_len = x->side_len;
	}
	if (x->status >= 400 && x->status != 401)
		atomic_fetch_add(&h->st.errors[BE_HE_HTTP_4XX], 1);
}

/* One attempt at url: prepare, run, count. */
static int attempt(struct be_http *h, struct xfer *x, const char *url,
		   bool drop_auth, bool retry)
{
	const struct be_http_req *rq = x->rq;
	long ver = 0;

	xfer_reset(x);
	x->easy = easy_get(h);
	if (!x->easy || prepare(h, x, url, drop_auth))
		return -ENOMEM;
	atomic_fetch_add(&h->st.requests, 1);
	if (retry)
		atomic_fetch_add(&h->st.retries, 1);
	run(h, x);
	atomic_fetch_add(&h->st.bytes, rq->ranged ? x->got : x->dlen);
	if (x->res == CURLE_OK && rq->body)
		atomic_fetch_add(&h->st.sent_bytes, rq->body_len);
	if (x->res == CURLE_OK || (x->res == CURLE_WRITE_ERROR && x->overflow)) {
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
		if (!curl_easy_getinfo(x->easy, CURLINFO_HTTP_VERSION, &ver) &&
		    ver == CURL_HTTP_VERSION_2_0)
			atomic_fetch_add(&h->st.http2, 1);
	}
	return 0;
}

/* Milliseconds left before rq's deadline (0: passed; UINT64_MAX: none). */
static uint64_t left_ms(const struct be_http_req *rq)
{
	double l;

	if (!rq->deadline)
		return UINT64_MAX;
	l = (rq->deadline - sk_now()) * 1000.0;
	return l < 1.0 ? 0 : (uint64_t)l;
}

/* Appends what ended the call to the last attempt's message. */
static void msg_suffix(struct sk_err *e, const char *fmt, unsigned int tries)
{
	char msg[sizeof(e->msg)];

	memcpy(msg, e->msg, sizeof(msg));
	sk_err_set(e, fmt, msg, tries);
}

int be_http_do(struct be_http *h, const struct be_http_req *rq,
	       struct be_http_resp *resp, struct sk_err *e)
{
	unsigned int max = SK_MAX(rq->max_attempts ? rq->max_attempts : h->o.max_attempts, 1u);
	unsigned int tries = 0, redirects = 0;
	unsigned int seed = (unsigned int)(sk_now() * 1e6) ^ (unsigned int)pthread_self();
	const char *m = rq->method ? rq->method : "GET";
	bool drop_auth = false;
	char url[2048];
	int ret;
	struct xfer *x;

	memset(resp, 0, sizeof(*resp));
	resp->content_length = -1;
	if (rq->ranged && rq->len == 0)
		return 0;
	if (snprintf(url, sizeof(url), "%s", rq->url) >= (int)sizeof(url)) {
		sk_err_set(e, "URL too long");
		return -ENAMETOOLONG;
	}
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	pthread_cond_init(&x->cond, NULL);
	x->rq = rq;
	for (;;) {
		enum be_http_errkind kind = BE_HE_OTHER;
		uint64_t delay = 0, left = left_ms(rq);
		bool retry = false;

		if (!left) {
			/* spent on earlier endpoints, redirects or retries */
			if (tries)
				msg_suffix(e, "%s (%u attempts, then the deadline passed)", tries);
			else
				sk_err_set(e, "%s %s: the deadline passed before an answer", m, url);
			ret = -ETIMEDOUT;
			break;
		}
		/* the attempt ends at the deadline, whatever curl's own
		 * connect and low-speed limits would allow */
		x->timeout_ms = left == UINT64_MAX ? 0 : left;
		ret = attempt(h, x, url, drop_auth, tries > 0);
		if (ret)
			break;
		tries++;
		ret = attempt_error(h, x, url, &kind, &retry, &delay, e);
		if (!ret && x->status >= 300 && x->status < 400 && x->status != 304 &&
		    !rq->no_redirect && (!strcmp(m, "GET") || x->head) && x->location[0]) {
			char next[sizeof(url)];

			/* a redirect is not a failed attempt */
			tries--;
			if (++redirects > MAX_REDIRECTS) {
				sk_err_set(e, "%s %s: more than %d redirects", m, rq->url,
					   MAX_REDIRECTS);
				ret = -ELOOP;
				break;
			}
			atomic_fetch_add(&h->st.redirects, 1);
			if (be_resolve_location(url, x->location, next, sizeof(next))) {
				sk_err_set(e, "%s %s: bad redirect target", m, url);
				ret = -EPROTO;
				break;
			}
			/* credentials are for the host they were given for */
			if (!same_origin(url, next))
				drop_auth = true;
			memcpy(url, next, sizeof(url));
			xfer_release(h, x);
			continue;
		}
		if (!ret) {
			answer(h, x, url, resp);
			break;
		}
		atomic_fetch_add(&h->st.errors[kind], 1);
		resp->status = x->status;
		xfer_release(h, x);
		if (!retry || tries >= max) {
			if (retry)
				msg_suffix(e, "%s (%u attempts)", tries);
			break;
		}
		if (!delay)
			delay = backoff_ms(h, tries, &seed);
		left = left_ms(rq);
		if (left <= delay) {
			/* no time for another attempt: say so now rather than
			 * sleep to the deadline first */
			msg_suffix(e, "%s (%u attempts, then the deadline passed)", tries);
			ret = -ETIMEDOUT;
			break;
		}
		sleep_ms(delay);
		/* a retry asks where the caller pointed, not where a redirect
		 * led: that target (a dead host, an expired signed URL) is
		 * what failed, and the origin may send elsewhere now */
		if (redirects) {
			snprintf(url, sizeof(url), "%s", rq->url);
			drop_auth = false;
			redirects = 0;
		}
	}
	xfer_release(h, x);
	pthread_cond_destroy(&x->cond);
	free(x);
	return ret;
}
