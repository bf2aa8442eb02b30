/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fetch buffers kept for reuse. A run's buffers are megabytes; allocating
 * them fresh for every fetch costs a page fault and a zeroed page per 4
 * KiB (and an munmap after), which on a sequential read was a quarter of
 * skiffd's CPU time. The set is owned by the daemon and handed to each
 * cache like the rings; buffers are page-aligned (cachefiles writes with
 * O_DIRECT).
 */
#ifndef SKIFF_LOADER_BUFS_H
#define SKIFF_LOADER_BUFS_H

#include <stddef.h>
#include <stdint.h>

struct ld_bufs;

struct ld_buf {
	uint8_t *p;	/* owned by whoever holds the ld_buf */
	size_t cap;	/* bytes at p, >= what was asked */
};

/* Keeps at most `keep` idle buffers and `max_bytes` of them. */
int ld_bufs_new(struct ld_bufs **out, unsigned int keep, size_t max_bytes);
void ld_bufs_free(struct ld_bufs *b);
/* A page-aligned buffer of at least size bytes (contents undefined).
 * b may be NULL: then a fresh one. 0 or -ENOMEM. */
int ld_buf_get(struct ld_bufs *b, size_t size, struct ld_buf *out);
/* Gives a buffer back (kept or freed); buf is empty afterwards.
 * b NULL or buf empty: frees / does nothing. */
void ld_buf_put(struct ld_bufs *b, struct ld_buf *buf);

#endif
