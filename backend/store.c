/* SPDX-License-Identifier: Apache-2.0 */
#include "store.h"
#include "remote.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define JSON_MAX (16u << 20)	/* bigger index or manifest is not ours */

static int is_layout(const char *dir)
{
	char p[PATH_MAX];
	struct stat st;

	if (snprintf(p, sizeof(p), "%s/oci-layout", dir) >= (int)sizeof(p))
		return 0;
	return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

int be_ref_split(const char *ref, char *dir, size_t dirlen, char *tag,
		 size_t taglen)
{
	const char *colon = strrchr(ref, ':');
	size_t dl;

	tag[0] = '\0';
	if (!colon || is_layout(ref) || strchr(colon, '/')) {
		if (strlen(ref) >= dirlen)
			return -ENAMETOOLONG;
		strcpy(dir, ref);
		return 0;
	}
	dl = (size_t)(colon - ref);
	if (dl >= dirlen || strlen(colon + 1) >= taglen)
		return -ENAMETOOLONG;
	memcpy(dir, ref, dl);
	dir[dl] = '\0';
	strcpy(tag, colon + 1);
	return 0;
}

static int store_path(const struct be_store *s, const char *rel, char *out,
		      size_t outlen)
{
	size_t a = strlen(s->root), b = strlen(rel);

	if (a + 1 + b + 1 > outlen)
		return -ENAMETOOLONG;
	memcpy(out, s->root, a);
	out[a] = '/';
	memcpy(out + a + 1, rel, b + 1);
	return 0;
}

int be_store_open(struct be_store *s, const char *dir, int create,
		  struct sk_err *e)
{
	char p[PATH_MAX];
	static const char layout[] = "{\"imageLayoutVersion\":\"1.0.0\"}";
	static const char empty_index[] = "{\"schemaVersion\":2,\"manifests\":[]}";
	int ret;

	if (strlen(dir) >= sizeof(s->root)) {
		sk_err_set(e, "%s: path too long", dir);
		return -ENAMETOOLONG;
	}
	strcpy(s->root, dir);
	if (is_layout(dir))
		return 0;
	if (!create) {
		sk_err_set(e, "%s: not an OCI image layout (no oci-layout file)", dir);
		return -ENOENT;
	}
	ret = store_path(s, "blobs/sha256", p, sizeof(p));
	if (!ret)
		ret = sk_mkdir_p(p, 0755);
	if (!ret)
		ret = store_path(s, "index.json", p, sizeof(p));
	if (!ret)
		ret = sk_write_file_atomic(p, empty_index, strlen(empty_index));
	if (!ret)
		ret = store_path(s, "oci-layout", p, sizeof(p));
	if (!ret)
		ret = sk_write_file_atomic(p, layout, strlen(layout));
	if (ret)
		sk_err_set(e, "%s: creating image layout: %s", dir, strerror(-ret));
	return ret;
}

int be_store_blob_path(const struct be_store *s, const char *hex, char *out,
		       size_t outlen)
{
	char rel[16 + SK_HEX_LEN];

	if (strlen(hex) > SK_HEX_LEN)
		return -EINVAL;
	strcpy(rel, "blobs/sha256/");
	strcat(rel, hex);
	return store_path(s, rel, out, outlen);
}

int be_store_tmp_blob(const struct be_store *s, char *path, size_t pathlen,
		      int *fd)
{
	int ret = store_path(s, "blobs/sha256/.tmp-XXXXXX", path, pathlen);

	if (ret)
		return ret;
	*fd = mkostemp(path, O_CLOEXEC);
	if (*fd < 0)
		return -errno;
	fchmod(*fd, 0644);
	return 0;
}

int be_store_commit_blob(const struct be_store *s, const char *tmppath,
			 const char *hex)
{
	char p[PATH_MAX];
	int ret = be_store_blob_path(s, hex, p, sizeof(p));

	if (ret)
		return ret;
	if (rename(tmppath, p) < 0)
		return -errno;
	return 0;
}

int be_store_put(const struct be_store *s, const void *buf, size_t len,
		 char hex[SK_HEX_LEN + 1])
{
	uint8_t d[SK_SHA256_LEN];
	char p[PATH_MAX];
	int ret;

	sk_sha256(buf, len, d);
	sk_hex(d, sizeof(d), hex);
	ret = be_store_blob_path(s, hex, p, sizeof(p));
	if (ret)
		return ret;
	return sk_write_file_atomic(p, buf, len);
}

static json_t *descriptor(const char *mt, const char *hex, uint64_t size)
{
	char digest[8 + SK_HEX_LEN + 1];

	snprintf(digest, sizeof(digest), "sha256:%s", hex);
	return json_pack("{s:s, s:s, s:I}", "mediaType", mt, "digest", digest,
			 "size", (json_int_t)size);
}

static int read_json(const char *path, json_t **out, struct sk_err *e)
{
	json_error_t je;
	void *buf;
	size_t len;
	int ret = sk_read_file(path, JSON_MAX, &buf, &len);

	if (ret) {
		sk_err_set(e, "%s: %s", path, strerror(-ret));
		return ret;
	}
	*out = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	free(buf);
	if (!*out) {
		sk_err_set(e, "%s: invalid JSON: %s (line %d)", path, je.text,
			   je.line);
		return -EINVAL;
	}
	return 0;
}

static int dump_json(const json_t *j, char **out, size_t *len)
{
	/* sorted keys and compact form: the same image gives the same digest */
	*out = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
	if (!*out)
		return -ENOMEM;
	*len = strlen(*out);
	return 0;
}

int be_store_add_image(const struct be_store *s, const struct be_image *img,
		       const char *annotations_json, struct sk_err *e)
{
	return be_store_add_image_config(s, img, NULL, annotations_json, e);
}

/*
 * The image config: the base (a converted image's source config) with
 * its rootfs replaced by our layers' digests and its history dropped
 * (history counts the source's layers, which are gone), or a minimal one
 * whose diff_ids match the layers, so that standard tools accept and copy
 * the image.
 */
static json_t *image_config(const char *base_json, json_t *diff_ids,
			    struct sk_err *e)
{
	json_t *c;

	if (!base_json)
		return json_pack("{s:s, s:s, s:{s:s, s:O}}", "architecture", "amd64",
				 "os", "linux", "rootfs", "type", "layers",
				 "diff_ids", diff_ids);
	c = json_loads(base_json, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(c)) {
		json_decref(c);
		sk_err_set(e, "image config is not a JSON object");
		return NULL;
	}
	json_object_del(c, "history");
	if (json_object_set_new(c, "rootfs", json_pack("{s:s, s:O}", "type", "layers",
						       "diff_ids", diff_ids))) {
		json_decref(c);
		return NULL;
	}
	return c;
}

int be_image_json(const struct be_image *img, const char *config_json,
		  const char *annotations_json, struct be_image_json *out,
		  struct sk_err *e)
{
	json_t *layers = json_array(), *diff_ids = json_array();
	json_t *config = NULL, *manifest = NULL, *ann = NULL;
	uint8_t d[SK_SHA256_LEN];
	int ret = -ENOMEM;

	memset(out, 0, sizeof(*out));
	if (!layers || !diff_ids)
		goto out;
	for (unsigned int i = 0; i <= img->nblobs; i++) {
		const struct be_layer *l = i < img->nblobs ? &img->blobs[i]
							   : &img->bootstrap;
		json_t *dj = descriptor(i < img->nblobs ? BE_MT_BLOB : BE_MT_BOOTSTRAP,
					l->hex, l->size);
		char did[8 + SK_HEX_LEN + 1];

		if (!dj || json_array_append_new(layers, dj))
			goto out;
		if (json_object_set_new(dj, "annotations",
					json_pack("{s:s}", BE_ANN_LAYER,
						  i < img->nblobs ? "blob" : "bootstrap")))
			goto out;
		snprintf(did, sizeof(did), "sha256:%s", l->hex);
		if (json_array_append_new(diff_ids, json_string(did)))
			goto out;
	}
	config = image_config(config_json, diff_ids, e);
	if (!config && e->msg[0]) {
		ret = -EINVAL;
		goto out;
	}
	if (!config || (ret = dump_json(config, &out->config, &out->config_len)))
		goto out;
	sk_sha256(out->config, out->config_len, d);
	sk_hex(d, sizeof(d), out->config_hex);
	if (annotations_json) {
		ann = json_loads(annotations_json, 0, NULL);
		if (!ann) {
			sk_err_set(e, "bad manifest annotations");
			ret = -EINVAL;
			goto out;
		}
	}
	manifest = json_pack("{s:i, s:s, s:o, s:O}", "schemaVersion", 2,
			     "mediaType", BE_MT_MANIFEST,
			     "config", descriptor(BE_MT_CONFIG, out->config_hex,
						  out->config_len),
			     "layers", layers);
	if (!manifest) {
		ret = -ENOMEM;
		goto out;
	}
	if (ann)
		json_object_set(manifest, "annotations", ann);
	if ((ret = dump_json(manifest, &out->manifest, &out->manifest_len)))
		goto out;
	sk_sha256(out->manifest, out->manifest_len, d);
	sk_hex(d, sizeof(d), out->manifest_hex);
out:
	if (ret == -ENOMEM && !e->msg[0])
		sk_err_set(e, "out of memory");
	if (ret)
		be_image_json_free(out);
	json_decref(layers);
	json_decref(diff_ids);
	json_decref(config);
	json_decref(manifest);
	json_decref(ann);
	return ret;
}

void be_image_json_free(struct be_image_json *j)
{
	free(j->config);
	free(j->manifest);
	j->config = j->manifest = NULL;
}

int be_store_add_image_config(const struct be_store *s,
			      const struct be_image *img,
			      const char *config_json,
			      const char *annotations_json, struct sk_err *e)
{
	struct be_image_json ij;
	json_t *index = NULL;
	char *text = NULL, hex[SK_HEX_LEN + 1];
	char p[PATH_MAX];
	size_t len;
	int ret = be_image_json(img, config_json, annotations_json, &ij, e);

	if (ret)
		return ret;
	ret = be_store_put(s, ij.config, ij.config_len, hex);
	if (!ret)
		ret = be_store_put(s, ij.manifest, ij.manifest_len, hex);
	if (ret)
		goto fail;

	ret = store_path(s, "index.json", p, sizeof(p));
	if (!ret)
		ret = read_json(p, &index, e);
	if (ret)
		goto out;
	json_t *mans = json_object_get(index, "manifests");
	json_t *desc = descriptor(BE_MT_MANIFEST, ij.manifest_hex, ij.manifest_len);

	if (!json_is_array(mans)) {
		sk_err_set(e, "%s: no manifests array", p);
		ret = -EINVAL;
		json_decref(desc);
		goto out;
	}
	char mdig[8 + SK_HEX_LEN + 1];

	snprintf(mdig, sizeof(mdig), "sha256:%s", ij.manifest_hex);
	for (size_t i = json_array_size(mans); i-- > 0;) {
		json_t *m = json_array_get(mans, i);
		const char *t = json_string_value(json_object_get(
			json_object_get(m, "annotations"), BE_REF_NAME));
		const char *dg = json_string_value(json_object_get(m, "digest"));

		/* the tag moves to the new manifest; untagged duplicates go */
		if ((img->tag[0] && t && !strcmp(t, img->tag)) ||
		    (!img->tag[0] && !t && dg && !strcmp(dg, mdig)))
			json_array_remove(mans, i);
	}
	if (img->tag[0])
		json_object_set_new(desc, "annotations",
				    json_pack("{s:s}", BE_REF_NAME, img->tag));
	json_array_append_new(mans, desc);
	if ((ret = dump_json(index, &text, &len)))
		goto out;
	ret = sk_write_file_atomic(p, text, len);
fail:
	if (ret && !e->msg[0])
		sk_err_set(e, "%s: writing image: %s", s->root, strerror(-ret));
out:
	if (ret == -ENOMEM && !e->msg[0])
		sk_err_set(e, "out of memory");
	free(text);
	json_decref(index);
	be_image_json_free(&ij);
	return ret;
}

static int parse_digest(json_t *d, char hex[SK_HEX_LEN + 1])
{
	const char *s = json_string_value(d);
	uint8_t bin[SK_SHA256_LEN];

	if (!s || strncmp(s, "sha256:", 7) || strlen(s) != 7 + SK_HEX_LEN ||
	    sk_unhex(s + 7, SK_HEX_LEN, bin))
		return -EINVAL;
	memcpy(hex, s + 7, SK_HEX_LEN + 1);
	return 0;
}

static int parse_desc(json_t *d, const char **mt, struct be_layer *l)
{
	json_t *size = json_object_get(d, "size");

	*mt = json_string_value(json_object_get(d, "mediaType"));
	if (!json_is_object(d) || !*mt || !json_is_integer(size) ||
	    json_integer_value(size) < 0 ||
	    parse_digest(json_object_get(d, "digest"), l->hex))
		return -EINVAL;
	l->size = (uint64_t)json_integer_value(size);
	return 0;
}

static int read_index(const struct be_store *s, json_t **index, struct sk_err *e)
{
	char p[PATH_MAX];
	int ret = store_path(s, "index.json", p, sizeof(p));

	if (!ret)
		ret = read_json(p, index, e);
	return ret;
}

int be_store_resolve(const struct be_store *s, const char *tag,
		     struct be_image *img, struct sk_err *e)
{
	json_t *index = NULL;
	int ret;

	memset(img, 0, sizeof(*img));
	ret = read_index(s, &index, e);
	if (ret)
		return ret;
	ret = be_store_resolve_in(s, index, tag, img, e);
	json_decref(index);
	return ret;
}

int be_store_resolve_in(const struct be_store *s, const json_t *index, const char *tag,
			struct be_image *img, struct sk_err *e)
{
	json_t *mans, *pick = NULL;
	char p[PATH_MAX], tagbuf[sizeof(img->tag)];
	const char *mt;
	struct be_layer ml;
	void *buf = NULL;
	size_t len;
	int ret;

	memset(img, 0, sizeof(*img));
	ret = store_path(s, "index.json", p, sizeof(p));
	if (ret)
		return ret;
	mans = json_object_get(index, "manifests");
	ret = -EINVAL;
	if (!json_is_array(mans)) {
		sk_err_set(e, "%s: no manifests array", p);
		goto out;
	}
	for (size_t i = 0; i < json_array_size(mans); i++) {
		json_t *m = json_array_get(mans, i);
		const char *t = json_string_value(json_object_get(
			json_object_get(m, "annotations"), BE_REF_NAME));

		if (tag && tag[0] ? (t && !strcmp(t, tag)) : 1) {
			if (pick && !(tag && tag[0])) {
				sk_err_set(e, "%s holds several images: name one as %s:TAG",
					   s->root, s->root);
				goto out;
			}
			pick = m;
			if (t)
				snprintf(img->tag, sizeof(img->tag), "%s", t);
		}
	}
	if (!pick) {
		sk_err_set(e, tag && tag[0] ? "%s: no image tagged %s"
					    : "%s: no image%s", s->root,
			   tag && tag[0] ? tag : "");
		ret = -ENOENT;
		goto out;
	}
	if (parse_desc(pick, &mt, &ml) || strcmp(mt, BE_MT_MANIFEST)) {
		sk_err_set(e, "%s: bad manifest descriptor", p);
		goto out;
	}
	be_store_blob_path(s, ml.hex, p, sizeof(p));
	ret = sk_read_file(p, JSON_MAX, &buf, &len);
	if (ret) {
		sk_err_set(e, "manifest %s: %s", ml.hex, strerror(-ret));
		goto out;
	}
	snprintf(tagbuf, sizeof(tagbuf), "%s", img->tag);
	ret = be_image_parse(buf, len, ml.hex, tagbuf, img, e);
	if (ret) {
		/* its message names what is wrong; say which manifest */
		char why[sizeof(e->msg)];

		snprintf(why, sizeof(why), "%s",
			 strncmp(e->msg, "manifest: ", 10) ? e->msg : e->msg + 10);
		sk_err_set(e, "manifest %s: %s", ml.hex, why);
		goto out;
	}
	ret = 0;
out:
	if (ret)
		be_image_free(img);
	free(buf);
	return ret;
}

void be_image_free(struct be_image *img)
{
	free(img->blobs);
	img->blobs = NULL;
	img->nblobs = 0;
}
