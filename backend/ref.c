/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Image references: DIR[:TAG], http(s)://HOST[:PORT]/PATH[#TAG] and
 * docker://HOST[:PORT]/REPO[:TAG|@sha256:HEX]. A web server's URL keeps
 * its tag after '#', which URLs never send to the server and which a port
 * number cannot be mistaken for.
 */
#include "remote.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static bool valid_host(const char *h, size_t n)
{
	size_t i = 0, colon = n;

	if (n == 0)
		return false;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)h[i];

		if (c == ':') {
			if (colon != n)
				return false;
			colon = i;
		} else if (colon != n ? !isdigit(c) : !(isalnum(c) || c == '.' || c == '-')) {
			return false;
		}
	}
	/* a port has 1 to 5 digits; the name is not empty */
	return colon > 0 && (colon == n || (n - colon - 1 >= 1 && n - colon - 1 <= 5));
}

/* One path component of a repository name: runs of [a-z0-9] joined by
 * '.', '_', '__' or dashes. */
static bool valid_component(const char *c, size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t s = i;

		while (i < n && (islower((unsigned char)c[i]) || isdigit((unsigned char)c[i])))
			i++;
		if (i == s)
			return false;
		if (i == n)
			return true;
		if (c[i] == '.') {
			i++;
		} else if (c[i] == '_') {
			i++;
			if (i < n && c[i] == '_')
				i++;
		} else if (c[i] == '-') {
			while (i < n && c[i] == '-')
				i++;
		} else {
			return false;
		}
		if (i == n)
			return false;
	}
	return false;
}

static bool valid_repo(const char *r)
{
	size_t n = strlen(r);

	if (n == 0 || n >= 256)
		return false;
	for (const char *p = r;;) {
		const char *sl = strchr(p, '/');
		size_t len = sl ? (size_t)(sl - p) : strlen(p);

		if (!valid_component(p, len))
			return false;
		if (!sl)
			return true;
		p = sl + 1;
	}
}

static bool valid_tag(const char *t)
{
	size_t n = strlen(t);

	if (n == 0 || n > 128 || !(isalnum((unsigned char)t[0]) || t[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!isalnum((unsigned char)t[i]) && !strchr("_.-", t[i]))
			return false;
	return true;
}

static bool valid_digest(const char *d)
{
	return !strncmp(d, "sha256:", 7) && sk_is_hex_digest(d + 7);
}

static int parse_docker(const char *s, struct be_ref *r, struct sk_err *e)
{
	const char *slash = strchr(s, '/'), *at, *rest;
	char repo[512];
	char *colon, *lastslash;

	if (!slash || !valid_host(s, (size_t)(slash - s)) ||
	    (size_t)(slash - s) >= sizeof(r->host)) {
		sk_err_set(e, "docker://%s: want docker://HOST[:PORT]/REPO[:TAG|@sha256:HEX]", s);
		return -EINVAL;
	}
	memcpy(r->host, s, (size_t)(slash - s));
	r->host[slash - s] = '\0';
	rest = slash + 1;
	if (strlen(rest) >= sizeof(repo)) {
		sk_err_set(e, "docker://%s: name too long", s);
		return -ENAMETOOLONG;
	}
	strcpy(repo, rest);
	at = strchr(repo, '@');
	if (at) {
		if (!valid_digest(at + 1)) {
			sk_err_set(e, "docker://%s: the digest must be sha256: and 64 lowercase hex digits", s);
			return -EINVAL;
		}
		strcpy(r->digest, at + 1);
		repo[at - repo] = '\0';
	}
	colon = strrchr(repo, ':');
	lastslash = strrchr(repo, '/');
	if (colon && (!lastslash || colon > lastslash)) {
		*colon = '\0';
		if (!valid_tag(colon + 1)) {
			sk_err_set(e, "docker://%s: bad tag \"%s\"", s, colon + 1);
			return -EINVAL;
		}
		snprintf(r->tag, sizeof(r->tag), "%s", colon + 1);
	}
	if (!valid_repo(repo)) {
		sk_err_set(e, "docker://%s: bad repository name \"%s\" (lowercase letters, digits, separators . _ - /)",
			   s, repo);
		return -EINVAL;
	}
	strcpy(r->repo, repo);
	snprintf(r->loc, sizeof(r->loc), "%s/%s", r->host, r->repo);
	return 0;
}

static int parse_http(const char *s, struct be_ref *r, struct sk_err *e)
{
	const char *hs = strstr(s, "://") + 3, *hash = strchr(s, '#');
	size_t n = hash ? (size_t)(hash - s) : strlen(s), hl;

	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '?') {
			sk_err_set(e, "%s: URL with a space, control byte or query", s);
			return -EINVAL;
		}
	hl = strcspn(hs, "/#");
	if (!valid_host(hs, hl) || hl >= sizeof(r->host)) {
		sk_err_set(e, "%s: want http(s)://HOST[:PORT]/PATH[#TAG]", s);
		return -EINVAL;
	}
	memcpy(r->host, hs, hl);
	r->host[hl] = '\0';
	while (n > (size_t)(hs - s) + hl && s[n - 1] == '/')
		n--;
	if (n >= sizeof(r->loc)) {
		sk_err_set(e, "%s: URL too long", s);
		return -ENAMETOOLONG;
	}
	memcpy(r->loc, s, n);
	r->loc[n] = '\0';
	if (hash && !strncmp(hash + 1, "sha256:", 7)) {
		if (!valid_digest(hash + 1)) {
			sk_err_set(e, "%s: the digest must be sha256: and 64 lowercase hex digits", s);
			return -EINVAL;
		}
		strcpy(r->digest, hash + 1);
	} else if (hash) {
		if (!valid_tag(hash + 1)) {
			sk_err_set(e, "%s: bad tag \"%s\"", s, hash + 1);
			return -EINVAL;
		}
		snprintf(r->tag, sizeof(r->tag), "%s", hash + 1);
	}
	return 0;
}

int be_ref_pin(const struct be_ref *r, const char *hex, char *out,
	       size_t outlen)
{
	int n;

	if (strlen(hex) != SK_HEX_LEN)
		return -EINVAL;
	if (r->kind == BE_REF_DOCKER)
		n = snprintf(out, outlen, "docker://%s@sha256:%s", r->loc, hex);
	else if (r->kind == BE_REF_HTTP)
		n = snprintf(out, outlen, "%s#sha256:%s", r->loc, hex);
	else
		return -EINVAL;
	return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

int be_ref_parse(const char *s, struct be_ref *r, struct sk_err *e)
{
	int ret;

	memset(r, 0, sizeof(*r));
	if (!strncmp(s, "docker://", 9)) {
		r->kind = BE_REF_DOCKER;
		return parse_docker(s + 9, r, e);
	}
	if (!strncmp(s, "http://", 7) || !strncmp(s, "https://", 8)) {
		r->kind = BE_REF_HTTP;
		return parse_http(s, r, e);
	}
	if (strstr(s, "://")) {
		sk_err_set(e, "%s: unknown scheme (use a directory, http://, https:// or docker://)", s);
		return -EINVAL;
	}
	r->kind = BE_REF_LOCAL;
	ret = be_ref_split(s, r->loc, sizeof(r->loc), r->tag, sizeof(r->tag));
	if (ret)
		sk_err_set(e, "%s: %s", s, strerror(-ret));
	return ret;
}
