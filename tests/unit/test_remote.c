/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for the network backend's parsers (Content-Range,
 * Retry-After, WWW-Authenticate, image references, manifests and indexes,
 * Docker config, the "backend" configuration) and for the HTTP transport
 * against a scripted server on 127.0.0.1: exact ranges, what is not data,
 * bounded retries, Retry-After, redirects that drop credentials, a
 * redirect to a dead host (a retry asks the origin again), many
 * requests at once, read deadlines on stalled servers, token realms that
 * get no credentials, TLS settings that do not follow a redirect (to an
 * `openssl s_server` this test starts). Docker credential helpers are
 * shell scripts this test writes into a directory it puts first in PATH.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../backend/remote.h"
#include "../../backend/source.h"
#include "tap.h"

static void test_content_range(void)
{
	uint64_t a, b, t;

	if (is_int(be_parse_content_range("bytes 0-99/1000", &a, &b, &t), 0,
		   "Content-Range: plain")) {
		is_int(a, 0, "... first byte");
		is_int(b, 99, "... last byte");
		is_int(t, 1000, "... total");
	} else {
		skip(3, "not parsed");
	}
	if (is_int(be_parse_content_range("bytes 5-5/*", &a, &b, &t), 0,
		   "Content-Range: unknown total"))
		ok(t == UINT64_MAX, "... is UINT64_MAX (%llu)", (unsigned long long)t);
	else
		skip(1, "not parsed");
	if (is_int(be_parse_content_range("BYTES  7-8/9 ", &a, &b, &t), 0,
		   "Content-Range: case and spaces")) {
		is_int(a, 7, "... first byte");
		is_int(b, 8, "... last byte");
	} else {
		skip(2, "not parsed");
	}
	ok(be_parse_content_range("bytes 9-8/100", &a, &b, &t) == -EINVAL, "reversed range");
	ok(be_parse_content_range("bytes 0-100/100", &a, &b, &t) == -EINVAL, "last beyond total");
	ok(be_parse_content_range("bytes 0-1/99999999999999999999", &a, &b, &t) == -EINVAL,
	   "overflowing total");
	ok(be_parse_content_range("bytes */100", &a, &b, &t) == -EINVAL, "unsatisfied form");
	ok(be_parse_content_range("bytes -1-2/3", &a, &b, &t) == -EINVAL, "negative");
	ok(be_parse_content_range("bytes 1-2/3x", &a, &b, &t) == -EINVAL, "trailing junk");
	ok(be_parse_content_range("", &a, &b, &t) == -EINVAL, "empty");
	ok(be_parse_content_range("items 0-1/2", &a, &b, &t) == -EINVAL, "other unit");
}

static void test_retry_after(void)
{
	uint64_t ms;

	if (is_int(be_parse_retry_after("3", 0, &ms), 0, "Retry-After: seconds"))
		is_int(ms, 3000, "... in ms");
	else
		skip(1, "not parsed");
	if (is_int(be_parse_retry_after(" 0 ", 0, &ms), 0, "Retry-After: 0"))
		is_int(ms, 0, "... no wait");
	else
		skip(1, "not parsed");
	if (is_int(be_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111770, &ms), 0,
		   "Retry-After: date 7 s ahead"))
		is_int(ms, 7000, "... 7000 ms");
	else
		skip(1, "not parsed");
	if (is_int(be_parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", 784111790, &ms), 0,
		   "Retry-After: date in the past"))
		is_int(ms, 0, "... no wait");
	else
		skip(1, "not parsed");
	ok(be_parse_retry_after("soon", 0, &ms) == -EINVAL, "Retry-After: garbage");
	ok(be_parse_retry_after("-1", 0, &ms) == -EINVAL, "Retry-After: negative");
	ok(be_parse_retry_after("99999999999999999999999", 0, &ms) == -EINVAL,
	   "Retry-After: overflow");
	ok(be_parse_retry_after("5s", 0, &ms) == -EINVAL, "Retry-After: unit");
}

static void test_www_auth(void)
{
	struct be_challenge c;
	char big[3000];

	if (is_int(be_parse_www_auth("Bearer realm=\"https://auth.example/token\",service=\"reg\","
				     "scope=\"repository:a/b:pull,push\"", &c), 0,
		   "bearer challenge with a comma inside a quoted value")) {
		is_str(c.scheme, "bearer", "... scheme");
		is_str(c.realm, "https://auth.example/token", "... realm");
		is_str(c.service, "reg", "... service");
		is_str(c.scope, "repository:a/b:pull,push", "... scope");
	} else {
		skip(4, "not parsed");
	}
	if (is_int(be_parse_www_auth("Basic realm=\"skiff\"", &c), 0, "basic challenge")) {
		is_str(c.scheme, "basic", "... scheme");
		is_str(c.realm, "skiff", "... realm");
	} else {
		skip(2, "not parsed");
	}
	if (is_int(be_parse_www_auth("Bearer realm=tok, error=\"invalid_token\"", &c), 0,
		   "token values, error")) {
		is_str(c.realm, "tok", "... realm");
		is_str(c.error, "invalid_token", "... error");
	} else {
		skip(2, "not parsed");
	}
	if (is_int(be_parse_www_auth("Bearer realm=\"a\\\"b\"", &c), 0, "quoted-pair"))
		is_str(c.realm, "a\"b", "... unquoted");
	else
		skip(1, "not parsed");
	if (is_int(be_parse_www_auth("Bearer realm=\"x\", Basic realm=\"y\"", &c), 0,
		   "two challenges"))
		is_str(c.realm, "x", "... the first one's realm");
	else
		skip(1, "not parsed");
	ok(be_parse_www_auth("Bearer realm=\"x", &c) == -EINVAL, "unterminated quote");
	ok(be_parse_www_auth("", &c) == -EINVAL, "empty");
	if (is_int(be_parse_www_auth("Bearer realm=\"a\", Newscheme token68", &c), 0,
		   "a following challenge"))
		is_str(c.realm, "a", "... the first one's realm");
	else
		skip(1, "not parsed");
	ok(be_parse_www_auth("Bearer realm=\"a\";", &c) == -EINVAL, "bad separator");
	memset(big, 'a', sizeof(big));
	memcpy(big, "Bearer realm=\"", 14);
	big[sizeof(big) - 2] = '"';
	big[sizeof(big) - 1] = '\0';
	ok(be_parse_www_auth(big, &c) == -E2BIG, "a realm too long is refused, not cut");
}

static int ref_is(const char *s, enum be_ref_kind k, const char *loc, const char *host,
		  const char *repo, const char *tag, const char *digest)
{
	struct be_ref r;
	struct sk_err e = { { 0 } };
	int ret = be_ref_parse(s, &r, &e);

	if (ret) {
		diag("%s: %s", s, e.msg);
		return 0;
	}
	if (r.kind != k || strcmp(r.loc, loc) || strcmp(r.host, host) || strcmp(r.repo, repo) ||
	    strcmp(r.tag, tag) || strcmp(r.digest, digest)) {
		diag("%s: %d loc=%s host=%s repo=%s tag=%s digest=%s", s, r.kind, r.loc, r.host,
		     r.repo, r.tag, r.digest);
		return 0;
	}
	return 1;
}

static int ref_bad(const char *s)
{
	struct be_ref r;
	struct sk_err e = { { 0 } };

	if (be_ref_parse(s, &r, &e) == 0) {
		diag("%s parsed", s);
		return 0;
	}
	return e.msg[0] != '\0';
}

