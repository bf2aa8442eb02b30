/* SPDX-License-Identifier: Apache-2.0 */
/*
 * OCI image manifests and indexes (and their Docker schema 2 twins) from
 * untrusted bytes: sizes bounded, digests sha256 + 64 lowercase hex,
 * media types short printable strings.
 */
#include "remote.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define JSON_MAX (4u << 20)
#define MAX_LAYERS 65536
#define MAX_ENTRIES 4096

static int parse_desc(json_t *d, struct be_desc *out)
{
	const char *mt = json_string_value(json_object_get(d, "mediaType"));
	const char *dg = json_string_value(json_object_get(d, "digest"));
	json_t *sz = json_object_get(d, "size");

	memset(out, 0, sizeof(*out));
	if (!json_is_object(d) || !dg || !json_is_integer(sz) ||
	    json_integer_value(sz) < 0)
		return -EINVAL;
	if (mt) {
		if (strlen(mt) >= sizeof(out->mt))
			return -EINVAL;
		for (const char *p = mt; *p; p++)
			if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
				return -EINVAL;
		strcpy(out->mt, mt);
	}
	if (strncmp(dg, "sha256:", 7) || !sk_is_hex_digest(dg + 7))
		return -EINVAL;
	strcpy(out->hex, dg + 7);
	out->size = (uint64_t)json_integer_value(sz);
	return 0;
}

static json_t *load(const void *buf, size_t len, struct sk_err *e)
{
	json_error_t je;
	json_t *j;

	if (len > JSON_MAX) {
		sk_err_set(e, "manifest of %zu bytes: too large", len);
		return NULL;
	}
	j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(j)) {
		sk_err_set(e, "manifest: %s", j ? "not a JSON object" : je.text);
		json_decref(j);
		return NULL;
	}
	return j;
}

int be_manifest_parse(const void *buf, size_t len, struct be_manifest *m,
		      struct sk_err *e)
{
	json_t *j = load(buf, len, e), *layers;
	const char *mt;
	int ret = -EINVAL;

	memset(m, 0, sizeof(*m));
	if (!j)
		return -EINVAL;
	mt = json_string_value(json_object_get(j, "mediaType"));
	if (mt && strcmp(mt, BE_MT_MANIFEST) && strcmp(mt, BE_MT_DOCKER_MANIFEST)) {
		sk_err_set(e, "manifest: media type %.100s is not an image manifest", mt);
		goto out;
	}
	snprintf(m->mt, sizeof(m->mt), "%s", mt ? mt : BE_MT_MANIFEST);
	if (!json_is_integer(json_object_get(j, "schemaVersion")) ||
	    json_integer_value(json_object_get(j, "schemaVersion")) != 2) {
		sk_err_set(e, "manifest: schemaVersion is not 2");
		goto out;
	}
	if (parse_desc(json_object_get(j, "config"), &m->config)) {
		sk_err_set(e, "manifest: bad config descriptor");
		goto out;
	}
	layers = json_object_get(j, "layers");
	if (!json_is_array(layers) || json_array_size(layers) > MAX_LAYERS) {
		sk_err_set(e, "manifest: layers must be an array of at most %d", MAX_LAYERS);
		goto out;
	}
	m->layers = calloc(json_array_size(layers) + 1, sizeof(*m->layers));
	if (!m->layers) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < json_array_size(layers); i++) {
		if (parse_desc(json_array_get(layers, i), &m->layers[i]) ||
		    !m->layers[i].mt[0]) {
			sk_err_set(e, "manifest: bad layer descriptor %zu", i);
			goto out;
		}
		m->nlayers++;
	}
	ret = 0;
out:
	if (ret)
		be_manifest_free(m);
	json_decref(j);
	return ret;
}

void be_manifest_free(struct be_manifest *m)
{
	free(m->layers);
	m->layers = NULL;
	m->nlayers = 0;
}

bool be_is_index(const void *buf, size_t len, const char *content_type)
{
	json_t *j;
	const char *mt;
	bool idx;

	if (content_type && (!strncmp(content_type, BE_MT_INDEX, strlen(BE_MT_INDEX)) ||
			     !strncmp(content_type, BE_MT_DOCKER_LIST, strlen(BE_MT_DOCKER_LIST))))
		return true;
	j = json_loadb(buf, SK_MIN(len, (size_t)JSON_MAX), 0, NULL);
	mt = json_string_value(json_object_get(j, "mediaType"));
	idx = mt ? !strcmp(mt, BE_MT_INDEX) || !strcmp(mt, BE_MT_DOCKER_LIST)
		 : json_is_array(json_object_get(j, "manifests"));
	json_decref(j);
	return idx;
}

/* "os/arch[/variant]" against an entry's platform object. */
static bool platform_matches(json_t *p, const char *want)
{
	const char *os = json_string_value(json_object_get(p, "os"));
	const char *arch = json_string_value(json_object_get(p, "architecture"));
	const char *var = json_string_value(json_object_get(p, "variant"));
	char have[200];

	if (!os || !arch)
		return false;
	snprintf(have, sizeof(have), "%s/%s", os, arch);
	if (!strcmp(have, want))
		return true;
	if (var) {
		snprintf(have, sizeof(have), "%s/%s/%s", os, arch, var);
		return !strcmp(have, want);
	}
	return false;
}

