/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for backend/store.c: reference splitting, layout creation,
 * blobs, adding and resolving images and tags, and rejection of malformed
 * index.json and manifests (untrusted JSON).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../backend/source.h"
#include "../../backend/store.h"
#include "tap.h"


/* a valid start for hand-written manifests: each bad one below fails for
 * its own reason */
#define Z64 "0000000000000000000000000000000000000000000000000000000000000000"
#define MAN_HEAD "{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" BE_MT_CONFIG \
	"\",\"digest\":\"sha256:" Z64 "\",\"size\":2},"
static char g_tmp[PATH_MAX];

static int rm_rf(const char *path)
{
	char cmd[PATH_MAX + 32];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	return system(cmd);
}

static int split(const char *ref, const char *dir, const char *tag)
{
	char d[PATH_MAX], t[256];
	int ret = be_ref_split(ref, d, sizeof(d), t, sizeof(t));

	if (ret) {
		diag("be_ref_split(%s) = %d", ref, ret);
		return 0;
	}
	if (strcmp(d, dir) || strcmp(t, tag)) {
		diag("be_ref_split(%s) = \"%s\" \"%s\"", ref, d, t);
		return 0;
	}
	return 1;
}

static void test_ref_split(void)
{
	char d[PATH_MAX], t[256], p[PATH_MAX];
	struct be_store s;
	struct sk_err e = { { 0 } };

	ok(split("img", "img", ""), "DIR");
	ok(split("img:v1", "img", "v1"), "DIR:TAG");
	ok(split("/abs/path/img:latest", "/abs/path/img", "latest"), "absolute DIR:TAG");
	ok(split("a:b:c", "a:b", "c"), "the last colon splits");
	ok(split("localhost:5000/img", "localhost:5000/img", ""),
	   "a colon before a slash is part of the directory");
	ok(split("img:", "img", ""), "empty tag after a colon");
	ok(split("./x:y", "./x", "y"), "relative DIR:TAG");

	/* an existing layout whose name contains a colon wins over a split */
	fmtpath(p, "%s/odd:name", g_tmp);
	if (be_store_open(&s, p, 1, &e) == 0)
		ok(split(p, p, ""), "an existing layout named with a colon is a DIR");
	else
		skip(1, "cannot create %s: %s", p, e.msg);

	is_int(be_ref_split("abcdef:tag", d, 4, t, sizeof(t)), -ENAMETOOLONG,
	       "directory longer than its buffer");
	is_int(be_ref_split("abc:tagtag", d, sizeof(d), t, 4), -ENAMETOOLONG,
	       "tag longer than its buffer");
	is_int(be_ref_split("abcdef", d, 6, t, sizeof(t)), -ENAMETOOLONG,
	       "untagged directory that needs one byte more");
	is_int(be_ref_split("abcde", d, 6, t, sizeof(t)), 0, "... and one that just fits");
}

static int file_is(const char *path, const char *want)
{
	FILE *f = fopen(path, "r");
	char buf[4096];
	size_t n;

	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return !want || !strcmp(buf, want);
}

