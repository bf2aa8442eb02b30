/* SPDX-License-Identifier: Apache-2.0 */
#include "cache.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#define ALIGN4K(x) SK_ALIGN_UP((uint64_t)(x), (uint64_t)EROFS_BLKSIZ)

/* c->pf: why a chunk nobody has read yet was fetched */
enum { PF_PREFETCH = 1, PF_AHEAD = 2 };
/*
 * Streams (c->streams): where the last few readers' reads ended, their
 * read-ahead and windows included. A miss that starts there goes on
 * from that read; any other is random and takes the place of the stream
 * used least recently. A handful, not one per blob: two readers going
 * through files at once each keep theirs; and not one per chunk: a
 * random reader that comes back to the file after one it read long ago
 * has not gone on from it. From RA_CROSS files in a row (a miss going on
 * from a read into the next file), read-ahead goes on into the following
 * files: one may be chance, two are a reader going through files in
 * their stored order.
 */
#define RA_CROSS 2u
/* c->ra: a window's mark */
#define RA_MARK 1u

int ld_cache_open(struct ld_cache *c, const struct fmt_blob_ref *ref,
		  struct be_source *src, uint32_t merge_limit,
		  struct sk_err *e)
{
	return ld_cache_open_kept(c, ref, src, merge_limit, NULL, e);
}

static int alloc_state(struct ld_cache *c);

/* The chunk table kept at `kept` by an earlier open, if it verifies. */
static int table_from_kept(struct ld_cache *c, const char *kept)
{
	struct sk_err e = { { 0 } };
	void *buf;
	size_t len;
	int ret;

	if (!kept || sk_read_file(kept, c->table.table_size + 1, &buf, &len))
		return -ENOENT;
	ret = len == c->table.table_size ? fmt_blob_table_parse(&c->table, buf, len, &e)
					  : -EBADMSG;
	free(buf);
	return ret;
}

/*
 * The table from `kept` when a copy there verifies; else from the source
 * (one range read), verified and then kept.
 */
static int open_table(struct ld_cache *c, const struct fmt_blob_ref *ref,
		      struct be_source *src, uint32_t merge_limit,
		      const char *kept, struct sk_err *e)
{
	void *buf;
	int ret;

	memset(c, 0, sizeof(*c));
	memcpy(c->hex, ref->hex, sizeof(c->hex));
	c->src = src;
	c->cnt = &c->own;
	c->rec_fd = -1;
	c->merge_limit = merge_limit ? merge_limit : (4u << 20);
	c->table.stored_size = ref->stored_size;
	c->table.usize = ref->usize;
	c->table.table_off = ref->table_off;
	c->table.table_size = ref->table_size;
	c->table.count = ref->chunk_count;
	memcpy(c->table.table_digest, ref->table_digest, SK_SHA256_LEN);
	if (ref->table_size > (1ull << 32)) {
		sk_err_set(e, "blob %s: chunk table too large", ref->hex);
		return -EFBIG;
	}
	if (table_from_kept(c, kept) == 0)
		goto parsed;
	buf = malloc(ref->table_size ? ref->table_size : 1);
	if (!buf)
		return -ENOMEM;
	ret = be_source_read(src, ref->hex, ref->table_off, buf, ref->table_size, e);
	if (ret) {
		sk_err_prefix(e, "blob %s: reading its chunk table", ref->hex);
		free(buf);
		return ret;
	}
	ret = fmt_blob_table_parse(&c->table, buf, ref->table_size, e);
	if (ret) {
		free(buf);
		sk_err_prefix(e, "blob %s", ref->hex);
		return ret;
	}
	/* verified: keep it, so that a restart needs no network for it. A
	 * cache directory that refuses it is said now, not found out at a
	 * later restart */
	ret = kept ? sk_write_file_atomic(kept, buf, ref->table_size) : 0;
	free(buf);
	if (ret) {
		sk_err_set(e, "blob %s: keeping its chunk table at %s: %s", ref->hex,
			   kept, strerror(-ret));
		fmt_blob_table_free(&c->table);
		return ret;
	}
parsed:
	ret = alloc_state(c);
	if (ret)
		fmt_blob_table_free(&c->table);
	return ret;
}

/* The per-chunk state of a cache whose table is set: all missing. */
static int alloc_state(struct ld_cache *c)
{
	c->state = calloc(c->table.count ? c->table.count : 1, 1);
	c->pf = calloc(c->table.count ? c->table.count : 1, 1);
	c->ra = calloc(c->table.count ? c->table.count : 1, 1);
	c->stale = calloc(c->table.count ? c->table.count : 1, 1);
	c->age = calloc(c->table.count ? c->table.count : 1, 1);
	c->bg_fd = -1;
	if (!c->state || !c->pf || !c->ra || !c->stale || !c->age) {
		free(c->state);
		free(c->pf);
		free(c->ra);
		free(c->stale);
		free(c->age);
		c->state = NULL;
		return -ENOMEM;
	}
	/* the first read at the blob's start goes on from nothing: a stream
	 * (a large file read from its start) */
	for (unsigned int k = 0; k < LD_STREAMS; k++)
		c->streams[k].next = k ? UINT64_MAX : 0;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	return 0;
}

/*
 * Under c->lock: the stream a miss of chunks [first .. m] (m its first
 * missing chunk) goes on from, or NULL. A stream goes on when the read
 * covers where it ended.
 */
static struct ld_stream *stream_find(struct ld_cache *c, uint64_t first, uint64_t m)
{
	for (unsigned int k = 0; k < LD_STREAMS; k++)
		if (c->streams[k].next >= first && c->streams[k].next <= m)
			return &c->streams[k];
	return NULL;
}

/*
 * Under c->lock: s (NULL: a new one, in an empty place or that of the
 * least recently used) now ends before chunk `next`, `files` files in a
 * row. Returns it.
 */
static struct ld_stream *stream_note(struct ld_cache *c, struct ld_stream *s,
				     uint64_t next, unsigned int files)
{
	for (unsigned int k = 0; !s && k < LD_STREAMS; k++)
		if (c->streams[k].next == UINT64_MAX)
			s = &c->streams[k];
	if (!s) {
		s = &c->streams[0];
		for (unsigned int k = 1; k < LD_STREAMS; k++)
			if (c->streams[k].used < s->used)
				s = &c->streams[k];
	}
	*s = (struct ld_stream){ next, files, ++c->ra_clock };
	return s;
}

/* Under c->lock: the stream a reader at chunk i heads for (the nearest
 * end at or after it), or NULL. */
static struct ld_stream *stream_ahead(struct ld_cache *c, uint64_t i)
{
	struct ld_stream *s = NULL;

	for (unsigned int k = 0; k < LD_STREAMS; k++)
		if (c->streams[k].next != UINT64_MAX && c->streams[k].next >= i &&
		    (!s || c->streams[k].next < s->next))
			s = &c->streams[k];
	return s;
}

static bool starts_in(const struct ld_cache *c, uint64_t a, uint64_t b);

