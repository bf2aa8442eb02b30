/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one request path (loader/request.c) driven by a fake frontend, no
 * kernel needed: a range that is ready is answered at once and counted as
 * cached; a missing one is filled on the pool with verified bytes and
 * answered after; a fill that fails is answered with EIO, writes nothing
 * and is counted as failed; a frontend's own fill (the cachefiles
 * bootstrap) goes the same way. Every request is answered once and
 * released once, and the latency histograms count each path in both
 * frontends alike.
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
#include "../../loader/daemon.h"
#include "../../loader/request.h"
#include "tap.h"
#include "storeimg.h"

static char g_tmp[PATH_MAX];

/* What the fake frontend saw of one request. */
struct fake_req {
	struct ld_req base;
	pthread_mutex_t *lock;
	pthread_cond_t *cond;
	int answers, releases, err;
	bool done;
	int fill_ret;
};

static void fake_answer(struct ld_req *r, int err)
{
	struct fake_req *q = (struct fake_req *)r;

	pthread_mutex_lock(q->lock);
	q->answers++;
	q->err = err;
	pthread_mutex_unlock(q->lock);
}

/* Not freed: the test reads what it recorded after. */
static void fake_release(struct ld_req *r)
{
	struct fake_req *q = (struct fake_req *)r;

	pthread_mutex_lock(q->lock);
	q->releases++;
	q->done = true;
	pthread_cond_broadcast(q->cond);
	pthread_mutex_unlock(q->lock);
}

static int fake_fill(struct ld_req *r, struct sk_err *e)
{
	struct fake_req *q = (struct fake_req *)r;

	if (q->fill_ret)
		sk_err_set(e, "the frontend's own fill failed");
	return q->fill_ret;
}

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cond = PTHREAD_COND_INITIALIZER;

static void init_req(struct fake_req *q, struct ld_cache *c, int wfd,
		     uint64_t off, uint64_t len)
{
	memset(q, 0, sizeof(*q));
	q->lock = &g_lock;
	q->cond = &g_cond;
	q->base.cache = c;
	q->base.wfd = wfd;
	q->base.off = off;
	q->base.len = len;
	q->base.answer = fake_answer;
	q->base.release = fake_release;
	q->base.what = "the test blob";
}

static void wait_done(struct fake_req *q)
{
	pthread_mutex_lock(&g_lock);
	while (!q->done)
		pthread_cond_wait(&g_cond, &g_lock);
	pthread_mutex_unlock(&g_lock);
}

/* A small image: one file of 300 KiB of compressible bytes, 64 KiB
 * chunks. */
static void make_image(char layout[PATH_MAX], void **bs_buf, size_t *bs_len)
{
	struct fmt_build_opts o = { .chunk_bits = 16, .level = 1, .threads = 1,
				    .compress = SKIFF_COMP_ZSTD };
	struct fmt_build_result res;
	char src[PATH_MAX], tmp[PATH_MAX];
	int fd;

	fmtpath(src, "%s/src", g_tmp);
	fmtpath(layout, "%s/layout", g_tmp);
	if (mkdir(src, 0755))
		bail_out("mkdir");
	fmtpath(tmp, "%s/src/f", g_tmp);
	fd = open(tmp, O_WRONLY | O_CREAT, 0644);
	if (fd < 0)
		bail_out("creating %s", tmp);
	for (int i = 0; i < 300 * 1024; i += 8)
		if (write(fd, i % 3 ? "abcdefgh" : "01234567", 8) != 8)
			bail_out("write");
	close(fd);
	storeimg_build(src, &o, layout, &res, NULL);
	*bs_buf = res.bootstrap;
	*bs_len = res.bootstrap_size;
}

