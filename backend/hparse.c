/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Parsers of HTTP header values that steer the transport and the
 * registry client: Content-Range, Retry-After, WWW-Authenticate. Header
 * values come from servers we do not trust: every parser is bounded by the
 * NUL-terminated value it gets and rejects rather than guesses.
 */
#include "http.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

static const char *skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

/* Digits into *v without overflow; returns the end or NULL. */
static const char *parse_u64(const char *p, uint64_t *v)
{
	uint64_t x = 0;
	const char *s = p;

	while (*p >= '0' && *p <= '9') {
		if (x > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return NULL;
		x = x * 10 + (uint64_t)(*p - '0');
		p++;
	}
	if (p == s || p - s > 20)
		return NULL;
	*v = x;
	return p;
}

int be_parse_content_range(const char *v, uint64_t *first, uint64_t *last,
			   uint64_t *total)
{
	const char *p = skip_ws(v);

	if (strncasecmp(p, "bytes", 5) || (p[5] != ' ' && p[5] != '\t'))
		return -EINVAL;
	p = skip_ws(p + 5);
	p = parse_u64(p, first);
	if (!p || *p != '-')
		return -EINVAL;
	p = parse_u64(p + 1, last);
	if (!p || *p != '/' || *first > *last)
		return -EINVAL;
	p++;
	if (*p == '*') {
		*total = UINT64_MAX;
		p++;
	} else {
		p = parse_u64(p, total);
		if (!p || *last >= *total)
			return -EINVAL;
	}
	return *skip_ws(p) ? -EINVAL : 0;
}

int be_parse_retry_after(const char *v, time_t now, uint64_t *ms)
{
	const char *p = skip_ws(v), *end;
	struct tm tm;
	uint64_t s;
	time_t t;

	if (*p >= '0' && *p <= '9') {
		end = parse_u64(p, &s);
		if (!end || *skip_ws(end))
			return -EINVAL;
		*ms = s > UINT64_MAX / 1000 ? UINT64_MAX : s * 1000;
		return 0;
	}
	/* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
	memset(&tm, 0, sizeof(tm));
	end = strptime(p, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (!end || *skip_ws(end))
		return -EINVAL;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return -EINVAL;
	*ms = t > now ? (uint64_t)(t - now) * 1000 : 0;
	return 0;
}

static int is_tchar(int c)
{
	return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/*
 * One auth-param value (token or quoted-string) into out; returns the
 * position after it or NULL (-E2BIG through *err when it does not fit).
 */
static const char *param_value(const char *p, char *out, size_t outlen,
			       int *err)
{
	size_t n = 0;

	*err = -EINVAL;
	if (*p == '"') {
		p++;
		for (;;) {
			char c = *p++;

			if (c == '\0')
				return NULL;
			if (c == '"')
				break;
			if (c == '\\') {
				c = *p++;
				if (c == '\0')
					return NULL;
			}
			if ((unsigned char)c < 0x20 && c != '\t')
				return NULL;
			if (out) {
				if (n + 1 >= outlen) {
					*err = -E2BIG;
					return NULL;
				}
				out[n++] = c;
			}
		}
	} else {
		const char *s = p;

		/* token68 may end with '=' padding */
		while (is_tchar((unsigned char)*p) || *p == '/' || *p == ':' ||
		       *p == '=')
			p++;
		if (p == s)
			return NULL;
		if (out) {
			if ((size_t)(p - s) >= outlen) {
				*err = -E2BIG;
				return NULL;
			}
			memcpy(out, s, (size_t)(p - s));
			n = (size_t)(p - s);
		}
	}
	if (out)
		out[n] = '\0';
	*err = 0;
	return p;
}

int be_parse_www_auth(const char *v, struct be_challenge *c)
{
	const char *p = skip_ws(v), *s;
	size_t n;
	int err;

	memset(c, 0, sizeof(*c));
	s = p;
	while (is_tchar((unsigned char)*p))
		p++;
	n = (size_t)(p - s);
	if (n == 0 || n >= sizeof(c->scheme))
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		c->scheme[i] = (char)tolower((unsigned char)s[i]);
	if (*p && *p != ' ' && *p != '\t')
		return -EINVAL;
	p = skip_ws(p);
	while (*p) {
		char name[32];
		char *dst = NULL;
		size_t dlen = 0;

		s = p;
		while (is_tchar((unsigned char)*p))
			p++;
		n = (size_t)(p - s);
		if (n == 0) {
			if (*p == ',') {	/* empty list elements are allowed */
				p = skip_ws(p + 1);
				continue;
			}
			return -EINVAL;
		}
		const char *q = skip_ws(p);

		if (*q != '=') {
			/* a new challenge starts: we parse the first only */
			return 0;
		}
		if (n >= sizeof(name))
			return -EINVAL;
		memcpy(name, s, n);
		name[n] = '\0';
		if (!strcasecmp(name, "realm")) {
			dst = c->realm;
			dlen = sizeof(c->realm);
		} else if (!strcasecmp(name, "service")) {
			dst = c->service;
			dlen = sizeof(c->service);
		} else if (!strcasecmp(name, "scope")) {
			dst = c->scope;
			dlen = sizeof(c->scope);
		} else if (!strcasecmp(name, "error")) {
			dst = c->error;
			dlen = sizeof(c->error);
		}
		p = param_value(skip_ws(q + 1), dst, dlen, &err);
		if (!p)
			return err;
		p = skip_ws(p);
		if (*p == ',')
			p = skip_ws(p + 1);
		else if (*p)
			return -EINVAL;
	}
	return 0;
}