static void test_open_put(struct be_store *s, const char *root)
{
	struct sk_err e = { { 0 } };
	char p[PATH_MAX], hex[SK_HEX_LEN + 1];
	uint8_t d[SK_SHA256_LEN];
	char want[SK_HEX_LEN + 1];
	struct stat st;
	int fd;

	is_int(be_store_open(s, root, 0, &e), -ENOENT, "open without create on a missing layout");
	ok(e.msg[0] != '\0', "... explains (%s)", e.msg);
	is_int(be_store_open(s, root, 1, &e), 0, "open with create");
	fmtpath(p, "%s/oci-layout", root);
	ok(file_is(p, "{\"imageLayoutVersion\":\"1.0.0\"}"), "oci-layout written");
	fmtpath(p, "%s/index.json", root);
	ok(file_is(p, NULL), "index.json written");
	fmtpath(p, "%s/blobs/sha256", root);
	if (is_int(stat(p, &st), 0, "blobs/sha256 created"))
		ok(S_ISDIR(st.st_mode), "... as a directory (mode %o)", st.st_mode);
	else
		skip(1, "no blobs/sha256");
	is_int(be_store_open(s, root, 0, &e), 0, "reopen without create");
	is_int(be_store_open(s, root, 1, &e), 0, "reopen with create keeps the layout");

	is_int(be_store_put(s, "abc", 3, hex), 0, "be_store_put");
	sk_sha256("abc", 3, d);
	sk_hex(d, sizeof(d), want);
	is_mem(hex, want, sizeof(want), "blob named by its SHA-256");
	if (is_int(be_store_blob_path(s, hex, p, sizeof(p)), 0, "the blob's path"))
		ok(file_is(p, "abc"), "blob content at blobs/sha256/<hex>");
	else
		skip(1, "no blob path");
	is_int(be_store_put(s, "abc", 3, hex), 0, "putting the same blob again");
	is_int(be_store_blob_path(s, "0123456789012345678901234567890123456789"
				  "01234567890123456789012345", p, sizeof(p)),
	       -EINVAL, "blob path of an over-long hex");
	is_int(be_store_blob_path(s, want, p, 10), -ENAMETOOLONG, "blob path buffer too small");

	fd = -1;
	if (!is_int(be_store_tmp_blob(s, p, sizeof(p), &fd), 0, "be_store_tmp_blob")) {
		skip(5, "no temporary blob");
	} else if (!ok(fd >= 0, "... opens it (%d)", fd)) {
		skip(4, "no temporary blob fd");
	} else {
		ok(write(fd, "xyz", 3) == 3, "write to the temporary blob");
		close(fd);
		sk_sha256("xyz", 3, d);
		sk_hex(d, sizeof(d), want);
		is_int(be_store_commit_blob(s, p, want), 0, "be_store_commit_blob");
		if (is_int(be_store_blob_path(s, want, p, sizeof(p)), 0,
			   "the committed blob's path"))
			ok(file_is(p, "xyz"), "committed blob in place");
		else
			skip(1, "no blob path");
	}

	fmtpath(p, "%s/not/here", g_tmp);
	ok(be_store_open(s, p, 0, &e) < 0, "open a missing directory without create");
}

/* An image with n blobs whose layer names derive from seed. */
static void make_image(const struct be_store *s, struct be_image *img,
		       struct be_layer *blobs, unsigned int n, const char *seed,
		       const char *tag)
{
	char buf[64];

	memset(img, 0, sizeof(*img));
	for (unsigned int i = 0; i < n; i++) {
		snprintf(buf, sizeof(buf), "%s-blob-%u", seed, i);
		if (be_store_put(s, buf, strlen(buf), blobs[i].hex))
			bail_out("be_store_put");
		blobs[i].size = strlen(buf);
	}
	snprintf(buf, sizeof(buf), "%s-bootstrap", seed);
	if (be_store_put(s, buf, strlen(buf), img->bootstrap.hex))
		bail_out("be_store_put");
	img->bootstrap.size = strlen(buf);
	img->blobs = blobs;
	img->nblobs = n;
	snprintf(img->tag, sizeof(img->tag), "%s", tag);
}

static int same_image(const struct be_image *got, const struct be_image *want)
{
	if (strcmp(got->bootstrap.hex, want->bootstrap.hex) ||
	    got->bootstrap.size != want->bootstrap.size || got->nblobs != want->nblobs)
		return 0;
	for (unsigned int i = 0; i < want->nblobs; i++)
		if (strcmp(got->blobs[i].hex, want->blobs[i].hex) ||
		    got->blobs[i].size != want->blobs[i].size)
			return 0;
	return 1;
}

static int count_manifests(const char *root)
{
	char p[PATH_MAX];
	FILE *f;
	int c, n = 0;
	const char *pat = "\"" BE_MT_MANIFEST "\"";
	size_t m = 0;

	fmtpath(p, "%s/index.json", root);
	f = fopen(p, "r");
	if (!f)
		return -1;
	while ((c = fgetc(f)) != EOF) {
		m = c == pat[m] ? m + 1 : c == pat[0];
		if (!pat[m]) {
			n++;
			m = 0;
		}
	}
	fclose(f);
	return n;
}