/* Under c->lock: how many files in a row a reader of stream s went on
 * into, its miss starting at chunk m: one more when it passed a file
 * start since s ended (chunk 0, the blob's start, is none to pass). */
static unsigned int stream_files(const struct ld_cache *c, const struct ld_stream *s,
				 uint64_t m)
{
	return s->files + starts_in(c, s->next ? s->next : 1, m + 1);
}

int ld_cache_clone(struct ld_cache *c, const struct ld_cache *from)
{
	size_t n = from->table.count ? from->table.count : 1;
	int ret;

	memset(c, 0, sizeof(*c));
	memcpy(c->hex, from->hex, sizeof(c->hex));
	c->src = from->src;
	c->cnt = from->cnt;
	c->rec_fd = -1;
	c->merge_limit = from->merge_limit;
	c->readahead = from->readahead;
	c->rings = from->rings;
	c->bufs = from->bufs;
	c->pool = from->pool;
	c->bg_pool = from->bg_pool;
	c->ahead = from->ahead;
	c->table = from->table;
	c->table.chunks = malloc(n * sizeof(*c->table.chunks));
	if (!c->table.chunks)
		return -ENOMEM;
	memcpy(c->table.chunks, from->table.chunks,
	       from->table.count * sizeof(*c->table.chunks));
	ret = alloc_state(c);
	if (ret) {
		fmt_blob_table_free(&c->table);
		return ret;
	}
	/* from's starts grow when another image names the blob: copy them
	 * under its lock (c is nobody else's yet) */
	pthread_mutex_lock((pthread_mutex_t *)&from->lock);
	if (from->fstart && !(c->fstart = malloc(n / 8 + 1)))
		ret = -ENOMEM;
	else if (from->fstart)
		memcpy(c->fstart, from->fstart, n / 8 + 1);
	pthread_mutex_unlock((pthread_mutex_t *)&from->lock);
	if (ret)
		ld_cache_close(c);
	return ret;
}

static bool is_start(const struct ld_cache *c, uint64_t i)
{
	return c->fstart && (c->fstart[i / 8] >> (i % 8)) & 1;
}

/* Under c->lock: whether a file begins in chunks [a, b). */
static bool starts_in(const struct ld_cache *c, uint64_t a, uint64_t b)
{
	for (; c->fstart && a < b; a++) {
		if (a % 8 == 0 && b - a >= 8 && !c->fstart[a / 8]) {
			a += 7;
			continue;
		}
		if (is_start(c, a))
			return true;
	}
	return false;
}

/* Under c->lock. */
static int alloc_starts(struct ld_cache *c)
{
	if (!c->fstart)
		c->fstart = calloc(c->table.count / 8 + 1, 1);
	return c->fstart ? 0 : -ENOMEM;
}

int ld_cache_file_start(struct ld_cache *c, uint64_t i)
{
	int ret;

	if (i >= c->table.count)
		return 0;
	pthread_mutex_lock(&c->lock);
	ret = alloc_starts(c);
	if (!ret)
		c->fstart[i / 8] |= (uint8_t)(1u << (i % 8));
	pthread_mutex_unlock(&c->lock);
	return ret;
}

bool ld_cache_is_file_start(struct ld_cache *c, uint64_t i)
{
	bool r;

	pthread_mutex_lock(&c->lock);
	r = i < c->table.count && is_start(c, i);
	pthread_mutex_unlock(&c->lock);
	return r;
}

int ld_cache_merge_starts(struct ld_cache *c, const struct ld_cache *from)
{
	int ret = 0;

	/* from is a prepared blob nobody else sees yet */
	if (!from->fstart || c == from || c->table.count != from->table.count)
		return 0;
	pthread_mutex_lock(&c->lock);
	ret = alloc_starts(c);
	for (uint64_t k = 0; !ret && k < c->table.count / 8 + 1; k++)
		c->fstart[k] |= from->fstart[k];
	pthread_mutex_unlock(&c->lock);
	return ret;
}

int ld_cache_open_kept(struct ld_cache *c, const struct fmt_blob_ref *ref,
		       struct be_source *src, uint32_t merge_limit,
		       const char *kept, struct sk_err *e)
{
	return open_table(c, ref, src, merge_limit, kept, e);
}

void ld_cache_close(struct ld_cache *c)
{
	if (!c->state)
		return;
	/* read-ahead windows write through bg_fd: let them finish */
	pthread_mutex_lock(&c->lock);
	c->closing = true;
	while (c->bg_jobs)
		pthread_cond_wait(&c->cond, &c->lock);
	pthread_mutex_unlock(&c->lock);
	fmt_blob_table_free(&c->table);
	free(c->state);
	free(c->pf);
	free(c->ra);
	free(c->stale);
	free(c->age);
	free(c->fstart);
	c->fstart = NULL;
	free(c->rec);
	if (c->rec_fd >= 0)
		close(c->rec_fd);
	c->rec_fd = -1;
	c->rec = NULL;
	c->state = NULL;
	c->pf = NULL;
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
}

/*
 * The record of verified chunks: a 56-byte header (magic, chunk count and
 * uncompressed size, little-endian, and the SHA-256 of the chunk table the
 * chunks were verified against) and one bit per chunk, bit i % 8 of byte
 * i / 8. A record made for another table (another image naming the same
 * blob id, or an older skiffd) is never taken. A fill
 * sets its chunks' bits with one pwrite of the bytes that changed, after
 * the chunks' bytes are written and before they are marked ready, and
 * never syncs (loader/README.md says why a crash cannot make it lie).
 */
#define REC_MAGIC "skiffvr2"
#define REC_HDR (24u + SK_SHA256_LEN)

static uint64_t rec_len(const struct ld_cache *c)
{
	return (c->table.count + 7) / 8;
}

static bool rec_bit(const struct ld_cache *c, uint64_t i)
{
	return c->rec && (c->rec[i / 8] >> (i % 8) & 1);
}

/* Under c->lock: sets (or clears) the bits of chunks [first, first + n)
 * and writes the bytes that hold them. A record that cannot be written
 * only costs a refetch after a restart. */
static void rec_set(struct ld_cache *c, uint64_t first, uint64_t n, bool on)
{
	if (!c->rec || !n)
		return;
	for (uint64_t i = first; i < first + n; i++) {
		if (on)
			c->rec[i / 8] |= (uint8_t)(1u << (i % 8));
		else
			c->rec[i / 8] &= (uint8_t)~(1u << (i % 8));
	}
	if (c->rec_fd >= 0)
		sk_pwrite_full(c->rec_fd, c->rec + first / 8,
			       (first + n - 1) / 8 - first / 8 + 1, REC_HDR + first / 8);
}

void ld_cache_name(const struct fmt_blob_ref *ref, char out[LD_CACHE_NAME_LEN + 1])
{
	memcpy(out, ref->hex, SK_HEX_LEN);
	out[SK_HEX_LEN] = '.';
	sk_hex(ref->table_digest, SK_SHA256_LEN, out + SK_HEX_LEN + 1);
}

