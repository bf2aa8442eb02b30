/* SPDX-License-Identifier: Apache-2.0 */
#include "cache.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zstd.h>

#define ALIGN4K(x) SK_ALIGN_UP((uint64_t)(x), (uint64_t)EROFS_BLKSIZ)

int ld_cache_open(struct ld_cache *c, const struct fmt_blob_ref *ref,
		  struct be_source *src, uint32_t merge_limit,
		  struct sk_err *e)
{
	void *buf;
	int ret;

	memset(c, 0, sizeof(*c));
	memcpy(c->hex, ref->hex, sizeof(c->hex));
	c->src = src;
	c->cnt = &c->own;
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
	buf = malloc(ref->table_size ? ref->table_size : 1);
	if (!buf)
		return -ENOMEM;
	ret = be_source_read(src, ref->hex, ref->table_off, buf, ref->table_size);
	if (ret) {
		sk_err_set(e, "blob %s: reading chunk table from %s: %s", ref->hex,
			   src->desc, strerror(-ret));
		free(buf);
		return ret;
	}
	ret = fmt_blob_table_parse(&c->table, buf, ref->table_size, e);
	free(buf);
	if (ret) {
		char m[sizeof(e->msg)];

		memcpy(m, e->msg, sizeof(m));
		sk_err_set(e, "blob %s: %s", ref->hex, m);
		return ret;
	}
	c->state = calloc(c->table.count ? c->table.count : 1, 1);
	if (!c->state) {
		fmt_blob_table_free(&c->table);
		return -ENOMEM;
	}
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	return 0;
}

void ld_cache_close(struct ld_cache *c)
{
	if (!c->state)
		return;
	fmt_blob_table_free(&c->table);
	free(c->state);
	c->state = NULL;
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
}

int ld_cache_scan(struct ld_cache *c, int fd)
{
	pthread_mutex_lock(&c->lock);
	for (uint64_t i = 0; i < c->table.count; i++) {
		const struct fmt_chunk *ch = &c->table.chunks[i];
		off_t d = lseek(fd, (off_t)ch->uoff, SEEK_DATA);
		off_t h;

		if (d < 0 || (uint64_t)d != ch->uoff)
			continue;
		h = lseek(fd, (off_t)ch->uoff, SEEK_HOLE);
		if (h < 0 || (uint64_t)h < ch->uoff + ALIGN4K(ch->usize))
			continue;
		if (c->state[i] != LD_READY) {
			c->state[i] = LD_READY;
			c->ready++;
		}
	}
	pthread_mutex_unlock(&c->lock);
	return 0;
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
};

/*
 * Fetches one run of claimed chunks with one backend read, decodes and
 * verifies every chunk, then writes them all (one io_uring submission)
 * before marking them ready.
 */
static int fetch_run(struct ld_cache *c, int wfd, const struct run *r,
		     struct sk_err *e)
{
	const struct fmt_chunk *a = &c->table.chunks[r->first];
	const struct fmt_chunk *z = &c->table.chunks[r->first + r->n - 1];
	uint64_t slen = z->soff + z->ssize - a->soff, ulen = 0, pos = 0;
	uint8_t *sbuf = malloc(slen), *ubuf = NULL;
	struct ld_write *w = calloc(r->n, sizeof(*w));
	int ret;