/* Resolves tag and checks that it names want; two test points. */
static void resolves_to(const struct be_store *s, const char *tag,
			const struct be_image *want, const char *what)
{
	struct sk_err e = { { 0 } };
	struct be_image got;

	if (is_int(be_store_resolve(s, tag, &got, &e), 0, "resolve %s (%s)",
		   tag ? tag : "without a tag", e.msg)) {
		ok(same_image(&got, want), "%s", what);
		be_image_free(&got);
	} else {
		skip(1, "did not resolve");
	}
}

/* be_image_json gives the bytes be_store_add_image wrote for img (tagged
 * v1, no annotations): a registry target pushes what a layout gets. */
static void test_image_json(const struct be_store *s, const struct be_image *img)
{
	struct sk_err e = { { 0 } };
	struct be_image_json ij;
	struct be_image got;
	char p[PATH_MAX];

	if (!is_int(be_image_json(img, NULL, NULL, &ij, &e), 0, "be_image_json (%s)", e.msg)) {
		skip(4, "no JSON");
		return;
	}
	if (is_int(be_store_resolve(s, "v1", &got, &e), 0, "resolve v1")) {
		is_mem(ij.manifest_hex, got.manifest_hex, SK_HEX_LEN + 1,
		       "the manifest digest is the one the layout has");
		be_image_free(&got);
	} else {
		skip(1, "did not resolve");
	}
	be_store_blob_path(s, ij.manifest_hex, p, sizeof(p));
	/* both texts are NUL-terminated JSON of a few hundred bytes */
	ok(file_is(p, ij.manifest), "... the same manifest bytes");
	be_store_blob_path(s, ij.config_hex, p, sizeof(p));
	ok(file_is(p, ij.config), "... and the same config bytes");
	be_image_json_free(&ij);
	e.msg[0] = '\0';
	is_int(be_image_json(img, NULL, "[1", &ij, &e), -EINVAL, "bad annotations: -EINVAL");
	ok(e.msg[0], "... said (%s)", e.msg);
	ok(!ij.config, "... no config to free");
	ok(!ij.manifest, "... no manifest to free");
}

