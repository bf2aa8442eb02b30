/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Loader core (loader/cache.c) against a real blob in a local store:
 * fills verify every chunk, runs are decoded by the fetching thread and
 * pool helpers together, a corrupt chunk fails its run without writing
 * it, concurrent fills never fetch a chunk twice.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../backend/source.h"
#include "../../backend/store.h"
#include "../../format/bootstrap.h"
#include "../../format/builder.h"
#include "../../loader/cache.h"
#include "../../loader/daemon.h"
#include "tap.h"
#include "storeimg.h"

static char g_tmp[PATH_MAX];
/* fetch buffers shared by the caches of the tests, as skiffd shares them */
static struct ld_bufs *g_bufs;

static void fill_pattern(uint8_t *p, size_t n, uint32_t seed, int compressible)
{
	uint32_t x = seed * 2654435761u + 1;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		/* half the files compress (a few symbols), half do not */
		p[i] = compressible ? (uint8_t)('a' + (x & 3)) : (uint8_t)x;
	}
}

static void write_file(const char *dir, const char *name, size_t size,
		       uint32_t seed)
{
	char p[PATH_MAX];
	uint8_t *buf = malloc(size ? size : 1);
	int fd;

	fmtpath(p, "%s/%s", dir, name);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || !buf)
		bail_out("creating %s", p);
	fill_pattern(buf, size, seed, seed & 1);
	if (sk_write_full(fd, buf, size))
		bail_out("writing %s", p);
	close(fd);
	free(buf);
}

struct image {
	char layout[PATH_MAX];
	char blob_path[PATH_MAX];
	void *bs_buf;
	struct fmt_bs bs;
};

/*
 * Builds a tree of 24 files with 64 KiB chunks into a store under
 * g_tmp/NAME: mixed (odd seeds compress, sizes not block multiples) or,
 * with `raw`, stored uncompressed in whole 64 KiB chunks, so every chunk
 * lands block-aligned in the blob.
 */
static void make_image(struct image *im, const char *name, int raw)
{
	struct fmt_build_opts o = { .chunk_bits = 16, .level = 1, .threads = 2,
				    .compress = raw ? SKIFF_COMP_NONE : SKIFF_COMP_ZSTD };
	struct fmt_build_result res;
	char src[PATH_MAX];

	fmtpath(src, "%s/%s-src", g_tmp, name);
	fmtpath(im->layout, "%s/%s", g_tmp, name);
	if (mkdir(src, 0755))
		bail_out("mkdir %s", src);
	for (unsigned int i = 0; i < 24; i++) {
		char f[32];

		snprintf(f, sizeof(f), "f%02u", i);
		if (raw)
			write_file(src, f, (size_t)(i % 5 + 1) << 16, 2 * i + 1);
		else
			write_file(src, f, 3000 + (size_t)i * 97 * 1024, i);
	}
	storeimg_build(src, &o, im->layout, &res, im->blob_path);
	im->bs_buf = res.bootstrap;
	if (fmt_bs_open(&im->bs, res.bootstrap, res.bootstrap_size) ||
	    im->bs.nblobs != 1)
		bail_out("bootstrap: %s", im->bs.err.msg);
}

static int new_cache_file(const char *name)
{
	char p[PATH_MAX];
	int fd;

	fmtpath(p, "%s/%s", g_tmp, name);
	fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		bail_out("creating %s", p);
	return fd;
}

/* Number of chunks whose bytes in fd are present and hash right. */
static uint64_t good_chunks(const struct ld_cache *c, int fd)
{
	uint64_t good = 0;

	for (uint64_t i = 0; i < c->table.count; i++) {
		const struct fmt_chunk *ch = &c->table.chunks[i];
		uint8_t *b = malloc(ch->usize), d[SK_SHA256_LEN];
		off_t at = lseek(fd, (off_t)ch->uoff, SEEK_DATA);

		if (b && at == (off_t)ch->uoff &&
		    pread(fd, b, ch->usize, (off_t)ch->uoff) == (ssize_t)ch->usize) {
			sk_sha256(b, ch->usize, d);
			good += !memcmp(d, ch->digest, SK_SHA256_LEN);
		}
		free(b);
	}
	return good;
}

static void test_fill_all(struct image *im, struct be_source *src,
			  struct sk_pool *pool)
{
	struct ld_cache c;
	struct sk_err e = { { 0 } };
	int fd = new_cache_file("all.cache");

	if (!ok(ld_cache_open(&c, &im->bs.blobs[0], src, 4u << 20, &e) == 0,
		"ld_cache_open: %s", e.msg))
		return;
	c.pool = pool;
	c.bufs = g_bufs;
	c.readahead = 1u << 20;
	ok(c.table.count > 100, "the blob has many chunks (%llu)",
	   (unsigned long long)c.table.count);
	is_int(ld_cache_fill(&c, fd, 0, c.table.usize, &e), 0,
	       "filling the whole blob with pool helpers");
	ok(ld_cache_complete(&c), "every chunk is ready");
	ok(good_chunks(&c, fd) == c.table.count, "every chunk in the cache file hashes right");
	is_int((long long)atomic_load(&c.own.fetch_chunks), (long long)c.table.count,
	       "each chunk fetched once");
	ok(atomic_load(&c.own.fetches) <= c.table.count / 8,
	   "merged into few backend reads (%llu)",
	   (unsigned long long)atomic_load(&c.own.fetches));
	is_int(ld_cache_fill(&c, fd, 0, c.table.usize, &e), 0, "a second fill");
	is_int((long long)atomic_load(&c.own.fetch_chunks), (long long)c.table.count,
	       "a second fill fetches nothing");
	ld_cache_close(&c);
	close(fd);
}

static int flip_byte(const char *path, off_t at)
{
	int fd = open(path, O_RDWR);
	uint8_t b;
	int ret = -1;

	if (fd < 0)
		return -1;
	if (pread(fd, &b, 1, at) == 1) {
		b ^= 0x5a;
		ret = pwrite(fd, &b, 1, at) == 1 ? 0 : -1;
	}
	close(fd);
	return ret;
}

/* A clone (a cachefiles object's cache of the kernel's file) is the
 * blob's table with a state of its own, counting into the blob and
 * borrowing its pools: without them it would never read ahead. */
