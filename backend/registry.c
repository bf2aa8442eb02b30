/* SPDX-License-Identifier: Apache-2.0 */
/*
 * OCI distribution client for one repository: manifests, ranged blob
 * reads through mirrors then the origin, and pushes. Authentication
 * follows the registry's WWW-Authenticate challenge: a bearer token from
 * its token service (anonymous, or with the user's credentials; cached
 * until it expires, fetched again on a 401) or basic auth.
 */
#include "remote.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <curl/curl.h>

#define MAX_ENDPOINTS 17
#define BAD_RANGES 32		/* ranges whose mirror bytes failed checks */
#define TOKEN_MAX 8192
#define ACCEPT_MANIFESTS \
	"Accept: " BE_MT_MANIFEST ", " BE_MT_INDEX ", " BE_MT_DOCKER_MANIFEST ", " BE_MT_DOCKER_LIST

struct endpoint {
	char base[600];		/* scheme://host[:port][/prefix], no trailing / */
	char headers[BE_MIRROR_HEADERS][512];
	unsigned int nheaders;
	/* the origin's "insecure" (its API may live on another name than
	 * the configuration's key); mirrors' come from the configuration
	 * by URL, see reg_insecure */
	bool insecure;
	bool mirror;
	_Atomic uint64_t down_until_ms;	/* a failed mirror rests */
};

struct be_reg {
	struct be_http *http;		/* owned */
	char host[256];
	char repo[256];
	char platform[64];
	unsigned int mirror_skip_ms, mirror_attempts;
	struct endpoint eps[MAX_ENDPOINTS];	/* mirrors, then the origin */
	unsigned int neps;
	const struct be_config *cfg;	/* borrowed: hosts' settings, manifest cache */
	char user[BE_CRED_USER_MAX], pass[BE_CRED_SECRET_MAX];
	bool creds;
	pthread_mutex_t lock;		/* the auth state below */
	/* the credential helper the Docker config names for this host ("":
	 * none); run once, when the registry first asks for credentials,
	 * and its answer (or failure, helper_err) kept for the client's life */
	char helper[128];
	bool helper_done;
	int helper_ret;
	char helper_err[sizeof(((struct sk_err *)0)->msg)];
	char authz[TOKEN_MAX + 64];	/* "Authorization: ..." or "" */
	uint64_t authz_gen;		/* bumped by every change */
	double authz_expiry;		/* bearer: sk_now() after which to renew */
	struct be_challenge chal;	/* the last bearer challenge */
	char scopes[1024];		/* space-separated scope strings */
	/* reads overlapping these skip the mirrors (a ring, under lock) */
	struct {
		char hex[SK_HEX_LEN + 1];
		uint64_t off, len;
	} bad[BAD_RANGES];
	unsigned int bad_next;
};

static uint64_t now_ms(void)
{
	return (uint64_t)(sk_now() * 1000.0);
}

struct be_http_stats *be_reg_stats(struct be_reg *r)
{
	return be_http_stats(r->http);
}

/* Credentials handed to skiffd for host (the pull's), if any. */
static bool given_auth(const char *path, const char *host, struct be_reg *r)
{
	struct sk_err e = { { 0 } };
	void *buf;
	size_t len;
	int ret;

	if (sk_read_file(path, 1u << 20, &buf, &len))
		return false;
	ret = be_docker_auth(buf, len, host, r->user, sizeof(r->user), r->pass,
			     sizeof(r->pass), &e);
	free(buf);
	return ret == 0;
}