int ld_cache_record_path(const struct ld_cache *c, char *out, size_t outlen,
			 const char *cache_dir, const char *volume)
{
	struct fmt_blob_ref ref;
	char name[LD_CACHE_NAME_LEN + 1];
	int n;

	memcpy(ref.hex, c->hex, sizeof(ref.hex));
	memcpy(ref.table_digest, c->table.table_digest, SK_SHA256_LEN);
	ld_cache_name(&ref, name);
	n = volume ? snprintf(out, outlen, "%s/verified/erofs,%s/%s", cache_dir,
			      volume, c->hex)
		   : snprintf(out, outlen, "%s/verified/%s", cache_dir, name);
	return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

int ld_cache_record_open(struct ld_cache *c, const char *cache_dir,
			 const char *volume, struct sk_err *e)
{
	char path[PATH_MAX], *slash;
	uint8_t hdr[REC_HDR];
	uint64_t len = rec_len(c), count = c->table.count, usize = c->table.usize;
	struct stat st;
	int fd, ret;

	if (c->rec_fd >= 0)
		return 0;
	ret = ld_cache_record_path(c, path, sizeof(path), cache_dir, volume);
	if (ret) {
		sk_err_set(e, "%s: path too long", cache_dir);
		return ret;
	}
	slash = strrchr(path, '/');
	*slash = '\0';
	ret = sk_mkdir_p(path, 0700);
	*slash = '/';
	if (ret) {
		sk_err_set(e, "%s: %s", path, strerror(-ret));
		return ret;
	}
	c->rec = calloc(len ? len : 1, 1);
	if (!c->rec)
		return -ENOMEM;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || fstat(fd, &st) < 0) {
		ret = -errno;
		goto fail;
	}
	memcpy(hdr, REC_MAGIC, 8);
	for (int k = 0; k < 8; k++) {
		hdr[8 + k] = (uint8_t)(count >> (8 * k));
		hdr[16 + k] = (uint8_t)(usize >> (8 * k));
	}
	memcpy(hdr + 24, c->table.table_digest, SK_SHA256_LEN);
	/* one that is not this table's (or torn) starts empty: never trusted */
	if ((uint64_t)st.st_size == REC_HDR + len) {
		uint8_t got[REC_HDR];

		if (sk_pread_full(fd, got, sizeof(got), 0) == 0 &&
		    !memcmp(got, hdr, sizeof(got)) &&
		    sk_pread_full(fd, c->rec, len, REC_HDR) == 0)
			goto done;
		memset(c->rec, 0, len);
	}
	if (ftruncate(fd, 0) < 0 || ftruncate(fd, (off_t)(REC_HDR + len)) < 0) {
		ret = -errno;
		goto fail;
	}
	ret = sk_pwrite_full(fd, hdr, sizeof(hdr), 0);
	if (ret)
		goto fail;
done:
	c->rec_fd = fd;
	return 0;
fail:
	sk_err_set(e, "%s: %s", path, strerror(-ret));
	if (fd >= 0)
		close(fd);
	free(c->rec);
	c->rec = NULL;
	return ret;
}

int ld_cache_scan(struct ld_cache *c, int fd)
{
	int stale = 0;
	/* where the last SEEK_DATA, from at or before this chunk, found
	 * data (none: nowhere after), and where that data ends (SEEK_HOLE
	 * from it): two lseeks per run of data and per hole, not per chunk,
	 * so that a file of a million chunks, fresh or whole, costs a few */
	off_t data = -1, hole = -1;
	bool looked = false, none = false;

	pthread_mutex_lock(&c->lock);
	for (uint64_t i = 0; i < c->table.count; i++) {
		const struct fmt_chunk *ch = &c->table.chunks[i];
		off_t d, h = -1;
		bool whole;

		if (c->state[i] != LD_MISSING)
			continue;
		if (looked && !none && data <= (off_t)ch->uoff && (off_t)ch->uoff < hole) {
			/* inside the data run found last: data here, up to
			 * the same hole */
			d = (off_t)ch->uoff;
			h = hole;
		} else {
			if (!looked || (!none && (uint64_t)data < ch->uoff)) {
				looked = true;
				data = lseek(fd, (off_t)ch->uoff, SEEK_DATA);
				if (data < 0 && errno != ENXIO) {
					stale = -errno;
					break;
				}
				none = data < 0;
				hole = -1;
			}
			d = none ? -1 : data;
			if (d >= 0 && (uint64_t)d == ch->uoff) {
				if (hole < 0)
					hole = lseek(fd, (off_t)ch->uoff, SEEK_HOLE);
				h = hole;
			}
		}
		whole = h >= 0 && (uint64_t)h >= ch->uoff + ALIGN4K(ch->usize);
		if (whole && rec_bit(c, i)) {
			c->state[i] = LD_READY;
			c->ready++;
		} else if (whole || (d >= 0 && (uint64_t)d < ch->uoff + ALIGN4K(ch->usize))) {
			/* bytes nobody recorded as verified: a read fetches
			 * and overwrites them before anybody is let see them */
			c->stale[i] = 1;
			stale++;
			rec_set(c, i, 1, false);
		} else if (rec_bit(c, i)) {
			/* recorded, gone from the file (a new cache file, or
			 * the kernel dropped it): whatever lands there later
			 * is not what was verified */
			rec_set(c, i, 1, false);
		}
	}
	pthread_mutex_unlock(&c->lock);
	return stale;
}

int ld_cache_repair(struct ld_cache *c, int wfd, struct sk_err *e)
{
	uint64_t i = 0;
	int ret = 0;

	for (;;) {
		uint64_t j;

		pthread_mutex_lock(&c->lock);
		while (i < c->table.count && !(c->stale[i] && c->state[i] == LD_MISSING))
			i++;
		for (j = i; j < c->table.count && c->stale[j] && c->state[j] == LD_MISSING; j++)
			;
		pthread_mutex_unlock(&c->lock);
		if (i >= c->table.count)
			return ret;
		/* chunks are in uoff order: the range touches [i, j) alone */
		ret = ld_cache_fill_flags(c, wfd, c->table.chunks[i].uoff,
					  c->table.chunks[j - 1].uoff +
					  c->table.chunks[j - 1].usize - c->table.chunks[i].uoff,
					  LD_FILL_PREFETCH, NULL, e);
		if (ret)
			return ret;
		i = j;
	}
}

void ld_counters_add(struct ld_counters *to, struct ld_counters *from)
{
	_Atomic uint64_t *t = (_Atomic uint64_t *)to, *f = (_Atomic uint64_t *)from;

	for (size_t i = 0; i < sizeof(*to) / sizeof(*t); i++)
		atomic_fetch_add(&t[i], atomic_load(&f[i]));
}

bool ld_cache_complete(struct ld_cache *c)
{
	bool done;

	pthread_mutex_lock(&c->lock);
	done = c->ready == c->table.count;
	pthread_mutex_unlock(&c->lock);
	return done;
}