int main(void)
{
	struct ld_daemon *d = calloc(1, sizeof(*d));
	struct fake_req q;
	struct fmt_bs bs;
	struct ld_cache c;
	struct be_source *src;
	struct sk_err e = { { 0 } };
	char layout[PATH_MAX], cpath[PATH_MAX], blob[PATH_MAX];
	void *bs_buf;
	size_t bs_len;
	uint64_t chunk, fetched;
	int fd;

	fmtpath(g_tmp, "%s/skiff-request-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!d || !mkdtemp(g_tmp))
		bail_out("set-up");
	make_image(layout, &bs_buf, &bs_len);
	if (fmt_bs_open(&bs, bs_buf, bs_len) || bs.nblobs != 1)
		bail_out("bootstrap");
	if (be_local_source_new(layout, &src, &e))
		bail_out("source: %s", e.msg);
	if (ld_cache_open(&c, &bs.blobs[0], src, 4u << 20, &e))
		bail_out("cache: %s", e.msg);
	ld_config_defaults(&d->cfg);
	d->cfg.log_level = LD_LOG_ERROR;
	if (sk_pool_create(&d->pool, 2))
		bail_out("pool");
	c.pool = d->pool;
	fmtpath(cpath, "%s/cache", g_tmp);
	fd = open(cpath, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, (off_t)c.table.usize))
		bail_out("cache file");
	chunk = c.table.chunks[1].uoff;

	/* a missing range: filled on the pool, then answered */
	init_req(&q, &c, fd, chunk, 4096);
	ld_request(d, &q.base);
	wait_done(&q);
	is_int(q.answers, 1, "a missing range is answered once");
	is_int(q.err, 0, "... with success");
	is_int(q.releases, 1, "... and released once");
	ok(ld_cache_range_ready(&c, chunk, 4096), "... its chunk is ready");
	is_int((long long)atomic_load(&d->lat_fetched.count), 1, "... counted as fetched");
	is_int((long long)atomic_load(&d->events_fast), 0, "... not as cached");
	is_int((long long)atomic_load(&d->ondemand), 0, "... and no longer in flight");
	fetched = atomic_load(&c.cnt->fetch_chunks);
	ok(fetched >= 1, "... having fetched (%llu chunks)", (unsigned long long)fetched);

	/* the same range again: answered at once, before ld_request returns */
	init_req(&q, &c, fd, chunk, 4096);
	ld_request(d, &q.base);
	ok(q.done, "a ready range is answered before ld_request returns");
	is_int(q.answers, 1, "... once");
	is_int(q.err, 0, "... with success");
	is_int((long long)atomic_load(&d->events_fast), 1, "... counted as cached");
	is_int((long long)atomic_load(&d->lat_cached.count), 1, "... in the cached histogram");
	is_int((long long)atomic_load(&c.cnt->fetch_chunks), (long long)fetched, "... fetching nothing");

	/* a chunk whose stored bytes lie: EIO, nothing written */
	fmtpath(blob, "%s/blobs/sha256/%s", layout, bs.blobs[0].hex);
	{
		const struct fmt_chunk *ch = &c.table.chunks[3];
		int bfd = open(blob, O_RDWR);
		uint8_t b = 0;

		if (bfd < 0 || pread(bfd, &b, 1, (off_t)ch->soff + ch->ssize / 2) != 1)
			bail_out("reading %s", blob);
		b ^= 0xff;
		if (pwrite(bfd, &b, 1, (off_t)ch->soff + ch->ssize / 2) != 1)
			bail_out("damaging %s", blob);
		close(bfd);
		init_req(&q, &c, fd, ch->uoff, 4096);
		ld_request(d, &q.base);
		wait_done(&q);
		is_int(q.answers, 1, "a chunk failing its digest is answered once");
		is_int(q.err, -EIO, "... with EIO");
		is_int(q.releases, 1, "... and released once");
		ok(!ld_cache_range_ready(&c, ch->uoff, 4096), "... its chunk is not ready");
		ok(lseek(fd, (off_t)ch->uoff, SEEK_DATA) < 0 ||
		   lseek(fd, (off_t)ch->uoff, SEEK_DATA) >= (off_t)(ch->uoff + ch->usize),
		   "... and nothing was written there");
		is_int((long long)atomic_load(&d->events_denied), 1, "... counted as failed");
	}

	/* a frontend's own fill */
	init_req(&q, NULL, -1, 0, 4096);
	q.base.fill = fake_fill;
	ld_request(d, &q.base);
	wait_done(&q);
	is_int(q.err, 0, "a frontend's own fill that succeeds is answered with success");
	init_req(&q, NULL, -1, 0, 4096);
	q.base.fill = fake_fill;
	q.fill_ret = -EINVAL;
	ld_request(d, &q.base);
	wait_done(&q);
	is_int(q.answers, 1, "one that fails is answered once");
	is_int(q.err, -EIO, "... with EIO");
	is_int((long long)atomic_load(&d->events_denied), 2, "... counted as failed");
	is_int((long long)atomic_load(&d->lat_fetched.count), 4,
	       "every request that went to the pool is in the fetched histogram");

	/* the cache disk full: one episode from the first failure to the
	 * first fill that succeeds, however many fail in between */
	for (int i = 0; i < 3; i++) {
		init_req(&q, NULL, -1, 0, 4096);
		q.base.fill = fake_fill;
		q.fill_ret = i == 2 ? -EDQUOT : -ENOSPC;
		ld_request(d, &q.base);
		wait_done(&q);
		is_int(q.err, -EIO, "a fill failing for lack of room (%d) is answered with EIO", i + 1);
	}
	is_int((long long)atomic_load(&d->cache_full.started), 1, "... three such: one episode of a full disk");
	is_int((long long)atomic_load(&d->cache_full.failed), 3, "... three reads failed in it");
	ok(atomic_load(&d->cache_full.on), "... which goes on");
	init_req(&q, NULL, -1, 0, 4096);
	q.base.fill = fake_fill;
	q.fill_ret = -EINVAL;
	ld_request(d, &q.base);
	wait_done(&q);
	ok(atomic_load(&d->cache_full.on), "... through a failure of another kind");
	init_req(&q, NULL, -1, 0, 4096);
	q.base.fill = fake_fill;
	ld_request(d, &q.base);
	wait_done(&q);
	ok(!atomic_load(&d->cache_full.on), "a fill that succeeds ends it");
	init_req(&q, NULL, -1, 0, 4096);
	q.base.fill = fake_fill;
	q.fill_ret = -ENOSPC;
	ld_request(d, &q.base);
	wait_done(&q);
	is_int((long long)atomic_load(&d->cache_full.started), 2, "the next failure for lack of room starts another");
	is_int((long long)atomic_load(&d->cache_full.failed), 4, "... counted");
	/* no failure for a long time: room came back and read-ahead or
	 * prefetch filled what was read since; the next failure is news */
	d->cache_full.last -= LD_EPISODE_QUIET + 1;
	init_req(&q, NULL, -1, 0, 4096);
	q.base.fill = fake_fill;
	q.fill_ret = -ENOBUFS;
	ld_request(d, &q.base);
	wait_done(&q);
	is_int((long long)atomic_load(&d->cache_full.started), 3,
	       "a failure (ENOBUFS: cachefiles' bstop) long after the last starts another");
	ok(atomic_load(&d->cache_full.on), "... which goes on");
	is_int((long long)atomic_load(&d->ondemand), 0, "nothing is left in flight");

	sk_pool_destroy(d->pool);
	ld_cache_close(&c);
	be_source_destroy(src);
	fmt_bs_close(&bs);
	free(bs_buf);
	close(fd);
	free(d);
	{
		char cmd[PATH_MAX + 16];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_tmp);
		if (system(cmd))
			diag("could not remove %s", g_tmp);
	}
	return done_testing();
}