static void test_clone(struct image *im, struct be_source *src, struct sk_pool *pool)
{
	struct ld_cache c, k;
	struct sk_err e = { { 0 } };
	int fd = new_cache_file("clone.cache");

	if (!ok(ld_cache_open(&c, &im->bs.blobs[0], src, 4u << 20, &e) == 0,
		"ld_cache_open: %s", e.msg))
		return;
	c.pool = pool;
	c.bg_pool = pool;
	c.ahead = 8u << 20;
	c.readahead = 64u << 10;
	c.bufs = g_bufs;
	is_int(ld_cache_fill(&c, fd, 0, c.table.usize, &e), 0, "the blob's cache is filled");
	if (!ok(ld_cache_clone(&k, &c) == 0, "a clone is made")) {
		ld_cache_close(&c);
		return;
	}
	is_int((long long)k.table.count, (long long)c.table.count, "... with the same chunks");
	ok(!memcmp(k.table.chunks, c.table.chunks, c.table.count * sizeof(*c.table.chunks)),
	   "... the same table");
	ok(k.table.chunks != c.table.chunks, "... a copy of it");
	is_int((long long)k.ready, 0, "... none ready: its file is another one");
	ok(!ld_cache_complete(&k), "... so it is not complete");
	ok(k.cnt == c.cnt, "... counting into the blob's counters");
	ok(k.pool == c.pool, "... decoding on the blob's pool");
	ok(k.bg_pool == c.bg_pool, "... reading ahead on its read-ahead pool");
	is_int(k.ahead, c.ahead, "... as far ahead");
	is_int(k.readahead, c.readahead, "... with its read-ahead");
	ok(k.bufs == c.bufs, "... and its buffers");
	is_int(k.bg_fd, -1, "... but no fd to read ahead through until one is given");
	ld_cache_close(&k);
	ld_cache_close(&c);
	close(fd);
}

static void test_corrupt(struct image *im, struct be_source *src,
			 struct sk_pool *pool)
{
	struct ld_cache c;
	struct sk_err e = { { 0 } };
	int fd = new_cache_file("corrupt.cache");
	uint64_t k, bad_at;

	if (!ok(ld_cache_open(&c, &im->bs.blobs[0], src, 4u << 20, &e) == 0,
		"ld_cache_open: %s", e.msg))
		return;
	c.pool = pool;
	k = c.table.count / 2;
	bad_at = c.table.chunks[k].soff + c.table.chunks[k].ssize / 2;
	if (flip_byte(im->blob_path, (off_t)bad_at))
		bail_out("corrupting %s", im->blob_path);
	is_int(ld_cache_fill(&c, fd, 0, c.table.usize, &e), -EBADMSG,
	       "a fill over a corrupt chunk fails");
	ok(strstr(e.msg, "digest") || strstr(e.msg, "decompress"),
	   "the error names the check: %s", e.msg);
	is_int((long long)atomic_load(&c.own.err_verify), 1, "one verify error counted");
	ok(lseek(fd, (off_t)c.table.chunks[k].uoff, SEEK_DATA) !=
	   (off_t)c.table.chunks[k].uoff, "nothing written where the corrupt chunk goes");
	ok(!ld_cache_complete(&c), "the blob is not complete");
	if (flip_byte(im->blob_path, (off_t)bad_at))
		bail_out("repairing %s", im->blob_path);
	is_int(ld_cache_fill(&c, fd, 0, c.table.usize, &e), 0,
	       "with the store repaired the same fill succeeds");
	ok(ld_cache_complete(&c), "and the blob is complete");
	is_int(good_chunks(&c, fd), c.table.count, "... every chunk right");
	ld_cache_close(&c);
	close(fd);
}

struct reader {
	pthread_t t;
	struct ld_cache *c;
	int fd;
	uint32_t seed;
	int failed;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	uint64_t usize = r->c->table.usize;
	uint32_t x = r->seed;

	for (int i = 0; i < 40; i++) {
		struct sk_err e = { { 0 } };
		uint64_t off, len;

		x = x * 1103515245u + 12345u;
		off = (uint64_t)x % usize;
		len = 1 + ((uint64_t)(x >> 8) % (512u << 10));
		if (ld_cache_fill(r->c, r->fd, off, len, &e))
			r->failed++;
	}
	return NULL;
}

static void test_concurrent(struct image *im, struct be_source *src,
			    struct sk_pool *pool)
{
	struct ld_cache c;
	struct sk_err e = { { 0 } };
	struct reader rd[8];
	int fd = new_cache_file("concurrent.cache"), failed = 0;

	if (!ok(ld_cache_open(&c, &im->bs.blobs[0], src, 1u << 20, &e) == 0,
		"ld_cache_open: %s", e.msg))
		return;
	c.pool = pool;
	c.readahead = 256u << 10;
	for (int i = 0; i < 8; i++) {
		rd[i] = (struct reader){ .c = &c, .fd = fd, .seed = 7u + (uint32_t)i };
		if (pthread_create(&rd[i].t, NULL, reader_main, &rd[i]))
			bail_out("pthread_create");
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(rd[i].t, NULL);
		failed += rd[i].failed;
	}
	is_int(failed, 0, "8 threads x 40 random fills all succeed");
	ok(atomic_load(&c.own.fetch_chunks) <= c.table.count,
	   "no chunk fetched twice (%llu fetched of %llu)",
	   (unsigned long long)atomic_load(&c.own.fetch_chunks),
	   (unsigned long long)c.table.count);
	is_int(ld_cache_fill(&c, fd, 0, c.table.usize, &e), 0, "then a whole fill");
	ok(good_chunks(&c, fd) == c.table.count, "every chunk right after the race");
	is_int((long long)atomic_load(&c.own.fetch_chunks), (long long)c.table.count,
	       "each chunk fetched exactly once in all");
	ld_cache_close(&c);
	close(fd);
}

/* A reader going through the blob in order, 64 KiB at a time: after the
 * first miss, background windows keep ahead of it. */
static void test_readahead(struct image *im, struct be_source *src,
			   struct sk_pool *pool)
{
	struct ld_cache c;
	struct sk_err e = { { 0 } };
	struct sk_pool *bg;
	int fd = new_cache_file("ahead.cache"), failed = 0, fills = 0;

	if (sk_pool_create(&bg, 2))
		bail_out("pool");
	if (!ok(ld_cache_open(&c, &im->bs.blobs[0], src, 4u << 20, &e) == 0,
		"ld_cache_open: %s", e.msg))
		return;
	c.pool = pool;
	c.bg_fd = fd;
	c.bg_pool = bg;
	c.ahead = 512u << 10;
	if (ld_cache_record_open(&c, g_tmp, "ahead", &e))
		bail_out("record: %s", e.msg);
	for (uint64_t off = 0; off < c.table.usize; off += 64u << 10) {
		failed += ld_cache_fill(&c, fd, off, 64u << 10, &e) != 0;
		fills++;
	}
	is_int(failed, 0, "%d sequential 64K reads", fills);
	ok(atomic_load(&c.own.ra_windows) >= 3, "background windows started (%llu)",
	   (unsigned long long)atomic_load(&c.own.ra_windows));
	/* how fast windows run against the reader varies (ASan): count the
	 * backend reads the reads made themselves, not their waits */
	ok((atomic_load(&c.own.fetches) - atomic_load(&c.own.ra_windows)) * 4 <
	   (uint64_t)fills, "most reads found their chunks ready or coming "
	   "(%llu of %llu backend reads were the readers' own)",
	   (unsigned long long)(atomic_load(&c.own.fetches) -
				atomic_load(&c.own.ra_windows)),
	   (unsigned long long)atomic_load(&c.own.fetches));
	ld_cache_close(&c);	/* waits for windows still running */
	if (ld_cache_open(&c, &im->bs.blobs[0], src, 4u << 20, &e) == 0) {
		if (ld_cache_record_open(&c, g_tmp, "ahead", &e))
			bail_out("record: %s", e.msg);
		ld_cache_scan(&c, fd);
		ok(ld_cache_complete(&c), "every chunk in the cache file");
		is_int(good_chunks(&c, fd), c.table.count, "... right");
		ld_cache_close(&c);
	}
	sk_pool_destroy(bg);
	close(fd);
}

