/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Network configuration (the "backend" object of skiffd.json) and
 * credentials from a Docker config file. Both are JSON we check field by
 * field: a wrong type or an unknown key is an error with its name, never
 * silently ignored.
 */
#include "remote.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void be_config_defaults(struct be_config *c)
{
	memset(c, 0, sizeof(*c));
	be_http_opts_defaults(&c->http);
	strcpy(c->platform, "linux/amd64");
	c->mirror_skip_ms = 30000;
	c->mirror_attempts = 2;
	c->cred_helper_timeout_ms = 10000;
	c->read_deadline_ms = 30000;
}

double be_read_deadline(const struct be_config *c, uint64_t len)
{
	/* per MiB begun: a stalled server is cut after the base time, a
	 * large read (an 8 MiB piece of a bootstrap, a big chunk table) on
	 * a slow link still gets its time */
	uint64_t mib = len ? (len - 1) / (1u << 20) + 1 : 1;

	return c->read_deadline_ms ? sk_now() + c->read_deadline_ms / 1000.0 * (double)mib : 0;
}

void be_config_free(struct be_config *c)
{
	for (unsigned int i = 0; i < c->nhosts; i++)
		free(c->hosts[i].mirrors);
	free(c->hosts);
	c->hosts = NULL;
	c->nhosts = 0;
}

const struct be_host_cfg *be_config_host(const struct be_config *c,
					 const char *host)
{
	for (unsigned int i = 0; c && i < c->nhosts; i++)
		if (!strcasecmp(c->hosts[i].host, host))
			return &c->hosts[i];
	return NULL;
}

bool be_config_insecure(const void *cfg, const char *url)
{
	const struct be_config *c = cfg;
	const struct be_host_cfg *hc;
	char hp[300], mhp[300];

	if (!c || be_url_hostport(url, hp, sizeof(hp)))
		return false;
	hc = be_config_host(c, hp);
	if (hc && hc->insecure)
		return true;
	/* a mirror is configured by its URL, not as a host */
	for (unsigned int i = 0; i < c->nhosts; i++)
		for (unsigned int k = 0; k < c->hosts[i].nmirrors; k++) {
			const struct be_mirror *m = &c->hosts[i].mirrors[k];

			if (m->insecure && !be_url_hostport(m->url, mhp, sizeof(mhp)) &&
			    !strcasecmp(hp, mhp))
				return true;
		}
	return false;
}

static int get_uint(json_t *v, const char *key, unsigned int lo,
		    unsigned int hi, unsigned int *out, struct sk_err *e)
{
	if (!json_is_integer(v) || json_integer_value(v) < lo ||
	    json_integer_value(v) > hi) {
		sk_err_set(e, "\"%s\" must be an integer from %u to %u", key, lo, hi);
		return -EINVAL;
	}
	*out = (unsigned int)json_integer_value(v);
	return 0;
}

static int get_str(json_t *v, const char *key, char *out, size_t len,
		   struct sk_err *e)
{
	const char *s = json_string_value(v);

	if (!s || strlen(s) >= len) {
		sk_err_set(e, "\"%s\" must be a string shorter than %zu bytes", key, len);
		return -EINVAL;
	}
	strcpy(out, s);
	return 0;
}

static int get_bool(json_t *v, const char *key, bool *out, struct sk_err *e)
{
	if (!json_is_boolean(v)) {
		sk_err_set(e, "\"%s\" must be true or false", key);
		return -EINVAL;
	}
	*out = json_is_true(v);
	return 0;
}