static void test_images(const char *root)
{
	struct be_store s;
	struct sk_err e = { { 0 } };
	struct be_layer b1[2], b2[1], b3[3];
	struct be_image i1, i2, i3, got;

	if (be_store_open(&s, root, 1, &e))
		bail_out("be_store_open: %s", e.msg);
	make_image(&s, &i1, b1, 2, "one", "v1");
	make_image(&s, &i2, b2, 1, "two", "v2");
	make_image(&s, &i3, b3, 3, "three", "v1");

	ok(be_store_resolve(&s, NULL, &got, &e) == -ENOENT, "resolve in an empty layout: -ENOENT");
	ok(e.msg[0] != '\0', "... explains (%s)", e.msg);

	e.msg[0] = '\0';
	is_int(be_store_add_image(&s, &i1, NULL, &e), 0, "add image v1 (%s)", e.msg);
	if (is_int(be_store_resolve(&s, "v1", &got, &e), 0, "resolve v1 (%s)", e.msg)) {
		ok(same_image(&got, &i1), "v1 resolves to its bootstrap and blobs, in order");
		is_mem(got.tag, "v1", 3, "resolved tag");
		is_int(strlen(got.manifest_hex), SK_HEX_LEN, "manifest digest");
		ok(got.manifest_size > 0, "... and size (%llu)",
		   (unsigned long long)got.manifest_size);
		be_image_free(&got);
	} else {
		skip(4, "v1 did not resolve");
	}
	resolves_to(&s, NULL, &i1, "the only image resolves without a tag");
	resolves_to(&s, "", &i1, "an empty tag means no tag");
	is_int(be_store_resolve(&s, "v2", &got, &e), -ENOENT, "resolve a missing tag: -ENOENT");

	e.msg[0] = '\0';
	is_int(be_store_add_image(&s, &i2, "{\"org.example.note\":\"hi\"}", &e), 0,
	       "add image v2 with annotations (%s)", e.msg);
	resolves_to(&s, "v2", &i2, "v2 is the second image");
	resolves_to(&s, "v1", &i1, "v1 unchanged");
	is_int(be_store_resolve(&s, NULL, &got, &e), -EINVAL,
	       "no tag with two images is ambiguous");
	ok(strstr(e.msg, "TAG") != NULL, "... and says to name one (%s)", e.msg);
	is_int(count_manifests(root), 2, "index.json lists two manifests");

	/* a local source keeps the parsed index.json while the file is
	 * the same: a retag (a new file) is seen at the next resolve */
	struct be_source *src;

	if (be_local_source_new(root, &src, &e))
		bail_out("local source: %s", e.msg);
	if (is_int(src->ops->resolve(src, "v1", &got, &e), 0, "a local source resolves v1 (%s)", e.msg)) {
		ok(same_image(&got, &i1), "... to the first image");
		be_image_free(&got);
	}
	e.msg[0] = '\0';
	is_int(be_store_add_image(&s, &i3, NULL, &e), 0, "retag v1 to a third image");
	if (is_int(src->ops->resolve(src, "v1", &got, &e), 0, "the same source resolves v1 again (%s)", e.msg)) {
		ok(same_image(&got, &i3), "... to the third image: the index it kept was let go");
		be_image_free(&got);
	}
	if (is_int(src->ops->resolve(src, "v2", &got, &e), 0, "... and v2 (%s)", e.msg)) {
		ok(same_image(&got, &i2), "... to the second");
		be_image_free(&got);
	}
	be_source_destroy(src);
	resolves_to(&s, "v1", &i3, "v1 now names the third image");
	is_int(count_manifests(root), 2, "the old v1 entry was replaced, not kept");
	resolves_to(&s, "v2", &i2, "v2 survives the retag");
	test_image_json(&s, &i3);

	e.msg[0] = '\0';
	is_int(be_store_add_image(&s, &i2, "{not json", &e), -EINVAL,
	       "bad annotations JSON is rejected");
	is_int(count_manifests(root), 2, "... and index.json is untouched");
}

static void test_untagged(const char *root)
{
	struct be_store s;
	struct sk_err e = { { 0 } };
	struct be_layer b[1];
	struct be_image img, got;

	if (be_store_open(&s, root, 1, &e))
		bail_out("be_store_open: %s", e.msg);
	make_image(&s, &img, b, 1, "untagged", "");
	is_int(be_store_add_image(&s, &img, NULL, &e), 0, "add an untagged image");
	is_int(be_store_add_image(&s, &img, NULL, &e), 0, "add the same untagged image again");
	is_int(count_manifests(root), 1, "an untagged duplicate is not listed twice");
	if (is_int(be_store_resolve(&s, NULL, &got, &e), 0, "resolve the untagged image")) {
		ok(same_image(&got, &img), "... is the image added");
		is_str(got.tag, "", "... with no tag");
		be_image_free(&got);
	} else {
		skip(2, "no image");
	}
	make_image(&s, &img, b, 0, "noblobs", "");
	is_int(be_store_add_image(&s, &img, NULL, &e), 0, "add a second untagged image without blobs");
	is_int(be_store_resolve(&s, NULL, &got, &e), -EINVAL, "two untagged images are ambiguous");
	be_image_free(&got);
}

/* ---------------- malformed JSON ---------------- */

static void write_text(const char *path, const char *text)
{
	if (sk_write_file_atomic(path, text, strlen(text)))
		bail_out("writing %s", path);
}

/* Stores text as a blob and returns its "sha256:<hex>" */
static void put_json(const struct be_store *s, const char *text, char dig[80])
{
	char hex[SK_HEX_LEN + 1];

	if (be_store_put(s, text, strlen(text), hex))
		bail_out("be_store_put");
	snprintf(dig, 80, "sha256:%s", hex);
}