static enum { UNTOUCHED, READY_, MISSING_ } chunk_state(struct ld_cache *c, uint64_t i)
{
	int st;

	pthread_mutex_lock(&c->lock);
	st = c->state[i];
	pthread_mutex_unlock(&c->lock);
	return st == LD_READY ? READY_ : st == LD_MISSING ? MISSING_ : UNTOUCHED;
}

static void scribble(int fd, const struct fmt_chunk *ch, uint8_t b)
{
	size_t n = SK_ALIGN_UP((size_t)ch->usize, (size_t)4096);
	uint8_t *g = malloc(n);

	if (!g)
		bail_out("malloc");
	memset(g, b, n);
	if (sk_pwrite_full(fd, g, n, ch->uoff))
		bail_out("writing over a chunk");
	free(g);
}

/*
 * A restart trusts only what was recorded as verified: bytes that came
 * into the cache file any other way (a crash between write and record, a
 * foreign write) stay missing, and the next fill overwrites them.
 */
static void test_record(struct image *im, struct be_source *src,
			struct sk_pool *pool)
{
	struct ld_cache c;
	struct sk_err e = { { 0 } };
	char dir[PATH_MAX], rec[PATH_MAX];
	int fd = new_cache_file("rec.cache");
	struct fmt_chunk c0, c1;
	uint64_t k, done;

	fmtpath(dir, "%s/rec", g_tmp);
	if (!ok(ld_cache_open(&c, &im->bs.blobs[0], src, 4u << 20, &e) == 0,
		"ld_cache_open: %s", e.msg))
		return;
	c.pool = pool;
	if (ftruncate(fd, (off_t)c.table.usize))
		bail_out("ftruncate");
	is_int(ld_cache_record_open(&c, dir, NULL, &e), 0, "a record opens: %s", e.msg);
	is_int(ld_cache_record_path(&c, rec, sizeof(rec), dir, NULL), 0, "a record path");
	ok(access(rec, F_OK) == 0, "at cache_dir/verified/<blob>.<table digest>");
	done = c.table.count / 4;
	is_int(ld_cache_fill(&c, fd, 0, c.table.chunks[done].uoff, &e), 0,
	       "fill the first quarter (%llu chunks)", (unsigned long long)done);
	ld_cache_close(&c);
	/* garbage in a chunk never fetched, and a fetched one overwritten */
	k = c.table.count / 2;
	if (ld_cache_open(&c, &im->bs.blobs[0], src, 4u << 20, &e))
		bail_out("reopen: %s", e.msg);
	scribble(fd, &c.table.chunks[k], 0xab);
	scribble(fd, &c.table.chunks[1], 0xcd);
	c.pool = pool;
	is_int(ld_cache_record_open(&c, dir, NULL, &e), 0, "the record opens again");
	is_int(ld_cache_scan(&c, fd), 1, "the scan finds one stale chunk");
	is_int(chunk_state(&c, k), MISSING_, "garbage where nothing was recorded stays missing");
	is_int(chunk_state(&c, 0), READY_, "a recorded chunk is ready");
	is_int(chunk_state(&c, 1), READY_,
	       "a recorded chunk overwritten later is ready too: the record is trusted, "
	       "it protects against unverified writes, not later tampering");
	is_int((long long)c.ready, (long long)done, "exactly the recorded chunks are ready");
	is_int(ld_cache_fill(&c, fd, c.table.chunks[k].uoff, 1, &e), 0,
	       "a read of the stale chunk fills it");
	ok(good_chunks(&c, fd) == done, "its garbage was overwritten with verified bytes "
	   "(%llu of %llu right)", (unsigned long long)good_chunks(&c, fd),
	   (unsigned long long)done);
	c1 = c.table.chunks[1];
	c0 = c.table.chunks[0];
	ld_cache_close(&c);
	scribble(fd, &c1, 0);	/* back to a hole's zeros: not a right chunk */

	/* a cache file without a record (an older skiffd's) is trusted in
	 * nothing */
	if (ld_cache_open(&c, &im->bs.blobs[0], src, 4u << 20, &e))
		bail_out("reopen: %s", e.msg);
	is_int(ld_cache_scan(&c, fd), (long long)done + 1,
	       "no record: every chunk with data is stale");
	is_int((long long)c.ready, 0, "... and none is ready");
	ld_cache_close(&c);

	/* a record of another table, or torn, starts empty */
	if (truncate(rec, 20))
		bail_out("truncate %s", rec);
	if (ld_cache_open(&c, &im->bs.blobs[0], src, 4u << 20, &e))
		bail_out("reopen: %s", e.msg);
	is_int(ld_cache_record_open(&c, dir, NULL, &e), 0, "a torn record opens");
	ld_cache_scan(&c, fd);
	is_int((long long)c.ready, 0, "... empty: nothing is ready");
	ld_cache_close(&c);

	/* a record under a blob id alone (a cachefiles volume's) made for
	 * another table of that id, with the same chunk count and size (an
	 * image claiming a blob it is not): never taken */
	if (ld_cache_open(&c, &im->bs.blobs[0], src, 4u << 20, &e) ||
	    ld_cache_record_open(&c, dir, "vol", &e))
		bail_out("reopen: %s", e.msg);
	c.pool = pool;
	is_int(ld_cache_fill(&c, fd, 0, c.table.usize, &e), 0, "a whole fill, recorded in a volume");
	ld_cache_close(&c);
	if (ld_cache_open(&c, &im->bs.blobs[0], src, 4u << 20, &e))
		bail_out("reopen: %s", e.msg);
	c.table.table_digest[0] ^= 1;	/* as another table's digest */
	is_int(ld_cache_record_open(&c, dir, "vol", &e), 0, "the record opens for another table");
	is_int(ld_cache_scan(&c, fd), (long long)c.table.count,
	       "... and trusts nothing: every chunk is stale");
	is_int((long long)c.ready, 0, "... none ready");
	ld_cache_close(&c);
	if (ftruncate(fd, 0) || ftruncate(fd, (off_t)c.table.usize))
		bail_out("ftruncate");

