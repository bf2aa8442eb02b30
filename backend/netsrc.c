/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Network blob sources: an OCI image layout served by any web server
 * (BASE/index.json, BASE/blobs/sha256/<hex>), and an OCI registry
 * repository (through backend/registry.c). Both read stored blob ranges
 * with exact-length range requests; the loader verifies every chunk.
 */
#include "remote.h"
#include "source.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct web_source {
	struct be_source base;
	struct be_http *http;		/* owned */
	char url[PATH_MAX];		/* layout base, no trailing slash */
	/* borrowed: the manifest cache, hosts' TLS settings, deadlines */
	const struct be_config *cfg;
};

static int web_get(struct web_source *w, const char *rel, bool ranged,
		   uint64_t off, void *buf, size_t len, double deadline,
		   struct be_http_resp *rs, struct sk_err *e)
{
	struct be_http_req rq = { 0 };
	char url[PATH_MAX + 128];
	int ret;

	if (snprintf(url, sizeof(url), "%s/%s", w->url, rel) >= (int)sizeof(url))
		return -ENAMETOOLONG;
	rq.url = url;
	/* per URL: a redirect elsewhere gets that host's setting */
	rq.insecure = be_config_insecure;
	rq.insecure_arg = w->cfg;
	rq.deadline = deadline;
	rq.ranged = ranged;
	rq.off = off;
	rq.len = len;
	rq.buf = buf;
	rq.max_body = 4u << 20;
	ret = be_http_do(w->http, &rq, rs, e);
	if (ret)
		return ret;
	if (rs->status == 404) {
		sk_err_set(e, "%s: not found (HTTP 404)", url);
		be_http_resp_free(rs);
		return -ENOENT;
	}
	if (rs->status < 200 || rs->status > 299) {
		sk_err_set(e, "%s: HTTP %ld", url, rs->status);
		be_http_resp_free(rs);
		return rs->status == 401 || rs->status == 403 ? -EACCES : -EIO;
	}
	return 0;
}

static int web_read(struct be_source *s, const char *hex, uint64_t off,
		    void *buf, size_t len, struct sk_err *e)
{
	struct web_source *w = (struct web_source *)s;
	struct be_http_resp rs;
	char rel[16 + SK_HEX_LEN];
	int ret;

	if (strlen(hex) != SK_HEX_LEN) {
		sk_err_set(e, "%s: blob id \"%.80s\" is no SHA-256", s->desc, hex);
		return -EINVAL;
	}
	snprintf(rel, sizeof(rel), "blobs/sha256/%s", hex);
	ret = web_get(w, rel, true, off, buf, len, be_read_deadline(w->cfg, len), &rs, e);
	if (!ret)
		be_http_resp_free(&rs);
	return ret;
}

/* The manifest with digest d->hex: from the manifest cache, else from
 * the server (digest- and, when known, size-checked, then kept). */
static int web_manifest(struct web_source *w, const struct be_desc *d,
			char **buf, size_t *len, struct sk_err *e)
{
	struct be_http_resp man;
	uint8_t dg[SK_SHA256_LEN];
	char rel[16 + SK_HEX_LEN], hex[SK_HEX_LEN + 1];
	int ret;

	if (be_manifest_cache_get(w->cfg->manifest_dir, d->hex, buf, len) == 0)
		return 0;
	snprintf(rel, sizeof(rel), "blobs/sha256/%s", d->hex);
	ret = web_get(w, rel, false, 0, NULL, 0, 0, &man, e);
	if (ret)
		return ret;
	sk_sha256(man.body ? man.body : "", man.body_len, dg);
	sk_hex(dg, sizeof(dg), hex);
	if (strcmp(hex, d->hex) || (d->size && man.body_len != d->size)) {
		sk_err_set(e, "%s/%s: content does not match its digest or size", w->url, rel);
		be_http_resp_free(&man);
		return -EBADMSG;
	}
	*buf = man.body ? man.body : strdup("");
	*len = man.body_len;
	if (!*buf)
		return -ENOMEM;
	be_manifest_cache_put(w->cfg->manifest_dir, d->hex, *buf, *len);
	return 0;
}

static int web_resolve(struct be_source *s, const char *tag,
		       struct be_image *img, struct sk_err *e)
{
	struct web_source *w = (struct web_source *)s;
	struct be_http_resp idx;
	struct be_desc d = { .size = 0 };
	char *buf;
	size_t len;
	int ret;