static int parse_mirror(json_t *j, struct be_mirror *m, struct sk_err *e)
{
	const char *key;
	json_t *v;
	int ret = 0;

	if (!json_is_object(j)) {
		sk_err_set(e, "a mirror must be an object {\"url\": ...}");
		return -EINVAL;
	}
	json_object_foreach(j, key, v) {
		if (!strcmp(key, "url")) {
			ret = get_str(v, "url", m->url, sizeof(m->url), e);
			if (!ret && strncmp(m->url, "http://", 7) &&
			    strncmp(m->url, "https://", 8)) {
				sk_err_set(e, "mirror \"url\" must start with http:// or https://");
				ret = -EINVAL;
			}
			/* paths are appended: no trailing slash */
			for (size_t n = strlen(m->url); !ret && n > 8 && m->url[n - 1] == '/'; n--)
				m->url[n - 1] = '\0';
		} else if (!strcmp(key, "insecure")) {
			ret = get_bool(v, "insecure", &m->insecure, e);
		} else if (!strcmp(key, "headers")) {
			const char *hk;
			json_t *hv;

			if (!json_is_object(v)) {
				sk_err_set(e, "mirror \"headers\" must be an object of strings");
				return -EINVAL;
			}
			json_object_foreach(v, hk, hv) {
				const char *s = json_string_value(hv);

				if (!s || m->nheaders == BE_MIRROR_HEADERS ||
				    strpbrk(hk, ": \r\n") || strpbrk(s, "\r\n") || !*hk ||
				    snprintf(m->headers[m->nheaders], sizeof(m->headers[0]),
					     "%s: %s", hk, s) >= (int)sizeof(m->headers[0])) {
					sk_err_set(e, "mirror header \"%s\": at most %d headers, names without ':' or spaces, string values without line breaks",
						   hk, BE_MIRROR_HEADERS);
					return -EINVAL;
				}
				m->nheaders++;
			}
		} else {
			sk_err_set(e, "mirror: unknown key \"%s\"", key);
			return -EINVAL;
		}
		if (ret)
			return ret;
	}
	if (!m->url[0]) {
		sk_err_set(e, "a mirror needs a \"url\"");
		return -EINVAL;
	}
	return 0;
}

static int parse_host(const char *name, json_t *j, struct be_host_cfg *h,
		      struct sk_err *e)
{
	const char *key;
	json_t *v;
	int ret = 0;

	if (!json_is_object(j) || strlen(name) >= sizeof(h->host) || !*name) {
		sk_err_set(e, "registry \"%s\": must be an object under a HOST[:PORT] key", name);
		return -EINVAL;
	}
	strcpy(h->host, name);
	json_object_foreach(j, key, v) {
		if (!strcmp(key, "plain_http")) {
			ret = get_bool(v, key, &h->plain_http, e);
		} else if (!strcmp(key, "insecure")) {
			ret = get_bool(v, key, &h->insecure, e);
		} else if (!strcmp(key, "mirrors")) {
			if (!json_is_array(v) || json_array_size(v) > 16) {
				sk_err_set(e, "\"mirrors\" must be an array of at most 16 objects");
				return -EINVAL;
			}
			h->mirrors = calloc(json_array_size(v) + 1, sizeof(*h->mirrors));
			if (!h->mirrors)
				return -ENOMEM;
			for (size_t i = 0; i < json_array_size(v); i++) {
				ret = parse_mirror(json_array_get(v, i), &h->mirrors[i], e);
				if (ret)
					break;
				h->nmirrors++;
			}
		} else if (!strcmp(key, "token_realms")) {
			if (!json_is_array(v) || json_array_size(v) > BE_TOKEN_REALMS) {
				sk_err_set(e, "\"token_realms\" must be an array of at most %d URLs",
					   BE_TOKEN_REALMS);
				return -EINVAL;
			}
			for (size_t i = 0; !ret && i < json_array_size(v); i++) {
				char *u = h->token_realms[h->ntoken_realms];

				ret = get_str(json_array_get(v, i), "token_realms", u,
					      sizeof(h->token_realms[0]), e);
				if (!ret && strncmp(u, "https://", 8) && strncmp(u, "http://", 7)) {
					sk_err_set(e, "\"token_realms\": \"%s\" is not an http(s) URL", u);
					ret = -EINVAL;
				}
				if (!ret)
					h->ntoken_realms++;
			}
		} else {
			sk_err_set(e, "registry \"%s\": unknown key \"%s\"", name, key);
			ret = -EINVAL;
		}
		if (ret) {
			sk_err_prefix(e, "registry \"%s\"", name);
			return ret;
		}
	}
	return 0;
}