int be_reg_open(const struct be_config *cfg, const char *host,
		const char *repo, bool push, const char *user,
		const char *pass, struct be_reg **out, struct sk_err *e)
{
	const struct be_host_cfg *hc = be_config_host(cfg, host);
	const char *origin = host;
	struct be_reg *r;
	int ret;

	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	snprintf(r->host, sizeof(r->host), "%s", host);
	snprintf(r->repo, sizeof(r->repo), "%s", repo);
	snprintf(r->platform, sizeof(r->platform), "%s", cfg->platform);
	r->cfg = cfg;
	r->mirror_skip_ms = cfg->mirror_skip_ms;
	r->mirror_attempts = cfg->mirror_attempts;
	pthread_mutex_init(&r->lock, NULL);
	snprintf(r->scopes, sizeof(r->scopes), "repository:%s:%s", repo,
		 push ? "pull,push" : "pull");
	for (unsigned int i = 0; hc && i < hc->nmirrors && r->neps < MAX_ENDPOINTS - 1; i++) {
		struct endpoint *ep = &r->eps[r->neps++];

		snprintf(ep->base, sizeof(ep->base), "%s", hc->mirrors[i].url);
		memcpy(ep->headers, hc->mirrors[i].headers, sizeof(ep->headers));
		ep->nheaders = hc->mirrors[i].nheaders;
		ep->mirror = true;
	}
	/* Docker Hub's API lives on another name than its references */
	if (!strcmp(host, "docker.io"))
		origin = "registry-1.docker.io";
	snprintf(r->eps[r->neps].base, sizeof(r->eps[0].base), "%s://%s",
		 hc && hc->plain_http ? "http" : "https", origin);
	r->eps[r->neps].insecure = hc && hc->insecure;
	r->neps++;
	if (user && pass) {
		snprintf(r->user, sizeof(r->user), "%s", user);
		snprintf(r->pass, sizeof(r->pass), "%s", pass);
		r->creds = true;
	} else if (cfg->auth_file[0] && given_auth(cfg->auth_file, host, r)) {
		r->creds = true;
	} else {
		char path[PATH_MAX];
		void *buf;
		size_t len;

		be_docker_config_path(cfg, path, sizeof(path));
		if (sk_read_file(path, 1u << 20, &buf, &len) == 0) {
			/* a helper for the host, else the default store, else
			 * "auths" (also what is left when the helper has none) */
			ret = be_docker_auth(buf, len, host, r->user, sizeof(r->user), r->pass,
					     sizeof(r->pass), e);
			r->creds = ret == 0;
			if (ret == 0 || ret == -ENOENT)
				ret = be_docker_helper(buf, len, host, r->helper, sizeof(r->helper), e);
			free(buf);
			if (ret && ret != -ENOENT) {
				sk_err_prefix(e, "%s", path);
				goto fail;
			}
		}
	}
	ret = be_http_new(&cfg->http, &r->http, e);
	if (ret)
		goto fail;
	*out = r;
	return 0;
fail:
	pthread_mutex_destroy(&r->lock);
	free(r);
	return ret;
}

void be_reg_close(struct be_reg *r)
{
	if (!r)
		return;
	be_http_destroy(r->http);
	pthread_mutex_destroy(&r->lock);
	explicit_bzero(r->pass, sizeof(r->pass));
	free(r);
}

int be_reg_add_scope(struct be_reg *r, const char *repo)
{
	size_t n = strlen(r->scopes);
	int w;

	pthread_mutex_lock(&r->lock);
	w = snprintf(r->scopes + n, sizeof(r->scopes) - n, " repository:%s:pull", repo);
	if (w < 0 || (size_t)w >= sizeof(r->scopes) - n)
		r->scopes[n] = '\0';
	/* the token we hold does not cover it */
	r->authz[0] = '\0';
	r->authz_gen++;
	pthread_mutex_unlock(&r->lock);
	return w < 0 || (size_t)w >= sizeof(r->scopes) - n ? -E2BIG : 0;
}

static int b64_encode(const char *in, char *out, size_t outlen)
{
	size_t n = strlen(in);

	if ((n + 2) / 3 * 4 + 1 > outlen)
		return -E2BIG;
	EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)in, (int)n);
	return 0;
}

static int basic_header(const struct be_reg *r, char *out, size_t outlen)
{
	char up[sizeof(r->user) + sizeof(r->pass)], b64[sizeof(up) / 3 * 4 + 8];

	snprintf(up, sizeof(up), "%s:%s", r->user, r->pass);
	if (b64_encode(up, b64, sizeof(b64)))
		return -E2BIG;
	if (snprintf(out, outlen, "Authorization: Basic %s", b64) >= (int)outlen)
		return -E2BIG;
	return 0;
}

/* realm?service=S&scope=A&scope=B, every value escaped */
static int token_url(struct be_reg *r, const struct be_challenge *c, char *out,
		     size_t outlen)
{
	CURL *esc = curl_easy_init();
	size_t n;
	char scopes[sizeof(r->scopes)], *save = NULL;
	int ret = 0;

	if (!esc)
		return -ENOMEM;
	n = (size_t)snprintf(out, outlen, "%s%c", c->realm, strchr(c->realm, '?') ? '&' : '?');
	if (c->service[0]) {
		char *s = curl_easy_escape(esc, c->service, 0);

		n += (size_t)snprintf(out + SK_MIN(n, outlen), outlen - SK_MIN(n, outlen),
				      "service=%s", s ? s : "");
		curl_free(s);
	}
	memcpy(scopes, r->scopes, sizeof(scopes));
	for (char *sc = strtok_r(scopes, " ", &save); sc; sc = strtok_r(NULL, " ", &save)) {
		char *s = curl_easy_escape(esc, sc, 0);

		n += (size_t)snprintf(out + SK_MIN(n, outlen), outlen - SK_MIN(n, outlen),
				      "&scope=%s", s ? s : "");
		curl_free(s);
	}
	if (n >= outlen)
		ret = -ENAMETOOLONG;
	curl_easy_cleanup(esc);
	return ret;
}

