/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The frontend interface: the kernel side of skiffd. A frontend takes the
 * kernel's requests on its event thread (evloop.h) and serves each through
 * the one request path (request.h).
 */
#ifndef SKIFF_LOADER_FRONTEND_H
#define SKIFF_LOADER_FRONTEND_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/sk.h"

struct ld_daemon;
struct ld_frontend;
struct ld_blob_file;
struct ld_image;

/* Frontend: the kernel side. */
struct ld_frontend_ops {
	const char *name;
	/* skiffd creates the cache files (fanotify); else the kernel does */
	bool owns_cache_files;
	int (*start)(struct ld_daemon *d, struct ld_frontend **out,
		     struct sk_err *e);
	/* starts taking requests from the kernel */
	int (*serve)(struct ld_frontend *fe);
	/* a blob file became used by an image / complete / unused */
	int (*watch)(struct ld_frontend *fe, struct ld_blob_file *f);
	void (*unwatch)(struct ld_frontend *fe, struct ld_blob_file *f);
	/* stops taking requests; those already queued keep their way to
	 * answer until destroy() */
	void (*stop)(struct ld_frontend *fe);
	void (*destroy)(struct ld_frontend *fe);
	/* cachefiles: verified bytes and chunks the kernel's cache files of
	 * an image's blob hold (objects open now); NULL when not known */
	/* prefetch: fills [off, off+len) of an image's blob where the kernel
	 * reads it; *fetched gets the stored bytes fetched. -EAGAIN when the
	 * kernel has not opened the blob yet (cachefiles). */
	int (*prefetch)(struct ld_frontend *fe, struct ld_image *im,
			unsigned int blob, uint64_t off, uint64_t len,
			uint64_t *fetched, struct sk_err *e);
	int (*blob_fill)(struct ld_frontend *fe, const struct ld_image *im,
			 unsigned int blob, uint64_t *bytes, uint64_t *chunks);
};

struct ld_frontend {
	const struct ld_frontend_ops *ops;
};

extern const struct ld_frontend_ops ld_fanotify_ops;
extern const struct ld_frontend_ops ld_cachefiles_ops;
/* Opens /dev/cachefiles and binds it in on-demand mode: the fd, or
 * -errno with a message naming what the kernel lacks. */
int ld_cachefiles_bind(const char *cache_dir, struct sk_err *e);
/* Probes whether the kernel offers fanotify pre-content events on the
 * cache directory's filesystem; 0 or -errno with a message. */
int ld_fanotify_probe(const char *cache_dir, struct sk_err *e);

#endif