static void test_refs(void)
{
	static const char d[] = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	char s[200];

	ok(ref_is("docker://127.0.0.1:5000/skiff/app:v1", BE_REF_DOCKER, "127.0.0.1:5000/skiff/app",
		  "127.0.0.1:5000", "skiff/app", "v1", ""), "docker: host:port/repo:tag");
	ok(ref_is("docker://reg.example/app", BE_REF_DOCKER, "reg.example/app", "reg.example",
		  "app", "", ""), "docker: no tag");
	snprintf(s, sizeof(s), "docker://reg.example/a/b@%s", d);
	ok(ref_is(s, BE_REF_DOCKER, "reg.example/a/b", "reg.example", "a/b", "", d),
	   "docker: digest");
	ok(ref_is("docker://r:1/a__b.c-d--e/f:T_1.x-y", BE_REF_DOCKER, "r:1/a__b.c-d--e/f", "r:1",
		  "a__b.c-d--e/f", "T_1.x-y", ""), "docker: separators");
	ok(ref_bad("docker://reg/App"), "docker: uppercase repository");
	ok(ref_bad("docker://reg/a//b"), "docker: empty component");
	ok(ref_bad("docker://reg/a___b"), "docker: three underscores");
	ok(ref_bad("docker://reg/a:"), "docker: empty tag");
	ok(ref_bad("docker://reg/a:.x"), "docker: tag starting with a dot");
	ok(ref_bad("docker://reg/a@sha256:1234"), "docker: short digest");
	ok(ref_bad("docker://reg"), "docker: no repository");
	ok(ref_bad("docker://reg:99999x/a"), "docker: bad port");
	ok(ref_bad("docker://re g/a"), "docker: space in host");
	ok(ref_is("http://127.0.0.1:8080/path/layout#v2", BE_REF_HTTP,
		  "http://127.0.0.1:8080/path/layout", "127.0.0.1:8080", "", "v2", ""),
	   "http: with tag");
	ok(ref_is("https://h.example/l/", BE_REF_HTTP, "https://h.example/l", "h.example", "", "",
		  ""), "https: trailing slash, no tag");
	snprintf(s, sizeof(s), "http://h:1/l#%s", d);
	ok(ref_is(s, BE_REF_HTTP, "http://h:1/l", "h:1", "", "", d), "http: pinned by digest");
	ok(ref_bad("http://h/l#sha256:abc"), "http: short digest");
	{
		struct be_ref r;
		struct sk_err e;
		char out[300];

		be_ref_parse("docker://r:5/a/b:v1", &r, &e);
		if (is_int(be_ref_pin(&r, d + 7, out, sizeof(out)), 0, "docker reference pinned"))
			is_str(out, "docker://r:5/a/b@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			       "... to its digest");
		else
			skip(1, "not pinned");
		be_ref_parse("https://h/l#v1", &r, &e);
		if (is_int(be_ref_pin(&r, d + 7, out, sizeof(out)), 0, "web reference pinned"))
			is_str(out, "https://h/l#sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			       "... to its digest");
		else
			skip(1, "not pinned");
		be_ref_parse("/x:y", &r, &e);
		ok(be_ref_pin(&r, d + 7, out, sizeof(out)) == -EINVAL, "a directory is not pinned");
	}
	ok(ref_bad("http://h/x?y=1"), "http: query");
	ok(ref_bad("http://h/x#bad tag"), "http: bad tag");
	ok(ref_bad("http:///x"), "http: no host");
	ok(ref_bad("ftp://h/x"), "unknown scheme");
	ok(ref_is("/no/such/dir:t", BE_REF_LOCAL, "/no/such/dir", "", "", "t", ""), "local DIR:TAG");
}

static const char manifest_ok[] =
	"{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
	"\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":"
	"\"sha256:1111111111111111111111111111111111111111111111111111111111111111\",\"size\":10},"
	"\"layers\":[{\"mediaType\":\"application/vnd.skiff.blob.v1\",\"digest\":"
	"\"sha256:2222222222222222222222222222222222222222222222222222222222222222\",\"size\":20},"
	"{\"mediaType\":\"application/vnd.skiff.bootstrap.v1.erofs\",\"digest\":"
	"\"sha256:3333333333333333333333333333333333333333333333333333333333333333\",\"size\":30}]}";

static void test_manifests(void)
{
	struct be_manifest m;
	struct be_image img;
	struct be_desc d;
	struct sk_err e = { { 0 } };
	char buf[2048];
	const char *idx =
		"{\"schemaVersion\":2,\"manifests\":["
		"{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"size\":1,"
		"\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\",\"variant\":\"v8\"},"
		"\"annotations\":{\"org.opencontainers.image.ref.name\":\"arm\"}},"
		"{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\",\"size\":2,"
		"\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}}]}";

	if (is_int(be_manifest_parse(manifest_ok, strlen(manifest_ok), &m, &e), 0,
		   "manifest parses (%s)", e.msg)) {
		is_int(m.config.size, 10, "... its config's size");
		if (is_int(m.nlayers, 2, "... two layers"))
			is_int(m.layers[1].size, 30, "... the second one's size");
		else
			skip(1, "not two layers");
	} else {
		skip(3, "not parsed");
	}
	if (is_int(be_image_from_manifest(&m, &img, &e), 0, "... as a skiff image (%s)", e.msg)) {
		is_int(img.bootstrap.size, 30, "... the last layer its bootstrap");
		if (is_int(img.nblobs, 1, "... one blob"))
			is_int(img.blobs[0].hex[0], '2', "... the first layer");
		else
			skip(1, "not one blob");
	} else {
		skip(3, "no image");
	}
	be_image_free(&img);
	be_manifest_free(&m);
	snprintf(buf, sizeof(buf), "%s", manifest_ok);
	memcpy(strstr(buf, "vnd.skiff.blob.v1"), "vnd.oci.xyz.tar.x", 17);
	if (is_int(be_manifest_parse(buf, strlen(buf), &m, &e), 0,
		   "a manifest with a tar layer parses (%s)", e.msg))
		is_int(be_image_from_manifest(&m, &img, &e), -EMEDIUMTYPE,
		       "... but is no skiff image");
	else
		skip(1, "not parsed");
	be_manifest_free(&m);
	snprintf(buf, sizeof(buf), "%s", manifest_ok);
	*strstr(buf, "\"size\":20") = ' ';
	ok(be_manifest_parse(buf, strlen(buf), &m, &e) == -EINVAL, "broken JSON");
	snprintf(buf, sizeof(buf), "%s", manifest_ok);
	memcpy(strstr(buf, "\"size\":20"), "\"size\":-2", 9);
	ok(be_manifest_parse(buf, strlen(buf), &m, &e) == -EINVAL, "negative size");
	snprintf(buf, sizeof(buf), "%s", manifest_ok);
	strstr(buf, "2222")[0] = 'G';
	ok(be_manifest_parse(buf, strlen(buf), &m, &e) == -EINVAL, "digest not hex");
	snprintf(buf, sizeof(buf), "%s", manifest_ok);
	strstr(buf, "schemaVersion\":2")[15] = '1';
	ok(be_manifest_parse(buf, strlen(buf), &m, &e) == -EINVAL, "schemaVersion 1");
	ok(be_is_index(idx, strlen(idx), ""), "an index is an index");
	ok(!be_is_index(manifest_ok, strlen(manifest_ok), ""), "... a manifest is not");
	if (is_int(be_index_pick(idx, strlen(idx), NULL, "linux/amd64", &d, &e), 0,
		   "platform linux/amd64"))
		is_int(d.hex[0], 'b', "... its entry");
	else
		skip(1, "nothing picked");
	if (is_int(be_index_pick(idx, strlen(idx), NULL, "linux/arm64/v8", &d, &e), 0,
		   "platform with variant"))
		is_int(d.hex[0], 'a', "... its entry");
	else
		skip(1, "nothing picked");
	ok(be_index_pick(idx, strlen(idx), NULL, "linux/s390x", &d, &e) == -ENOENT,
	   "no such platform");
	if (is_int(be_index_pick(idx, strlen(idx), "arm", NULL, &d, &e), 0, "by tag"))
		is_int(d.hex[0], 'a', "... its entry");
	else
		skip(1, "nothing picked");
	ok(be_index_pick(idx, strlen(idx), NULL, NULL, &d, &e) == -EINVAL,
	   "two entries and nothing to choose by");
	ok(be_index_pick("{\"manifests\":5}", 15, NULL, NULL, &d, &e) == -EINVAL, "not an array");
}

static void test_docker_config(void)
{
	char u[64], p[64];
	struct sk_err e = { { 0 } };
	/* "skiff:se:cret" */
	const char *cfg = "{\"auths\":{\"https://index.example/v1/\":{\"auth\":\"c2tpZmY6c2U6Y3JldA==\"},"
			  "\"127.0.0.1:5000\":{\"username\":\"u\",\"password\":\"p\"},"
			  "\"bad.example\":{\"auth\":\"!!!!\"}}}";

	if (is_int(be_docker_auth(cfg, strlen(cfg), "index.example", u, sizeof(u), p, sizeof(p), &e),
		   0, "auth of a key with scheme and path (%s)", e.msg)) {
		is_str(u, "skiff", "... user");
		is_str(p, "se:cret", "... password");
	} else {
		skip(2, "no credentials");
	}
	if (is_int(be_docker_auth(cfg, strlen(cfg), "127.0.0.1:5000", u, sizeof(u), p, sizeof(p), &e),
		   0, "username and password (%s)", e.msg)) {
		is_str(u, "u", "... user");
		is_str(p, "p", "... password");
	} else {
		skip(2, "no credentials");
	}
	ok(be_docker_auth(cfg, strlen(cfg), "127.0.0.1", u, sizeof(u), p, sizeof(p), &e) == -ENOENT,
	   "a host without its port is another host");
	ok(be_docker_auth(cfg, strlen(cfg), "bad.example", u, sizeof(u), p, sizeof(p), &e) == -EINVAL,
	   "auth that is not base64");
	ok(be_docker_auth("[]", 2, "x", u, sizeof(u), p, sizeof(p), &e) == -EINVAL, "not an object");
	ok(be_docker_auth("{}", 2, "x", u, sizeof(u), p, sizeof(p), &e) == -ENOENT, "no auths");
}

/* ---- Docker credential helpers ---- */

static char ch_dir[64];		/* the fake helpers, first in PATH */

/* Writes docker-credential-NAME: a shell script with body after "#!/bin/sh". */
static int write_helper(const char *name, const char *body)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/docker-credential-%s", ch_dir, name);
	f = fopen(path, "w");
	if (!f)
		return -1;
	fprintf(f, "#!/bin/sh\n%s\n", body);
	if (fclose(f) || chmod(path, 0755))
		return -1;
	return 0;
}

static int ch_setup(void)
{
	char body[1024], path[8192];
	const char *old = getenv("PATH");

	snprintf(ch_dir, sizeof(ch_dir), "/tmp/skiff-credhelper-XXXXXX");
	if (!mkdtemp(ch_dir))
		return -1;
	snprintf(path, sizeof(path), "%s:%s", ch_dir, old ? old : "/usr/bin:/bin");
	setenv("PATH", path, 1);
	/* the environment is inherited: the secret comes from it */
	setenv("SKIFF_TEST_SECRET", "s3cret", 1);
	snprintf(body, sizeof(body),
		 "[ \"$1\" = get ] || exit 2\n"
		 "cat >%s/good.in\n"
		 "echo run >>%s/good.calls\n"
		 "printf '{\"ServerURL\":\"%%s\",\"Username\":\"helper-user\",\"Secret\":\"%%s\"}\\n' \"$(cat %s/good.in)\" \"$SKIFF_TEST_SECRET\"",
		 ch_dir, ch_dir, ch_dir);
	if (write_helper("good", body))
		return -1;
	snprintf(body, sizeof(body), "echo run >>%s/none.calls\ncat >/dev/null\n"
		 "echo 'credentials not found in native keychain'\nexit 1", ch_dir);
	if (write_helper("none", body))
		return -1;
	snprintf(body, sizeof(body), "sleep 30 &\necho $! >%s/hang.pid\nwait", ch_dir);
	if (write_helper("hang", body))
		return -1;
	snprintf(body, sizeof(body), "echo run >>%s/fail.calls\necho 'the store is locked' >&2\nexit 3",
		 ch_dir);
	if (write_helper("fail", body) ||
	    write_helper("garbage", "echo 'Username: someone'") ||
	    write_helper("flood", "exec yes '{\"Username\":'") ||
	    write_helper("token", "echo '{\"ServerURL\":\"x\",\"Username\":\"<token>\",\"Secret\":\"refresh\"}'") ||
	    write_helper("store", "echo '{\"ServerURL\":\"x\",\"Username\":\"store-user\",\"Secret\":\"p\"}'") ||
	    /* answers without reading its input, and exits at once */
	    write_helper("unread", "printf '{\"Username\":\"u\",\"Secret\":\"s\"}'"))
		return -1;
	return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void ch_cleanup(void)
{
	if (ch_dir[0])
		nftw(ch_dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static int count_lines(const char *name)
{
	char path[256], line[64];
	FILE *f;
	int n = 0;

	snprintf(path, sizeof(path), "%s/%s", ch_dir, name);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		n++;
	fclose(f);
	return n;
}

/* Whether process pid is gone (or a zombie no one waits for yet). */
static bool pid_gone(int pid)
{
	char path[64], st[256];
	FILE *f;
	char *p;
	bool gone;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return true;
	gone = !fgets(st, sizeof(st), f) || ((p = strrchr(st, ')')) && p[1] && p[2] == 'Z');
	fclose(f);
	return gone;
}

static void test_docker_helper_names(void)
{
	char n[128];
	struct sk_err e = { { 0 } };
	const char *both = "{\"credsStore\":\"store\",\"credHelpers\":{\"https://special.example/v1/\":\"good\","
			   "\"empty.example\":\"\",\"index.docker.io\":\"hub\"}}";
	const char *bad;

	if (is_int(be_docker_helper(both, strlen(both), "special.example", n, sizeof(n), &e), 0,
		   "credHelpers names the host's helper (key with scheme and path)"))
		is_str(n, "good", "... that helper");
	else
		skip(1, "no helper");
	if (is_int(be_docker_helper(both, strlen(both), "other.example", n, sizeof(n), &e), 0,
		   "other hosts: a helper"))
		is_str(n, "store", "... credsStore");
	else
		skip(1, "no helper");
	ok(be_docker_helper(both, strlen(both), "empty.example", n, sizeof(n), &e) == -ENOENT,
	   "a credHelpers entry \"\" means no helper, not the store");
	if (is_int(be_docker_helper(both, strlen(both), "docker.io", n, sizeof(n), &e), 0,
		   "docker.io has a helper"))
		is_str(n, "hub", "... the one of Docker Hub's login name index.docker.io");
	else
		skip(1, "no helper");
	ok(be_docker_helper("{\"auths\":{}}", 12, "x", n, sizeof(n), &e) == -ENOENT, "no helper");
	is_str(be_cred_server("docker.io"), "https://index.docker.io/v1/",
	       "the server address asked about for docker.io");
	is_str(be_cred_server("127.0.0.1:5000"), "127.0.0.1:5000", "... and for another host");
	bad = "{\"credsStore\":\"../../bin/x\"}";
	is_int(be_docker_helper(bad, strlen(bad), "x", n, sizeof(n), &e), -EINVAL,
	       "a name with '/' is refused");
	has_str(e.msg, "credential helper name", "... saying why");
	bad = "{\"credHelpers\":[\"x\"]}";
	ok(be_docker_helper(bad, strlen(bad), "x", n, sizeof(n), &e) == -EINVAL, "credHelpers not an object");
	bad = "{\"credHelpers\":{\"x\":5}}";
	ok(be_docker_helper(bad, strlen(bad), "x", n, sizeof(n), &e) == -EINVAL, "a helper name not a string");
	bad = "{\"credsStore\":true}";
	ok(be_docker_helper(bad, strlen(bad), "x", n, sizeof(n), &e) == -EINVAL, "credsStore not a string");
}

static void test_cred_helper_parse(void)
{
	char u[16], p[16];
	struct sk_err e = { { 0 } };
	const char *j;
	static const struct {
		const char *json, *what;
		int want;
	} bad[] = {
		{ "{\"Username\":\"\",\"Secret\":\"\"}", "an empty answer is no credentials", -ENOENT },
		{ "{\"Username\":\"<token>\",\"Secret\":\"r\"}", "an identity token is refused", -ENOTSUP },
		{ "{\"Username\":\"a:b\",\"Secret\":\"p\"}", "a user name with ':'", -EINVAL },
		{ "{\"Username\":\"u\",\"Secret\":\"p\\r\\nX-Evil: 1\"}", "a secret with a line break", -EINVAL },
		{ "{\"Username\":\"u\",\"Secret\":\"0123456789abcdef\"}", "a secret longer than its buffer", -EINVAL },
		{ "{\"Username\":\"u\",\"Secret\":7}", "a secret that is not a string", -EINVAL },
		{ "{\"Username\":\"u\",\"Username\":\"v\",\"Secret\":\"p\"}", "duplicate keys", -EINVAL },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		e.msg[0] = '\0';
		is_int(be_cred_helper_parse(bad[i].json, strlen(bad[i].json), u, sizeof(u),
					    p, sizeof(p), &e), bad[i].want, "%s", bad[i].what);
		/* no credentials is no error: nothing to say */
		if (bad[i].want != -ENOENT)
			ok(e.msg[0], "... saying why (%s)", e.msg);
	}
	ok(be_cred_helper_parse("[1]", 3, u, sizeof(u), p, sizeof(p), &e) == -EINVAL, "not an object");
	j = "{\"ServerURL\":\"h\",\"Username\":\"u\",\"Secret\":\"p\"}";
	if (is_int(be_cred_helper_parse(j, strlen(j), u, sizeof(u), p, sizeof(p), &e), 0,
		   "helper answer (%s)", e.msg)) {
		is_str(u, "u", "... user");
		is_str(p, "p", "... secret");
	} else {
		skip(2, "no credentials");
	}
}

static void test_cred_helper_run(void)
{
	char u[BE_CRED_USER_MAX], p[BE_CRED_SECRET_MAX], in[128] = "", path[256], n[128];
	struct sk_err e = { { 0 } };
	const char *both = "{\"credsStore\":\"store\",\"credHelpers\":{\"127.0.0.1:5000\":\"good\"}}";
	double t0, el;
	int ret, pid = 0;
	FILE *f;

	ret = be_cred_helper_get("good", "127.0.0.1:5000", 5000, u, sizeof(u), p, sizeof(p), &e);
	if (is_int(ret, 0, "a helper's credentials (%s)", e.msg)) {
		is_str(u, "helper-user", "... user");
		is_str(p, "s3cret", "... its secret from our environment");
	} else {
		skip(2, "no credentials");
	}
	snprintf(path, sizeof(path), "%s/good.in", ch_dir);
	f = fopen(path, "r");
	if (f) {
		(void)!fgets(in, sizeof(in), f);
		fclose(f);
	}
	ok(!strcmp(in, "127.0.0.1:5000"), "... asked with the server address on stdin (\"%s\")", in);
	ok(be_cred_helper_get("none", "h", 5000, u, sizeof(u), p, sizeof(p), &e) == -ENOENT,
	   "\"credentials not found\": -ENOENT (anonymous)");
	e.msg[0] = '\0';
	t0 = sk_now();
	ret = be_cred_helper_get("hang", "h", 300, u, sizeof(u), p, sizeof(p), &e);
	el = sk_now() - t0;
	is_int(ret, -ETIMEDOUT, "a hanging helper is killed after its timeout");
	ok(el < 3.0, "... soon after (%.2f s)", el);
	has_str(e.msg, "docker-credential-hang", "... an error naming it");
	snprintf(path, sizeof(path), "%s/hang.pid", ch_dir);
	f = fopen(path, "r");
	if (f) {
		if (fscanf(f, "%d", &pid) != 1)
			pid = 0;
		fclose(f);
	}
	for (int i = 0; pid > 0 && i < 200 && !pid_gone(pid); i++)
		usleep(10000);
	if (ok(pid > 0, "... it wrote its pid (%d)", pid))
		ok(pid_gone(pid), "... with what it started (its process group)");
	else
		skip(1, "no pid");
	ret = be_cred_helper_get("garbage", "h", 5000, u, sizeof(u), p, sizeof(p), &e);
	is_int(ret, -EPROTO, "a helper printing garbage: an error");
	has_str(e.msg, "docker-credential-garbage", "... naming it");
	has_str(e.msg, "not JSON", "... and what is wrong");
	ret = be_cred_helper_get("fail", "h", 5000, u, sizeof(u), p, sizeof(p), &e);
	is_int(ret, -EIO, "a failing helper: an error");
	has_str(e.msg, "docker-credential-fail", "... naming it");
	has_str(e.msg, "exit status 3", "... its status");
	has_str(e.msg, "the store is locked", "... and its words");
	ret = be_cred_helper_get("flood", "h", 5000, u, sizeof(u), p, sizeof(p), &e);
	is_int(ret, -EMSGSIZE, "endless output is cut off");
	has_str(e.msg, "65536", "... at 64 KiB");
	ret = be_cred_helper_get("token", "h", 5000, u, sizeof(u), p, sizeof(p), &e);
	is_int(ret, -ENOTSUP, "an identity token: unsupported");
	has_str(e.msg, "identity token", "... saying so");
	ret = be_cred_helper_get("missing", "h", 5000, u, sizeof(u), p, sizeof(p), &e);
	is_int(ret, -ENOEXEC, "a helper not installed: an error, not anonymity");
	has_str(e.msg, "docker-credential-missing", "... naming it");
	has_str(e.msg, "not found in PATH", "... and what is wrong");
	ret = be_cred_helper_get("unread", "h", 5000, u, sizeof(u), p, sizeof(p), &e);
	if (is_int(ret, 0, "a helper that never reads its input (no SIGPIPE) (%s)", e.msg))
		is_str(u, "u", "... its user");
	else
		skip(1, "no credentials");
	if (!is_int(be_docker_helper(both, strlen(both), "127.0.0.1:5000", n, sizeof(n), &e), 0,
		    "credHelpers and credsStore: a helper for 127.0.0.1:5000"))
		skip(2, "no helper");
	else if (!is_int(be_cred_helper_get(n, "127.0.0.1:5000", 5000, u, sizeof(u), p, sizeof(p), &e),
			 0, "... which answers (%s)", e.msg))
		skip(1, "no credentials");
	else
		is_str(u, "helper-user", "credHelpers overrides credsStore for its host");
	if (!is_int(be_docker_helper(both, strlen(both), "127.0.0.1:5001", n, sizeof(n), &e), 0,
		    "... a helper for 127.0.0.1:5001"))
		skip(2, "no helper");
	else if (!is_int(be_cred_helper_get(n, "127.0.0.1:5001", 5000, u, sizeof(u), p, sizeof(p), &e),
			 0, "... which answers (%s)", e.msg))
		skip(1, "no credentials");
	else
		is_str(u, "store-user", "... and credsStore serves the others");
}

static void test_config(void)
{
	struct be_config c;
	struct sk_err e = { { 0 } };
	json_t *j = json_loads("{\"max_attempts\": 3, \"platform\": \"linux/arm64\","
			       "\"registries\": {\"r:5000\": {\"plain_http\": true, \"mirrors\": ["
			       "{\"url\": \"http://m:1/\", \"headers\": {\"X-Dragonfly-Registry\": \"https://r:5000\"}}]}}}",
			       0, NULL);

	be_config_defaults(&c);
	if (is_int(be_config_parse(j, &c, &e), 0, "backend configuration (%s)", e.msg)) {
		is_int(c.http.max_attempts, 3, "... max_attempts");
		is_str(c.platform, "linux/arm64", "... platform");
		if (is_int(c.nhosts, 1, "... one host")) {
			ok(c.hosts[0].plain_http, "... over plain http");
			if (is_int(c.hosts[0].nmirrors, 1, "... with one mirror")) {
				is_str(c.hosts[0].mirrors[0].url, "http://m:1", "... its URL");
				is_str(c.hosts[0].mirrors[0].headers[0],
				       "X-Dragonfly-Registry: https://r:5000", "... its header");
			} else {
				skip(2, "not one mirror");
			}
		} else {
			skip(4, "not one host");
		}
	} else {
		skip(7, "not parsed");
	}
	ok(be_config_host(&c, "r:5000") != NULL, "host lookup");
	ok(!be_config_host(&c, "r"), "... not by the host without its port");
	be_config_free(&c);
	json_decref(j);
	j = json_loads("{\"max_attemps\": 3}", 0, NULL);
	be_config_defaults(&c);
	is_int(be_config_parse(j, &c, &e), -EINVAL, "unknown key");
	has_str(e.msg, "max_attemps", "... named");
	json_decref(j);
	j = json_loads("{\"registries\": {\"r\": {\"mirrors\": [{\"url\": \"ftp://x\"}]}}}", 0, NULL);
	ok(be_config_parse(j, &c, &e) == -EINVAL, "mirror URL scheme");
	be_config_free(&c);
	json_decref(j);
	be_config_defaults(&c);
	ok(c.read_deadline_ms == 30000, "read deadline: 30 s by default");
	j = json_loads("{\"read_deadline_ms\": 2000, \"registries\": {\"r\": {\"insecure\": true,"
		       "\"token_realms\": [\"https://auth.example/token\"],"
		       "\"mirrors\": [{\"url\": \"https://m:1/p\", \"insecure\": true}]}}}", 0, NULL);
	if (is_int(be_config_parse(j, &c, &e), 0, "read_deadline_ms and token_realms (%s)", e.msg)) {
		is_int(c.read_deadline_ms, 2000, "... read_deadline_ms");
		if (!is_int(c.nhosts, 1, "... one host"))
			skip(2, "not one host");
		else if (!is_int(c.hosts[0].ntoken_realms, 1, "... with one token realm"))
			skip(1, "not one token realm");
		else
			is_str(c.hosts[0].token_realms[0], "https://auth.example/token",
			       "... the one given");
	} else {
		skip(4, "not parsed");
	}
	/* insecure by the URL's HOST[:PORT]: the host's setting, a mirror's */
	ok(be_config_insecure(&c, "https://r/v2/"), "insecure: the host's setting");
	ok(be_config_insecure(&c, "https://m:1/p/v2/x"), "insecure: a mirror's setting");
	ok(!be_config_insecure(&c, "https://r:443/v2/"), "... not the host on another port");
	ok(!be_config_insecure(&c, "https://m/p"), "... not the mirror's host without its port");
	ok(!be_config_insecure(&c, "https://other/r"), "... not another host");
	ok(!be_config_insecure(&c, "https://r.evil/"), "... not a longer name starting with the host's");
	be_config_free(&c);
	json_decref(j);
	j = json_loads("{\"registries\": {\"r\": {\"token_realms\": [\"auth.example\"]}}}", 0, NULL);
	be_config_defaults(&c);
	is_int(be_config_parse(j, &c, &e), -EINVAL, "a token realm must be an http(s) URL");
	has_str(e.msg, "token_realms", "... the error names the key");
	be_config_free(&c);
	json_decref(j);
}

/* ---- a scripted server: each connection answers one canned response
 * per request, chosen by the request's path ---- */

struct srv {
	int fd, port;
	pthread_t thr;
	_Atomic int requests;
	char last_auth[256];	/* Authorization of the last /other request */
	pthread_mutex_t lock;
	_Atomic int fail_left;	/* /flaky: this many 503s first */
	_Atomic int stop;
	int port2;		/* where /redirect sends to */
	int dead_port;		/* where nothing listens */
	_Atomic int dead_left;	/* /redirect-dead: this many 302s there first */
	_Atomic int dead_asked;	/* /redirect-dead requests */
	/* registry paths /v2/r/blobs/...: */
	_Atomic int gen;		/* valid token: "t<gen>" */
	_Atomic int auth_required;
	_Atomic int broken;		/* answer 503 */
	_Atomic int token_fetches, blob_gets, saw_header;
	char token_query[512];
	char token_auth[256];	/* Authorization of the last token request */
	char realm_host[64];	/* the host the 401s name ("": 127.0.0.1) */
	_Atomic int stall;	/* registry blob requests get no answer */
	int tls_port;		/* where /tlsredir/... sends to, over https */
};

/* A request this server never answers: the connection stays silent until
 * the test ends (or 30 s), as a stalled server's does. */
static void stall_conn(struct srv *s)
{
	for (int i = 0; i < 300 && !atomic_load(&s->stop); i++)
		usleep(100 * 1000);
}

static const unsigned char blob[16] = "0123456789abcdef";
/* a blob id the scripted registry serves blob as */
static const char hex[] = "0000000000000000000000000000000000000000000000000000000000000000";

static void *conn_main(void *arg)
{
	struct srv *s = ((void **)arg)[0];
	int fd = (int)(intptr_t)((void **)arg)[1];
	char req[4096];
	size_t have = 0;

	free(arg);
	for (;;) {
		char *end, resp[1024], path[256] = "", *auth;
		unsigned long a = 0, b = 0;
		int hasrange, n;

		while (!(end = memmem(req, have, "\r\n\r\n", 4))) {
			ssize_t r = recv(fd, req + have, sizeof(req) - have - 1, 0);

			if (r <= 0)
				goto out;
			have += (size_t)r;
		}
		*end = '\0';
		atomic_fetch_add(&s->requests, 1);
		sscanf(req, "%*s %255s", path);
		hasrange = strstr(req, "Range: bytes=") &&
			   sscanf(strstr(req, "Range: bytes=") + 13, "%lu-%lu", &a, &b) == 2;
		auth = strstr(req, "Authorization: ");
		if (!strcmp(path, "/other")) {
			pthread_mutex_lock(&s->lock);
			snprintf(s->last_auth, sizeof(s->last_auth), "%s", auth ? auth : "none");
			pthread_mutex_unlock(&s->lock);
		}
		if (!strcmp(path, "/blob") && hasrange && b < 16 && a <= b) {
			n = snprintf(resp, sizeof(resp), "HTTP/1.1 206 Partial\r\nContent-Range: bytes %lu-%lu/16\r\nContent-Length: %lu\r\n\r\n",
				     a, b, b - a + 1);
			memcpy(resp + n, blob + a, b - a + 1);
			n += (int)(b - a + 1);
		} else if (!strncmp(path, "/token?", 7)) {
			atomic_fetch_add(&s->token_fetches, 1);
			pthread_mutex_lock(&s->lock);
			snprintf(s->token_query, sizeof(s->token_query), "%s", path + 7);
			snprintf(s->token_auth, sizeof(s->token_auth), "%.*s",
				 auth ? (int)strcspn(auth, "\r\n") : 4, auth ? auth : "none");
			pthread_mutex_unlock(&s->lock);
			n = snprintf(resp, sizeof(resp), "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n{\"token\":\"t%d\",\"expires_in\":300}",
				     (int)strlen("{\"token\":\"t0\",\"expires_in\":300}") +
				     (atomic_load(&s->gen) > 9), atomic_load(&s->gen));
		} else if (!strncmp(path, "/v2/r/blobs/sha256:", 19)) {
			char want[64];

			atomic_fetch_add(&s->blob_gets, 1);
			if (atomic_load(&s->stall)) {
				stall_conn(s);
				goto out;
			}
			if (strstr(req, "X-Mirror-Header: yes"))
				atomic_store(&s->saw_header, 1);
			snprintf(want, sizeof(want), "Authorization: Bearer t%d", atomic_load(&s->gen));
			if (atomic_load(&s->broken)) {
				n = snprintf(resp, sizeof(resp), "HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n");
			} else if (atomic_load(&s->auth_required) && (!auth || strncmp(auth, want, strlen(want)) ||
						 (auth[strlen(want)] != '\r' && auth[strlen(want)] != '\0'))) {
				n = snprintf(resp, sizeof(resp), "HTTP/1.1 401 No\r\nWWW-Authenticate: Bearer realm=\"http://%s:%d/token\",service=\"svc\",scope=\"repository:r:pull\"\r\nContent-Length: 0\r\n\r\n",
					     s->realm_host[0] ? s->realm_host : "127.0.0.1", s->port);
			} else if (hasrange && b < 16 && a <= b) {
				n = snprintf(resp, sizeof(resp), "HTTP/1.1 206 Partial\r\nContent-Range: bytes %lu-%lu/16\r\nContent-Length: %lu\r\n\r\n",
					     a, b, b - a + 1);
				memcpy(resp + n, blob + a, b - a + 1);
				n += (int)(b - a + 1);
			} else if (!strstr(req, "Range:")) {
				/* the whole blob, whatever digest was asked */
				n = snprintf(resp, sizeof(resp), "HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n%.16s",
					     blob);
			} else {
				n = snprintf(resp, sizeof(resp), "HTTP/1.1 416 No\r\nContent-Length: 0\r\n\r\n");
			}
		} else if (!strcmp(path, "/full")) {
			n = snprintf(resp, sizeof(resp), "HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n%.16s", blob);
		} else if (!strcmp(path, "/badrange")) {
			n = snprintf(resp, sizeof(resp), "HTTP/1.1 206 Partial\r\nContent-Range: bytes 1-4/16\r\nContent-Length: 4\r\n\r\n1234");
		} else if (!strcmp(path, "/flaky") && atomic_fetch_sub(&s->fail_left, 1) > 0) {
			n = snprintf(resp, sizeof(resp), "HTTP/1.1 503 Busy\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n");
		} else if (!strcmp(path, "/flaky") || !strcmp(path, "/other")) {
			n = snprintf(resp, sizeof(resp), "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
		} else if (!strcmp(path, "/always503")) {
			n = snprintf(resp, sizeof(resp), "HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n");
		} else if (!strcmp(path, "/redirect-same")) {
			n = snprintf(resp, sizeof(resp), "HTTP/1.1 302 Found\r\nLocation: /other\r\nContent-Length: 0\r\n\r\n");
		} else if (!strcmp(path, "/redirect-dead")) {
			atomic_fetch_add(&s->dead_asked, 1);
			if (atomic_fetch_sub(&s->dead_left, 1) > 0)
				n = snprintf(resp, sizeof(resp), "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:%d/other\r\nContent-Length: 0\r\n\r\n",
					     s->dead_port);
			else
				n = snprintf(resp, sizeof(resp), "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
		} else if (!strcmp(path, "/redirect-away")) {
			n = snprintf(resp, sizeof(resp), "HTTP/1.1 307 Moved\r\nLocation: http://127.0.0.1:%d/other\r\nContent-Length: 0\r\n\r\n",
				     s->port2);
		} else if (!strncmp(path, "/stall/", 7)) {
			stall_conn(s);
			goto out;
		} else if (!strncmp(path, "/tlsredir/", 10)) {
			/* to the TLS server, under another host name */
			n = snprintf(resp, sizeof(resp), "HTTP/1.1 302 Found\r\nLocation: https://localhost:%d/%s\r\nContent-Length: 0\r\n\r\n",
				     s->tls_port, path + 10);
		} else if (!strcmp(path, "/loop")) {
			n = snprintf(resp, sizeof(resp), "HTTP/1.1 302 Found\r\nLocation: /loop\r\nContent-Length: 0\r\n\r\n");
		} else {
			n = snprintf(resp, sizeof(resp), "HTTP/1.1 404 No\r\nContent-Length: 0\r\n\r\n");
		}
		if (send(fd, resp, (size_t)n, MSG_NOSIGNAL) != n)
			goto out;
		have -= (size_t)(end + 4 - req);
		memmove(req, end + 4, have);
	}
out:
	close(fd);
	return NULL;
}

static void *accept_main(void *arg)
{
	struct srv *s = arg;

	while (!atomic_load(&s->stop)) {
		int c = accept(s->fd, NULL, NULL);
		void **a;
		pthread_t t;

		if (c < 0)
			continue;
		a = malloc(2 * sizeof(*a));
		a[0] = s;
		a[1] = (void *)(intptr_t)c;
		if (pthread_create(&t, NULL, conn_main, a) == 0)
			pthread_detach(t);
		else
			close(c);
	}
	return NULL;
}

static int srv_start(struct srv *s)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);

	memset(s, 0, sizeof(*s));
	pthread_mutex_init(&s->lock, NULL);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    listen(s->fd, 64) || getsockname(s->fd, (struct sockaddr *)&sa, &sl))
		return -1;
	s->port = ntohs(sa.sin_port);
	return pthread_create(&s->thr, NULL, accept_main, s) ? -1 : 0;
}

/* A port on 127.0.0.1 that nothing listens on (a dead host). */
static int unused_port(void)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = 1;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && !bind(fd, (struct sockaddr *)&sa, sizeof(sa)) &&
	    !getsockname(fd, (struct sockaddr *)&sa, &sl))
		port = ntohs(sa.sin_port);
	if (fd >= 0)
		close(fd);
	return port;
}

struct par {
	struct be_http *h;
	int port, failures;
};

static void *par_main(void *arg)
{
	struct par *p = arg;

	for (int i = 0; i < 50; i++) {
		struct be_http_req rq = { .ranged = true };
		struct be_http_resp rs;
		struct sk_err e;
		unsigned char b[16];
		char url[64];

		snprintf(url, sizeof(url), "http://127.0.0.1:%d/blob", p->port);
		rq.url = url;
		rq.off = (uint64_t)(i % 8);
		rq.len = 8;
		rq.buf = b;
		if (be_http_do(p->h, &rq, &rs, &e) || memcmp(b, blob + i % 8, 8))
			p->failures++;
		be_http_resp_free(&rs);
	}
	return NULL;
}

/* A read of blob bytes [off, off + strlen(want)) through r as two test
 * points, the read and the bytes it gave: those are skipped when the read
 * fails, as they are then no answer. */
static int read_is(struct be_reg *r, uint64_t off, const char *want, struct sk_err *e,
		   const char *what)
{
	unsigned char b[16];
	size_t len = strlen(want);

	if (!is_int(be_reg_blob_read(r, hex, off, b, len, e), 0, "%s (%s)", what, e->msg)) {
		skip(1, "nothing read");
		return 0;
	}
	return is_mem(b, want, len, "... the bytes at %llu", (unsigned long long)off);
}

/* The registry client against two scripted servers: an origin that wants
 * bearer tokens and a mirror that can break. */
static void test_registry(struct srv *s, struct srv *m)
{
	struct be_config cfg;
	struct be_host_cfg hc;
	struct be_mirror mir;
	struct be_reg *r;
	struct sk_err e = { { 0 } };
	unsigned char b[16];
	int mg;

	be_config_defaults(&cfg);
	cfg.http.backoff_ms = 5;
	cfg.http.max_attempts = 2;
	cfg.mirror_attempts = 1;
	cfg.mirror_skip_ms = 60000;
	snprintf(cfg.docker_config, sizeof(cfg.docker_config), "/nonexistent/config.json");
	memset(&hc, 0, sizeof(hc));
	memset(&mir, 0, sizeof(mir));
	snprintf(hc.host, sizeof(hc.host), "127.0.0.1:%d", s->port);
	hc.plain_http = true;
	snprintf(mir.url, sizeof(mir.url), "http://127.0.0.1:%d", m->port);
	snprintf(mir.headers[0], sizeof(mir.headers[0]), "X-Mirror-Header: yes");
	mir.nheaders = 1;
	hc.mirrors = &mir;
	hc.nmirrors = 1;
	cfg.hosts = &hc;
	cfg.nhosts = 1;
	atomic_store(&s->auth_required, 1);
	if (!ok(be_reg_open(&cfg, hc.host, "r", false, NULL, NULL, &r, &e) == 0,
		"registry client opens (%s)", e.msg)) {
		skip(31, "no client");
		return;
	}
	read_is(r, 2, "234567", &e, "the mirror serves");
	is_int(atomic_load(&m->blob_gets), 1, "... one GET of the mirror");
	is_int(atomic_load(&s->blob_gets), 0, "... none of the origin");
	ok(atomic_load(&m->saw_header), "... with the mirror's extra header");
	atomic_store(&m->broken, 1);
	read_is(r, 0, "0123", &e, "a broken mirror: the origin serves");
	is_int(atomic_load(&s->token_fetches), 1, "... after a bearer token");
	is_int(atomic_load(&m->blob_gets), 2, "... the mirror asked first");
	has_str(s->token_query, "service=svc", "token request names the service");
	has_str(s->token_query, "scope=repository%3Ar%3Apull", "... and the scope");
	mg = atomic_load(&m->blob_gets);
	read_is(r, 8, "89abcdef", &e, "another read");
	is_int(atomic_load(&m->blob_gets), mg, "... the failed mirror rests");
	is_int(atomic_load(&s->token_fetches), 1, "... the token is reused");
	atomic_fetch_add(&s->gen, 1);
	read_is(r, 1, "12", &e, "a read on a stale token");
	is_int(atomic_load(&s->token_fetches), 2, "... after the 401 a new token, once");
	ok(be_reg_blob_read(r, hex, 10, b, 16, &e) != 0, "a range the blob lacks fails (%s)", e.msg);
	/* the mirror works again, but a range reported bad skips it */
	atomic_store(&m->broken, 0);
	atomic_store(&m->blob_gets, 0);
	be_reg_bad_range(r, hex, 4, 4);
	read_is(r, 6, "67", &e, "a range reported bad");
	is_int(atomic_load(&m->blob_gets), 0, "... comes from the origin");
	/* whole small blobs (image configs), digest-checked */
	{
		uint8_t d[SK_SHA256_LEN];
		char good[SK_HEX_LEN + 1], *buf = NULL;
		size_t len = 0;

		sk_sha256(blob, sizeof(blob), d);
		sk_hex(d, sizeof(d), good);
		e.msg[0] = '\0';
		if (!is_int(be_reg_blob_get(r, good, 1024, &buf, &len, &e), 0,
			    "a whole blob whose digest matches (%s)", e.msg))
			skip(2, "no blob");
		else if (!is_int(len, 16, "... all of it"))
			skip(1, "another size");
		else
			is_mem(buf, blob, 16, "... its bytes");
		free(buf);
		buf = NULL;
		e.msg[0] = '\0';
		is_int(be_reg_blob_get(r, hex, 1024, &buf, &len, &e), -EBADMSG,
		       "... one whose digest does not: -EBADMSG");
		ok(!buf, "... giving no bytes");
		has_str(e.msg, "does not match", "... saying so");
		e.msg[0] = '\0';
		is_int(be_reg_blob_get(r, good, 8, &buf, &len, &e), -EMSGSIZE,
		       "... one over the bound: -EMSGSIZE");
		ok(!buf, "... giving no bytes");
		ok(e.msg[0], "... saying why (%s)", e.msg);
	}
	be_reg_close(r);
}

/* The registry client with credentials from helpers the Docker config
 * names: run once, when the registry first asks, their answer kept. */
static void test_registry_helper(struct srv *s)
{
	struct be_config cfg;
	struct be_host_cfg hc;
	struct be_reg *r;
	struct sk_err e = { { 0 } };
	unsigned char b[16];
	char doc[512];
	FILE *f;
	/* the helpers' runs so far (the tests before ran them too) */
	int good0 = count_lines("good.calls"), none0 = count_lines("none.calls"),
	    fail0 = count_lines("fail.calls");

	be_config_defaults(&cfg);
	cfg.http.backoff_ms = 5;
	cfg.http.max_attempts = 2;
	snprintf(cfg.docker_config, sizeof(cfg.docker_config), "%s/config.json", ch_dir);
	memset(&hc, 0, sizeof(hc));
	snprintf(hc.host, sizeof(hc.host), "127.0.0.1:%d", s->port);
	hc.plain_http = true;
	cfg.hosts = &hc;
	cfg.nhosts = 1;
	atomic_store(&s->auth_required, 1);
	atomic_store(&s->broken, 0);

	/* credHelpers for this host over a default store that has nothing */
	snprintf(doc, sizeof(doc), "{\"credsStore\":\"none\",\"credHelpers\":{\"%s\":\"good\"}}", hc.host);
	f = fopen(cfg.docker_config, "w");
	fputs(doc, f);
	fclose(f);
	if (!ok(be_reg_open(&cfg, hc.host, "r", false, NULL, NULL, &r, &e) == 0,
		"registry client with a credential helper opens (%s)", e.msg)) {
		skip(20, "no client");
		return;
	}
	ok(count_lines("good.calls") == good0, "... without running the helper yet");
	atomic_fetch_add(&s->gen, 1);
	read_is(r, 0, "0123", &e, "a read after the registry asked for a token");
	is_str(s->token_auth, "Authorization: Basic aGVscGVyLXVzZXI6czNjcmV0",
	       "... the token was asked for with the helper's credentials");
	atomic_fetch_add(&s->gen, 1);
	read_is(r, 4, "4567", &e, "a read after a new token later");
	is_int(count_lines("good.calls"), good0 + 1, "... the helper's answer was kept: it ran once");
	is_int(count_lines("none.calls"), none0, "... and the default store not at all");
	be_reg_close(r);

	/* the default store has nothing: the "auths" entry serves */
	snprintf(doc, sizeof(doc), "{\"credsStore\":\"none\",\"auths\":{\"%s\":{\"auth\":\"YXV0aHMtdXNlcjpwdw==\"}}}",
		 hc.host);
	f = fopen(cfg.docker_config, "w");
	fputs(doc, f);
	fclose(f);
	atomic_fetch_add(&s->gen, 1);
	if (is_int(be_reg_open(&cfg, hc.host, "r", false, NULL, NULL, &r, &e), 0,
		   "a client where credsStore has no credentials for the host (%s)", e.msg)) {
		is_int(be_reg_blob_read(r, hex, 0, b, 4, &e), 0, "... reads (%s)", e.msg);
		is_int(count_lines("none.calls"), none0 + 1, "... having asked the store once");
		is_str(s->token_auth, "Authorization: Basic YXV0aHMtdXNlcjpwdw==",
		       "... then taken the auths entry");
		be_reg_close(r);
	} else {
		skip(3, "no client");
	}

	/* a failing helper fails the reads, saying why, and is run once */
	snprintf(doc, sizeof(doc), "{\"credHelpers\":{\"%s\":\"fail\"}}", hc.host);
	f = fopen(cfg.docker_config, "w");
	fputs(doc, f);
	fclose(f);
	atomic_fetch_add(&s->gen, 1);
	if (is_int(be_reg_open(&cfg, hc.host, "r", false, NULL, NULL, &r, &e), 0,
		   "a client with a failing helper (%s)", e.msg)) {
		ok(be_reg_blob_read(r, hex, 0, b, 4, &e) != 0, "... fails a read");
		has_str(e.msg, "docker-credential-fail", "... naming the helper");
		ok(be_reg_blob_read(r, hex, 0, b, 4, &e) != 0, "... and the next read");
		has_str(e.msg, "the store is locked", "... with the helper's words");
		is_int(count_lines("fail.calls"), fail0 + 1, "... having run the helper once");
		be_reg_close(r);
	} else {
		skip(5, "no client");
	}

	/* a malformed helper entry is an error at open */
	f = fopen(cfg.docker_config, "w");
	fputs("{\"credsStore\":\"a/b\"}", f);
	fclose(f);
	is_int(be_reg_open(&cfg, hc.host, "r", false, NULL, NULL, &r, &e), -EINVAL,
	       "a helper name with '/' fails at open");
	has_str(e.msg, "config.json", "... naming the file");
}

/* The pure pieces the registry client and the transport rely on: token
 * answers and redirect targets. */
static void test_token_location(void)
{
	char tok[64], out[256], small[24];
	int64_t ttl;

#define TOK(j) be_parse_token(j, strlen(j), tok, sizeof(tok), &ttl)
	if (is_int(TOK("{\"token\":\"a.b.c\",\"expires_in\":300}"), 0, "token and expires_in")) {
		is_str(tok, "a.b.c", "... the token");
		is_int(ttl, 300, "... its lifetime");
	} else {
		skip(2, "no token");
	}
	if (is_int(TOK("{\"token\":\"\",\"access_token\":\"x\"}"), 0,
		   "access_token when token is empty")) {
		is_str(tok, "x", "... the token");
		is_int(ttl, 60, "... 60 s without expires_in");
	} else {
		skip(2, "no token");
	}
	if (is_int(TOK("{\"token\":\"x\",\"expires_in\":1}"), 0, "expires_in of 1 s"))
		is_int(ttl, 10, "... kept to 10 s");
	else
		skip(1, "no token");
	if (is_int(TOK("{\"token\":\"x\",\"expires_in\":99999999999}"), 0,
		   "expires_in of thousands of years"))
		is_int(ttl, 86400, "... kept to a day");
	else
		skip(1, "no token");
	is_int(TOK("{\"token\":\"a\\r\\nX: y\"}"), -EPROTO, "no token with a line break");
	is_int(TOK("{\"token\":\"a b\"}"), -EPROTO, "... with a space");
	is_int(TOK("{\"token\":7}"), -EPROTO, "... of another type");
	is_int(TOK("[]"), -EPROTO, "... from JSON not an object");
	is_int(TOK("{"), -EPROTO, "... from bad JSON");
	is_int(TOK("{\"token\":\"0123456789012345678901234567890123456789012345678901234567890123\"}"),
	       -EPROTO, "... one too long");
#undef TOK
	{
		/* a target whose host no host config can name: its TLS
		 * setting and credentials could not be decided */
		char loc[400] = "//";

		memset(loc + 2, 'w', 300);
		strcpy(loc + 302, "/p");
		is_int(be_resolve_location("https://r/a", loc, out, sizeof(out)), -EINVAL,
		       "a redirect to a 300-byte host is refused");
		ok(!out[0], "... leaving no target");
	}
	if (is_int(be_resolve_location("https://r:5000/v2/a/blobs/x", "/b?x=1", out, sizeof(out)),
		   0, "Location: relative"))
		is_str(out, "https://r:5000/b?x=1", "... on the same host");
	else
		skip(1, "no target");
	if (is_int(be_resolve_location("https://r/a/b/c", "../d", out, sizeof(out)), 0,
		   "Location: dot segments"))
		is_str(out, "https://r/a/d", "... resolved");
	else
		skip(1, "no target");
	if (is_int(be_resolve_location("https://r/a", "//s:1/p", out, sizeof(out)), 0,
		   "Location: scheme-relative"))
		is_str(out, "https://s:1/p", "... the same scheme");
	else
		skip(1, "no target");
	if (is_int(be_resolve_location("https://r/a", "http://s/p", out, sizeof(out)), 0,
		   "Location: absolute"))
		is_str(out, "http://s/p", "... as given");
	else
		skip(1, "no target");
	is_int(be_resolve_location("https://r/a", "ftp://s/p", out, sizeof(out)), -EINVAL,
	       "... not to another scheme");
	ok(!out[0], "... leaving no target");
	is_int(be_resolve_location("https://r/a", "https://s/p\x92q", out, sizeof(out)), -EINVAL,
	       "... not with high bytes");
	ok(!out[0], "... leaving no target");
	is_int(be_resolve_location("https://r/a", "https://s/0123456789012345678901234", small,
				   sizeof(small)), -ENAMETOOLONG, "... never cut");
	ok(!small[0], "... leaving no target");
}

/* cfg and hc for a client of the plain-http registry s, no Docker config */
static void reg_cfg(struct srv *s, struct be_config *cfg, struct be_host_cfg *hc)
{
	be_config_defaults(cfg);
	snprintf(cfg->docker_config, sizeof(cfg->docker_config), "/nonexistent/config.json");
	memset(hc, 0, sizeof(*hc));
	snprintf(hc->host, sizeof(hc->host), "127.0.0.1:%d", s->port);
	hc->plain_http = true;
	cfg->hosts = hc;
	cfg->nhosts = 1;
}

/* Which token realms get the user's credentials (be_realm_trusted), and
 * the registry client refusing to send them elsewhere. */
static void test_realms(struct srv *s)
{
	struct be_host_cfg hc;
	struct be_config cfg;
	struct be_reg *r;
	struct sk_err e = { { 0 } };
	unsigned char b[16];
	char realm[128];
	int ret, fetches;

	memset(&hc, 0, sizeof(hc));
	ok(be_realm_trusted("https://r.example:5000", "r.example:5000", NULL,
			    "https://r.example:5001/token?x=1"),
	   "a realm on the registry's host, another port, is trusted");
	ok(be_realm_trusted("http://r.example:5000", "r.example:5000", NULL, "http://R.example/token"),
	   "... over http from an http registry, the host in another case, no port");
	ok(!be_realm_trusted("https://r.example", "r.example", NULL, "http://r.example/token"),
	   "... not over plain http from an https registry");
	ok(!be_realm_trusted("https://r.example", "r.example", NULL, "https://auth.example/token"),
	   "... nor one on another host");
	ok(!be_realm_trusted("https://127.0.0.1:5000", "127.0.0.1:5000", NULL, "https://localhost:5000/t"),
	   "... nor another name of the same address");
	ok(!be_realm_trusted("https://r.example", "r.example", NULL, "https://r.example.evil/token"),
	   "... nor a longer name starting with the host's");
	ok(!be_realm_trusted("https://r.example", "r.example", NULL, "https://r.example@evil/token"),
	   "... nor another host with the registry's name as userinfo");
	ok(!be_realm_trusted("https://r.example", "r.example", NULL, "ftp://r.example/token"),
	   "... nor another scheme");
	ok(be_realm_trusted("https://registry-1.docker.io", "docker.io", NULL,
			    "https://auth.docker.io/token"),
	   "Docker Hub's token service is trusted for docker.io");
	ok(!be_realm_trusted("https://registry-1.docker.io", "docker.io", NULL,
			     "https://auth.docker.io/tokens"),
	   "... at its own path only");
	ok(!be_realm_trusted("https://other", "other", NULL, "https://auth.docker.io/token"),
	   "... and not for other registries");
	snprintf(hc.token_realms[0], sizeof(hc.token_realms[0]), "https://auth.example/token");
	snprintf(hc.token_realms[1], sizeof(hc.token_realms[1]), "http://r.example/token");
	hc.ntoken_realms = 2;
	ok(be_realm_trusted("https://r.example", "r.example", &hc, "https://auth.example/token?a=b"),
	   "a configured token realm is trusted, with a query");
	ok(be_realm_trusted("https://r.example", "r.example", &hc, "http://r.example/token"),
	   "... a configured one over plain http too");
	ok(!be_realm_trusted("https://r.example", "r.example", &hc, "https://auth.example/token2"),
	   "... not a longer path");
	ok(!be_realm_trusted("https://r.example", "r.example", &hc, "https://auth.example/"),
	   "... nor a shorter one");

	reg_cfg(s, &cfg, &hc);
	cfg.http.backoff_ms = 5;
	cfg.http.max_attempts = 2;
	atomic_store(&s->auth_required, 1);
	atomic_store(&s->broken, 0);
	/* the registry names a token service on another host name */
	snprintf(s->realm_host, sizeof(s->realm_host), "localhost");
	snprintf(realm, sizeof(realm), "http://localhost:%d/token", s->port);
	atomic_fetch_add(&s->gen, 1);
	fetches = atomic_load(&s->token_fetches);
	if (!ok(be_reg_open(&cfg, hc.host, "r", false, "u", "p", &r, &e) == 0,
		"client with credentials opens (%s)", e.msg)) {
		skip(14, "no client");
		goto out;
	}
	e.msg[0] = '\0';
	ret = be_reg_blob_read(r, hex, 0, b, 4, &e);
	is_int(ret, -EACCES, "a realm on another host: refused");
	has_str(e.msg, "token_realms", "... naming the key to set");
	has_str(e.msg, realm, "... the realm");
	has_str(e.msg, hc.host, "... and the host");
	ok(atomic_load(&s->token_fetches) == fetches, "... the token service was not asked at all");
	be_reg_close(r);

	/* anonymous: nothing to give away, the token is asked for */
	e.msg[0] = '\0';
	if (is_int(be_reg_open(&cfg, hc.host, "r", false, NULL, NULL, &r, &e), 0,
		   "an anonymous client (%s)", e.msg)) {
		read_is(r, 0, "0123", &e, "... reads");
		is_int(atomic_load(&s->token_fetches), fetches + 1,
		       "... an anonymous token comes from that realm");
		is_str(s->token_auth, "none", "... asked for without credentials");
		be_reg_close(r);
	} else {
		skip(4, "no client");
	}

	/* configured: the credentials go there */
	snprintf(hc.token_realms[0], sizeof(hc.token_realms[0]), "%s", realm);
	hc.ntoken_realms = 1;
	atomic_fetch_add(&s->gen, 1);
	e.msg[0] = '\0';
	if (is_int(be_reg_open(&cfg, hc.host, "r", false, "u", "p", &r, &e), 0,
		   "a client with credentials again (%s)", e.msg)) {
		read_is(r, 4, "4567", &e, "... reads");
		is_str(s->token_auth, "Authorization: Basic dTpw",
		       "... the realm listed in token_realms gets them");
		be_reg_close(r);
	} else {
		skip(3, "no client");
	}
out:
	s->realm_host[0] = '\0';
}

/* A registry client of host reads 4 bytes of a blob: what it returned,
 * and in *el how long it took. */
static int timed_reg_read(const struct be_config *cfg, const char *host,
			  struct sk_err *e, double *el)
{
	double t0 = sk_now();
	unsigned char b[4];
	struct be_reg *r;
	int ret;

	e->msg[0] = '\0';
	ret = be_reg_open(cfg, host, "r", false, NULL, NULL, &r, e);
	if (ret == 0) {
		ret = be_reg_blob_read(r, hex, 0, b, sizeof(b), e);
		be_reg_close(r);
	}
	*el = sk_now() - t0;
	return ret;
}

/* A stalled server costs a read the deadline, not max_attempts times the
 * transport's timeouts and backoffs. */
/* A read's deadline grows with what it asks for: a slow link still
 * moves an 8 MiB piece of a bootstrap, a stall is still cut. */
static bool near(double a, double b)
{
	return a - b < 1.0 && b - a < 1.0;
}

static void test_deadline_scale(void)
{
	struct be_config cfg;
	double now;

	be_config_defaults(&cfg);
	cfg.read_deadline_ms = 10000;
	now = sk_now();
	ok(near(be_read_deadline(&cfg, 0), now + 10.0), "no length: the base deadline");
	ok(near(be_read_deadline(&cfg, 1u << 20), now + 10.0), "1 MiB: the base deadline");
	ok(near(be_read_deadline(&cfg, (1u << 20) + 1), now + 20.0),
	   "a byte past 1 MiB: twice");
	ok(near(be_read_deadline(&cfg, 8u << 20), now + 80.0), "8 MiB: eight times");
	cfg.read_deadline_ms = 0;
	ok(be_read_deadline(&cfg, 8u << 20) == 0, "0: no deadline");
	be_config_free(&cfg);
}

static void test_deadline(struct srv *s)
{
	struct be_config cfg;
	struct be_host_cfg hc;
	struct be_source *src;
	struct be_ref ref;
	struct sk_err e = { { 0 } };
	unsigned char b[16];
	char url[128];
	double t0, el;
	int ret;

	reg_cfg(s, &cfg, &hc);	/* 5 attempts, 15 s low-speed time each */
	cfg.read_deadline_ms = 1500;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/stall", s->port);
	ret = be_ref_parse(url, &ref, &e) ?: be_source_open(&ref, &cfg, &src, &e);
	if (!is_int(ret, 0, "a web source on a stalled server (%s)", e.msg)) {
		skip(10, "no source");
		return;
	}
	t0 = sk_now();
	ret = be_source_read(src, hex, 0, b, 4, &e);
	el = sk_now() - t0;
	ok(ret == -ETIMEDOUT, "a read from it fails with ETIMEDOUT (%d)", ret);
	ok(strstr(e.msg, "/stall/blobs/sha256/") && strstr(e.msg, "deadline"),
	   "... saying which URL and that the deadline passed (%s)", e.msg);
	ok(el < 10, "... at the deadline, not after the transport's retries (%.1f s)", el);
	be_source_destroy(src);

	/* the registry client: one deadline over every endpoint and try;
	 * a server that answers 503 forever, backoffs of a second */
	cfg.http.max_attempts = 100;
	cfg.http.backoff_ms = 1000;
	atomic_store(&s->auth_required, 0);
	atomic_store(&s->broken, 1);
	ret = timed_reg_read(&cfg, hc.host, &e, &el);
	is_int(ret, -ETIMEDOUT, "a registry answering 503 with long backoffs: ETIMEDOUT");
	has_str(e.msg, "deadline", "... saying the deadline passed");
	has_str(e.msg, "HTTP 503", "... and what the registry said");
	ok(el < 10, "... by the deadline (%.1f s)", el);
	atomic_store(&s->broken, 0);
	atomic_store(&s->stall, 1);
	ret = timed_reg_read(&cfg, hc.host, &e, &el);
	is_int(ret, -ETIMEDOUT, "a stalled registry: ETIMEDOUT");
	has_str(e.msg, "deadline", "... saying the deadline passed");
	ok(el < 10, "... by the deadline (%.1f s)", el);
	atomic_store(&s->stall, 0);
}

/* openssl s_server -WWW on 127.0.0.1:port serving dir with a
 * self-signed (so untrusted) certificate for localhost: its pid, or -1. */
static pid_t tls_server(const char *dir, int port)
{
	char cmd[1024], acc[32];
	pid_t pid;

	snprintf(cmd, sizeof(cmd),
		 "cd %s && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
		 "-subj /CN=localhost -addext subjectAltName=DNS:localhost -keyout key.pem -out cert.pem "
		 ">/dev/null 2>&1", dir);
	if (system(cmd))
		return -1;
	snprintf(acc, sizeof(acc), "127.0.0.1:%d", port);
	pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		if (chdir(dir))
			_exit(127);
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		execlp("openssl", "openssl", "s_server", "-quiet", "-WWW", "-accept", acc,
		       "-cert", "cert.pem", "-key", "key.pem", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; pid > 0 && i < 100; i++) {
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		int c;

		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		c = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
		close(fd);
		if (c == 0)
			return pid;
		usleep(100 * 1000);
	}
	if (pid > 0) {
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
	}
	return -1;
}

/* A host configured insecure redirects to another host whose certificate
 * does not verify: the redirect target is verified all the same. */
static void test_tls_redirect(struct srv *s)
{
	struct be_config cfg;
	struct be_host_cfg hc[2];
	struct be_source *src;
	struct be_ref ref;
	struct sk_err e = { { 0 } };
	unsigned char b[16];
	char dir[] = "/tmp/skiff-tls-XXXXXX", path[256], url[128], id[SK_HEX_LEN + 1];
	uint8_t d[SK_SHA256_LEN];
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sa);
	pid_t pid = -1;
	int fd, ret;
	FILE *f;

	sk_sha256(blob, sizeof(blob), d);
	sk_hex(d, sizeof(d), id);
	/* a port nothing listens on now */
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd >= 0 && !bind(fd, (struct sockaddr *)&sa, sizeof(sa)) &&
	    !getsockname(fd, (struct sockaddr *)&sa, &sl))
		s->tls_port = ntohs(sa.sin_port);
	close(fd);
	if (mkdtemp(dir)) {
		snprintf(path, sizeof(path), "%s/blobs/sha256", dir);
		if (!sk_mkdir_p(path, 0755)) {
			snprintf(path, sizeof(path), "%s/blobs/sha256/%s", dir, id);
			f = fopen(path, "w");
			if (f) {
				fwrite(blob, 1, sizeof(blob), f);
				fclose(f);
			}
		}
		if (s->tls_port)
			pid = tls_server(dir, s->tls_port);
	}
	if (pid < 0) {
		skip(5, "no openssl s_server");
		goto out;
	}
	be_config_defaults(&cfg);
	cfg.http.max_attempts = 1;
	memset(hc, 0, sizeof(hc));
	snprintf(hc[0].host, sizeof(hc[0].host), "127.0.0.1:%d", s->port);
	hc[0].insecure = true;
	snprintf(hc[1].host, sizeof(hc[1].host), "localhost:%d", s->tls_port);
	hc[1].insecure = true;
	cfg.hosts = hc;
	cfg.nhosts = 1;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/tlsredir", s->port);
	ret = be_ref_parse(url, &ref, &e) ?: be_source_open(&ref, &cfg, &src, &e);
	if (!ok(ret == 0, "a web source on an insecure host (%s)", e.msg)) {
		skip(5, "no source");
		goto out;
	}
	ret = be_source_read(src, id, 0, b, sizeof(blob), &e);
	is_int(ret, -EPROTO,
	       "its redirect to another host with an untrusted certificate fails verification");
	ok(strstr(e.msg, "certificate") || strstr(e.msg, "SSL"), "... saying so (%s)", e.msg);
	is_int(atomic_load(&src->ops->stats(src)->errors[BE_HE_TLS]), 1, "... counted as a TLS error");
	be_source_destroy(src);
	/* that host configured insecure too: its own setting serves */
	cfg.nhosts = 2;
	ret = be_source_open(&ref, &cfg, &src, &e);
	if (!ret)
		ret = be_source_read(src, id, 0, b, sizeof(blob), &e);
	if (is_int(ret, 0, "... and works once that host is configured insecure (%s)", e.msg))
		is_mem(b, blob, sizeof(blob), "... the blob's bytes");
	else
		skip(1, "nothing read");
	if (!ret)
		be_source_destroy(src);
