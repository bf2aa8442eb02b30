/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The loader core, frontend-independent: one cache file of one blob. It
 * holds the blob's verified chunk table and a state per chunk (missing,
 * in flight, ready). ld_cache_fill() turns a read of [off, off+len) of the
 * cache file into the chunks it touches: ready ones need nothing, chunks
 * another thread is fetching are waited for, missing ones are claimed,
 * fetched from the source (adjacent ones merged into one read up to the
 * merge limit), decompressed, verified and written. Only verified bytes
 * are ever written. Many threads may fill one cache at once; a slow fetch
 * holds up only the requests that need its chunks.
 */
#ifndef SKIFF_LOADER_CACHE_H
#define SKIFF_LOADER_CACHE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "../backend/source.h"
#include "../format/blob.h"
#include "../format/bootstrap.h"
#include "bufs.h"
#include "uring.h"

enum { LD_MISSING = 0, LD_INFLIGHT = 1, LD_READY = 2 };

/* Counters a cache keeps; read them with atomic_load. */
struct ld_counters {
	_Atomic uint64_t fills;		/* ld_cache_fill calls */
	_Atomic uint64_t fill_bytes;	/* bytes those calls asked for */
	_Atomic uint64_t waits;		/* fills that waited on a fetch */
	_Atomic uint64_t fetches;	/* backend reads */
	_Atomic uint64_t fetch_chunks;	/* chunks fetched */
	_Atomic uint64_t fetch_bytes;	/* stored bytes read from the backend */
	_Atomic uint64_t write_bytes;	/* bytes written to the cache file */
	_Atomic uint64_t err_fetch;	/* backend read failures */
	_Atomic uint64_t err_verify;	/* chunks that failed decode/digest */
	_Atomic uint64_t err_write;	/* cache file write failures */
	/* reads (not prefetch) that had to fetch or wait for a fetch */
	_Atomic uint64_t misses;
	/* the share of fetch_chunks / fetch_bytes that prefetch fetched */
	_Atomic uint64_t pf_chunks;
	_Atomic uint64_t pf_bytes;
	/* chunks prefetch made ready before any read asked for them */
	_Atomic uint64_t pf_hits;
	_Atomic uint64_t ra_windows;	/* read-ahead windows started */
};

struct ld_cache {
	char hex[SK_HEX_LEN + 1];
	struct fmt_blob_table table;	/* owned, verified */
	uint8_t *state;			/* owned, one per chunk */
	/* owned, one per chunk: made ready by prefetch and not read since */
	uint8_t *pf;
	/* owned, one per chunk: the first chunk of a read-ahead window; a
	 * read that reaches it starts the next window */
	uint8_t *ra;
	uint64_t ready;			/* chunks in LD_READY */
	pthread_mutex_t lock;		/* guards state and ready */
	pthread_cond_t cond;		/* a fetch finished */
	struct be_source *src;		/* borrowed */
	struct ld_rings *rings;		/* borrowed; NULL: pwrite(2) */
	struct ld_bufs *bufs;		/* borrowed; NULL: fresh buffers */
	/* borrowed; NULL: a fetching thread decodes its runs alone */
	struct sk_pool *pool;
	uint32_t merge_limit;
	/* stored bytes of missing chunks that follow a miss, fetched with
	 * it: small files stored one after another then cost one request */
	uint32_t readahead;
	/*
	 * Asynchronous read-ahead: while a reader goes through a blob in
	 * order, windows of the chunks after what it read (each one backend
	 * read, up to the merge limit) are fetched in the background, up to
	 * `ahead` stored bytes in flight, so its next requests find data
	 * ready or coming.
	 * bg_fd is an fd any thread may write the cache file through for as
	 * long as the cache is open, bg_pool the threads windows run on
	 * (never the request pool: requests wait on windows). Off while
	 * bg_fd < 0, bg_pool is NULL or ahead is 0.
	 */
	int bg_fd;
	struct sk_pool *bg_pool;	/* borrowed */
	uint32_t ahead;
	/* the frontend asks about every read, ready data included
	 * (fanotify), not only about misses (cachefiles): a stream then
	 * starts only when the reader reaches the read-ahead of its miss */
	bool sees_reads;
	/* what may be in flight now, up to `ahead`: windows start small
	 * and double each time the reader reaches one (proves it reads
	 * on), as the kernel's read-ahead does; a random miss resets it */
	uint32_t ra_cur;
	uint64_t ra_next;		/* first chunk after the last window */
	unsigned int bg_jobs;		/* windows in progress; close waits */
	uint64_t ra_bytes;		/* stored bytes of those windows */
	bool closing;			/* no more windows */
	/* where this cache counts: its own, or one shared (cachefiles
	 * objects count per image) */
	struct ld_counters *cnt;
	struct ld_counters own;
};

/* Fetches blob `ref`'s chunk table with one read and verifies it against
 * the digest the bootstrap gives. All chunks start missing. */
int ld_cache_open(struct ld_cache *c, const struct fmt_blob_ref *ref,
		  struct be_source *src, uint32_t merge_limit,
		  struct sk_err *e);
/* The same, keeping the verified chunk table at `kept` (NULL: not kept)
 * and taking it from there when a copy that verifies is there already: a
 * restart then restores the image with its source unreachable. */
int ld_cache_open_kept(struct ld_cache *c, const struct fmt_blob_ref *ref,
		       struct be_source *src, uint32_t merge_limit,
		       const char *kept, struct sk_err *e);
void ld_cache_close(struct ld_cache *c);
/* Marks ready every chunk whose whole range holds data in fd (a cache file
 * filled by an earlier run): what SEEK_DATA finds is what we have. */
int ld_cache_scan(struct ld_cache *c, int fd);
/* Makes [off, off+len) of the cache file whole, writing through wfd. */
int ld_cache_fill(struct ld_cache *c, int wfd, uint64_t off, uint64_t len,
		  struct sk_err *e);
/* Fills for prefetch: no read-ahead, counted as prefetch, and the chunks
 * it fetches count as hits when a read first asks for them. The stored
 * bytes this call fetched are added to *fetched (may be NULL). */
#define LD_FILL_PREFETCH 1u
int ld_cache_fill_flags(struct ld_cache *c, int wfd, uint64_t off,
			uint64_t len, unsigned int flags, uint64_t *fetched,
			struct sk_err *e);
/* True when every chunk of [off, off+len) is ready; counts it as a read
 * (prefetch hits). */
bool ld_cache_range_ready(struct ld_cache *c, uint64_t off, uint64_t len);
/* Stored bytes of the chunks of [off, off+len) that are missing. */
uint64_t ld_cache_missing_stored(struct ld_cache *c, uint64_t off, uint64_t len);
bool ld_cache_complete(struct ld_cache *c);
/* to += from, counter by counter */
void ld_counters_add(struct ld_counters *to, struct ld_counters *from);
uint64_t ld_cache_ready_bytes(struct ld_cache *c);

#endif
