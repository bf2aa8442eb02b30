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
struct ld_blob;
struct ld_image;

/*
 * Frontend: the kernel side. It maps the kernel's requests to a blob and a
 * range and serves them through ld_request(); prefetch, status and
 * /metrics talk to blobs (daemon.h), never to a frontend.
 */
struct ld_frontend_ops {
	const char *name;
	int (*start)(struct ld_daemon *d, struct ld_frontend **out,
		     struct sk_err *e);
	/* starts taking requests from the kernel */
	int (*serve)(struct ld_frontend *fe);
	/* skiffd's own cache file of a blob became used by an image and is
	 * not complete / became complete or unused (under d->lock) */
	int (*watch)(struct ld_frontend *fe, struct ld_blob *b);
	void (*unwatch)(struct ld_frontend *fe, struct ld_blob *b);
	/* stops taking requests; those already queued keep their way to
	 * answer until destroy() */
	void (*stop)(struct ld_frontend *fe);
	void (*destroy)(struct ld_frontend *fe);
	/* where the cache files of an image's blobs live: "" for skiffd's
	 * own, shared by every image (NULL: the same); else a volume of the
	 * kernel's, whose blobs only its images share */
	const char *(*volume)(const struct ld_image *im);
	/* the kernel's cache (cachefiles; NULL: none): culls object file
	 * `name` of directory dirfd, which becomes the calling thread's
	 * working directory (cachefiles culls in the caller's: the thread
	 * must have unshared CLONE_FS, and go back where it was after).
	 * -EBUSY: the kernel has it open */
	int (*cull)(struct ld_frontend *fe, int dirfd, const char *name);
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