/* The origin endpoint: pushes never go through mirrors. */
static struct endpoint *origin(struct be_reg *r)
{
	return &r->eps[r->neps - 1];
}

/*
 * be_http_req.insecure of every request: TLS to the URL actually
 * requested goes unverified when the configuration says so for its host
 * (the origin's own setting covers the name its API lives on, Docker
 * Hub's registry-1.docker.io), so a redirect to another host is verified.
 */
static bool reg_insecure(const void *arg, const char *url)
{
	struct be_reg *r = (struct be_reg *)arg;
	const struct endpoint *o = origin(r);
	char a[300], b[300];

	if (o->insecure && !be_url_hostport(url, a, sizeof(a)) &&
	    !be_url_hostport(o->base, b, sizeof(b)) && !strcasecmp(a, b))
		return true;
	return be_config_insecure(r->cfg, url);
}

/* The host name (no port) of an http(s) URL, and whether it is https. */
static int url_host(const char *url, char *host, size_t len, bool *https)
{
	CURLU *u;
	char *h = NULL, *sch = NULL;
	int ret = -EINVAL;

	/* spelled out: curl would also read "https:/h" or "https:h" */
	if (strncasecmp(url, "https://", 8) && strncasecmp(url, "http://", 7))
		return -EINVAL;
	u = curl_url();
	if (u && !curl_url_set(u, CURLUPART_URL, url, 0) &&
	    !curl_url_get(u, CURLUPART_HOST, &h, 0) &&
	    !curl_url_get(u, CURLUPART_SCHEME, &sch, 0) &&
	    (!strcasecmp(sch, "https") || !strcasecmp(sch, "http"))) {
		*https = !strcasecmp(sch, "https");
		ret = snprintf(host, len, "%s", h) < (int)len ? 0 : -ENAMETOOLONG;
	}
	curl_free(h);
	curl_free(sch);
	curl_url_cleanup(u);
	return ret;
}

/* Whether realm is entry, or entry followed by a query. */
static bool realm_is(const char *realm, const char *entry)
{
	size_t n = strlen(entry);

	return n && !strncmp(realm, entry, n) && (realm[n] == '\0' || realm[n] == '?');
}

bool be_realm_trusted(const char *registry, const char *host,
		      const struct be_host_cfg *hc, const char *realm)
{
	char rh[256], gh[256];
	bool rs, gs;

	for (unsigned int i = 0; hc && i < hc->ntoken_realms && i < BE_TOKEN_REALMS; i++)
		if (realm_is(realm, hc->token_realms[i]))
			return true;
	/* Docker Hub's token service lives on a name of its own */
	if (!strcasecmp(host, "docker.io") && realm_is(realm, "https://auth.docker.io/token"))
		return true;
	if (url_host(realm, rh, sizeof(rh), &rs) || url_host(registry, gh, sizeof(gh), &gs))
		return false;
	/* the registry's host, any port (a token service often runs next
	 * to it), never plain http when the registry speaks https */
	return !strcasecmp(rh, gh) && (rs || !gs);
}

int be_parse_token(const void *buf, size_t len, char *tok, size_t toklen,
		   int64_t *ttl)
{
	json_t *j = json_loadb(buf, len, 0, NULL), *v;
	const char *t;
	size_t n;
	int ret = -EPROTO;

	if (toklen)
		tok[0] = '\0';
	*ttl = 60;
	if (!json_is_object(j))
		goto out;
	t = json_string_value(json_object_get(j, "token"));
	if (!t || !*t)
		t = json_string_value(json_object_get(j, "access_token"));
	if (!t || !*t || (n = strlen(t)) >= toklen)
		goto out;
	/* it becomes a header value: printable ASCII only */
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)t[i] < 0x21 || (unsigned char)t[i] > 0x7e)
			goto out;
	v = json_object_get(j, "expires_in");
	if (json_is_integer(v))
		*ttl = json_integer_value(v);
	/* too short to be meant (the spec's floor is 60); a day at most, a
	 * 401 asks again anyway */
	*ttl = SK_MAX(SK_MIN(*ttl, (int64_t)86400), (int64_t)10);
	memcpy(tok, t, n + 1);
	ret = 0;
out:
	json_decref(j);
	return ret;
}

/*
 * Called with r->lock held: a fresh bearer token for the challenge, by
 * deadline (0: the configured read deadline from now, so that a token
 * fetch never holds the lock, and the readers waiting on it, longer).
 */
