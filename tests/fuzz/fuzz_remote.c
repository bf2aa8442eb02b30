/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the network backend's parsers of untrusted input.
 * The first byte picks one: 0 Content-Range, 1 Retry-After, 2
 * WWW-Authenticate (and whether its realm is trusted with credentials),
 * 3 image references, 4 manifests, 5 indexes (by tag and by platform), 6
 * Docker config credentials, 7 the "backend" configuration, 8 a
 * credential helper's answer, 9 the Docker config's credential helper
 * names, 10 a token service's JSON answer, 11 a redirect's Location
 * resolved against a base URL (base, a newline, the Location; without a
 * newline the whole input is the Location on a fixed base). Besides the
 * sanitizers it checks what callers rely on: results are 0 or a
 * negative errno, parsed strings are NUL-terminated within their fields,
 * a parsed range is ordered and inside its total, a parsed manifest's
 * digests are 64 hex digits, a token is printable ASCII that fits and
 * its lifetime 10 s to a day, a resolved Location is an http(s) URL
 * that fits its buffer and has a host.
 */
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../../backend/remote.h"
#include "fuzz.h"

static bool terminated(const char *s, size_t len)
{
	return memchr(s, '\0', len) != NULL;
}

/* Every byte printable ASCII, no space: what may go into a header. */
static bool header_safe(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sk_err e;
	char *s;
	int ret = 0;

	if (size < 1 || size > 1 << 16)
		return 0;
	s = malloc(size);
	if (!s)
		return 0;
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';	/* header values and references are C strings */
	switch (data[0] % 12) {
	case 0: {
		uint64_t a, b, t;

		ret = be_parse_content_range(s, &a, &b, &t);
		if (!ret)
			CHECK(a <= b && (t == UINT64_MAX || b < t));
		break;
	}
	case 1: {
		uint64_t ms;

		ret = be_parse_retry_after(s, 1700000000, &ms);
		break;
	}
	case 2: {
		struct be_challenge c;

		ret = be_parse_www_auth(s, &c);
		if (!ret)
			CHECK(terminated(c.scheme, sizeof(c.scheme)) &&
			      terminated(c.realm, sizeof(c.realm)) &&
			      terminated(c.service, sizeof(c.service)) &&
			      terminated(c.scope, sizeof(c.scope)) && c.scheme[0]);
		/* a realm anyone names: trusted only on the registry's host
		 * and never over plain http from an https registry */
		if (!ret && be_realm_trusted("https://r.example:5000", "r.example:5000", NULL, c.realm))
			CHECK(!strncasecmp(c.realm, "https://", 8));
		break;
	}
	case 3: {
		struct be_ref r;

		/* references that name directories stat(2) them: keep to
		 * the network forms */
		if (!strstr(s, "://"))
			break;
		ret = be_ref_parse(s, &r, &e);
		if (!ret) {
			CHECK(r.kind != BE_REF_LOCAL && r.host[0] && r.loc[0]);
			CHECK(!r.digest[0] || sk_is_hex_digest(r.digest + 7));
		}
		break;
	}
	case 4: {
		struct be_manifest m;
		struct be_image img;

		ret = be_manifest_parse(data + 1, size - 1, &m, &e);
		if (!ret) {
			CHECK(sk_is_hex_digest(m.config.hex));
			for (unsigned int i = 0; i < m.nlayers; i++)
				CHECK(sk_is_hex_digest(m.layers[i].hex) && m.layers[i].mt[0]);
			if (be_image_from_manifest(&m, &img, &e) == 0) {
				CHECK(sk_is_hex_digest(img.bootstrap.hex) && img.nblobs < m.nlayers);
				be_image_free(&img);
			}
			be_manifest_free(&m);
		}
		break;
	}
	case 5: {
		struct be_desc d;

		(void)be_is_index(data + 1, size - 1, NULL);
		ret = be_index_pick(data + 1, size - 1, NULL, "linux/amd64", &d, &e);
		if (!ret)
			CHECK(sk_is_hex_digest(d.hex));
		ret = be_index_pick(data + 1, size - 1, "latest", NULL, &d, &e);
		if (!ret)
			CHECK(sk_is_hex_digest(d.hex));
		break;
	}
	case 6: {
		char u[64], p[64];

		ret = be_docker_auth(data + 1, size - 1, "127.0.0.1:5000", u, sizeof(u), p,
				     sizeof(p), &e);
		if (!ret)
			CHECK(terminated(u, sizeof(u)) && terminated(p, sizeof(p)));
		break;
	}
	case 7: {
		json_t *j = json_loadb((const char *)data + 1, size - 1, 0, NULL);
		struct be_config c;

		be_config_defaults(&c);
		ret = be_config_parse(j, &c, &e);
		for (unsigned int i = 0; !ret && i < c.nhosts; i++)
			for (unsigned int k = 0; k < c.hosts[i].nmirrors; k++)
				CHECK(!strncmp(c.hosts[i].mirrors[k].url, "http", 4));
		be_config_free(&c);
		json_decref(j);
		break;
	}
	case 8: {
		char u[64], p[64];

		ret = be_cred_helper_parse(data + 1, size - 1, u, sizeof(u), p, sizeof(p), &e);
		if (!ret)
			CHECK(terminated(u, sizeof(u)) && terminated(p, sizeof(p)) && u[0] &&
			      !strchr(u, ':') && !strpbrk(p, "\r\n") && strcmp(u, "<token>"));
		break;
	}
	case 9: {
		char n[32];

		ret = be_docker_helper(data + 1, size - 1, "127.0.0.1:5000", n, sizeof(n), &e);
		if (!ret)
			CHECK(terminated(n, sizeof(n)) && n[0] && !strchr(n, '/'));
		ret = be_docker_helper(data + 1, size - 1, "docker.io", n, sizeof(n), &e);
		if (!ret)
			CHECK(terminated(n, sizeof(n)) && n[0] && !strchr(n, '/'));
		break;
	}
	case 10: {
		char tok[256];
		int64_t ttl;

		ret = be_parse_token(data + 1, size - 1, tok, sizeof(tok), &ttl);
		if (!ret)
			CHECK(terminated(tok, sizeof(tok)) && tok[0] && header_safe(tok) &&
			      ttl >= 10 && ttl <= 86400);
		break;
	}
	case 11: {
		char *nl = strchr(s, '\n'), out[2048], small[64], hp[300];
		const char *base = "https://r.example:5000/v2/a/blobs/sha256:00", *loc = s;

		if (nl) {
			*nl = '\0';
			base = s;
			loc = nl + 1;
		}
		ret = be_resolve_location(base, loc, out, sizeof(out));
		CHECK(terminated(out, sizeof(out)));
		if (!ret) {
			CHECK(!strncasecmp(out, "http://", 7) || !strncasecmp(out, "https://", 8));
			CHECK(header_safe(out));
			/* what decides TLS settings and credentials needs a host */
			CHECK(be_url_hostport(out, hp, sizeof(hp)) == 0 && hp[0]);
		} else {
			CHECK(!out[0]);
		}
		/* too small a buffer: an error, never a cut URL */
		ret = be_resolve_location(base, loc, small, sizeof(small));
		CHECK(terminated(small, sizeof(small)) && (ret || strlen(small) < sizeof(small)));
		break;
	}
	}
	CHECK(ret <= 0 && ret > -4096);
	free(s);
	return 0;
}