uint64_t ld_cache_ready_bytes(struct ld_cache *c)
{
	uint64_t b = 0;

	pthread_mutex_lock(&c->lock);
	for (uint64_t i = 0; i < c->table.count; i++)
		if (c->state[i] == LD_READY)
			b += ALIGN4K(c->table.chunks[i].usize);
	pthread_mutex_unlock(&c->lock);
	return b;
}

struct run {
	uint64_t first, n;	/* chunk indexes [first, first + n) */
	/* chunks before ask_end a read asked for; from cross_at on the run
	 * reads ahead into other files (between them, within the file) */
	uint64_t ask_end, cross_at;
	/* a read-ahead window: its stored bytes, out of c->ra_bytes as soon
	 * as its chunks are ready (before the buffers are freed), or the
	 * reader would find the next window not claimed yet */
	uint64_t ra_bytes;
};

/*
 * Decoding is the costly part of a fetch (zstd and a SHA-256 of every
 * byte), and one reader usually waits on one run: so the fetching thread
 * shares a run's chunks with idle pool workers. Everybody claims chunks
 * from one counter, the fetching thread included, so the run never waits
 * on a helper the busy pool has not started yet: it waits only for chunks
 * a running helper has claimed. A helper that starts late finds nothing
 * left and just drops its reference.
 */
#define DEC_MIN_BYTES (256u << 10)	/* below this, sharing costs more */
#define DEC_MAX_HELPERS 7

struct dec_set {
	struct ld_cache *c;
	uint64_t first, n;	/* chunks [first, first + n) */
	const uint8_t *sbuf;	/* stored bytes of the run, from chunk first */
	struct ld_write *w;	/* one per chunk, where it decodes to */
	pthread_mutex_t lock;
	pthread_cond_t cond;	/* done grew, or an error */
	uint64_t next;		/* next chunk to claim, relative */
	uint64_t done;		/* chunks decoded or given up */
	int err;
	struct sk_err e;
	unsigned int refs;	/* fetching thread + helpers not yet run */
	struct dec_helper {
		struct sk_job job;
		struct dec_set *s;
	} helpers[DEC_MAX_HELPERS];
};

static int dec_one(struct dec_set *s, uint64_t k, struct sk_err *e)
{
	const struct fmt_chunk *a = &s->c->table.chunks[s->first];
	const struct fmt_chunk *ch = &s->c->table.chunks[s->first + k];
	/* w[k].buf points into a run buffer fetch_run owns */
	uint8_t *out = (uint8_t *)(uintptr_t)s->w[k].buf;
	const uint8_t *stored = s->sbuf + (ch->soff - a->soff);
	int ret;

	/* a chunk written from its stored bytes is only checked */
	if (out == stored)
		return fmt_chunk_verify(ch, stored, e);
	ret = fmt_chunk_decode(ch, stored, out, e);
	if (ret)
		return ret;
	memset(out + ch->usize, 0, s->w[k].len - ch->usize);
	return 0;
}

static void dec_put(struct dec_set *s)
{
	bool last;

	pthread_mutex_lock(&s->lock);
	last = --s->refs == 0;
	pthread_mutex_unlock(&s->lock);
	if (!last)
		return;
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	free(s);
}

/* Claims and decodes chunks until none are left. */
static void dec_work(struct dec_set *s)
{
	struct sk_err e = { { 0 } };

	pthread_mutex_lock(&s->lock);
	while (s->next < s->n) {
		uint64_t k = s->next++;
		int ret;

		pthread_mutex_unlock(&s->lock);
		ret = dec_one(s, k, &e);
		pthread_mutex_lock(&s->lock);
		if (ret && !s->err) {
			s->err = ret;
			s->e = e;
			s->done += s->n - s->next;	/* nobody claims the rest */
			s->next = s->n;
		}
		s->done++;
		pthread_cond_broadcast(&s->cond);
	}
	pthread_mutex_unlock(&s->lock);
}

static void dec_job(struct sk_job *job)
{
	struct dec_set *s = ((struct dec_helper *)job)->s;

	dec_work(s);
	dec_put(s);
}

static int decode_run(struct ld_cache *c, uint64_t first, uint64_t n,
		      const uint8_t *sbuf, uint64_t ulen, struct ld_write *w,
		      struct sk_err *e)
{
	struct dec_set *s = calloc(1, sizeof(*s));
	unsigned int helpers = 0;
	int ret;

	if (!s)
		return -ENOMEM;
	*s = (struct dec_set){ .c = c, .first = first, .n = n, .sbuf = sbuf,
			       .w = w, .refs = 1 };
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	if (c->pool && n > 1 && ulen >= DEC_MIN_BYTES) {
		helpers = sk_pool_threads(c->pool) - 1;
		helpers = (unsigned int)SK_MIN((uint64_t)helpers, n - 1);
		helpers = SK_MIN(helpers, (unsigned int)DEC_MAX_HELPERS);
	}
	s->refs += helpers;
	for (unsigned int i = 0; i < helpers; i++) {
		s->helpers[i].s = s;
		s->helpers[i].job.fn = dec_job;
		/* the last dec_put frees s, helpers included */
		s->helpers[i].job.detached = true;
		sk_pool_submit(c->pool, &s->helpers[i].job);
	}
	dec_work(s);
	pthread_mutex_lock(&s->lock);
	while (s->done < s->n)
		pthread_cond_wait(&s->cond, &s->lock);
	ret = s->err;
	if (ret)
		*e = s->e;
	pthread_mutex_unlock(&s->lock);
	dec_put(s);
	return ret;
}

/*
 * A raw chunk that fills whole blocks and starts on a block boundary of
 * the (page-aligned) run buffer is written from its stored bytes: no copy,
 * and no second buffer for a run of incompressible data.
 */
static bool in_place(const struct fmt_chunk *a, const struct fmt_chunk *ch)
{
	return ch->comp == SKIFF_COMP_NONE && ch->usize % EROFS_BLKSIZ == 0 &&
	       (ch->soff - a->soff) % EROFS_BLKSIZ == 0;
}

/*
 * Fetches one run of claimed chunks with one backend read, decodes and
 * verifies every chunk, then writes them all (one io_uring submission)
 * before marking them ready.
 */
