/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Blob sources: where the loader reads stored blob bytes from. One
 * interface for the local store, HTTP and registries, so the loader never
 * knows which it talks to. read() may block; it is called from many
 * threads at once and must be safe for that.
 */
#ifndef SKIFF_BACKEND_SOURCE_H
#define SKIFF_BACKEND_SOURCE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../common/sk.h"

struct be_source;
struct be_image;
struct be_ref;
struct be_config;
struct be_http_stats;

struct be_source_ops {
	/* Reads exactly len stored bytes of blob `hex` at off, or -errno:
	 * -ENOENT when the source has no such blob. A failure says in e
	 * why and where (the URL or file, the HTTP status, the attempts),
	 * so that the loader can pass it on to whoever asked. */
	int (*read)(struct be_source *s, const char *hex, uint64_t off,
		    void *buf, size_t len, struct sk_err *e);
	void (*destroy)(struct be_source *s);
	/* Resolves a tag or "sha256:<hex>" digest ("": the only image, or
	 * "latest" on a registry) to a skiff image: manifest, bootstrap and
	 * data blobs. The manifest is digest-checked on the way. */
	int (*resolve)(struct be_source *s, const char *tag,
		       struct be_image *img, struct sk_err *e);
	/* Network counters, or NULL (the local store has none). */
	struct be_http_stats *(*stats)(struct be_source *s);
	/* Optional: bytes read for [off, off+len) of blob hex failed the
	 * loader's verification, so the next read of that range should come
	 * from elsewhere (a registry: not from a mirror). */
	void (*bad_data)(struct be_source *s, const char *hex, uint64_t off,
			 uint64_t len);
};

struct be_source {
	const struct be_source_ops *ops;
	char desc[256];		/* for messages: "local:/path", a URL */
};

/* A local OCI image layout directory as a blob source. */
int be_local_source_new(const char *layout_dir, struct be_source **out,
			struct sk_err *e);

/*
 * The source for a parsed reference: the local store, a layout on a web
 * server, or a registry repository. Opening does no I/O on the network;
 * cfg is borrowed and must outlive the source.
 */
int be_source_open(const struct be_ref *r, const struct be_config *cfg,
		   struct be_source **out, struct sk_err *e);

static inline int be_source_read(struct be_source *s, const char *hex,
				 uint64_t off, void *buf, size_t len,
				 struct sk_err *e)
{
	struct sk_err own;
	int ret;

	if (!e)
		e = &own;
	e->msg[0] = '\0';
	ret = s->ops->read(s, hex, off, buf, len, e);
	/* a source that failed without saying why still says where */
	if (ret && !e->msg[0])
		sk_err_set(e, "%s: blob %s: %s", s->desc, hex, strerror(-ret));
	return ret;
}

static inline void be_source_destroy(struct be_source *s)
{
	if (s)
		s->ops->destroy(s);
}

#endif