	if (!sbuf || !w) {
		ret = -ENOMEM;
		goto out;
	}
	for (uint64_t i = r->first; i < r->first + r->n; i++)
		ulen += ALIGN4K(c->table.chunks[i].usize);
	ret = be_source_read(c->src, c->hex, a->soff, sbuf, slen);
	atomic_fetch_add(&c->cnt->fetches, 1);
	if (ret) {
		atomic_fetch_add(&c->cnt->err_fetch, 1);
		sk_err_set(e, "blob %s: fetching %llu bytes at %llu from %s: %s",
			   c->hex, (unsigned long long)slen,
			   (unsigned long long)a->soff, c->src->desc,
			   strerror(-ret));
		goto out;
	}
	atomic_fetch_add(&c->cnt->fetch_bytes, slen);
	atomic_fetch_add(&c->cnt->fetch_chunks, r->n);
	/* page-aligned: the cachefiles anon fd writes with O_DIRECT */
	if (posix_memalign((void **)&ubuf, EROFS_BLKSIZ, ulen)) {
		ret = -ENOMEM;
		goto out;
	}
	for (uint64_t i = r->first; i < r->first + r->n; i++) {
		const struct fmt_chunk *ch = &c->table.chunks[i];
		uint64_t alen = ALIGN4K(ch->usize);

		ret = fmt_chunk_decode(ch, sbuf + (ch->soff - a->soff), ubuf + pos, e);
		if (ret) {
			char m[sizeof(e->msg)];

			memcpy(m, e->msg, sizeof(m));
			sk_err_set(e, "blob %s from %s: %s", c->hex, c->src->desc, m);
			atomic_fetch_add(&c->cnt->err_verify, 1);
			goto out;
		}
		memset(ubuf + pos + ch->usize, 0, alen - ch->usize);
		w[i - r->first] = (struct ld_write){ ubuf + pos, alen, ch->uoff };
		pos += alen;
	}
	ret = ld_rings_write(c->rings, wfd, w, (unsigned int)r->n);
	if (ret) {
		atomic_fetch_add(&c->cnt->err_write, 1);
		sk_err_set(e, "blob %s: writing the cache file at %llu: %s", c->hex,
			   (unsigned long long)a->uoff, strerror(-ret));
		goto out;
	}
	atomic_fetch_add(&c->cnt->write_bytes, ulen);
	pthread_mutex_lock(&c->lock);
	for (uint64_t i = r->first; i < r->first + r->n; i++) {
		c->state[i] = LD_READY;
		c->ready++;
	}
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
out:
	free(sbuf);
	free(ubuf);
	free(w);
	return ret;
}

int ld_cache_fill(struct ld_cache *c, int wfd, uint64_t off, uint64_t len,
		  struct sk_err *e)
{
	uint64_t end, first, i;
	struct run *runs = NULL;
	size_t nruns = 0, cap = 0;
	int ret = 0, attempts = 0;
	bool waited = false;

	atomic_fetch_add(&c->cnt->fills, 1);
	atomic_fetch_add(&c->cnt->fill_bytes, len);
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
		runs[nruns++] = (struct run){ i, 1 };
	}
	/* read ahead: extend the last run past the request with the missing
	 * chunks stored right after it, if the request itself missed */
	if (c->readahead && nruns && attempts == 0) {
		struct run *last = &runs[nruns - 1];
		const struct fmt_chunk *f = &c->table.chunks[last->first];
		uint64_t extra = 0;

		for (i = last->first + last->n;
		     i < c->table.count && c->state[i] == LD_MISSING; i++) {
			const struct fmt_chunk *p = &c->table.chunks[i - 1];
			const struct fmt_chunk *ch = &c->table.chunks[i];

			if (p->soff + p->ssize != ch->soff ||
			    ch->soff + ch->ssize - f->soff > c->merge_limit ||
			    extra + ch->ssize > c->readahead)
				break;
			c->state[i] = LD_INFLIGHT;
			extra += ch->ssize;
			last->n++;
		}
	}
	pthread_mutex_unlock(&c->lock);

	for (size_t k = 0; k < nruns; k++) {
		int r = ret ? ret : fetch_run(c, wfd, &runs[k], e);

		if (r) {
			/* give back what was not written, so a later read
			 * (after a repaired store, another mirror) retries */
			pthread_mutex_lock(&c->lock);
			for (i = runs[k].first; i < runs[k].first + runs[k].n; i++)
				if (c->state[i] == LD_INFLIGHT)
					c->state[i] = LD_MISSING;
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
			pthread_mutex_unlock(&c->lock);
			if (!missing)
				goto out;
			/* another request's fetch failed: try it ourselves once */
			if (++attempts > 1) {
				sk_err_set(e, "blob %s: fetch of [%llu, %llu) failed",
					   c->hex, (unsigned long long)off,
					   (unsigned long long)end);
				ret = -EIO;
				goto out;
			}
			goto again;
		}
		if (!waited) {
			waited = true;
			atomic_fetch_add(&c->cnt->waits, 1);
		}
		pthread_cond_wait(&c->cond, &c->lock);
	}
out:
	free(runs);
	return ret;
}