static int fetch_run(struct ld_cache *c, int wfd, const struct run *r,
		     unsigned int flags, struct sk_err *e)
{
	const struct fmt_chunk *a = &c->table.chunks[r->first];
	const struct fmt_chunk *z = &c->table.chunks[r->first + r->n - 1];
	uint64_t slen = z->soff + z->ssize - a->soff, ulen = 0, dlen = 0, pos = 0;
	struct ld_buf sbuf = { 0 }, ubuf = { 0 };
	struct ld_write *w = calloc(r->n, sizeof(*w));
	bool refetched = false, durable = true;
	int ret;

	if (!w) {
		ret = -ENOMEM;
		goto out;
	}
	for (uint64_t i = r->first; i < r->first + r->n; i++) {
		const struct fmt_chunk *ch = &c->table.chunks[i];

		ulen += ALIGN4K(ch->usize);
		if (!in_place(a, ch))
			dlen += ALIGN4K(ch->usize);
	}
	ret = ld_buf_get(c->bufs, slen, &sbuf);
	if (!ret && dlen)
		ret = ld_buf_get(c->bufs, dlen, &ubuf);
	if (ret)
		goto out;
refetch:
	ret = be_source_read(c->src, c->hex, a->soff, sbuf.p, slen, e);
	atomic_fetch_add(&c->cnt->fetches, 1);
	if (ret) {
		atomic_fetch_add(&c->cnt->err_fetch, 1);
		sk_err_prefix(e, "blob %s: fetching %llu bytes at %llu", c->hex,
			      (unsigned long long)slen, (unsigned long long)a->soff);
		goto out;
	}
	atomic_fetch_add(&c->cnt->fetch_bytes, slen);
	atomic_fetch_add(&c->cnt->fetch_chunks, r->n);
	/* both buffers are page-aligned: the cachefiles anon fd writes
	 * with O_DIRECT */
	pos = 0;
	for (uint64_t i = r->first; i < r->first + r->n; i++) {
		const struct fmt_chunk *ch = &c->table.chunks[i];
		const uint8_t *to = sbuf.p + (ch->soff - a->soff);

		if (!in_place(a, ch)) {
			to = ubuf.p + pos;
			pos += ALIGN4K(ch->usize);
		}
		w[i - r->first] = (struct ld_write){ to, ALIGN4K(ch->usize),
						     ch->uoff };
	}
	ret = decode_run(c, r->first, r->n, sbuf.p, ulen, w, e);
	if (ret) {
		sk_err_prefix(e, "blob %s from %s", c->hex, c->src->desc);
		atomic_fetch_add(&c->cnt->err_verify, 1);
		/* a source that has somewhere else to read from (a registry
		 * behind a mirror) is told, and the run is read once more */
		if (!refetched && c->src->ops->bad_data) {
			c->src->ops->bad_data(c->src, c->hex, a->soff, slen);
			refetched = true;
			goto refetch;
		}
		goto out;
	}
	ret = ld_rings_write(c->rings, wfd, w, (unsigned int)r->n);
	if (ret) {
		atomic_fetch_add(&c->cnt->err_write, 1);
		sk_err_set(e, "blob %s: writing the cache file at %llu: %s", c->hex,
			   (unsigned long long)a->uoff, strerror(-ret));
		goto out;
	}
	atomic_fetch_add(&c->cnt->write_bytes, ulen);
	/* bytes written over a stale chunk's (in place, no new blocks) reach
	 * the disk in no order with the record's bit: sync them first. Rare:
	 * only after a crash or a foreign write; fresh fills fill holes */
	for (uint64_t i = r->first; i < r->first + r->n; i++)
		if (c->stale[i]) {
			/* EINVAL on the cachefiles anon fd: it writes with
			 * O_DIRECT. Any other failure: the bytes are right
			 * but maybe not on disk, so they are not recorded
			 * (a restart fetches them again) */
			if (fdatasync(wfd) < 0 && errno != EINVAL)
				durable = false;
			break;
		}
	/* why each chunk came (cache.h, ld_counters), once it is written */
	if (flags & LD_FILL_PREFETCH) {
		atomic_fetch_add(&c->cnt->pf_bytes, slen);
		atomic_fetch_add(&c->cnt->pf_chunks, r->n);
	} else {
		uint64_t dm = 0, raf = 0, rax = 0;

		for (uint64_t i = r->first; i < r->first + r->n; i++) {
			uint64_t b = c->table.chunks[i].ssize;

			if (i < r->ask_end)
				dm += b;
			else if (i >= r->cross_at)
				rax += b;
			else
				raf += b;
		}
		atomic_fetch_add(&c->cnt->dm_bytes, dm);
		atomic_fetch_add(&c->cnt->raf_bytes, raf);
		atomic_fetch_add(&c->cnt->rax_bytes, rax);
	}
	pthread_mutex_lock(&c->lock);
	for (uint64_t i = r->first; i < r->first + r->n; i++) {
		c->state[i] = LD_READY;
		c->pf[i] = (flags & LD_FILL_PREFETCH) ? PF_PREFETCH
			   : i >= r->ask_end ? PF_AHEAD : 0;
		c->stale[i] = 0;
		c->age[i] = 0;
		c->ready++;
	}
	if (durable)
		rec_set(c, r->first, r->n, true);
	c->ra_bytes -= r->ra_bytes;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
out:
	ld_buf_put(c->bufs, &sbuf);
	ld_buf_put(c->bufs, &ubuf);
	free(w);
	return ret;
}

/* A window's stream: what ra_window() goes on with. */
struct ra_stream {
	unsigned int files;	/* files in a row its reader went on into */
	bool crossed;		/* already in a file after the reader's */
	/* its entry of c->streams, while that is still its (used) */
	struct ld_stream *s;
	uint64_t used;
};

/* The window stream of entry s (NULL: none), `files` in a row. */
static struct ra_stream ra_stream_of(struct ld_stream *s, unsigned int files)
{
	return (struct ra_stream){ .files = files, .s = s, .used = s ? s->used : 0 };
}

struct ra_job {
	struct sk_job job;
	struct ld_cache *c;
	struct run r;
	uint64_t mark;		/* its marked chunk */
	uint64_t bytes;		/* stored */
	struct ra_stream st;
	struct ra_job *next;	/* windows started together */
};

static void ra_window(struct ld_cache *c, uint64_t from, struct ra_stream st,
		      struct ra_job **out);
static void ra_submit(struct ld_cache *c, struct ra_job *j);

static void ra_job_fn(struct sk_job *job)
{
	struct ra_job *j = (struct ra_job *)job, *more = NULL;
	struct ld_cache *c = j->c;
	struct sk_err e = { { 0 } };
	int ret = fetch_run(c, c->bg_fd, &j->r, 0, &e);

	pthread_mutex_lock(&c->lock);
	if (ret) {
		/* give the chunks back: a read that needs them fetches them */
		for (uint64_t i = j->r.first; i < j->r.first + j->r.n; i++)
			if (c->state[i] == LD_INFLIGHT)
				c->state[i] = LD_MISSING;
		c->last_err = ret;
	}
	if (ret)
		c->ra_bytes -= j->bytes;	/* else fetch_run did */
	/* the reader is already in this window: keep the next ones coming
	 * (one that has not got here yet tops them up when it does); the
	 * next ones are past a file start if this one was */
	if (!ret && !(c->ra[j->mark] & RA_MARK)) {
		j->st.crossed |= j->r.cross_at != UINT64_MAX;
		ra_window(c, c->ra_next, j->st, &more);
	}
	c->bg_jobs--;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	ra_submit(c, more);
	free(j);
}

/*
 * Under c->lock: claims windows from chunk `from` on (past the last
 * window when the reader is inside it) until `ahead` stored bytes are in
 * flight. A window is the missing chunks that follow one another in the
 * stored blob, up to the merge limit; its middle chunk is marked so that
 * the read reaching it tops the windows up again, and its end is where
 * its stream now ends (the kernel reads what is ready without asking in
 * cachefiles mode: its next READ comes there). Chunk `from` follows what
 * the reader read: windows go on into another file only for a stream
 * that may cross; else a mark on the next file's first chunk waits for
 * the reader to get there. *out gets the jobs to submit once the lock is
 * dropped.
 */