/* index.json naming one manifest (by digest) with the given media type */
static void set_index(const struct be_store *s, const char *mdig, const char *mt,
		      const char *extra)
{
	char text[1024], p[PATH_MAX];

	snprintf(text, sizeof(text),
		 "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"%s\","
		 "\"digest\":\"%s\",\"size\":100%s}]}", mt, mdig, extra);
	fmtpath(p, "%s/index.json", s->root);
	write_text(p, text);
}

/* A manifest of one 10-byte blob (type blob_mt) and a 15-byte bootstrap
 * (boot_mt), put in the store and named by index.json, resolves. */
static void resolves_one_blob(const struct be_store *s, const char *blob_mt, const char *boot_mt,
			      const char *blob, const char *boot, char mdig[80], const char *what)
{
	struct sk_err e = { { 0 } };
	struct be_image img;
	char man[2048];

	snprintf(man, sizeof(man), MAN_HEAD "\"layers\":["
		 "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":10},"
		 "{\"mediaType\":\"%s\",\"digest\":\"%s\",\"size\":15}]}",
		 blob_mt, blob, boot_mt, boot);
	put_json(s, man, mdig);
	set_index(s, mdig, BE_MT_MANIFEST, "");
	if (is_int(be_store_resolve(s, NULL, &img, &e), 0, "%s resolves (%s)", what, e.msg)) {
		is_int(img.bootstrap.size, 15, "... its 15-byte bootstrap");
		if (is_int(img.nblobs, 1, "... one blob"))
			is_int(img.blobs[0].size, 10, "... of 10 bytes");
		else
			skip(1, "not one blob");
		be_image_free(&img);
	} else {
		skip(3, "no image");
	}
}

static int resolve_fails(const struct be_store *s, const char *what)
{
	struct be_image img;
	struct sk_err e = { { 0 } };
	int ret = be_store_resolve(s, NULL, &img, &e);

	if (ret == 0) {
		be_image_free(&img);
		diag("%s: resolved", what);
		return 0;
	}
	if (!e.msg[0]) {
		diag("%s: %d without a message", what, ret);
		return 0;
	}
	if (img.blobs || img.nblobs) {
		diag("%s: failed but left blobs allocated", what);
		return 0;
	}
	return 1;
}