	/* a recorded chunk punched out of the file loses its bit */
	if (ld_cache_open(&c, &im->bs.blobs[0], src, 4u << 20, &e) ||
	    ld_cache_record_open(&c, dir, NULL, &e))
		bail_out("reopen: %s", e.msg);
	c.pool = pool;
	is_int(ld_cache_fill(&c, fd, 0, c.table.usize, &e), 0, "a whole fill");
	ok(good_chunks(&c, fd) == c.table.count, "every chunk right");
	ld_cache_close(&c);
	if (ftruncate(fd, 0) || ftruncate(fd, (off_t)c.table.usize))
		bail_out("ftruncate");
	if (ld_cache_open(&c, &im->bs.blobs[0], src, 4u << 20, &e) ||
	    ld_cache_record_open(&c, dir, NULL, &e))
		bail_out("reopen: %s", e.msg);
	is_int(ld_cache_scan(&c, fd), 0, "an emptied cache file: nothing stale");
	ld_cache_close(&c);
	scribble(fd, &c0, 0x11);
	if (ld_cache_open(&c, &im->bs.blobs[0], src, 4u << 20, &e) ||
	    ld_cache_record_open(&c, dir, NULL, &e))
		bail_out("reopen: %s", e.msg);
	is_int(ld_cache_scan(&c, fd), 1, "bytes landing there later are not trusted");
	is_int((long long)c.ready, 0, "... the bits went with the data");
	ld_cache_close(&c);
	close(fd);
}

/* Buffers come back for reuse, page-aligned, within the set's limits. */
static void test_bufs(void)
{
	struct ld_bufs *b;
	struct ld_buf x = { 0 }, y = { 0 }, z = { 0 };
	uint8_t *first;

	if (!ok(ld_bufs_new(&b, 2, 1u << 20) == 0, "ld_bufs_new"))
		return;
	is_int(ld_buf_get(b, 100, &x), 0, "a small buffer");
	ok(x.cap >= 100, "... of 100 bytes or more (%zu)", x.cap);
	is_int((uintptr_t)x.p % 4096, 0, "... page-aligned");
	first = x.p;
	memset(x.p, 0xa5, x.cap);
	ld_buf_put(b, &x);
	ok(!x.p, "given back, the holder's ld_buf points nowhere");
	is_int(x.cap, 0, "... and holds no bytes");
	is_int(ld_buf_get(b, 50, &x), 0, "the next get");
	ok(x.p == first, "... reuses the buffer");
	is_int(ld_buf_get(b, 200u << 10, &y), 0, "a second one while the first is held");
	ok(y.p != x.p, "... is another buffer");
	ok(y.cap >= (200u << 10), "... of the size asked or more (%zu)", y.cap);
	is_int(ld_buf_get(b, 300u << 10, &z), 0, "a third one");
	ok(z.p != x.p, "... is not the first");
	ok(z.p != y.p, "... nor the second");
	ld_buf_put(b, &x);
	ld_buf_put(b, &y);
	ld_buf_put(b, &z);	/* keeps two: the smallest goes */
	is_int(ld_buf_get(b, 250u << 10, &x), 0,
	       "a buffer that fits is found among those kept");
	ok(x.cap >= (250u << 10), "... big enough (%zu)", x.cap);
	ld_buf_put(b, &x);
	is_int(ld_buf_get(b, 2u << 20, &x), 0, "bigger than the set keeps");
	ok(x.cap >= (2u << 20), "... big enough (%zu)", x.cap);
	ld_buf_put(b, &x);	/* over max_bytes: freed, ASan would see a leak */
	ld_bufs_free(b);
	is_int(ld_buf_get(NULL, 4096, &x), 0, "without a set");
	ok(x.p != NULL, "... a buffer all the same");
	ld_buf_put(NULL, &x);
}

/* Under c->lock: waits for read-ahead windows in progress to end. */
static void wait_windows(struct ld_cache *c)
{
	pthread_mutex_lock(&c->lock);
	while (c->bg_jobs)
		pthread_cond_wait(&c->cond, &c->lock);
	pthread_mutex_unlock(&c->lock);
}

/* Index of a chunk marked as a window's middle, or count if none. */
static uint64_t marked_chunk(struct ld_cache *c)
{
	uint64_t i;

	pthread_mutex_lock(&c->lock);
	for (i = 0; i < c->table.count && !(c->ra[i] & 1); i++)
		;
	pthread_mutex_unlock(&c->lock);
	return i;
}

/* The files' starts of the test image (f00 is chunk 0, f01 chunks 1-2,
 * f02 3-6, f03 7-11, ...: 3000 + 97K * i bytes in 64K chunks). */
static int file_starts(struct ld_cache *c, struct image *im)
{
	struct ld_cache *cs[1] = { c };
	struct sk_err e = { { 0 } };
	int ret = ld_bs_check(&im->bs, cs, "the test image", &e);

	if (ret)
		diag("ld_bs_check: %s", e.msg);
	return ret;
}

/* A cache of the test image knowing its files' starts, 1M of read-ahead,
 * no windows. 0 when it opened (else closed, the failure reported). */
static int open_files(struct ld_cache *c, struct image *im, struct be_source *src,
		      struct sk_pool *pool)
{
	struct sk_err e = { { 0 } };

	if (!ok(ld_cache_open(c, &im->bs.blobs[0], src, 8u << 20, &e) == 0,
		"ld_cache_open: %s", e.msg))
		return -1;
	c->pool = pool;
	c->bufs = g_bufs;
	c->readahead = 1u << 20;
	if (!ok(file_starts(c, im) == 0, "the files' starts")) {
		ld_cache_close(c);
		return -1;
	}
	return 0;
}

/* The first chunk of file `name` (stored in one piece) and its count. */
static void file_chunks(struct ld_cache *c, struct image *im, const char *name,
			uint64_t *first, uint64_t *n)
{
	struct fmt_inode ino;
	unsigned int dev = 0;
	uint32_t blk = 0;
	char path[64];

	snprintf(path, sizeof(path), "/%s", name);
	if (fmt_bs_resolve(&im->bs, path, &ino) ||
	    fmt_bs_chunk(&im->bs, &ino, 0, &dev, &blk))
		bail_out("no %s", path);
	*first = fmt_blob_lower_bound(&c->table, (uint64_t)blk * 4096);
	*n = SK_DIV_ROUND_UP(ino.size, 64u << 10);
}

/*
 * File-aware read-ahead: a miss fetches the rest of its file when that
 * is small, never the next file; what came for what reason is counted,
 * and what was read ahead counts as read once a read asks for it.
 */
static void test_file_aware(struct image *im, struct be_source *src,
			    struct sk_pool *pool)
{
	struct ld_cache c;
	struct sk_err e = { { 0 } };
	int fd = new_cache_file("files.cache");
	uint64_t f5, n5, f6, n6, f23, n23, rest = 0;