int be_config_parse(struct json_t *obj, struct be_config *c, struct sk_err *e)
{
	const char *key;
	json_t *v;
	int ret = 0;

	if (!json_is_object(obj)) {
		sk_err_set(e, "\"backend\" must be an object");
		return -EINVAL;
	}
	json_object_foreach(obj, key, v) {
		struct be_http_opts *o = &c->http;

		if (!strcmp(key, "connect_timeout_ms"))
			ret = get_uint(v, key, 100, 600000, &o->connect_timeout_ms, e);
		else if (!strcmp(key, "low_speed_time"))
			ret = get_uint(v, key, 1, 3600, &o->low_speed_time_s, e);
		else if (!strcmp(key, "low_speed_limit"))
			ret = get_uint(v, key, 1, 1u << 30, &o->low_speed_limit, e);
		else if (!strcmp(key, "max_attempts"))
			ret = get_uint(v, key, 1, 100, &o->max_attempts, e);
		else if (!strcmp(key, "backoff_ms"))
			ret = get_uint(v, key, 1, 600000, &o->backoff_ms, e);
		else if (!strcmp(key, "backoff_max_ms"))
			ret = get_uint(v, key, 1, 600000, &o->backoff_max_ms, e);
		else if (!strcmp(key, "retry_after_max_ms"))
			ret = get_uint(v, key, 0, 3600000, &o->retry_after_max_ms, e);
		else if (!strcmp(key, "max_connections"))
			ret = get_uint(v, key, 1, 1024, &o->max_host_connections, e);
		else if (!strcmp(key, "ca_file"))
			ret = get_str(v, key, o->ca_file, sizeof(o->ca_file), e);
		else if (!strcmp(key, "platform"))
			ret = get_str(v, key, c->platform, sizeof(c->platform), e);
		else if (!strcmp(key, "docker_config"))
			ret = get_str(v, key, c->docker_config, sizeof(c->docker_config), e);
		else if (!strcmp(key, "cred_helper_timeout_ms"))
			ret = get_uint(v, key, 100, 600000, &c->cred_helper_timeout_ms, e);
		else if (!strcmp(key, "mirror_skip_ms"))
			ret = get_uint(v, key, 0, 86400000, &c->mirror_skip_ms, e);
		else if (!strcmp(key, "mirror_attempts"))
			ret = get_uint(v, key, 1, 100, &c->mirror_attempts, e);
		else if (!strcmp(key, "read_deadline_ms"))
			ret = get_uint(v, key, 100, 86400000, &c->read_deadline_ms, e);
		else if (!strcmp(key, "registries")) {
			const char *hk;
			json_t *hv;

			if (!json_is_object(v)) {
				sk_err_set(e, "\"registries\" must be an object keyed by HOST[:PORT]");
				return -EINVAL;
			}
			be_config_free(c);
			c->hosts = calloc(json_object_size(v) + 1, sizeof(*c->hosts));
			if (!c->hosts)
				return -ENOMEM;
			json_object_foreach(v, hk, hv) {
				ret = parse_host(hk, hv, &c->hosts[c->nhosts], e);
				c->nhosts++;	/* counted even if bad: free() owns it */
				if (ret)
					break;
			}
		} else {
			sk_err_set(e, "\"backend\": unknown key \"%s\"", key);
			ret = -EINVAL;
		}
		if (ret)
			return ret;
	}
	if (c->http.backoff_max_ms < c->http.backoff_ms)
		c->http.backoff_max_ms = c->http.backoff_ms;
	return 0;
}

void be_docker_config_path(const struct be_config *c, char *out, size_t len)
{
	const char *d = getenv("DOCKER_CONFIG"), *home = getenv("HOME");

	if (c && c->docker_config[0])
		snprintf(out, len, "%s", c->docker_config);
	else if (d && *d)
		snprintf(out, len, "%s/config.json", d);
	else
		snprintf(out, len, "%s/.docker/config.json", home && *home ? home : "/root");
}

/* "https://HOST/v1/" and "HOST" name the same registry. */
static bool key_names(const char *key, const char *host)
{
	size_t hl = strlen(host);
	const char *p = strstr(key, "://");

	p = p ? p + 3 : key;
	if (strncasecmp(p, host, hl))
		return false;
	return p[hl] == '\0' || p[hl] == '/';
}

/* Docker Hub goes by three names: references say docker.io, logins
 * record index.docker.io, the API lives on registry-1.docker.io. */
static bool auth_key_matches(const char *key, const char *host)
{
	if (key_names(key, host))
		return true;
	return !strcasecmp(host, "docker.io") &&
	       (key_names(key, "index.docker.io") || key_names(key, "registry-1.docker.io"));
}

const char *be_cred_server(const char *host)
{
	return strcasecmp(host, "docker.io") ? host : "https://index.docker.io/v1/";
}

/* A helper name becomes part of a program name looked up in PATH: no
 * slash (that would make it a path), nothing unprintable. */