static int fetch_token(struct be_reg *r, const struct be_challenge *c,
		       double deadline, struct sk_err *e)
{
	struct be_http_req rq = { 0 };
	struct be_http_resp rs;
	char url[2048], basic[TOKEN_MAX], tok[TOKEN_MAX + 1];
	int64_t ttl;
	int ret;

	if (strncmp(c->realm, "https://", 8) && strncmp(c->realm, "http://", 7)) {
		sk_err_set(e, "%s: token realm \"%.200s\" is not an http(s) URL", r->host, c->realm);
		return -EPROTO;
	}
	/* the user's credentials go only where they are meant to: a realm
	 * elsewhere, named by a registry, a mirror or whoever sits on a
	 * plain-http path, may have an anonymous token at most */
	if (r->creds && !be_realm_trusted(origin(r)->base, r->host,
					  be_config_host(r->cfg, r->host), c->realm)) {
		sk_err_set(e, "%s: credentials not sent to token realm \"%.200s\" (%s); if that service is meant to have them, list it in \"token_realms\" of registry \"%s\" (skiffd.json \"backend\", \"registries\"; skiff push and convert: --token-realm)",
			   r->host, c->realm,
			   !strncmp(c->realm, "http://", 7) && !strncmp(origin(r)->base, "https://", 8) ?
			   "plain http from an https registry" : "not the registry's host",
			   r->host);
		return -EACCES;
	}
	ret = token_url(r, c, url, sizeof(url));
	if (ret) {
		sk_err_set(e, "%s: token URL too long", r->host);
		return ret;
	}
	rq.url = url;
	rq.insecure = reg_insecure;
	rq.insecure_arg = r;
	rq.max_body = 1u << 20;
	rq.deadline = deadline ? deadline : be_read_deadline(r->cfg, 0);
	if (r->creds) {
		if (basic_header(r, basic, sizeof(basic))) {
			sk_err_set(e, "%s: credentials too long", r->host);
			return -E2BIG;
		}
		rq.headers[rq.nheaders++] = basic;
	}
	ret = be_http_do(r->http, &rq, &rs, e);
	explicit_bzero(basic, sizeof(basic));
	if (ret) {
		sk_err_prefix(e, "%s: token service", r->host);
		return ret;
	}
	if (rs.status != 200) {
		sk_err_set(e, "%s: token service answered HTTP %ld%s", r->host, rs.status,
			   rs.status == 401 || rs.status == 403 ?
			   (r->creds ? " (credentials refused)" : " (credentials needed: docker login, or the Docker config file)") : "");
		ret = rs.status == 401 || rs.status == 403 ? -EACCES : -EPROTO;
		goto out;
	}
	ret = be_parse_token(rs.body ? rs.body : "", rs.body_len, tok, sizeof(tok), &ttl);
	if (ret) {
		sk_err_set(e, "%s: the token service's answer has no usable token", r->host);
		goto out;
	}
	snprintf(r->authz, sizeof(r->authz), "Authorization: Bearer %s", tok);
	explicit_bzero(tok, sizeof(tok));
	/* renew a little early: a request may take time to arrive */
	r->authz_expiry = sk_now() + (double)ttl - SK_MIN((double)ttl / 10, 10.0);
	r->authz_gen++;
out:
	be_http_resp_free(&rs);
	return ret;
}

/*
 * Called with r->lock held before credentials are first used: runs the
 * credential helper, once. A helper that has none leaves the client
 * anonymous (or with the "auths" entry's credentials, if any); one that
 * fails fails this and every later authentication the same way.
 */
static int helper_creds(struct be_reg *r, struct sk_err *e)
{
	char user[sizeof(r->user)], pass[sizeof(r->pass)];
	int ret;

	if (!r->helper[0])
		return 0;
	if (r->helper_done) {
		if (r->helper_ret)
			sk_err_set(e, "%s", r->helper_err);
		return r->helper_ret;
	}
	ret = be_cred_helper_get(r->helper, be_cred_server(r->host), r->cfg->cred_helper_timeout_ms,
				 user, sizeof(user), pass, sizeof(pass), e);
	if (ret == 0) {
		memcpy(r->user, user, sizeof(user));
		memcpy(r->pass, pass, sizeof(pass));
		r->creds = true;
	} else if (ret == -ENOENT) {
		ret = 0;
	} else {
		sk_err_prefix(e, "%s", r->host);
		memcpy(r->helper_err, e->msg, sizeof(r->helper_err));
	}
	explicit_bzero(pass, sizeof(pass));
	r->helper_done = true;
	r->helper_ret = ret;
	return ret;
}