	if (open_files(&c, im, src, pool)) {
		close(fd);
		return;
	}
	c.sees_reads = true;
	file_chunks(&c, im, "f05", &f5, &n5);
	file_chunks(&c, im, "f06", &f6, &n6);
	file_chunks(&c, im, "f23", &f23, &n23);
	is_int(f6, f5 + n5, "f06 is stored right after f05");
	ok(ld_cache_is_file_start(&c, f5) && ld_cache_is_file_start(&c, f6) &&
	   !ld_cache_is_file_start(&c, f5 + 1), "each file's first chunk starts one");
	for (uint64_t i = f5 + 2; i < f5 + n5; i++)
		rest += c.table.chunks[i].ssize;
	ok(rest && rest <= c.readahead, "the rest of f05 is small (%llu bytes)",
	   (unsigned long long)rest);
	/* a random read in the middle of f05: its chunk before is missing */
	is_int(ld_cache_fill(&c, fd, c.table.chunks[f5 + 1].uoff + 100, 10, &e), 0,
	       "a read of f05's second chunk");
	is_int((long long)atomic_load(&c.own.fetches), 1, "one backend read");
	pthread_mutex_lock(&c.lock);
	is_int(c.state[f5], LD_MISSING, "f05's first chunk stays missing");
	{
		uint64_t i;

		for (i = f5 + 1; i < f5 + n5 && c.state[i] == LD_READY; i++)
			;
		is_int(i, f5 + n5, "the rest of f05 came with it");
	}
	is_int(c.state[f6], LD_MISSING, "f06 did not");
	pthread_mutex_unlock(&c.lock);
	is_int((long long)atomic_load(&c.own.dm_bytes), c.table.chunks[f5 + 1].ssize,
	       "counted: the chunk asked for as demand");
	is_int((long long)atomic_load(&c.own.raf_bytes), (long long)rest,
	       "... the rest as read ahead within the file");
	is_int((long long)atomic_load(&c.own.rax_bytes), 0, "... nothing across files");
	is_int((long long)atomic_load(&c.own.later_bytes), 0, "... none of it read yet");
	ok(ld_cache_range_ready(&c, c.table.chunks[f5 + 2].uoff, 4096),
	   "a read of f05's third chunk finds it ready");
	is_int((long long)atomic_load(&c.own.later_bytes), c.table.chunks[f5 + 2].ssize,
	       "... and counts it as read later");
	is_int(ld_cache_fill(&c, fd, c.table.chunks[f5 + 2].uoff, 8192, &e), 0,
	       "reading it again");
	is_int((long long)atomic_load(&c.own.later_bytes), c.table.chunks[f5 + 2].ssize,
	       "... counts it once");

	/* a large file: its rest is more than the read-ahead */
	c.readahead = 64u << 10;
	is_int(ld_cache_fill(&c, fd, c.table.chunks[f23].uoff, 4096, &e), 0,
	       "a read of the first page of f23 (%llu chunks)", (unsigned long long)n23);
	pthread_mutex_lock(&c.lock);
	is_int(c.state[f23 + 1], LD_MISSING, "fetches only its chunk");
	pthread_mutex_unlock(&c.lock);
	is_int((long long)atomic_load(&c.own.fetch_chunks), (long long)n5, "%llu chunks in all",
	       (unsigned long long)n5);
	ld_cache_close(&c);
	close(fd);
}

/*
 * Streams are kept per position, not per blob: two readers going through
 * files in stored order at once each earn read-ahead across files; one
 * large file read from start to end earns windows within it, never into
 * the file after it.
 */
static int open_ra(struct ld_cache *c, struct image *im, struct be_source *src,
		   struct sk_pool *pool, struct sk_pool *bg, int fd);

static void test_streams(struct image *im, struct be_source *src,
			 struct sk_pool *pool)
{
	struct ld_cache c;
	struct sk_err e = { { 0 } };
	struct sk_pool *bg;
	int fd = new_cache_file("streams.cache");
	uint64_t fa[5], fb[5], n;

	if (open_files(&c, im, src, pool)) {
		close(fd);
		return;
	}
	for (unsigned int k = 0; k < 5; k++) {
		char na[8], nb[8];

		snprintf(na, sizeof(na), "f%02u", k + 1);
		snprintf(nb, sizeof(nb), "f%02u", k + 7);
		file_chunks(&c, im, na, &fa[k], &n);
		file_chunks(&c, im, nb, &fb[k], &n);
	}
	/* A reads f01, f02, f03, B f07, f08, f09, turn about (each small
	 * enough to come whole) */
	for (unsigned int k = 0; k < 3; k++) {
		is_int(ld_cache_fill(&c, fd, c.table.chunks[fa[k]].uoff, 4096, &e), 0,
		       "reader A: file %u", k + 1);
		is_int(ld_cache_fill(&c, fd, c.table.chunks[fb[k]].uoff, 4096, &e), 0,
		       "reader B: file %u", k + 7);
	}
	pthread_mutex_lock(&c.lock);
	is_int(c.state[fa[3]], LD_READY, "A's third file in a row reads ahead into f04");
	is_int(c.state[fb[3]], LD_READY, "B's into f10, though they took turns");
	pthread_mutex_unlock(&c.lock);
	ok(atomic_load(&c.own.rax_bytes) > 0, "counted across files");
	ld_cache_close(&c);
	close(fd);

	/* f22 read from start to end, windows on (cachefiles: ready data
	 * is read without asking) */
	if (sk_pool_create(&bg, 2))
		bail_out("pool");
	fd = new_cache_file("streams2.cache");
	if (open_ra(&c, im, src, pool, bg, fd))
		return;
	if (!ok(file_starts(&c, im) == 0, "the files' starts"))
		goto out;
	file_chunks(&c, im, "f22", &fa[0], &n);
	file_chunks(&c, im, "f23", &fb[0], &n);
	for (uint64_t off = c.table.chunks[fa[0]].uoff, end = c.table.chunks[fb[0]].uoff;
	     off < end; off += 64u << 10) {
		uint64_t len = SK_MIN(64u << 10, end - off);

		if (ld_cache_range_ready(&c, off, len))
			continue;	/* the kernel reads it without asking */
		if (ld_cache_fill(&c, fd, off, len, &e))
			break;
	}
	wait_windows(&c);
	ok(atomic_load(&c.own.ra_windows) > 0, "f22 read through: windows ran (%llu)",
	   (unsigned long long)atomic_load(&c.own.ra_windows));
	is_int((long long)atomic_load(&c.own.rax_bytes), 0,
	       "... none into f23: one file read on is no stream across files");
	pthread_mutex_lock(&c.lock);
	is_int(c.state[fb[0]], LD_MISSING, "... whose first chunk is not fetched");
	pthread_mutex_unlock(&c.lock);
out:
	ld_cache_close(&c);
	sk_pool_destroy(bg);
	close(fd);
}

/* A cache with background read-ahead on: windows of 256K at most, 64K
 * of read-ahead per miss, up to 1M in flight. 0 when it opened. */
static int open_ra(struct ld_cache *c, struct image *im, struct be_source *src,
		   struct sk_pool *pool, struct sk_pool *bg, int fd)
{
	struct sk_err e = { { 0 } };