static void ra_window(struct ld_cache *c, uint64_t from, struct ra_stream st,
		      struct ra_job **out)
{
	bool cross = st.files >= RA_CROSS;
	uint64_t i = from;

	*out = NULL;
	if (c->bg_fd < 0 || !c->bg_pool || !c->ahead || c->closing)
		return;
	if (c->ra_next > i && c->ra_next - i <= 4096)
		i = c->ra_next;
	while (c->ra_bytes < c->ra_cur) {
		uint64_t got = 0, n = 0, cross_at = UINT64_MAX;
		const struct fmt_chunk *f;
		struct ra_job *j;

		/* skip what is there or coming: a window starts at a hole */
		for (unsigned int k = 0; i < c->table.count &&
		     c->state[i] != LD_MISSING && k < 64; i++, k++)
			;
		if (i >= c->table.count || c->state[i] != LD_MISSING)
			return;
		/* from the reader's file on: is chunk i in another? */
		if (st.crossed || starts_in(c, from, i + 1)) {
			if (!cross) {
				c->ra[i] |= RA_MARK;
				return;
			}
			cross_at = i;
		}
		f = &c->table.chunks[i];
		while (i + n < c->table.count && c->state[i + n] == LD_MISSING) {
			const struct fmt_chunk *ch = &c->table.chunks[i + n];

			if (n && (ch[-1].soff + ch[-1].ssize != ch->soff ||
				  ch->soff + ch->ssize - f->soff > c->merge_limit ||
				  got + ch->ssize > c->ra_cur))
				break;
			if (n && cross_at == UINT64_MAX && is_start(c, i + n)) {
				if (!cross)
					break;	/* the mark goes there next */
				cross_at = i + n;
			}
			got += ch->ssize;
			n++;
		}
		j = calloc(1, sizeof(*j));
		if (!j)
			return;
		for (uint64_t k = i; k < i + n; k++)
			c->state[k] = LD_INFLIGHT;
		/* the mark sits mid-window: a reader that gets there has the
		 * next window claimed before it reaches this one's end */
		c->ra[i + n / 2] |= RA_MARK;
		/* its reader's next miss comes after it (cachefiles: the
		 * kernel reads what is ready without asking) */
		st.s = stream_note(c, st.s && st.s->used == st.used ? st.s : NULL,
				   i + n, st.files);
		st.used = st.s->used;
		c->ra_next = i + n;
		c->bg_jobs++;
		c->ra_bytes += got;
		*j = (struct ra_job){ .c = c, .r = { i, n, i, cross_at, got },
				      .mark = i + n / 2, .bytes = got, .st = st,
				      .next = *out };
		j->job.fn = ra_job_fn;
		j->job.detached = true;	/* ra_job_fn frees j */
		*out = j;
		i += n;
	}
}

/*
 * Under c->lock: how much read-ahead the reader has earned. A stream
 * starts at twice the miss's own read-ahead (at least a chunk), a reader
 * that reached a window doubles it up to `ahead`, a random miss ends it.
 */
enum ra_event { RA_RANDOM, RA_SEQUENTIAL, RA_REACHED };

static void ra_adjust(struct ld_cache *c, enum ra_event ev)
{
	uint64_t start = SK_MAX((uint64_t)c->readahead * 2,
				c->table.count ? c->table.chunks[0].usize : 0);

	if (ev == RA_RANDOM) {
		c->ra_cur = 0;
		return;
	}
	if (!c->ra_cur)
		c->ra_cur = (uint32_t)SK_MIN(start, (uint64_t)c->ahead);
	else if (ev == RA_REACHED)
		c->ra_cur = (uint32_t)SK_MIN((uint64_t)c->ra_cur * 2, (uint64_t)c->ahead);
}

static void ra_submit(struct ld_cache *c, struct ra_job *j)
{
	/* in the order claimed: the list is newest first */
	struct ra_job *rev = NULL;

	while (j) {
		struct ra_job *next = j->next;

		j->next = rev;
		rev = j;
		j = next;
	}
	for (; rev; rev = j) {
		j = rev->next;
		atomic_fetch_add(&c->cnt->ra_windows, 1);
		sk_pool_submit(c->bg_pool, &rev->job);
	}
}

/* What a read found on its way: ra_reached() adds to it. */
struct ra_seen {
	uint64_t hits;		/* chunks prefetch made ready, read first now */
	uint64_t later;		/* stored bytes fetched ahead, read first now */
	bool marked;		/* a window's mark: top the windows up */
};

/*
 * Under c->lock: a read (not a prefetch) reached chunk i. A chunk made
 * ready before any read asked counts as read later (a hit, if prefetch
 * brought it); a window's mark is taken. (A
 * missing chunk has no prefetch mark: prefetch sets it only as it makes
 * a chunk ready, and ready chunks stay ready.)
 */
static void ra_reached(struct ld_cache *c, uint64_t i, struct ra_seen *s)
{
	c->age[i] = 0;
	s->hits += c->pf[i] == PF_PREFETCH;
	if (c->pf[i])
		s->later += c->table.chunks[i].ssize;
	c->pf[i] = 0;
	s->marked |= c->ra[i] & RA_MARK;
	c->ra[i] = 0;
}

static void seen_count(struct ld_cache *c, struct ra_seen *s)
{
	if (s->hits)
		atomic_fetch_add(&c->cnt->pf_hits, s->hits);
	if (s->later)
		atomic_fetch_add(&c->cnt->later_bytes, s->later);
	s->hits = s->later = 0;
}

bool ld_cache_range_ready(struct ld_cache *c, uint64_t off, uint64_t len)
{
	uint64_t end = off + len, first = fmt_blob_lower_bound(&c->table, off), i;
	struct ra_seen seen = { 0 };
	struct ra_job *j = NULL;
	bool ready = true;

	pthread_mutex_lock(&c->lock);
	for (i = first; i < c->table.count && c->table.chunks[i].uoff < end; i++)
		if (c->state[i] != LD_READY) {
			ready = false;
			break;
		}
	/* only a read answered here takes its marks: a fill takes the
	 * rest's */
	for (i = first; ready && i < c->table.count && c->table.chunks[i].uoff < end; i++)
		ra_reached(c, i, &seen);
	/* a reader reached a window: start the next one */
	if (ready && seen.marked) {
		struct ld_stream *sp = stream_ahead(c, i);

		ra_adjust(c, RA_REACHED);
		ra_window(c, i, ra_stream_of(sp, sp ? sp->files : 0), &j);
	}
	pthread_mutex_unlock(&c->lock);
	ra_submit(c, j);
	seen_count(c, &seen);
	return ready;
}

