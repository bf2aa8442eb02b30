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
	/*
	 * Where fetch_bytes went, stored bytes by why they were fetched
	 * (with pf_bytes, prefetch, they add up to the fetches written,
	 * fetch_bytes less failed and repeated fetches): what reads
	 * asked for (rounded to whole chunks), read ahead within the file a
	 * read was in, read ahead into other files. And of the bytes fetched
	 * before any read asked (read-ahead, prefetch), those a read asked
	 * for later: the rest is waste until a read comes.
	 */
	_Atomic uint64_t dm_bytes;
	_Atomic uint64_t raf_bytes;
	_Atomic uint64_t rax_bytes;
	_Atomic uint64_t later_bytes;
};

/* Where a recent read ended: a miss there goes on from it (cache.c). */
#define LD_STREAMS 4
struct ld_stream {
	uint64_t next;		/* the chunk after it: UINT64_MAX none */
	unsigned int files;	/* files in a row its reader went on into */
	uint64_t used;		/* ra_clock when it last went on */
};

struct ld_cache {
	char hex[SK_HEX_LEN + 1];
	struct fmt_blob_table table;	/* owned, verified */
	uint8_t *state;			/* owned, one per chunk */
	/* owned, one per chunk: made ready before any read asked for it and
	 * not read since: PF_PREFETCH by prefetch, PF_AHEAD by read-ahead */
	uint8_t *pf;
	/*
	 * owned, one bit per chunk, NULL when nothing is known (the blob is
	 * then one file to read-ahead): the chunk begins a file's data, or a
	 * piece of it stored apart from the rest (ld_cache_file_start). A
	 * miss never reads ahead past one (a small file is fetched whole, a
	 * large one as the kernel asks); read-ahead goes past one only for
	 * a reader that has gone on across files already (cache.c, RA_CROSS)
	 */
	uint8_t *fstart;
	/* owned, one per chunk: a window's mark (RA_MARK): a read that
	 * reaches it starts the next window */
	uint8_t *ra;
	uint64_t ready;			/* chunks in LD_READY */
	/* under lock: why the last fetch that gave its chunks back failed
	 * (-errno), which a read that waited for them answers with: a full
	 * cache disk is ENOSPC to every reader of the chunk, not EIO */
	int last_err;
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
	/* where recent reads ended (cache.c: streams) */
	struct ld_stream streams[LD_STREAMS];
	uint64_t ra_clock;
	unsigned int bg_jobs;		/* windows in progress; close waits */
	uint64_t ra_bytes;		/* stored bytes of those windows */
	bool closing;			/* no more windows */
	/*
	 * The record of verified chunks (ld_cache_record_open): a file with
	 * one bit per chunk, set once the chunk's verified bytes are written
	 * to the cache file. A restart trusts a chunk only when it is both
	 * in the cache file and recorded (ld_cache_scan). rec_fd -1: no
	 * record, nothing is trusted on a scan.
	 */
	int rec_fd;
	uint8_t *rec;			/* owned: the bits, as in the file */
	/* owned, one per chunk: found in the cache file unrecorded by the
	 * scan; its refill is synced before it is recorded (an overwrite in
	 * place has no ordering with the record's write) */
	uint8_t *stale;
	/* owned, one per chunk: evictor ticks since it was last asked for
	 * or filled (ld_cache_age_tick), up to LD_AGE_MAX */
	uint8_t *age;
	/* where this cache counts: its own, or its blob's (a cachefiles
	 * object's cache of the kernel's file counts into its blob) */
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
 * restart then restores the image with its source unreachable. A table
 * read from the source that cannot be kept fails the open, naming the
 * path and the error. */
int ld_cache_open_kept(struct ld_cache *c, const struct fmt_blob_ref *ref,
		       struct be_source *src, uint32_t merge_limit,
		       const char *kept, struct sk_err *e);
/* A cache of the same blob and table as `from`, all chunks missing,
 * counting where `from` counts and borrowing what it borrows (pools,
 * rings, buffers, read-ahead settings; bg_fd is the caller's to set):
 * for another cache file of the blob (the kernel's, which may be a new
 * file at each cachefiles OPEN). */
int ld_cache_clone(struct ld_cache *c, const struct ld_cache *from);
void ld_cache_close(struct ld_cache *c);
/*
 * What skiffd names its own cache file of a blob by (blobs/<name>,
 * verified/<name>): the blob id and the digest of the chunk table it is
 * served by, "<blob hex>.<table digest hex>". A blob id is only a name a
 * bootstrap gives; two images naming one blob id with different tables
 * must never share cached bytes, and one table's verified bytes are right
 * for whichever image names it.
 */
#define LD_CACHE_NAME_LEN (2 * SK_HEX_LEN + 1)
void ld_cache_name(const struct fmt_blob_ref *ref, char out[LD_CACHE_NAME_LEN + 1]);
/*
 * Where the record of verified chunks of cache c lives: in
 * cache_dir/verified/<name> for skiffd's own cache file (volume NULL), in
 * cache_dir/verified/erofs,<volume>/<blob hex> for the kernel's cache
 * file of the blob in a cachefiles volume (an fsid or a domain; the
 * kernel names it by the blob id alone, so the record's header names the
 * table). 0 or -ENAMETOOLONG.
 */
int ld_cache_record_path(const struct ld_cache *c, char *out, size_t outlen,
			 const char *cache_dir, const char *volume);
/* Opens (creating it and its directory) the record of verified chunks of
 * this cache at its ld_cache_record_path(). A record that does not match
 * the chunk table starts empty. */
int ld_cache_record_open(struct ld_cache *c, const char *cache_dir,
			 const char *volume, struct sk_err *e);
/*
 * Rebuilds the state from a cache file filled by an earlier run: a chunk
 * is ready when its whole range holds data in fd and the record says it
 * was verified. A chunk with data but not recorded (a crash between the
 * write and the record, bytes written by anything else) stays missing and
 * is marked stale: the next fill overwrites it. A recorded chunk that is
 * not (wholly) in the file loses its bit. Only missing chunks change.
 * Returns the number of stale chunks, or -errno from lseek (-ENOBUFS:
 * the cachefiles anon fd before the kernel opened its file).
 */
int ld_cache_scan(struct ld_cache *c, int fd);
/* Fetches and writes through wfd every stale chunk still missing: for a
 * cache file the kernel reads without asking where it holds data
 * (cachefiles). Counted as prefetch. */
int ld_cache_repair(struct ld_cache *c, int wfd, struct sk_err *e);
/*
 * Notes that chunk i begins a file's data (or a piece of it stored apart
 * from the rest), which read-ahead does not cross without proof (cache.h,
 * fstart). ld_cache_merge_starts adds from's to c's (the same blob named
 * by another image). Take c->lock: any time. 0 or -ENOMEM.
 */
int ld_cache_file_start(struct ld_cache *c, uint64_t i);
int ld_cache_merge_starts(struct ld_cache *c, const struct ld_cache *from);
bool ld_cache_is_file_start(struct ld_cache *c, uint64_t i);

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

/*
 * Eviction of ready chunks (loader/evict.c): each chunk has an age, the
 * evictor's ticks since a read last asked for it or it was filled.
 * ld_cache_age_tick ages every ready chunk by one (a read's ld_cache_fill
 * or ld_cache_range_ready of it sets it back to 0, as does the end of a
 * fill that waited, just before the read is let through);
 * ld_cache_age_bytes adds the bytes of ready chunks at least min_age old
 * to bytes[age]. ld_cache_evict punches through fd the ready chunks older
 * than cutoff, or (at_cutoff) those exactly at it while *budget lasts,
 * never one younger than min_age, making them missing and unrecorded; it
 * adds what it punched to *bytes and *chunks and takes it from *budget.
 * Only for a file whose every read the frontend asks about (fanotify,
 * opened by every reader while marked), so that a chunk's age says when
 * a reader last touched it. Returns 0 or -errno of a failed punch (what
 * it failed to punch stays ready).
 */
#define LD_AGE_MAX 255u
void ld_cache_age_tick(struct ld_cache *c);
void ld_cache_age_bytes(struct ld_cache *c, unsigned int min_age,
			uint64_t bytes[LD_AGE_MAX + 1]);
int ld_cache_evict(struct ld_cache *c, int fd, unsigned int min_age,
		   unsigned int cutoff, bool at_cutoff, uint64_t *budget,
		   uint64_t *bytes, uint64_t *chunks);

#endif