	memset(img, 0, sizeof(*img));
	if (tag && !strncmp(tag, "sha256:", 7) && strlen(tag) == 7 + SK_HEX_LEN) {
		/* pinned: no index needed */
		memcpy(d.hex, tag + 7, sizeof(d.hex));
	} else {
		ret = web_get(w, "index.json", false, 0, NULL, 0, 0, &idx, e);
		if (ret)
			return ret;
		ret = be_index_pick(idx.body ? idx.body : "", idx.body_len, tag, NULL, &d, e);
		be_http_resp_free(&idx);
		if (ret) {
			sk_err_prefix(e, "%s/index.json", w->url);
			return ret;
		}
		if (strcmp(d.mt, BE_MT_MANIFEST) || d.size > (4u << 20)) {
			sk_err_set(e, "%s: the index entry is not an image manifest", w->url);
			return -EMEDIUMTYPE;
		}
	}
	ret = web_manifest(w, &d, &buf, &len, e);
	if (ret)
		return ret;
	ret = be_image_parse(buf, len, d.hex, tag, img, e);
	free(buf);
	if (ret)
		sk_err_prefix(e, "%s: manifest %s", w->url, d.hex);
	return ret;
}

static struct be_http_stats *web_stats(struct be_source *s)
{
	return be_http_stats(((struct web_source *)s)->http);
}

static void web_destroy(struct be_source *s)
{
	struct web_source *w = (struct web_source *)s;

	be_http_destroy(w->http);
	free(w);
}

static const struct be_source_ops web_ops = {
	.read = web_read,
	.destroy = web_destroy,
	.resolve = web_resolve,
	.stats = web_stats,
};

struct reg_source {
	struct be_source base;
	struct be_reg *reg;		/* owned */
};

static int reg_src_read(struct be_source *s, const char *hex, uint64_t off,
			void *buf, size_t len, struct sk_err *e)
{
	if (strlen(hex) != SK_HEX_LEN) {
		sk_err_set(e, "%s: blob id \"%.80s\" is no SHA-256", s->desc, hex);
		return -EINVAL;
	}
	return be_reg_blob_read(((struct reg_source *)s)->reg, hex, off, buf, len, e);
}

static int reg_src_resolve(struct be_source *s, const char *tag,
			   struct be_image *img, struct sk_err *e)
{
	return be_reg_resolve(((struct reg_source *)s)->reg, tag, NULL, img, e);
}

static struct be_http_stats *reg_src_stats(struct be_source *s)
{
	return be_reg_stats(((struct reg_source *)s)->reg);
}

static void reg_src_bad_data(struct be_source *s, const char *hex, uint64_t off,
			     uint64_t len)
{
	be_reg_bad_range(((struct reg_source *)s)->reg, hex, off, len);
}

static void reg_src_destroy(struct be_source *s)
{
	be_reg_close(((struct reg_source *)s)->reg);
	free(s);
}

static const struct be_source_ops reg_ops = {
	.read = reg_src_read,
	.destroy = reg_src_destroy,
	.resolve = reg_src_resolve,
	.stats = reg_src_stats,
	.bad_data = reg_src_bad_data,
};

int be_source_open(const struct be_ref *r, const struct be_config *cfg,
		   struct be_source **out, struct sk_err *e)
{
	int ret;

	switch (r->kind) {
	case BE_REF_LOCAL:
		return be_local_source_new(r->loc, out, e);
	case BE_REF_HTTP: {
		struct web_source *w = calloc(1, sizeof(*w));

		if (!w)
			return -ENOMEM;
		ret = be_http_new(&cfg->http, &w->http, e);
		if (ret) {
			free(w);
			return ret;
		}
		snprintf(w->url, sizeof(w->url), "%s", r->loc);
		w->cfg = cfg;
		w->base.ops = &web_ops;
		snprintf(w->base.desc, sizeof(w->base.desc), "%.255s", r->loc);
		*out = &w->base;
		return 0;
	}
	case BE_REF_DOCKER: {
		struct reg_source *rs = calloc(1, sizeof(*rs));

		if (!rs)
			return -ENOMEM;
		ret = be_reg_open(cfg, r->host, r->repo, false, NULL, NULL, &rs->reg, e);
		if (ret) {
			free(rs);
			return ret;
		}
		rs->base.ops = &reg_ops;
		snprintf(rs->base.desc, sizeof(rs->base.desc), "docker://%.240s", r->loc);
		*out = &rs->base;
		return 0;
	}
	}
	return -EINVAL;
}