static bool helper_name_ok(const char *n, size_t max)
{
	size_t len = strlen(n);

	if (!len || len >= max)
		return false;
	for (; *n; n++)
		if (*n == '/' || (unsigned char)*n <= ' ' || *n == 0x7f)
			return false;
	return true;
}

int be_docker_helper(const void *buf, size_t len, const char *host,
		     char *name, size_t nlen, struct sk_err *e)
{
	json_error_t je;
	json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je), *helpers, *store, *v;
	const char *key, *found = NULL;
	int ret = -ENOENT;

	if (!json_is_object(j)) {
		sk_err_set(e, "Docker config: %s", j ? "not an object" : je.text);
		json_decref(j);
		return -EINVAL;
	}
	helpers = json_object_get(j, "credHelpers");
	store = json_object_get(j, "credsStore");
	if ((helpers && !json_is_object(helpers)) || (store && !json_is_string(store))) {
		sk_err_set(e, "Docker config: \"credHelpers\" must be an object of strings, \"credsStore\" a string");
		ret = -EINVAL;
		goto out;
	}
	/* a helper for this very registry wins over the default store */
	json_object_foreach(helpers, key, v) {
		if (!auth_key_matches(key, host))
			continue;
		found = json_string_value(v);
		if (!found) {
			sk_err_set(e, "Docker config: \"credHelpers\" of %s is not a string", key);
			ret = -EINVAL;
			goto out;
		}
		break;
	}
	if (!found)
		found = json_string_value(store);
	if (!found || !*found)
		goto out;	/* "" means none, as for docker */
	if (!helper_name_ok(found, nlen)) {
		sk_err_set(e, "Docker config: credential helper name \"%.100s\" for %s: want a name without '/', spaces or control characters, shorter than %zu bytes",
			   found, host, nlen);
		ret = -EINVAL;
		goto out;
	}
	strcpy(name, found);
	ret = 0;
out:
	json_decref(j);
	return ret;
}

static int b64_decode(const char *in, char *out, size_t outlen)
{
	size_t n = strlen(in), pad = 0;
	int got;

	if (n == 0 || n % 4 || n / 4 * 3 >= outlen)
		return -EINVAL;
	got = EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)in, (int)n);
	if (got < 0)
		return -EINVAL;
	if (in[n - 1] == '=')
		pad++;
	if (in[n - 2] == '=')
		pad++;
	out[(size_t)got - pad] = '\0';
	return (int)((size_t)got - pad);
}

int be_docker_auth(const void *buf, size_t len, const char *host,
		   char *user, size_t ulen, char *pass, size_t plen,
		   struct sk_err *e)
{
	json_error_t je;
	json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je), *auths, *v;
	const char *key;
	int ret = -ENOENT;

	if (!json_is_object(j)) {
		sk_err_set(e, "Docker config: %s", j ? "not an object" : je.text);
		json_decref(j);
		return -EINVAL;
	}
	auths = json_object_get(j, "auths");
	if (auths && !json_is_object(auths)) {
		sk_err_set(e, "Docker config: \"auths\" is not an object");
		ret = -EINVAL;
		goto out;
	}
	json_object_foreach(auths, key, v) {
		const char *a = json_string_value(json_object_get(v, "auth"));
		const char *u = json_string_value(json_object_get(v, "username"));
		const char *p = json_string_value(json_object_get(v, "password"));
		char dec[1024], *colon;
		int n;

		if (!json_is_object(v) || !auth_key_matches(key, host))
			continue;
		if (a && *a) {
			n = b64_decode(a, dec, sizeof(dec));
			colon = n > 0 ? memchr(dec, ':', (size_t)n) : NULL;
			if (!colon || memchr(dec, '\0', (size_t)n)) {
				sk_err_set(e, "Docker config: \"auth\" of %s is not base64 of user:password",
					   key);
				ret = -EINVAL;
				goto out;
			}
			*colon = '\0';
			u = dec;
			p = colon + 1;
		}
		if (!u || !p)
			continue;
		if (strlen(u) >= ulen || strlen(p) >= plen) {
			sk_err_set(e, "Docker config: credentials of %s too long", key);
			ret = -EINVAL;
			goto out;
		}
		strcpy(user, u);
		strcpy(pass, p);
		ret = 0;
		break;
	}
out:
	json_decref(j);
	return ret;
}
