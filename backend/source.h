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

#include "../common/sk.h"

struct be_source;

struct be_source_ops {
	/* Reads exactly len stored bytes of blob `hex` at off, or -errno:
	 * -ENOENT when the source has no such blob. */
	int (*read)(struct be_source *s, const char *hex, uint64_t off,
		    void *buf, size_t len);
	void (*destroy)(struct be_source *s);
};

struct be_source {
	const struct be_source_ops *ops;
	char desc[256];		/* for messages: "local:/path" */
};

/* A local OCI image layout directory as a blob source. */
int be_local_source_new(const char *layout_dir, struct be_source **out,
			struct sk_err *e);

static inline int be_source_read(struct be_source *s, const char *hex,
				 uint64_t off, void *buf, size_t len)
{
	return s->ops->read(s, hex, off, buf, len);
}

static inline void be_source_destroy(struct be_source *s)
{
	if (s)
		s->ops->destroy(s);
}

#endif