	if (!ok(ld_cache_open(c, &im->bs.blobs[0], src, 256u << 10, &e) == 0,
		"ld_cache_open: %s", e.msg))
		return -1;
	c->pool = pool;
	c->bufs = g_bufs;
	c->bg_fd = fd;
	c->bg_pool = bg;
	c->readahead = 64u << 10;
	c->ahead = 1u << 20;
	return 0;
}

/* Read-ahead ramps up as a reader reaches windows, and a random miss
 * ends the stream. */
static void test_ramp(struct image *im, struct be_source *src,
		      struct sk_pool *pool)
{
	struct ld_cache c;
	struct sk_err e = { { 0 } };
	struct sk_pool *bg;
	int fd = new_cache_file("ramp.cache");
	uint32_t expect = 128u << 10;
	uint64_t m;

	if (sk_pool_create(&bg, 2))
		bail_out("pool");
	if (open_ra(&c, im, src, pool, bg, fd))
		return;
	is_int(ld_cache_fill(&c, fd, 0, 4096, &e), 0, "a read at the start");
	is_int(c.ra_cur, expect, "starts at twice the miss's read-ahead");
	for (int step = 0; step < 5; step++) {
		wait_windows(&c);
		m = marked_chunk(&c);
		if (!ok(m < c.table.count, "step %d: a window is marked", step))
			break;
		ok(ld_cache_range_ready(&c, c.table.chunks[m].uoff, 1),
		   "step %d: the reader reaches it, ready", step);
		expect = expect * 2 > c.ahead ? c.ahead : expect * 2;
		is_int(c.ra_cur, expect, "step %d: doubled, up to ahead", step);
	}
	wait_windows(&c);
	/* a miss well past the windows, its chunk before it missing */
	m = c.table.count - 2;
	pthread_mutex_lock(&c.lock);
	is_int(c.state[m - 1], LD_MISSING,
	       "the blob's end is not fetched yet: the chunk before the miss");
	is_int(c.state[m], LD_MISSING, "... nor the chunk of the miss");
	pthread_mutex_unlock(&c.lock);
	is_int(ld_cache_fill(&c, fd, c.table.chunks[m].uoff, 1, &e), 0,
	       "a random read");
	is_int(c.ra_cur, 0, "ends the stream");
	ld_cache_close(&c);
	sk_pool_destroy(bg);
	close(fd);
}

/* A frontend that sees every read: a miss starts no window until the
 * reader goes on into the read-ahead fetched with it. */
static void test_proof(struct image *im, struct be_source *src,
		       struct sk_pool *pool)
{
	struct ld_cache c;
	struct sk_err e = { { 0 } };
	struct sk_pool *bg;
	int fd = new_cache_file("proof.cache");

	if (sk_pool_create(&bg, 2))
		bail_out("pool");
	if (open_ra(&c, im, src, pool, bg, fd))
		return;
	c.sees_reads = true;
	/* f01 is chunks 1-2, f02 3-6, f03 7-11: each read whole at its
	 * first miss (1M of read-ahead covers the rest of each) */
	c.readahead = 1u << 20;
	if (!ok(file_starts(&c, im) == 0, "the files' starts"))
		return;
	is_int(ld_cache_fill(&c, fd, c.table.chunks[1].uoff, 4096, &e), 0,
	       "a read at the start of a file");
	is_int((long long)atomic_load(&c.own.ra_windows), 0, "starts no window");
	is_int(c.state[2], LD_READY, "fetches the rest of the file with it");
	is_int(c.state[3], LD_MISSING, "... not the next file");
	ok(!(c.ra[3] & 1), "... nor marks it: the read was random");
	ok(ld_cache_range_ready(&c, c.table.chunks[2].uoff, 4096),
	   "the reader reads on in the file");
	is_int(ld_cache_fill(&c, fd, c.table.chunks[3].uoff, 4096, &e), 0,
	       "the reader goes on into the next file");
	is_int((long long)atomic_load(&c.own.ra_windows), 0,
	       "one file after another may be chance: still no window");
	pthread_mutex_lock(&c.lock);
	is_int(c.state[6], LD_READY, "that file came whole");
	is_int(c.state[7], LD_MISSING, "the file after it is not fetched");
	ok(c.ra[7] & 1, "... but marked");
	pthread_mutex_unlock(&c.lock);
	is_int(ld_cache_fill(&c, fd, c.table.chunks[7].uoff, 4096, &e), 0,
	       "the reader goes on into it too");
	ok(atomic_load(&c.own.ra_windows) > 0, "windows start (%llu)",
	   (unsigned long long)atomic_load(&c.own.ra_windows));
	wait_windows(&c);
	ok(atomic_load(&c.own.rax_bytes) > 0, "... reading ahead into other files "
	   "(%llu bytes)", (unsigned long long)atomic_load(&c.own.rax_bytes));
	ld_cache_close(&c);
	close(fd);

	/* without read-ahead per miss the mark sits on the missing chunk
	 * past the request: reading on misses it, and that starts them */
	fd = new_cache_file("proof0.cache");
	if (open_ra(&c, im, src, pool, bg, fd))
		return;
	c.readahead = 0;
	c.sees_reads = true;
	is_int(ld_cache_fill(&c, fd, 0, 4096, &e), 0, "no read-ahead: a read at the start");
	is_int(c.state[1], LD_MISSING, "leaves the chunk after it missing");
	ok(c.ra[1] & 1, "... and marks it");
	is_int((long long)atomic_load(&c.own.ra_windows), 0, "starts no window");
	is_int(ld_cache_fill(&c, fd, c.table.chunks[1].uoff, 4096, &e), 0,
	       "the reader goes on");
	ok(atomic_load(&c.own.ra_windows) > 0, "windows start (%llu)",
	   (unsigned long long)atomic_load(&c.own.ra_windows));
	ld_cache_close(&c);
	sk_pool_destroy(bg);
	close(fd);
}

/* An image of its own with its local source, cache file and ld_cache:
 * for tests that change the image or need other chunks. */
struct own_cache {
	struct image im;
	struct be_source *src;
	struct ld_cache c;
	int fd;
	bool open;		/* c is open */
};

/* false (the failure reported) when the cache does not open */
static bool own_open(struct own_cache *o, const char *name, int raw,
		     struct sk_pool *pool)
{
	struct sk_err e = { { 0 } };
	char file[64];

	memset(o, 0, sizeof(*o));
	snprintf(file, sizeof(file), "%s.cache", name);
	o->fd = new_cache_file(file);
	make_image(&o->im, name, raw);
	if (be_local_source_new(o->im.layout, &o->src, &e))
		bail_out("local source: %s", e.msg);
	o->open = ld_cache_open(&o->c, &o->im.bs.blobs[0], o->src, 1u << 20, &e) == 0;
	if (!ok(o->open, "ld_cache_open of %s: %s", name, e.msg))
		return false;
	o->c.pool = pool;
	o->c.bufs = g_bufs;
	return true;
}