/* After a 401: answers the challenge unless another thread already did. */
static int authenticate(struct be_reg *r, const char *www_auth, uint64_t gen,
			double deadline, struct sk_err *e)
{
	struct be_challenge c;
	int ret = 0;

	if (be_parse_www_auth(www_auth, &c)) {
		sk_err_set(e, "%s: 401 without a usable WWW-Authenticate", r->host);
		return -EACCES;
	}
	pthread_mutex_lock(&r->lock);
	if (r->authz_gen != gen)
		goto out;	/* someone renewed it meanwhile: use theirs */
	ret = helper_creds(r, e);
	if (ret)
		goto out;
	if (!strcmp(c.scheme, "basic")) {
		if (!r->creds) {
			sk_err_set(e, "%s: the registry wants a user name and password (none in the Docker config file%s%s)",
				   r->host, r->helper[0] ? " nor from docker-credential-" : "", r->helper);
			ret = -EACCES;
			goto out;
		}
		ret = basic_header(r, r->authz, sizeof(r->authz));
		r->authz_expiry = 0;
		r->authz_gen++;
	} else if (!strcmp(c.scheme, "bearer")) {
		r->chal = c;
		ret = fetch_token(r, &c, deadline, e);
	} else {
		sk_err_set(e, "%s: unsupported auth scheme %s", r->host, c.scheme);
		ret = -EACCES;
	}
out:
	pthread_mutex_unlock(&r->lock);
	return ret;
}

/*
 * One request to an endpoint with the current credentials; a 401 gets
 * one round of authentication and a retry. The caller sets everything
 * in rq but the URL (path is appended to the endpoint) and auth.
 */
static int reg_do(struct be_reg *r, const struct endpoint *ep, const char *path,
		  struct be_http_req *rq, struct be_http_resp *rs,
		  struct sk_err *e)
{
	char url[2048], authz[sizeof(r->authz)];
	unsigned int base_headers = rq->nheaders;
	int ret;

	if (path[0] == '/') {
		if (snprintf(url, sizeof(url), "%s%s", ep->base, path) >= (int)sizeof(url))
			return -ENAMETOOLONG;
	} else if (snprintf(url, sizeof(url), "%s", path) >= (int)sizeof(url)) {
		return -ENAMETOOLONG;	/* an absolute upload location */
	}
	rq->url = url;
	rq->insecure = reg_insecure;
	rq->insecure_arg = r;
	for (unsigned int i = 0; i < ep->nheaders && rq->nheaders < BE_HTTP_MAX_HEADERS - 1; i++)
		rq->headers[rq->nheaders++] = ep->headers[i];
	for (int round = 0;; round++) {
		unsigned int n = rq->nheaders;
		uint64_t gen;

		pthread_mutex_lock(&r->lock);
		if (r->authz[0] && r->authz_expiry && sk_now() > r->authz_expiry &&
		    r->chal.realm[0]) {
			struct sk_err te;

			/* expired: renew before sending rather than after a 401 */
			if (fetch_token(r, &r->chal, rq->deadline, &te))
				r->authz[0] = '\0';
		}
		gen = r->authz_gen;
		memcpy(authz, r->authz, sizeof(authz));
		pthread_mutex_unlock(&r->lock);
		/* a mirror gets the registry's bearer token (scoped to the
		 * repository, short-lived) so that a proxying peer can pass
		 * it on, never the user's password */
		if (authz[0] && !(ep->mirror && !strncmp(authz, "Authorization: Basic", 20)))
			rq->headers[rq->nheaders++] = authz;
		ret = be_http_do(r->http, rq, rs, e);
		rq->nheaders = n;
		if (ret || rs->status != 401 || round == 1)
			break;
		ret = authenticate(r, rs->www_auth, gen, rq->deadline, e);
		be_http_resp_free(rs);
		if (ret)
			break;
	}
	rq->nheaders = base_headers;
	rq->url = NULL;
	return ret;
}

static int status_err(struct be_reg *r, const struct be_http_resp *rs,
		      const char *what, struct sk_err *e)
{
	const char *body = rs->body && rs->body_len < 300 ? rs->body : "";

	sk_err_set(e, "%s/%s: %s: HTTP %ld %s", r->host, r->repo, what, rs->status, body);
	switch (rs->status) {
	case 401:
	case 403:
		return -EACCES;
	case 404:
		return -ENOENT;
	default:
		return -EIO;
	}
}

/* Skips mirrors resting after a failure; the origin is always tried. */
static bool ep_usable(const struct endpoint *ep)
{
	return !ep->mirror || atomic_load(&ep->down_until_ms) <= now_ms();
}

