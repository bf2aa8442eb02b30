/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cache.max_size: keeps skiffd's cache directory under its limit (see
 * evict.c). Without a limit none of this runs.
 */
#ifndef SKIFF_LOADER_EVICT_H
#define SKIFF_LOADER_EVICT_H

#include <stdint.h>

#include "../common/sk.h"

struct ld_daemon;

/* What one pass found and did. */
struct ld_evict_result {
	uint64_t used;			/* bytes counted before it */
	uint64_t files, file_bytes;	/* unused files removed */
	uint64_t chunks, chunk_bytes;	/* chunks of registered images punched */
	uint64_t short_bytes;		/* still over the low mark after it */
};

/* Starts the evictor's thread when cache_max is set (else does nothing);
 * before the frontend serves, after the images are restored. */
int ld_evict_start(struct ld_daemon *d, struct sk_err *e);
/* Ends its thread (waiting for a pass under way); before the frontend
 * stops. Kicks still find it until ld_evict_free(), once nothing that
 * kicks runs (the request pool ended). */
void ld_evict_stop(struct ld_daemon *d);
void ld_evict_free(struct ld_daemon *d);
/* A pass now rather than when fills have written enough: the cache disk
 * is full. From anywhere; nothing without an evictor. */
void ld_evict_kick(struct ld_daemon *d);
/* One pass: counts the cache and, over the limit, removes unused files,
 * least recently used first, then punches cold chunks of registered
 * images' files, down to 90% of the limit. Takes d->api_lock itself. */
int ld_evict_pass(struct ld_daemon *d, struct ld_evict_result *r, struct sk_err *e);
/* Ages every chunk of skiffd's own files by one tick. */
void ld_evict_tick(struct ld_daemon *d);

#endif