static void test_malformed(const char *root)
{
	struct be_store s;
	struct sk_err e = { { 0 } };
	char p[PATH_MAX], good_boot[80], good_blob[80], mdig[80], mdig2[80], man[2048];
	static const struct {
		const char *text, *what;
	} bad_index[] = {
		{ "", "empty index.json" },
		{ "{", "truncated JSON" },
		{ "[]", "index.json is an array" },
		{ "{}", "no manifests" },
		{ "{\"manifests\":{}}", "manifests is an object" },
		{ "{\"manifests\":[]}", "no images" },
		{ "{\"manifests\":[1]}", "manifest entry is a number" },
		{ "{\"manifests\":[{}]}", "manifest entry without fields" },
		{ "{\"manifests\":[{\"mediaType\":\"" BE_MT_MANIFEST "\",\"size\":1}]}",
		  "manifest entry without a digest" },
		{ "{\"manifests\":[],\"manifests\":[]}", "duplicate keys" },
		{ "{\"manifests\":[]} trailing", "trailing garbage" },
		{ "\xff\xfe{}", "not UTF-8" },
	};
	const char *bad_digests[] = {
		"sha256:0123", "sha512:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"SHA256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		"sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
		"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg",
		"sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0",
		"sha256:../../../../../../../../../../../../../../../../../../etc/passwd",
		"sha256:", "",
	};

	if (be_store_open(&s, root, 1, &e))
		bail_out("be_store_open: %s", e.msg);
	fmtpath(p, "%s/index.json", root);
	for (size_t i = 0; i < SK_ARRAY_SIZE(bad_index); i++) {
		write_text(p, bad_index[i].text);
		ok(resolve_fails(&s, bad_index[i].what), "index.json: %s", bad_index[i].what);
	}
	{
		struct be_layer b[1];
		struct be_image img;

		make_image(&s, &img, b, 0, "x", "t");
		write_text(p, "{\"manifests\":7}");
		e.msg[0] = '\0';
		ok(be_store_add_image(&s, &img, NULL, &e) < 0,
		   "add_image to an index.json without a manifests array fails");
		ok(e.msg[0], "... and says why (%s)", e.msg);
		write_text(p, "{broken");
		e.msg[0] = '\0';
		ok(be_store_add_image(&s, &img, NULL, &e) < 0,
		   "add_image to a broken index.json fails");
		ok(e.msg[0], "... and says why (%s)", e.msg);
	}
	if (unlink(p) == 0)
		ok(resolve_fails(&s, "no index.json"), "index.json missing");
	else
		skip(1, "cannot remove index.json");

	put_json(&s, "bootstrap bytes", good_boot);
	put_json(&s, "blob bytes", good_blob);

	/* the manifest descriptor in index.json */
	for (size_t i = 0; i < SK_ARRAY_SIZE(bad_digests); i++) {
		set_index(&s, bad_digests[i], BE_MT_MANIFEST, "");
		ok(resolve_fails(&s, bad_digests[i]), "manifest digest \"%s\" rejected",
		   bad_digests[i]);
	}
	/* today's types, and those written before skiff's types moved under
	 * the OCI layer prefix */
	resolves_one_blob(&s, BE_MT_BLOB, BE_MT_BOOTSTRAP, good_blob, good_boot, mdig,
			  "a hand-written valid manifest");
	resolves_one_blob(&s, BE_MT_BLOB_V0, BE_MT_BOOTSTRAP_V0, good_blob, good_boot, mdig2,
			  "a manifest with the v0 media types");
	set_index(&s, mdig, "application/vnd.docker.distribution.manifest.v2+json", "");
	ok(resolve_fails(&s, "docker media type"), "manifest descriptor with another media type");
	set_index(&s, mdig, BE_MT_MANIFEST, ",\"size\":-1");
	ok(resolve_fails(&s, "duplicate size"), "manifest descriptor with a duplicate key");
	{
		char text[512];

		snprintf(text, sizeof(text), "{\"manifests\":[{\"mediaType\":\"%s\","
			 "\"digest\":\"%s\",\"size\":-5}]}", BE_MT_MANIFEST, mdig);
		write_text(p, text);
		ok(resolve_fails(&s, "negative size"), "negative manifest size");
		snprintf(text, sizeof(text), "{\"manifests\":[{\"mediaType\":\"%s\","
			 "\"digest\":\"%s\",\"size\":\"100\"}]}", BE_MT_MANIFEST, mdig);
		write_text(p, text);
		ok(resolve_fails(&s, "string size"), "manifest size as a string");
		snprintf(text, sizeof(text), "{\"manifests\":[{\"mediaType\":7,"
			 "\"digest\":\"%s\",\"size\":100}]}", mdig);
		write_text(p, text);
		ok(resolve_fails(&s, "numeric media type"), "media type that is not a string");
	}
	set_index(&s, "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		  BE_MT_MANIFEST, "");
	ok(resolve_fails(&s, "missing manifest blob"), "manifest blob missing from the store");

	/* the manifest itself */
	static const struct {
		const char *fmt, *what;
		int args;	/* how many digests fmt takes: blob, boot order */
	} bad_man[] = {
		{ "{", "truncated manifest", 0 },
		{ "[]", "manifest is an array", 0 },
		{ "{}", "no layers", 0 },
		{ "{\"layers\":[{\"mediaType\":\"" BE_MT_BOOTSTRAP "\",\"digest\":\"%s\","
		  "\"size\":1}]}", "no schemaVersion or config", 1 },
		{ MAN_HEAD "\"layers\":[]}", "empty layers", 0 },
		{ MAN_HEAD "\"layers\":{}}", "layers is an object", 0 },
		{ MAN_HEAD "\"layers\":[null]}", "null layer", 0 },
		{ MAN_HEAD "\"layers\":[{\"mediaType\":\"" BE_MT_BLOB "\",\"digest\":\"%s\",\"size\":10}]}",
		  "blob layers only, no bootstrap", 1 },
		{ MAN_HEAD "\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\","
		  "\"digest\":\"%s\",\"size\":10}]}", "an ordinary tar layer", 1 },
		{ MAN_HEAD "\"layers\":[{\"mediaType\":\"" BE_MT_BOOTSTRAP "\",\"digest\":\"%s\",\"size\":1},"
		  "{\"mediaType\":\"" BE_MT_BOOTSTRAP "\",\"digest\":\"%s\",\"size\":1}]}",
		  "two bootstraps", 2 },
		{ MAN_HEAD "\"layers\":[{\"mediaType\":\"" BE_MT_BOOTSTRAP "\",\"digest\":\"%s\",\"size\":1},"
		  "{\"mediaType\":\"" BE_MT_BLOB "\",\"digest\":\"%s\",\"size\":1}]}",
		  "a blob after the bootstrap", 2 },
		{ MAN_HEAD "\"layers\":[{\"mediaType\":\"" BE_MT_BOOTSTRAP "\",\"digest\":\"sha256:abc\","
		  "\"size\":1}]}", "short layer digest", 0 },
		{ MAN_HEAD "\"layers\":[{\"mediaType\":\"" BE_MT_BOOTSTRAP "\",\"digest\":\"%s\"}]}",
		  "layer without a size", 1 },
		{ MAN_HEAD "\"layers\":[{\"mediaType\":\"" BE_MT_BOOTSTRAP "\",\"digest\":\"%s\",\"size\":1.5}]}",
		  "fractional layer size", 1 },
		{ MAN_HEAD "\"layers\":[{\"digest\":\"%s\",\"size\":1}]}", "layer without a media type", 1 },
	};
	for (size_t i = 0; i < SK_ARRAY_SIZE(bad_man); i++) {
		if (bad_man[i].args == 0)
			snprintf(man, sizeof(man), "%s", bad_man[i].fmt);
		else if (bad_man[i].args == 1)
			snprintf(man, sizeof(man), bad_man[i].fmt, good_boot);
		else
			snprintf(man, sizeof(man), bad_man[i].fmt, good_boot, good_blob);
		put_json(&s, man, mdig);
		set_index(&s, mdig, BE_MT_MANIFEST, "");
		ok(resolve_fails(&s, bad_man[i].what), "manifest: %s", bad_man[i].what);
	}
	{
		/* more layers than the store accepts */
		size_t cap = 65537 * 160 + 64;
		char *big = malloc(cap), *q = big;

		if (!big)
			bail_out("out of memory");
		q += sprintf(q, MAN_HEAD "\"layers\":[");
		for (int i = 0; i < 65537; i++)
			q += sprintf(q, "%s{\"mediaType\":\"" BE_MT_BLOB "\",\"digest\":\"%s\",\"size\":1}",
				     i ? "," : "", good_blob);
		sprintf(q, "]}");
		put_json(&s, big, mdig);
		set_index(&s, mdig, BE_MT_MANIFEST, "");
		ok(resolve_fails(&s, "65537 layers"), "manifest with 65537 layers");
		free(big);
	}
}

int main(void)
{
	const char *base = getenv("TMPDIR");
	char root[PATH_MAX];
	struct be_store s;

	snprintf(g_tmp, sizeof(g_tmp), "%s/skiff-store-XXXXXX",
		 base && *base ? base : "/tmp");
	if (!mkdtemp(g_tmp))
		bail_out("mkdtemp: %s", strerror(errno));
	test_ref_split();
	fmtpath(root, "%s/layout", g_tmp);
	test_open_put(&s, root);
	fmtpath(root, "%s/images", g_tmp);
	test_images(root);
	fmtpath(root, "%s/untagged", g_tmp);
	test_untagged(root);
	fmtpath(root, "%s/malformed", g_tmp);
	test_malformed(root);
	rm_rf(g_tmp);
	return done_testing();
}