static void ep_failed(struct be_reg *r, struct endpoint *ep)
{
	if (ep->mirror)
		atomic_store(&ep->down_until_ms, now_ms() + r->mirror_skip_ms);
}

/*
 * A read-only request through the mirrors then the origin: the first
 * 2xx answer wins; a mirror failing or not having it passes on.
 */
static int reg_read(struct be_reg *r, const char *path, bool origin_only,
		    struct be_http_req *rq, struct be_http_resp *rs,
		    struct sk_err *e)
{
	int ret = -EIO;

	for (unsigned int i = 0; i < r->neps; i++) {
		struct endpoint *ep = &r->eps[i];
		struct sk_err me;

		if (!ep_usable(ep) || (origin_only && ep->mirror))
			continue;
		rq->max_attempts = ep->mirror ? r->mirror_attempts : 0;
		ret = reg_do(r, ep, path, rq, rs, ep->mirror ? &me : e);
		if (!ep->mirror)
			return ret;
		if (!ret && rs->status >= 200 && rs->status < 300)
			return 0;
		if (ret || rs->status >= 500)
			ep_failed(r, ep);
		be_http_resp_free(rs);
	}
	return ret;
}

/*
 * GET of a whole object (mirrors first): 0 with a 200 answer in *rs (the
 * caller frees it) and the digest of its body in hex; other statuses are
 * errors named after what.
 */
static int get_whole(struct be_reg *r, const char *path, const char *what,
		     struct be_http_req *rq, struct be_http_resp *rs,
		     char hex[SK_HEX_LEN + 1], struct sk_err *e)
{
	uint8_t dg[SK_SHA256_LEN];
	int ret = reg_read(r, path, false, rq, rs, e);

	if (ret)
		return ret;
	if (rs->status != 200) {
		ret = status_err(r, rs, what, e);
		be_http_resp_free(rs);
		return ret;
	}
	sk_sha256(rs->body ? rs->body : "", rs->body_len, dg);
	sk_hex(dg, sizeof(dg), hex);
	return 0;
}

/* Moves the body of rs to the caller (an empty one as ""). */
static int take_body(struct be_http_resp *rs, char **buf, size_t *len)
{
	*buf = rs->body ? rs->body : strdup("");
	*len = rs->body_len;
	rs->body = NULL;
	return *buf ? 0 : -ENOMEM;
}

int be_reg_get_manifest(struct be_reg *r, const char *ref, char **buf,
			size_t *len, char mt[128], char hex[SK_HEX_LEN + 1],
			struct sk_err *e)
{
	struct be_http_req rq = { 0 };
	struct be_http_resp rs;
	char path[600];
	int ret;

	if (!strncmp(ref, "sha256:", 7) &&
	    be_manifest_cache_get(r->cfg->manifest_dir, ref + 7, buf, len) == 0) {
		snprintf(hex, SK_HEX_LEN + 1, "%s", ref + 7);
		mt[0] = '\0';	/* the JSON tells manifest from index */
		return 0;
	}
	snprintf(path, sizeof(path), "/v2/%s/manifests/%s", r->repo, ref);
	rq.headers[rq.nheaders++] = ACCEPT_MANIFESTS;
	rq.max_body = 4u << 20;
	ret = get_whole(r, path, ref, &rq, &rs, hex, e);
	if (ret)
		return ret;
	/* a digest reference, or the digest the registry names, must be the
	 * digest of what came */
	if ((!strncmp(ref, "sha256:", 7) && strcmp(ref + 7, hex)) ||
	    (!strncmp(rs.digest, "sha256:", 7) && strcmp(rs.digest + 7, hex))) {
		sk_err_set(e, "%s/%s: manifest %s: content digest sha256:%s does not match",
			   r->host, r->repo, ref, hex);
		ret = -EBADMSG;
		goto out;
	}
	snprintf(mt, 128, "%.127s", rs.content_type);
	mt[strcspn(mt, "; ")] = '\0';
	ret = take_body(&rs, buf, len);
	if (!ret)
		be_manifest_cache_put(r->cfg->manifest_dir, hex, *buf, *len);
out:
	be_http_resp_free(&rs);
	return ret;
}

int be_reg_resolve(struct be_reg *r, const char *ref, const char *platform,
		   struct be_image *img, struct sk_err *e)
{
	char *buf = NULL, mt[128], hex[SK_HEX_LEN + 1];
	const char *want = ref && *ref ? ref : "latest";
	struct be_desc d;
	size_t len;
	int ret;