int be_index_pick(const void *buf, size_t len, const char *tag,
		  const char *platform, struct be_desc *out, struct sk_err *e)
{
	json_t *j = load(buf, len, e), *mans, *pick = NULL;
	unsigned int matches = 0;
	int ret = -EINVAL;

	if (!j)
		return -EINVAL;
	mans = json_object_get(j, "manifests");
	if (!json_is_array(mans) || json_array_size(mans) > MAX_ENTRIES) {
		sk_err_set(e, "index: manifests must be an array of at most %d", MAX_ENTRIES);
		goto out;
	}
	for (size_t i = 0; i < json_array_size(mans); i++) {
		json_t *m = json_array_get(mans, i);
		const char *t = json_string_value(json_object_get(
			json_object_get(m, "annotations"), BE_REF_NAME));
		bool hit;

		if (tag && *tag)
			hit = t && !strcmp(t, tag);
		else if (platform && *platform && json_object_get(m, "platform"))
			hit = platform_matches(json_object_get(m, "platform"), platform);
		else
			hit = true;
		if (hit && !pick)
			pick = m;
		matches += hit;
	}
	if (!pick) {
		sk_err_set(e, tag && *tag ? "no image tagged %s" : "no image for platform %s",
			   tag && *tag ? tag : platform ? platform : "");
		ret = -ENOENT;
		goto out;
	}
	if (matches > 1 && !(tag && *tag) &&
	    !(platform && *platform && json_object_get(pick, "platform"))) {
		sk_err_set(e, "the index holds %u images: name one by tag", matches);
		goto out;
	}
	if (parse_desc(pick, out)) {
		sk_err_set(e, "index: bad manifest descriptor");
		goto out;
	}
	ret = 0;
out:
	json_decref(j);
	return ret;
}

enum be_layer_kind be_layer_kind(const char *mt)
{
	if (!strcmp(mt, BE_MT_BLOB) || !strcmp(mt, BE_MT_BLOB_V0))
		return BE_LAYER_BLOB;
	if (!strcmp(mt, BE_MT_BOOTSTRAP) || !strcmp(mt, BE_MT_BOOTSTRAP_V0))
		return BE_LAYER_BOOTSTRAP;
	return BE_LAYER_OTHER;
}

int be_image_from_manifest(const struct be_manifest *m, struct be_image *img,
			   struct sk_err *e)
{
	memset(img, 0, sizeof(*img));
	img->blobs = calloc(m->nlayers + 1, sizeof(*img->blobs));
	if (!img->blobs)
		return -ENOMEM;
	for (unsigned int i = 0; i < m->nlayers; i++) {
		const struct be_desc *d = &m->layers[i];
		struct be_layer l;

		memcpy(l.hex, d->hex, sizeof(l.hex));
		l.size = d->size;
		if (be_layer_kind(d->mt) == BE_LAYER_BLOB && !img->bootstrap.hex[0]) {
			img->blobs[img->nblobs++] = l;
		} else if (be_layer_kind(d->mt) == BE_LAYER_BOOTSTRAP && !img->bootstrap.hex[0]) {
			img->bootstrap = l;
		} else {
			sk_err_set(e, "layer %u (%.100s) is not part of a skiff image%s", i, d->mt,
				   strstr(d->mt, "tar") ? " (a tar layer: convert the image with skiff convert)" : "");
			be_image_free(img);
			return -EMEDIUMTYPE;
		}
	}
	if (!img->bootstrap.hex[0]) {
		sk_err_set(e, "the manifest has no skiff bootstrap layer");
		be_image_free(img);
		return -EMEDIUMTYPE;
	}
	return 0;
}

int be_image_parse(const void *buf, size_t len, const char *hex,
		   const char *tag, struct be_image *img, struct sk_err *e)
{
	struct be_manifest m;
	int ret = be_manifest_parse(buf, len, &m, e);

	memset(img, 0, sizeof(*img));
	if (ret)
		return ret;
	ret = be_image_from_manifest(&m, img, e);
	be_manifest_free(&m);
	if (ret)
		return ret;
	snprintf(img->manifest_hex, sizeof(img->manifest_hex), "%s", hex);
	img->manifest_size = len;
	snprintf(img->tag, sizeof(img->tag), "%s", tag ? tag : "");
	return 0;
}

int be_manifest_cache_get(const char *dir, const char *hex, char **buf,
			  size_t *len)
{
	char p[PATH_MAX], h[SK_HEX_LEN + 1];
	uint8_t dg[SK_SHA256_LEN];
	void *b;

	if (!dir || !dir[0] || strlen(hex) != SK_HEX_LEN ||
	    snprintf(p, sizeof(p), "%s/%s", dir, hex) >= (int)sizeof(p) ||
	    sk_read_file(p, JSON_MAX, &b, len))
		return -ENOENT;
	sk_sha256(b, *len, dg);
	sk_hex(dg, sizeof(dg), h);
	if (strcmp(h, hex)) {
		free(b);	/* damaged: fetched again and replaced */
		return -ENOENT;
	}
	*buf = b;
	return 0;
}

void be_manifest_cache_put(const char *dir, const char *hex, const void *buf,
			   size_t len)
{
	char p[PATH_MAX];

	if (!dir || !dir[0] || strlen(hex) != SK_HEX_LEN ||
	    snprintf(p, sizeof(p), "%s/%s", dir, hex) >= (int)sizeof(p))
		return;
	if (access(p, F_OK) == 0)
		return;
	sk_mkdir_p(dir, 0700);
	sk_write_file_atomic(p, buf, len);
}