static void own_close(struct own_cache *o)
{
	if (o->open)
		ld_cache_close(&o->c);
	be_source_destroy(o->src);
	fmt_bs_close(&o->im.bs);
	free(o->im.bs_buf);
	close(o->fd);
}

/* Raw chunks in whole blocks are written from the stored bytes
 * themselves: the cache file must come out the same. */
static void test_in_place(struct sk_pool *pool)
{
	struct own_cache o;
	struct ld_cache *c = &o.c;
	struct sk_err e = { { 0 } };
	int raw = 0, at_block = 0, whole = 0;

	if (!own_open(&o, "raw", 1, pool))
		goto out;
	for (uint64_t i = 0; i < c->table.count; i++) {
		raw += c->table.chunks[i].comp == SKIFF_COMP_NONE;
		at_block += c->table.chunks[i].soff % 4096 == 0;
		whole += c->table.chunks[i].usize % 4096 == 0;
	}
	is_int(raw, (long long)c->table.count, "every chunk is raw");
	is_int(at_block, (long long)c->table.count, "... block-aligned");
	is_int(whole, (long long)c->table.count, "... whole blocks");
	is_int(ld_cache_fill(c, o.fd, 0, c->table.usize, &e), 0, "filling it all");
	ok(good_chunks(c, o.fd) == c->table.count, "every chunk in the cache file hashes right");
out:
	own_close(&o);
}

/* A fill whose source fails says which blob, what range, and the
 * source's own reason: where (the file, the URL) and why. */
static void test_fill_error(struct sk_pool *pool)
{
	struct own_cache o;
	struct sk_err e = { { 0 } };

	if (!own_open(&o, "short", 0, pool))
		goto out;
	if (truncate(o.im.blob_path, 0))
		bail_out("truncate %s", o.im.blob_path);
	is_int(ld_cache_fill(&o.c, o.fd, 0, 4096, &e), -EIO, "a blob cut short: the fill fails");
	ok(strstr(e.msg, "fetching") && strstr(e.msg, o.src->desc) && strstr(e.msg, "shorter than"),
	   "... saying what it fetched, from where, and why (%s)", e.msg);
out:
	own_close(&o);
}

/* The cache disk full: every reader of the chunk learns why (ENOSPC),
 * those that waited for another's fetch too, and nothing is ready. */
struct full_reader {
	pthread_t t;
	struct ld_cache *c;
	int fd, ret;
};

static void *full_reader_main(void *arg)
{
	struct full_reader *r = arg;
	struct sk_err e = { { 0 } };

	r->ret = ld_cache_fill(r->c, r->fd, 0, 4096, &e);
	return NULL;
}

/* A source that takes 50 ms a read: readers of one chunk then wait for
 * each other's fetches. */
struct slow {
	struct be_source base;
	struct be_source *real;
};

static int slow_read(struct be_source *s, const char *hex, uint64_t off,
		     void *buf, size_t len, struct sk_err *e)
{
	usleep(50 * 1000);
	return be_source_read(((struct slow *)s)->real, hex, off, buf, len, e);
}

static void slow_destroy(struct be_source *s)
{
}

static void test_disk_full(struct sk_pool *pool)
{
	static const struct be_source_ops ops = { .read = slow_read, .destroy = slow_destroy };
	struct slow slow = { .base = { .ops = &ops, .desc = "slow" } };
	struct own_cache o;
	struct full_reader rd[16];
	struct sk_err e = { { 0 } };
	int full = open("/dev/full", O_WRONLY), nospc = 0;

	if (full < 0) {
		skip(3, "no /dev/full: %s", strerror(errno));
		return;
	}
	if (!own_open(&o, "full", 0, pool))
		goto out;
	slow.real = o.src;
	o.c.src = &slow.base;
	is_int(ld_cache_fill(&o.c, full, 0, 4096, &e), -ENOSPC,
	       "a fill whose write finds no room fails with ENOSPC (%s)", e.msg);
	for (int i = 0; i < 16; i++) {
		rd[i] = (struct full_reader){ .c = &o.c, .fd = full };
		if (pthread_create(&rd[i].t, NULL, full_reader_main, &rd[i]))
			bail_out("pthread_create");
	}
	for (int i = 0; i < 16; i++) {
		pthread_join(rd[i].t, NULL);
		nospc += rd[i].ret == -ENOSPC;
	}
	is_int(nospc, 16, "16 readers of the chunk at once: each fails with ENOSPC, those that waited for another's fetch too");
	ok(!ld_cache_range_ready(&o.c, 0, 4096), "... and nothing is ready");
out:
	own_close(&o);
	close(full);
}

/* A source over another that flips a byte of every read until told the
 * bytes were bad, as a broken mirror would before the origin serves. */
struct flaky {
	struct be_source base;
	struct be_source *real;
	int told;
};

static int flaky_read(struct be_source *s, const char *hex, uint64_t off,
		      void *buf, size_t len, struct sk_err *e)
{
	struct flaky *f = (struct flaky *)s;
	int ret = be_source_read(f->real, hex, off, buf, len, e);

	if (!ret && !f->told && len)
		((uint8_t *)buf)[len / 2] ^= 0x40;
	return ret;
}

static void flaky_bad(struct be_source *s, const char *hex, uint64_t off,
		      uint64_t len)
{
	((struct flaky *)s)->told++;
}

static void flaky_destroy(struct be_source *s)
{
}

static void test_refetch(struct image *im, struct be_source *src,
			 struct sk_pool *pool)
{
	static const struct be_source_ops ops = {
		.read = flaky_read, .destroy = flaky_destroy, .bad_data = flaky_bad,
	};
	struct flaky f = { .base = { .ops = &ops, .desc = "flaky" }, .real = src };
	struct ld_cache c;
	struct sk_err e = { { 0 } };
	int fd = new_cache_file("refetch.cache");

	/* the chunk table is read through the real source: it is verified
	 * against the bootstrap, and that failure is another test's */
	if (!ok(ld_cache_open(&c, &im->bs.blobs[0], src, 4u << 20, &e) == 0,
		"ld_cache_open: %s", e.msg))
		return;
	c.src = &f.base;
	c.pool = pool;
	is_int(ld_cache_fill(&c, fd, 0, 64u << 10, &e), 0,
	       "bad bytes, the source told, the same range read again: the fill succeeds");
	is_int(f.told, 1, "the source was told once");
	is_int((long long)atomic_load(&c.own.err_verify), 1, "one verify error counted");
	is_int((long long)atomic_load(&c.own.fetches), 2, "two backend reads");
	ok(good_chunks(&c, fd) >= 1, "the chunk in the cache file is right");
	ld_cache_close(&c);
	close(fd);
}

/* Whether [off, off+len) of fd is one hole. */
static bool is_hole(int fd, uint64_t off, uint64_t len)
{
	off_t d = lseek(fd, (off_t)off, SEEK_DATA);

	return (d < 0 && errno == ENXIO) || (d >= 0 && (uint64_t)d >= off + len);
}