	memset(img, 0, sizeof(*img));
	ret = be_reg_get_manifest(r, want, &buf, &len, mt, hex, e);
	if (ret)
		return ret;
	if (be_is_index(buf, len, mt)) {
		ret = be_index_pick(buf, len, NULL, platform ? platform : r->platform, &d, e);
		free(buf);
		buf = NULL;
		if (ret) {
			sk_err_prefix(e, "%s", want);
			return ret;
		}
		char dref[80];

		snprintf(dref, sizeof(dref), "sha256:%s", d.hex);
		ret = be_reg_get_manifest(r, dref, &buf, &len, mt, hex, e);
		if (ret)
			return ret;
	}
	ret = be_image_parse(buf, len, hex, want, img, e);
	if (ret) {
		sk_err_prefix(e, "%s/%s:%s", r->host, r->repo, want);
	}
	free(buf);
	return ret;
}

void be_reg_bad_range(struct be_reg *r, const char *hex, uint64_t off,
		      uint64_t len)
{
	pthread_mutex_lock(&r->lock);
	snprintf(r->bad[r->bad_next].hex, sizeof(r->bad[0].hex), "%s", hex);
	r->bad[r->bad_next].off = off;
	r->bad[r->bad_next].len = len;
	r->bad_next = (r->bad_next + 1) % BAD_RANGES;
	pthread_mutex_unlock(&r->lock);
}

/* Whether [off, off+len) of blob hex overlaps a range reported bad. */
static bool bad_overlap(struct be_reg *r, const char *hex, uint64_t off,
			uint64_t len)
{
	bool hit = false;

	pthread_mutex_lock(&r->lock);
	for (unsigned int i = 0; i < BAD_RANGES && !hit; i++)
		hit = r->bad[i].len && off < r->bad[i].off + r->bad[i].len &&
		      r->bad[i].off < off + len && !strcmp(r->bad[i].hex, hex);
	pthread_mutex_unlock(&r->lock);
	return hit;
}

int be_reg_blob_read(struct be_reg *r, const char *hex, uint64_t off,
		     void *buf, size_t len, struct sk_err *e)
{
	struct be_http_req rq = { 0 };
	struct be_http_resp rs;
	char path[600];
	int ret;

	snprintf(path, sizeof(path), "/v2/%s/blobs/sha256:%s", r->repo, hex);
	rq.ranged = true;
	rq.off = off;
	rq.len = len;
	rq.buf = buf;
	/* one deadline over mirrors, origin, tokens, retries, redirects */
	rq.deadline = be_read_deadline(r->cfg, len);
	ret = reg_read(r, path, bad_overlap(r, hex, off, len), &rq, &rs, e);
	if (!ret && rs.status != 200 && rs.status != 206)
		ret = status_err(r, &rs, hex, e);
	be_http_resp_free(&rs);
	return ret;
}

int be_reg_blob_get(struct be_reg *r, const char *hex, size_t max,
		    char **buf, size_t *len, struct sk_err *e)
{
	struct be_http_req rq = { 0 };
	struct be_http_resp rs;
	char path[600], got[SK_HEX_LEN + 1];
	int ret;

	snprintf(path, sizeof(path), "/v2/%s/blobs/sha256:%s", r->repo, hex);
	rq.max_body = max;
	ret = get_whole(r, path, hex, &rq, &rs, got, e);
	if (ret) {
		if (ret == -EMSGSIZE)
			sk_err_set(e, "%s/%s: blob sha256:%s: over %zu bytes", r->host,
				   r->repo, hex, max);
		return ret;
	}
	if (strcmp(got, hex)) {
		sk_err_set(e, "%s/%s: blob sha256:%s: content digest sha256:%s does not match",
			   r->host, r->repo, hex, got);
		ret = -EBADMSG;
	} else {
		ret = take_body(&rs, buf, len);
	}
	be_http_resp_free(&rs);
	return ret;
}

int be_reg_blob_exists(struct be_reg *r, const char *hex, uint64_t *size,
		       struct sk_err *e)
{
	struct be_http_req rq = { .method = "HEAD" };
	struct be_http_resp rs;
	char path[600];
	int ret;

	snprintf(path, sizeof(path), "/v2/%s/blobs/sha256:%s", r->repo, hex);
	ret = reg_do(r, origin(r), path, &rq, &rs, e);
	if (ret)
		return ret;
	if (rs.status == 200) {
		if (size)
			*size = rs.content_length < 0 ? 0 : (uint64_t)rs.content_length;
	} else {
		ret = rs.status == 404 ? -ENOENT : status_err(r, &rs, hex, e);
	}
	be_http_resp_free(&rs);
	return ret;
}

