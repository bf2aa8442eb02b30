/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Local store: an OCI image layout directory (oci-layout, index.json,
 * blobs/sha256/<hex>). Writes blobs and skiff manifests; resolves an image
 * reference (DIR[:TAG]) to its bootstrap and data blobs. index.json and
 * manifests are untrusted JSON: every field is type- and format-checked.
 */
#ifndef SKIFF_BACKEND_STORE_H
#define SKIFF_BACKEND_STORE_H

#include <limits.h>
#include <stdint.h>

#include "../common/sk.h"

#define BE_MT_MANIFEST	"application/vnd.oci.image.manifest.v1+json"
#define BE_MT_CONFIG	"application/vnd.oci.image.config.v1+json"
/*
 * containerd (like every OCI tool that unpacks) counts a manifest entry as
 * a layer, and hands it to a snapshotter, only under the OCI layer prefix:
 * skiff's types live there. Images written before used the _V0 types,
 * still read.
 */
#define BE_MT_BLOB	"application/vnd.oci.image.layer.skiff.blob.v1"
#define BE_MT_BOOTSTRAP	"application/vnd.oci.image.layer.skiff.bootstrap.v1.erofs"
#define BE_MT_BLOB_V0	"application/vnd.skiff.blob.v1"
#define BE_MT_BOOTSTRAP_V0 "application/vnd.skiff.bootstrap.v1.erofs"
/* On each layer descriptor, "blob" or "bootstrap": containerd passes a
 * layer's annotations under this prefix (never its media type) to the
 * snapshotter, which is how skiff-snapshotter knows a skiff layer. */
#define BE_ANN_LAYER	"containerd.io/snapshot/skiff.layer"
#define BE_REF_NAME	"org.opencontainers.image.ref.name"

enum be_layer_kind { BE_LAYER_OTHER, BE_LAYER_BLOB, BE_LAYER_BOOTSTRAP };

/* What a layer of this media type is to skiff (current and _V0 types). */
enum be_layer_kind be_layer_kind(const char *mt);

struct be_store {
	char root[PATH_MAX];
};

struct be_layer {
	char hex[SK_HEX_LEN + 1];
	uint64_t size;
};

/* A resolved skiff image: what its manifest names. Owns blobs. */
struct be_image {
	char manifest_hex[SK_HEX_LEN + 1];
	uint64_t manifest_size;
	struct be_layer bootstrap;
	struct be_layer *blobs;
	unsigned int nblobs;
	char tag[256];
};

/* Splits "DIR[:TAG]": DIR wins when it is an existing layout. */
int be_ref_split(const char *ref, char *dir, size_t dirlen, char *tag,
		 size_t taglen);

int be_store_open(struct be_store *s, const char *dir, int create,
		  struct sk_err *e);
int be_store_blob_path(const struct be_store *s, const char *hex, char *out,
		       size_t outlen);
/* A new temporary file in the blob directory, for streaming a blob. */
int be_store_tmp_blob(const struct be_store *s, char *path, size_t pathlen,
		      int *fd);
/* Renames a finished temporary blob to its digest name. */
int be_store_commit_blob(const struct be_store *s, const char *tmppath,
			 const char *hex);
int be_store_put(const struct be_store *s, const void *buf, size_t len,
		 char hex[SK_HEX_LEN + 1]);
/*
 * Writes an OCI manifest naming the data blobs then the bootstrap, and
 * adds it to index.json (replacing the entry that had the same tag).
 */
int be_store_add_image(const struct be_store *s, const struct be_image *img,
		       const char *annotations_json, struct sk_err *e);
/* The same with the image config based on config_json (a source image's
 * config: entrypoint, env, labels, ... kept; rootfs replaced, history
 * dropped); NULL gives the minimal config. */
int be_store_add_image_config(const struct be_store *s,
			      const struct be_image *img,
			      const char *config_json,
			      const char *annotations_json, struct sk_err *e);
/* The image config and manifest be_store_add_image_config writes, in
 * memory (a registry target pushes them): the same image always gives
 * the same bytes. Owns both texts (be_image_json_free). */
struct be_image_json {
	char *config, *manifest;
	size_t config_len, manifest_len;
	char config_hex[SK_HEX_LEN + 1], manifest_hex[SK_HEX_LEN + 1];
};

int be_image_json(const struct be_image *img, const char *config_json,
		  const char *annotations_json, struct be_image_json *out,
		  struct sk_err *e);
void be_image_json_free(struct be_image_json *j);
int be_store_resolve(const struct be_store *s, const char *tag,
		     struct be_image *img, struct sk_err *e);
struct json_t;
/* The same in an index.json the caller parsed (untrusted, as read) and
 * keeps while the file's bytes stay the same. */
int be_store_resolve_in(const struct be_store *s, const struct json_t *index, const char *tag,
			struct be_image *img, struct sk_err *e);
void be_image_free(struct be_image *img);

#endif
