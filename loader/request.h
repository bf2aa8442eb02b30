/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one request path from a kernel event to its answer, for every
 * frontend: a frontend maps what the kernel asks to a request (a cache and
 * a range of it, or a fill of its own) and says how to answer and what to
 * let go of; ld_request() does the rest the same way for all of them:
 * counting, tracing, answering at once what is ready, filling the rest on
 * the request pool, logging failures, and the latency histograms. Every
 * request is answered exactly once, on every path, and then released.
 */
#ifndef SKIFF_LOADER_REQUEST_H
#define SKIFF_LOADER_REQUEST_H

#include <stdint.h>

#include "../common/sk.h"

struct ld_daemon;
struct ld_blob;
struct ld_cache;

struct ld_req {
	struct sk_job job;		/* ld_request's */
	struct ld_daemon *d;
	/* the blob, the cache of the file read and the fd its bytes are
	 * written through; NULL: `fill` does the work */
	struct ld_blob *blob;
	struct ld_cache *cache;
	int wfd;
	uint64_t off, len;
	/* a fill of the frontend's own (the cachefiles bootstrap, from
	 * memory), instead of the loader core's; never answered at once */
	int (*fill)(struct ld_req *r, struct sk_err *e);
	/* answers the kernel: 0, or the -errno its reader gets as EIO */
	void (*answer)(struct ld_req *r, int err);
	/* lets go of what the request held (and frees it: it is the
	 * frontend's allocation, struct ld_req first) */
	void (*release)(struct ld_req *r);
	const char *what;		/* for messages: "blob <hex>", ... */
	double t0;			/* set by ld_request */
};

/*
 * Serves r: answered at once when its range is ready in the cache, else
 * filled on the request pool. Called on the frontend's event thread,
 * which it never blocks on a backend.
 */
void ld_request(struct ld_daemon *d, struct ld_req *r);

#endif