uint64_t ld_cache_missing_stored(struct ld_cache *c, uint64_t off, uint64_t len)
{
	uint64_t end = off + len, i = fmt_blob_lower_bound(&c->table, off), n = 0;

	pthread_mutex_lock(&c->lock);
	for (; i < c->table.count && c->table.chunks[i].uoff < end; i++)
		if (c->state[i] == LD_MISSING)
			n += c->table.chunks[i].ssize;
	pthread_mutex_unlock(&c->lock);
	return n;
}

/*
 * Under c->lock: extends the last run of a miss, in the same request,
 * with the missing chunks stored right after it, up to `readahead` stored
 * bytes: for a random miss only with the rest of its file, and only when
 * all of it fits (small files come whole, a large one as the kernel asks
 * for it); for a reader going on in its file, as much of the file as
 * fits; for one going through files in their stored order, the files
 * after it too. A file's rest ends at a file start (none known: the
 * blob's end) or at a chunk already there or coming.
 */
enum ra_how { RA_WHOLE_FILE, RA_IN_FILE, RA_ACROSS };

static void read_ahead(struct ld_cache *c, struct run *last, enum ra_how how)
{
	const struct fmt_chunk *f = &c->table.chunks[last->first];
	uint64_t i = last->first + last->n, extra = 0, k;

	for (k = i; k < c->table.count && c->state[k] == LD_MISSING; k++) {
		const struct fmt_chunk *p = &c->table.chunks[k - 1];
		const struct fmt_chunk *ch = &c->table.chunks[k];
		bool fits = p->soff + p->ssize == ch->soff &&
			    ch->soff + ch->ssize - f->soff <= c->merge_limit &&
			    extra + ch->ssize <= c->readahead;

		if (is_start(c, k)) {
			if (how != RA_ACROSS || !fits)
				break;
			if (last->cross_at == UINT64_MAX)
				last->cross_at = k;
		}
		if (!fits) {
			if (how == RA_WHOLE_FILE)
				return;	/* not in one request, or not small */
			break;
		}
		extra += ch->ssize;
	}
	for (; i < k; i++)
		c->state[i] = LD_INFLIGHT;
	last->n = k - last->first;
}

int ld_cache_fill(struct ld_cache *c, int wfd, uint64_t off, uint64_t len,
		  struct sk_err *e)
{
	return ld_cache_fill_flags(c, wfd, off, len, 0, NULL, e);
}

int ld_cache_fill_flags(struct ld_cache *c, int wfd, uint64_t off,
			uint64_t len, unsigned int flags, uint64_t *fetched,
			struct sk_err *e)
{
	bool prefetch = flags & LD_FILL_PREFETCH;
	uint64_t ext = UINT64_MAX;	/* first chunk past what was asked */
	struct ra_job *raj = NULL;
	struct ra_seen seen = { 0 };
	uint64_t end, first, i;
	struct run *runs = NULL;
	size_t nruns = 0, cap = 0;
	int ret = 0, attempts = 0;
	bool waited = false, on = false;

	if (!prefetch) {
		atomic_fetch_add(&c->cnt->fills, 1);
		atomic_fetch_add(&c->cnt->fill_bytes, len);
	}
	if (len == 0 || off >= c->table.usize)
		return 0;
	end = off + SK_MIN(len, c->table.usize - off);
	first = fmt_blob_lower_bound(&c->table, off);

again:
	nruns = 0;
	pthread_mutex_lock(&c->lock);
	for (i = first; i < c->table.count && c->table.chunks[i].uoff < end; i++) {
		const struct fmt_chunk *ch = &c->table.chunks[i];
		struct run *last = nruns ? &runs[nruns - 1] : NULL;

		if (!prefetch)
			ra_reached(c, i, &seen);
		if (c->state[i] != LD_MISSING)
			continue;
		c->state[i] = LD_INFLIGHT;
		if (last && last->first + last->n == i) {
			const struct fmt_chunk *p = &c->table.chunks[i - 1];
			const struct fmt_chunk *f = &c->table.chunks[last->first];

			if (p->soff + p->ssize == ch->soff &&
			    ch->soff + ch->ssize - f->soff <= c->merge_limit) {
				last->n++;
				continue;
			}
		}
		if (nruns == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			struct run *nr = realloc(runs, ncap * sizeof(*nr));

			if (!nr) {
				c->state[i] = LD_MISSING;
				ret = -ENOMEM;
				break;
			}
			runs = nr;
			cap = ncap;
		}
		runs[nruns++] = (struct run){ i, 1, UINT64_MAX, UINT64_MAX, 0 };
	}
	if (nruns)
		ext = runs[nruns - 1].first + runs[nruns - 1].n;
	for (size_t k = 0; k < nruns; k++)
		runs[k].ask_end = ext;
	/* a miss that goes on from a stream (it starts where a recent read,
	 * its read-ahead or a window ended; the blob's start), or a read
	 * that reached a window: the reader goes on, and earns read-ahead;
	 * a random miss ends that. A chunk before the miss that is merely
	 * there says nothing: a random reader has read half the files once
	 * it has read half */
	if (!prefetch && attempts == 0) {
		uint64_t m = nruns ? runs[0].first : c->table.count, from, next;
		struct ld_stream *sp = nruns ? stream_find(c, first, m) : NULL;
		struct ld_stream *ws = sp ? sp : seen.marked ? stream_ahead(c, first) : NULL;
		unsigned int files = sp ? stream_files(c, sp, m) : ws ? ws->files : 0;
		struct ra_stream st;

		on = seen.marked || sp;
		if (on)
			ra_adjust(c, seen.marked ? RA_REACHED : RA_SEQUENTIAL);
		else if (nruns)
			ra_adjust(c, RA_RANDOM);
		/* read ahead in the same request: the rest of the file when
		 * that is small, more of it for a reader going on in it, and
		 * the files after it for one that goes through files in the
		 * order they are stored */
		if (c->readahead && nruns)
			read_ahead(c, &runs[nruns - 1], files >= RA_CROSS ? RA_ACROSS
							: on ? RA_IN_FILE : RA_WHOLE_FILE);
		from = nruns ? runs[nruns - 1].first + runs[nruns - 1].n : i;
		next = SK_MAX(from, i);
		/* where this reader's next miss starts */
		if (nruns)
			ws = stream_note(c, sp, next, files);
		st = ra_stream_of(ws, files);
		st.crossed = nruns && runs[nruns - 1].cross_at != UINT64_MAX;
		/* the next window goes in the background, past what this
		 * read claimed (random misses start none: they would fetch
		 * what nobody reads). A frontend that sees every read waits
		 * for proof: a mark on the chunk past what this read claimed
		 * starts windows if the reader gets there (a program reading
		 * small files one after another rarely does) */
		if (on && (seen.marked || !c->sees_reads))
			ra_window(c, from, st, &raj);
		else if (on && next < c->table.count)
			c->ra[next] |= RA_MARK;
	}
	pthread_mutex_unlock(&c->lock);
	ra_submit(c, raj);
	seen_count(c, &seen);
	if (nruns && !prefetch && attempts == 0)
		atomic_fetch_add(&c->cnt->misses, 1);

