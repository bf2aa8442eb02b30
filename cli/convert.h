/* SPDX-License-Identifier: Apache-2.0 */
/*
 * skiff convert: where an ordinary image comes from and where the skiff
 * image goes, as two small interfaces, so that the registry (docker://)
 * source and target (convert_reg.c) sit beside the OCI layout ones
 * (convert_oci.c) without touching the conversion itself (cmd_convert.c).
 *
 * Source: hands out the root manifest (or index) the reference names,
 * small blobs (manifests, the image config) by digest, and layer blobs as
 * byte streams. It need not check digests: the conversion checks every
 * manifest and config against its digest and every layer against both
 * its digest and its diff id while it reads it.
 *
 * Target: takes data blobs written sequentially to a file descriptor
 * (a registry target uploads the file at commit), small blobs from
 * memory, blobs of a chunk dictionary that the image references but
 * that already exist as local files, and finally the image (config,
 * manifest, tag).
 */
#ifndef SKIFF_CLI_CONVERT_H
#define SKIFF_CLI_CONVERT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../backend/store.h"
#include "../common/sk.h"
#include "../format/tar.h"

#define CLI_CONV_JSON_MAX (4u << 20)	/* manifests, indexes, configs */

struct cli_conv_src;

struct cli_conv_src_ops {
	/* The manifest or index the reference names (malloc'd), with its
	 * media type and digest when the source knows them ("" otherwise;
	 * a known digest is checked). */
	int (*root)(struct cli_conv_src *s, char **buf, size_t *len,
		    char mt[128], char hex[SK_HEX_LEN + 1], struct sk_err *e);
	/* A small blob by digest, at most max bytes (malloc'd). */
	int (*blob)(struct cli_conv_src *s, const char *hex, size_t max,
		    char **buf, size_t *len, struct sk_err *e);
	/* A manifest an index names, by digest (malloc'd); NULL: blob (a
	 * layout keeps manifests among its blobs, a registry does not). */
	int (*manifest)(struct cli_conv_src *s, const char *hex, char **buf,
			size_t *len, struct sk_err *e);
	/* A layer blob as a stream; *handle is passed to close_layer. */
	int (*open_layer)(struct cli_conv_src *s, const char *hex,
			  uint64_t size, struct fmt_tar_src *out,
			  void **handle, struct sk_err *e);
	void (*close_layer)(struct cli_conv_src *s, void *handle);
	void (*destroy)(struct cli_conv_src *s);
};

struct cli_conv_src {
	const struct cli_conv_src_ops *ops;
	char desc[PATH_MAX + 300];	/* for messages */
	/* why a layer stream's read failed, when the source can say more
	 * than its -errno */
	struct sk_err err;
};

struct cli_conv_dst;

struct cli_conv_dst_ops {
	/* A new data blob: write it to *fd from the start. *fd must be
	 * readable too (pread) until commit or abort: with a prefetch list
	 * the prefetch blob copies chunks back from the layers' blobs. */
	int (*blob_begin)(struct cli_conv_dst *d, int *fd, void **handle,
			  struct sk_err *e);
	/* The blob whose bytes went to the fd is complete: digest hex. */
	int (*blob_commit)(struct cli_conv_dst *d, void *handle,
			   const char *hex, uint64_t size, struct sk_err *e);
	void (*blob_abort)(struct cli_conv_dst *d, void *handle);
	/* The image references blob hex, which lies at local_path (a chunk
	 * dictionary's): make the target hold it. */
	int (*have_blob)(struct cli_conv_dst *d, const char *hex, uint64_t size,
			 const char *local_path, struct sk_err *e);
	/* A blob from memory (the bootstrap); its digest into hex. */
	int (*put)(struct cli_conv_dst *d, const void *buf, size_t len,
		   char hex[SK_HEX_LEN + 1], struct sk_err *e);
	/* Config (from config_json, see be_store_add_image_config),
	 * manifest (data blobs then bootstrap) and tag. */
	int (*add_image)(struct cli_conv_dst *d, const struct be_image *img,
			 const char *config_json, const char *annotations,
			 struct sk_err *e);
	/* Optional, after a failed conversion (before destroy): removes what
	 * the target made that nothing else can use. */
	void (*discard)(struct cli_conv_dst *d);
	void (*destroy)(struct cli_conv_dst *d);
};

struct cli_conv_dst {
	const struct cli_conv_dst_ops *ops;
	char desc[PATH_MAX + 300];
	char tag[256];
	char note[256];		/* after add_image: added to the summary */
};

/* The source image's config (buf, untrusted): its rootfs.diff_ids must
 * name nlayers sha256 digests, and with platform set (os/arch[/variant])
 * its os and architecture must be that. 0 and *diff_ids (nlayers + 1
 * entries, lowercase hex, the last ""; free()), or -errno, a message in
 * e and *diff_ids NULL. No I/O (convert_config.c). */
int cli_conv_config_parse(const char *buf, size_t len, unsigned int nlayers,
			  const char *platform,
			  char (**diff_ids)[SK_HEX_LEN + 1], struct sk_err *e);

/* oci:DIR[:TAG] (or DIR[:TAG]) as a source: an OCI image layout. */
int cli_conv_oci_src(const char *ref, struct cli_conv_src **out,
		     struct sk_err *e);
/* oci:DIR[:TAG] as a target, the layout created when missing (and
 * removed by discard, with the directories made for it, as long as no
 * image was added to it meanwhile); tag, when not NULL, overrides the
 * reference's. */
int cli_conv_oci_dst(const char *ref, const char *tag,
		     struct cli_conv_dst **out, struct sk_err *e);

struct cli_reg_opts;
/* docker://HOST[:PORT]/REPO[:TAG|@sha256:HEX] as a source: manifests and
 * the config fetched whole, layers streamed in sequential ranges (never
 * stored). ro is copied. */
int cli_conv_reg_src(const char *ref, const struct cli_reg_opts *ro,
		     struct cli_conv_src **out, struct sk_err *e);
/* docker://HOST[:PORT]/REPO[:TAG] as a target: each blob pushed when it
 * is committed (data blobs staged in an unlinked temporary file under
 * $TMPDIR, default /var/tmp), then the config and the manifest under the
 * tag (tag, the reference's, or latest). progress: upload lines on a
 * terminal. */
int cli_conv_reg_dst(const char *ref, const char *tag,
		     const struct cli_reg_opts *ro, bool progress,
		     struct cli_conv_dst **out, struct sk_err *e);

#endif