/*
 * Eviction punches ready chunks old enough, the oldest first: a chunk a
 * read asked for since is spared, one in flight is never touched, what
 * goes is missing and unrecorded (a restart does not trust it), and a
 * read of it fetches the right bytes again.
 */
static void test_evict(struct sk_pool *pool)
{
	struct own_cache o;
	struct ld_cache *c = &o.c;
	struct sk_err e = { { 0 } };
	uint64_t bytes[LD_AGE_MAX + 1] = { 0 }, budget, got = 0, n = 0, all;
	char dir[PATH_MAX];
	const struct fmt_chunk *ch;
	uint64_t last;

	if (!own_open(&o, "evict", 1, pool))
		goto out;
	fmtpath(dir, "%s/evrec", g_tmp);
	if (ld_cache_record_open(c, dir, NULL, &e))
		bail_out("record: %s", e.msg);
	if (ftruncate(o.fd, (off_t)c->table.usize))
		bail_out("ftruncate");
	is_int(ld_cache_fill(c, o.fd, 0, c->table.usize, &e), 0, "fill it all");
	all = c->table.count;
	last = all - 1;
	ch = &c->table.chunks[0];
	for (int t = 0; t < 3; t++)
		ld_cache_age_tick(c);
	/* chunk 1 read now, chunk 2 "in flight" */
	ok(ld_cache_range_ready(c, c->table.chunks[1].uoff, 1), "chunk 1 is read again");
	c->state[2] = LD_INFLIGHT;
	c->ready--;
	ld_cache_age_tick(c);
	ld_cache_age_bytes(c, 1, bytes);
	is_int((long long)bytes[1], 4096 * ((c->table.chunks[1].usize + 4095) / 4096),
	       "the chunk read since is 1 tick old");
	is_int((long long)(bytes[1] + bytes[4]), (long long)(all - 1) * 65536, "the others but the one in flight are 4 ticks old");
	budget = 0;
	is_int(ld_cache_evict(c, o.fd, 5, 4, false, &budget, &got, &n), 0, "an eviction sparing 5 ticks, all chunks younger");
	is_int((long long)n, 0, "... punches nothing");
	budget = 1;
	is_int(ld_cache_evict(c, o.fd, 2, 4, true, &budget, &got, &n), 0, "an eviction of one byte at the cutoff");
	is_int((long long)n, 1, "... punches one chunk");
	is_int(chunk_state(c, 0), MISSING_, "... the first old one: missing now");
	ok(is_hole(o.fd, ch->uoff, ch->usize), "... a hole in the file");
	budget = UINT64_MAX;
	is_int(ld_cache_evict(c, o.fd, 2, 2, false, &budget, &got, &n), 0, "an eviction of everything older than 2 ticks");
	is_int((long long)n, (long long)all - 2, "... punches all but the chunk read and the one in flight");
	is_int(chunk_state(c, 1), READY_, "... the chunk read since is still ready");
	ok(!is_hole(o.fd, c->table.chunks[1].uoff, c->table.chunks[1].usize), "... and in the file");
	is_int(c->state[2], LD_INFLIGHT, "... the one in flight untouched");
	ok(!is_hole(o.fd, c->table.chunks[2].uoff, c->table.chunks[2].usize), "... its bytes too");
	is_int((long long)c->ready, 1, "one chunk ready");
	ok(got >= (all - 2) * 4096, "what went is counted (%llu bytes)", (unsigned long long)got);
	c->state[2] = LD_READY;
	c->ready++;
	ld_cache_close(c);
	o.open = ld_cache_open(c, &o.im.bs.blobs[0], o.src, 1u << 20, &e) == 0;
	if (!ok(o.open, "reopen: %s", e.msg))
		goto out;
	c->pool = pool;
	c->bufs = g_bufs;
	if (ld_cache_record_open(c, dir, NULL, &e))
		bail_out("record: %s", e.msg);
	is_int(ld_cache_scan(c, o.fd), 0, "a restart's scan finds nothing stale");
	is_int((long long)c->ready, 2, "... and trusts only the two chunks never evicted");
	is_int(chunk_state(c, last), MISSING_, "... an evicted one is missing");
	is_int(ld_cache_fill(c, o.fd, 0, c->table.usize, &e), 0, "a read of it all fetches again");
	ok(good_chunks(c, o.fd) == all, "every chunk hashes right");

	/* a punch that fails leaves the chunks ready, recorded and whole */
	{
		char p[PATH_MAX];
		int ro;

		fmtpath(p, "%s/evict.cache", g_tmp);
		ro = open(p, O_RDONLY);
		for (int t = 0; t < 3; t++)
			ld_cache_age_tick(c);
		budget = UINT64_MAX;
		n = 0;
		is_int(ld_cache_evict(c, ro, 1, 1, false, &budget, &got, &n), -EBADF,
		       "an eviction through a read-only fd fails");
		is_int((long long)n, 0, "... punching nothing");
		is_int((long long)c->ready, (long long)all, "... every chunk still ready");
		ok(c->rec && (c->rec[0] & 1) && (c->rec[last / 8] >> (last % 8) & 1),
		   "... and recorded");
		ok(good_chunks(c, o.fd) == all, "... and whole");
		close(ro);
	}
out:
	own_close(&o);
}

int main(void)
{
	struct image im;
	struct be_source *src;
	struct sk_pool *pool;
	struct sk_err e = { { 0 } };
	const char *t = getenv("TMPDIR");
	char cmd[PATH_MAX];

	memset(&im, 0, sizeof(im));
	fmtpath(g_tmp, "%s/skiff-test-cache.XXXXXX", t ? t : "/tmp");
	if (!mkdtemp(g_tmp))
		bail_out("mkdtemp");
	make_image(&im, "layout", 0);
	if (be_local_source_new(im.layout, &src, &e))
		bail_out("local source: %s", e.msg);
	if (sk_pool_create(&pool, 4) || ld_bufs_new(&g_bufs, 6, 4u << 20))
		bail_out("pool");

	test_bufs();
	test_fill_all(&im, src, pool);
	test_fill_error(pool);
	test_disk_full(pool);
	test_clone(&im, src, pool);
	test_corrupt(&im, src, pool);
	test_concurrent(&im, src, pool);
	test_readahead(&im, src, pool);
	test_ramp(&im, src, pool);
	test_proof(&im, src, pool);
	test_file_aware(&im, src, pool);
	test_streams(&im, src, pool);
	test_refetch(&im, src, pool);
	test_record(&im, src, pool);
	test_in_place(pool);
	test_evict(pool);
	ld_bufs_free(g_bufs);

	sk_pool_destroy(pool);
	be_source_destroy(src);
	fmt_bs_close(&im.bs);
	free(im.bs_buf);
	fmtpath(cmd, "rm -rf '%s'", g_tmp);
	if (system(cmd))
		diag("could not remove %s", g_tmp);
	return done_testing();
}