	for (size_t k = 0; k < nruns; k++) {
		int r = ret ? ret : fetch_run(c, wfd, &runs[k], flags, e);

		if (!r && fetched) {
			const struct fmt_chunk *a = &c->table.chunks[runs[k].first];
			const struct fmt_chunk *z = a + runs[k].n - 1;

			*fetched += z->soff + z->ssize - a->soff;
		}
		if (r) {
			/* give back what was not written, so a later read
			 * (after a repaired store, another mirror) retries */
			pthread_mutex_lock(&c->lock);
			for (i = runs[k].first; i < runs[k].first + runs[k].n; i++)
				if (c->state[i] == LD_INFLIGHT)
					c->state[i] = LD_MISSING;
			c->last_err = r;
			pthread_cond_broadcast(&c->cond);
			pthread_mutex_unlock(&c->lock);
			ret = r;
		}
	}
	if (ret)
		goto out;

	/* wait for chunks that other requests are fetching */
	pthread_mutex_lock(&c->lock);
	for (;;) {
		bool inflight = false, missing = false;

		for (i = first; i < c->table.count && c->table.chunks[i].uoff < end; i++) {
			inflight |= c->state[i] == LD_INFLIGHT;
			missing |= c->state[i] == LD_MISSING;
		}
		if (!inflight) {
			/* the read is let through now. Its chunks were just
			 * asked for, however long this fill took (eviction),
			 * and what it found coming (prefetch, a window) is
			 * read now: not a hit, the read counted as a miss. A
			 * window may have ended between the claim and this
			 * wait: look whether it waited or not */
			for (i = first; !prefetch && !missing &&
			     i < c->table.count && c->table.chunks[i].uoff < end; i++) {
				c->age[i] = 0;
				if (c->pf[i])
					seen.later += c->table.chunks[i].ssize;
				c->pf[i] = 0;
			}
			pthread_mutex_unlock(&c->lock);
			seen_count(c, &seen);
			if (!missing)
				goto out;
			/* another request's fetch failed: try it ourselves once */
			if (++attempts > 1) {
				pthread_mutex_lock(&c->lock);
				ret = c->last_err ? c->last_err : -EIO;
				pthread_mutex_unlock(&c->lock);
				sk_err_set(e, "blob %s: fetch of [%llu, %llu) failed: %s",
					   c->hex, (unsigned long long)off,
					   (unsigned long long)end, strerror(-ret));
				goto out;
			}
			goto again;
		}
		if (!waited) {
			waited = true;
			atomic_fetch_add(&c->cnt->waits, 1);
			if (!prefetch && !nruns)
				atomic_fetch_add(&c->cnt->misses, 1);
		}
		pthread_cond_wait(&c->cond, &c->lock);
	}
out:
	free(runs);
	return ret;
}

/*
 * Eviction (loader/evict.c decides what and when). A chunk's age counts
 * the evictor's ticks since a read last asked for it or it was filled;
 * it saturates, so the oldest all look alike.
 */
void ld_cache_age_tick(struct ld_cache *c)
{
	pthread_mutex_lock(&c->lock);
	for (uint64_t i = 0; i < c->table.count; i++)
		if (c->state[i] == LD_READY && c->age[i] < LD_AGE_MAX)
			c->age[i]++;
	pthread_mutex_unlock(&c->lock);
}

void ld_cache_age_bytes(struct ld_cache *c, unsigned int min_age,
			uint64_t bytes[LD_AGE_MAX + 1])
{
	pthread_mutex_lock(&c->lock);
	for (uint64_t i = 0; i < c->table.count; i++)
		if (c->state[i] == LD_READY && c->age[i] >= min_age)
			bytes[c->age[i]] += ALIGN4K(c->table.chunks[i].usize);
	pthread_mutex_unlock(&c->lock);
}

/*
 * Each chunk punched is ready and has not been asked for during min_age
 * ticks: a read the frontend let through that long ago has long read its
 * bytes (the caller makes sure every read raises an event, so "asked" is
 * known). A run of such chunks is claimed (in flight: no fill takes it,
 * a reader waits) and unrecorded under c->lock, punched without it, then
 * made missing: the next read fetches it again, never finds a hole
 * marked ready. The punch is a write through a marked fd, which may raise
 * an event of our own that the event thread answers, so no lock a reader's
 * event waits for is held across it. The record's bits go before the
 * punch: a crash in between leaves bytes without a bit (stale, never
 * trusted), not a bit without bytes.
 */
#define EVICT_RUN 64u		/* chunks punched at once */

static bool evict_takes(const struct ld_cache *c, uint64_t i, unsigned int cutoff,
			bool at_cutoff)
{
	return c->state[i] == LD_READY &&
	       (at_cutoff ? c->age[i] == cutoff : c->age[i] > cutoff);
}

int ld_cache_evict(struct ld_cache *c, int fd, unsigned int min_age,
		   unsigned int cutoff, bool at_cutoff, uint64_t *budget,
		   uint64_t *bytes, uint64_t *chunks)
{
	uint64_t i = 0;
	int ret = 0;

	/* never a chunk asked for within min_age ticks */
	if (cutoff < min_age)
		cutoff = min_age;
	while (!ret && (!at_cutoff || *budget)) {
		uint64_t first, n = 0, off, end, len;

		pthread_mutex_lock(&c->lock);
		while (i < c->table.count && !evict_takes(c, i, cutoff, at_cutoff))
			i++;
		first = i;
		/* a run of adjacent chunks, within the budget at the cutoff */
		for (len = 0; i < c->table.count && n < EVICT_RUN &&
		     evict_takes(c, i, cutoff, at_cutoff) &&
		     (n == 0 || c->table.chunks[i].uoff ==
				c->table.chunks[i - 1].uoff + ALIGN4K(c->table.chunks[i - 1].usize)) &&
		     (!at_cutoff || len < *budget); i++, n++) {
			c->state[i] = LD_INFLIGHT;
			c->pf[i] = 0;
			c->ready--;
			len += ALIGN4K(c->table.chunks[i].usize);
		}
		if (!n) {
			pthread_mutex_unlock(&c->lock);
			break;
		}
		rec_set(c, first, n, false);
		pthread_mutex_unlock(&c->lock);

		off = c->table.chunks[first].uoff;
		end = c->table.chunks[first + n - 1].uoff + ALIGN4K(c->table.chunks[first + n - 1].usize);
		if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      (off_t)off, (off_t)(end - off)) < 0)
			ret = -errno;

		pthread_mutex_lock(&c->lock);
		for (uint64_t k = first; k < first + n; k++) {
			/* failed: still whole, ready again, bit and all */
			c->state[k] = ret ? LD_READY : LD_MISSING;
			c->ready += ret ? 1 : 0;
		}
		if (ret)
			rec_set(c, first, n, true);
		pthread_cond_broadcast(&c->cond);
		pthread_mutex_unlock(&c->lock);
		if (!ret) {
			*bytes += end - off;
			*budget -= SK_MIN(*budget, end - off);
			*chunks += n;
		}
	}
	return ret;
}