/* Cancels an upload session we do not use (best effort). */
static void upload_cancel(struct be_reg *r, const char *location)
{
	struct be_http_req rq = { .method = "DELETE", .max_attempts = 1 };
	struct be_http_resp rs;
	struct sk_err e;

	if (location[0] && !reg_do(r, origin(r), location, &rq, &rs, &e))
		be_http_resp_free(&rs);
}

int be_reg_blob_mount(struct be_reg *r, const char *hex, const char *from,
		      struct sk_err *e)
{
	struct be_http_req rq = { .method = "POST" };
	struct be_http_resp rs;
	char path[900];
	int ret;

	snprintf(path, sizeof(path), "/v2/%s/blobs/uploads/?mount=sha256:%s&from=%s",
		 r->repo, hex, from);
	ret = reg_do(r, origin(r), path, &rq, &rs, e);
	if (ret)
		return ret;
	if (rs.status == 201) {
		ret = 0;
	} else if (rs.status == 202) {
		/* not mountable: the registry opened an upload instead */
		upload_cancel(r, rs.location);
		ret = -ENOENT;
	} else {
		ret = status_err(r, &rs, "blob mount", e);
	}
	be_http_resp_free(&rs);
	return ret;
}

/* loc + "?digest=" or "&digest=" */
static int with_digest(const char *loc, const char *hex, char *out, size_t outlen)
{
	return snprintf(out, outlen, "%s%cdigest=sha256:%s", loc,
			strchr(loc, '?') ? '&' : '?', hex) < (int)outlen ? 0 : -ENAMETOOLONG;
}

int be_reg_blob_upload(struct be_reg *r, const char *hex, const void *data,
		       size_t len, size_t chunk, struct sk_err *e)
{
	struct be_http_req rq = { .method = "POST" };
	struct be_http_resp rs;
	char path[600], loc[2048], url[2200], range[64];
	int ret;

	snprintf(path, sizeof(path), "/v2/%s/blobs/uploads/", r->repo);
	ret = reg_do(r, origin(r), path, &rq, &rs, e);
	if (ret)
		return ret;
	if (rs.status != 202 || !rs.location[0]) {
		ret = status_err(r, &rs, "starting an upload", e);
		be_http_resp_free(&rs);
		return ret;
	}
	snprintf(loc, sizeof(loc), "%s", rs.location);
	be_http_resp_free(&rs);
	for (size_t off = 0; chunk && off < len; off += chunk) {
		size_t n = SK_MIN(chunk, len - off);
		struct be_http_req pq = { .method = "PATCH", .max_attempts = 1 };

		snprintf(range, sizeof(range), "Content-Range: %zu-%zu", off, off + n - 1);
		pq.headers[pq.nheaders++] = "Content-Type: application/octet-stream";
		pq.headers[pq.nheaders++] = range;
		pq.body = (const char *)data + off;
		pq.body_len = n;
		ret = reg_do(r, origin(r), loc, &pq, &rs, e);
		if (ret)
			goto cancel;
		if (rs.status != 202 || !rs.location[0]) {
			ret = status_err(r, &rs, "uploading a chunk", e);
			be_http_resp_free(&rs);
			goto cancel;
		}
		snprintf(loc, sizeof(loc), "%s", rs.location);
		be_http_resp_free(&rs);
	}
	struct be_http_req put = { .method = "PUT" };

	ret = with_digest(loc, hex, url, sizeof(url));
	if (ret)
		goto cancel;
	put.headers[put.nheaders++] = "Content-Type: application/octet-stream";
	if (!chunk) {
		put.body = len ? data : "";
		put.body_len = len;
	}
	ret = reg_do(r, origin(r), url, &put, &rs, e);
	if (ret)
		goto cancel;
	if (rs.status != 201)
		ret = status_err(r, &rs, "finishing an upload", e);
	be_http_resp_free(&rs);
	if (!ret)
		return 0;
cancel:
	upload_cancel(r, loc);
	return ret;
}

int be_reg_manifest_put(struct be_reg *r, const char *ref, const char *mt,
			const void *buf, size_t len, struct sk_err *e)
{
	struct be_http_req rq = { .method = "PUT" };
	struct be_http_resp rs;
	char path[600], ct[200];
	int ret;

	snprintf(path, sizeof(path), "/v2/%s/manifests/%s", r->repo, ref);
	snprintf(ct, sizeof(ct), "Content-Type: %s", mt);
	rq.headers[rq.nheaders++] = ct;
	rq.body = buf;
	rq.body_len = len;
	ret = reg_do(r, origin(r), path, &rq, &rs, e);
	if (ret)
		return ret;
	if (rs.status != 201)
		ret = status_err(r, &rs, "putting the manifest", e);
	be_http_resp_free(&rs);
	return ret;
}