out:
	if (pid > 0) {
		kill(pid, SIGTERM);
		waitpid(pid, NULL, 0);
	}
	snprintf(path, sizeof(path), "rm -rf %s", dir);
	if (system(path))
		diag("cannot remove %s", dir);
}

static void test_transport(void)
{
	struct srv s, s2;
	struct be_http_opts o;
	struct be_http *h;
	struct be_http_req rq = { 0 };
	struct be_http_resp rs;
	struct sk_err e = { { 0 } };
	unsigned char b[16];
	char url[128];
	double t0;
	int ret;

	if (srv_start(&s) || srv_start(&s2)) {
		skip(42, "no loopback TCP server");
		return;
	}
	s.port2 = s2.port;
	be_http_opts_defaults(&o);
	o.backoff_ms = 10;
	o.max_attempts = 3;
	o.retry_after_max_ms = 300;
	ok(be_http_new(&o, &h, &e) == 0, "transport starts");

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/blob", s.port);
	rq = (struct be_http_req){ .url = url, .ranged = true, .off = 3, .len = 5, .buf = b };
	if (is_int(be_http_do(h, &rq, &rs, &e), 0, "exact range (%s)", e.msg)) {
		is_int(rs.status, 206, "... 206");
		is_mem(b, "34567", 5, "... its bytes");
	} else {
		skip(2, "no answer");
	}
	be_http_resp_free(&rs);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/full", s.port);
	rq = (struct be_http_req){ .url = url, .ranged = true, .off = 0, .len = 16, .buf = b };
	if (is_int(be_http_do(h, &rq, &rs, &e), 0, "the whole object asked (%s)", e.msg)) {
		is_int(rs.status, 200, "... 200");
		is_mem(b, blob, 16, "... its bytes");
	} else {
		skip(2, "no answer");
	}
	be_http_resp_free(&rs);
	rq = (struct be_http_req){ .url = url, .ranged = true, .off = 2, .len = 4, .buf = b };
	ret = be_http_do(h, &rq, &rs, &e);
	ok(ret == -EPROTO, "200 with the whole object for a part is no data (%d: %s)", ret, e.msg);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/badrange", s.port);
	rq = (struct be_http_req){ .url = url, .ranged = true, .off = 0, .len = 4, .buf = b };
	is_int(be_http_do(h, &rq, &rs, &e), -EPROTO, "a Content-Range for other bytes is no data");
	ok(atomic_load(&be_http_stats(h)->errors[BE_HE_MISMATCH]) >= 4, "... retried, counted (%llu)",
	   (unsigned long long)atomic_load(&be_http_stats(h)->errors[BE_HE_MISMATCH]));

	atomic_store(&s.fail_left, 2);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/flaky", s.port);
	rq = (struct be_http_req){ .url = url };
	t0 = sk_now();
	if (is_int(be_http_do(h, &rq, &rs, &e), 0, "two 503s, then an answer (%s)", e.msg)) {
		is_int(rs.status, 200, "... 200");
		is_int(rs.body_len, 2, "... with its body");
	} else {
		skip(2, "no answer");
	}
	ok(sk_now() - t0 >= 0.55, "... Retry-After honoured up to its cap (%.2f s)", sk_now() - t0);
	be_http_resp_free(&rs);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/always503", s.port);
	rq = (struct be_http_req){ .url = url };
	is_int(be_http_do(h, &rq, &rs, &e), -EIO, "503 for good: an error");
	has_str(e.msg, "3 attempts", "... after the bounded attempts");

	static const char *authz = "Authorization: Bearer secret-token";

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/redirect-same", s.port);
	rq = (struct be_http_req){ .url = url, .headers = { authz }, .nheaders = 1 };
	if (is_int(be_http_do(h, &rq, &rs, &e), 0, "a redirect on the same host (%s)", e.msg))
		is_int(rs.status, 200, "... followed");
	else
		skip(1, "no answer");
	has_str(s.last_auth, "secret-token", "... keeps credentials");
	be_http_resp_free(&rs);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/redirect-away", s.port);
	if (is_int(be_http_do(h, &rq, &rs, &e), 0, "a redirect to another port (%s)", e.msg))
		is_int(rs.status, 200, "... followed");
	else
		skip(1, "no answer");
	is_str(s2.last_auth, "none", "... drops them");
	be_http_resp_free(&rs);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/loop", s.port);
	rq = (struct be_http_req){ .url = url };
	ok(be_http_do(h, &rq, &rs, &e) == -ELOOP, "a redirect loop ends");

	/* a redirect to a dead host: a retry asks the origin again, not the
	 * target that failed */
	uint64_t c0 = atomic_load(&be_http_stats(h)->errors[BE_HE_CONNECT]);
	uint64_t r0 = atomic_load(&be_http_stats(h)->redirects);
	char dead[64];

	s.dead_port = unused_port();
	snprintf(dead, sizeof(dead), "127.0.0.1:%d/other", s.dead_port);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/redirect-dead", s.port);
	rq = (struct be_http_req){ .url = url };
	atomic_store(&s.dead_left, 1);
	atomic_store(&s.dead_asked, 0);
	if (is_int(be_http_do(h, &rq, &rs, &e), 0, "a redirect to a dead host once (%s)", e.msg))
		is_int(rs.status, 200, "... then the answer");
	else
		skip(1, "no answer");
	be_http_resp_free(&rs);
	is_int(atomic_load(&s.dead_asked), 2, "... the retry asked the origin again");
	is_int(atomic_load(&be_http_stats(h)->errors[BE_HE_CONNECT]) - c0, 1,
	       "... one failed attempt, counted as connect");
	is_int(atomic_load(&be_http_stats(h)->redirects) - r0, 1, "... one redirect followed");
	atomic_store(&s.dead_left, 100);
	atomic_store(&s.dead_asked, 0);
	is_int(be_http_do(h, &rq, &rs, &e), -ECONNREFUSED, "a redirect to a dead host for good: refused");
	has_str(e.msg, dead, "... naming the dead host");
	has_str(e.msg, "3 attempts", "... after the bounded attempts");
	is_int(atomic_load(&s.dead_asked), 3, "... each of them at the origin first");

	struct par p[8];
	pthread_t t[8];
	int fails = 0, before = atomic_load(&s.requests);

	for (int i = 0; i < 8; i++) {
		p[i] = (struct par){ h, s.port, 0 };
		pthread_create(&t[i], NULL, par_main, &p[i]);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		fails += p[i].failures;
	}
	is_int(fails, 0, "8 threads x 50 ranged reads at once, all exact");
	is_int(atomic_load(&s.requests) - before, 400, "... one request each");
	ok(atomic_load(&be_http_stats(h)->requests) > 400, "requests counted");
	be_http_destroy(h);
	test_registry(&s, &s2);
	if (ch_dir[0])
		test_registry_helper(&s);
	else
		skip(21, "no helper directory");
	test_realms(&s);
	test_deadline(&s);
	test_tls_redirect(&s);
	atomic_store(&s.stop, 1);
	atomic_store(&s2.stop, 1);
	shutdown(s.fd, SHUT_RDWR);
	shutdown(s2.fd, SHUT_RDWR);
	pthread_join(s.thr, NULL);
	pthread_join(s2.thr, NULL);
	close(s.fd);
	close(s2.fd);
}

int main(void)
{
	test_content_range();
	test_retry_after();
	test_www_auth();
	test_refs();
	test_manifests();
	test_docker_config();
	test_docker_helper_names();
	test_cred_helper_parse();
	if (ch_setup() == 0) {
		test_cred_helper_run();
	} else {
		ch_dir[0] = '\0';
		skip(13, "cannot write fake credential helpers in /tmp");
	}
	test_config();
	test_token_location();
	test_deadline_scale();
	test_transport();
	ch_cleanup();
	return done_testing();
}
