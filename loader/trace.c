/* SPDX-License-Identifier: Apache-2.0 */
#include "trace.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../format/walk.h"
#include "daemon.h"

#define TRACE_MAX_READS (1u << 24)	/* a bound on memory: 384 MiB */

struct ld_trace_rec {
	uint32_t blob;
	uint64_t off, len;
};

struct ld_trace {
	struct ld_trace_rec *r;		/* owned, arrival order */
	size_t n, cap;
	bool truncated;			/* TRACE_MAX_READS reached */
	double started;
};

int ld_trace_start(struct ld_daemon *d, struct ld_image *im, struct sk_err *e)
{
	struct ld_trace *t;

	pthread_mutex_lock(&d->lock);
	if (im->trace) {
		pthread_mutex_unlock(&d->lock);
		sk_err_set(e, "image %s is already recording a trace", im->id);
		return -EBUSY;
	}
	t = calloc(1, sizeof(*t));
	if (!t) {
		pthread_mutex_unlock(&d->lock);
		return -ENOMEM;
	}
	t->started = sk_now();
	im->trace = t;
	atomic_fetch_add(&d->tracing, 1);
	pthread_mutex_unlock(&d->lock);
	return 0;
}

void ld_trace_free(struct ld_image *im)
{
	if (!im->trace)
		return;
	free(im->trace->r);
	free(im->trace);
	im->trace = NULL;
}

static void note_one(struct ld_trace *t, uint32_t blob, uint64_t off, uint64_t len)
{
	if (t->n == t->cap) {
		size_t ncap = t->cap ? t->cap * 2 : 1024;
		struct ld_trace_rec *nr;

		if (ncap > TRACE_MAX_READS ||
		    !(nr = realloc(t->r, ncap * sizeof(*nr)))) {
			t->truncated = true;
			return;
		}
		t->r = nr;
		t->cap = ncap;
	}
	t->r[t->n++] = (struct ld_trace_rec){ blob, off, len };
}

void ld_trace_note(struct ld_daemon *d, const char *hex, uint64_t off,
		   uint64_t len)
{
	if (!atomic_load(&d->tracing))
		return;	/* the common case costs one load */
	pthread_mutex_lock(&d->lock);
	for (struct ld_image *im = d->images; im; im = im->next) {
		if (!im->trace)
			continue;
		for (unsigned int b = 0; b < im->nblobs; b++)
			if (!strcmp(im->refs[b].hex, hex))
				note_one(im->trace, b, off, len);
	}
	pthread_mutex_unlock(&d->lock);
}

/* Per blob, the first read (1-based arrival index) of each 4 KiB block. */
struct first_map {
	uint32_t **blk;		/* [blob][block], 0: never read */
	uint64_t *nblk;
	unsigned int nblobs;
};

static void map_free(struct first_map *m)
{
	for (unsigned int b = 0; m->blk && b < m->nblobs; b++)
		free(m->blk[b]);
	free(m->blk);
	free(m->nblk);
}

static int map_build(struct first_map *m, const struct ld_image *im,
		     const struct ld_trace *t)
{
	m->nblobs = im->nblobs;
	m->blk = calloc(im->nblobs ? im->nblobs : 1, sizeof(*m->blk));
	m->nblk = calloc(im->nblobs ? im->nblobs : 1, sizeof(*m->nblk));
	if (!m->blk || !m->nblk)
		return -ENOMEM;
	for (unsigned int b = 0; b < im->nblobs; b++) {
		m->nblk[b] = SK_ALIGN_UP(im->refs[b].usize, (uint64_t)EROFS_BLKSIZ) /
			     EROFS_BLKSIZ;
		m->blk[b] = calloc(m->nblk[b] ? m->nblk[b] : 1, sizeof(uint32_t));
		if (!m->blk[b])
			return -ENOMEM;
	}
	for (size_t i = 0; i < t->n; i++) {
		const struct ld_trace_rec *r = &t->r[i];
		uint64_t first = r->off / EROFS_BLKSIZ, end;

		if (r->blob >= m->nblobs || !r->len)
			continue;
		end = SK_MIN(m->nblk[r->blob], SK_ALIGN_UP(r->off + r->len,
			     (uint64_t)EROFS_BLKSIZ) / EROFS_BLKSIZ);
		for (uint64_t k = first; k < end; k++)
			if (!m->blk[r->blob][k])
				m->blk[r->blob][k] = (uint32_t)(i + 1);
	}
	return 0;
}

struct file_hit {
	uint32_t first;		/* earliest read of any of its chunks */
	size_t order;		/* tree order, for ties */
	char *path;
	json_t *chunks;
};

struct walk_ctx {
	struct fmt_bs *bs;
	struct first_map *m;
	struct file_hit *f;
	size_t n, cap;
	int err;
};

/* One regular file's chunks that were read, as fmt_bs_chunks finds them. */
struct file_ctx {
	const struct first_map *m;
	uint32_t first;		/* earliest read of any of them, 0: none */
	json_t *chunks;		/* owned: their indexes, NULL until one */
};

static int chunk_cb(void *ctx, const struct fmt_chunk_range *r)
{
	struct file_ctx *f = ctx;
	const uint32_t *blk;
	uint64_t end;
	uint32_t hit = 0;

	if (r->blob >= f->m->nblobs)
		return 0;	/* the map is the image's: same blobs, but check */
	blk = f->m->blk[r->blob];
	end = SK_MIN(f->m->nblk[r->blob], r->blkaddr +
		     SK_ALIGN_UP(r->len, (uint64_t)EROFS_BLKSIZ) / EROFS_BLKSIZ);
	for (uint64_t k = r->blkaddr; k < end; k++)
		if (blk[k] && (!hit || blk[k] < hit))
			hit = blk[k];
	if (!hit)
		return 0;
	if (!f->chunks && !(f->chunks = json_array()))
		return -ENOMEM;
	if (json_array_append_new(f->chunks, json_integer((json_int_t)r->index)))
		return -ENOMEM;
	if (!f->first || hit < f->first)
		f->first = hit;
	return 0;
}

static int walk_cb(void *ctx, const char *path, size_t pathlen,
		   const struct fmt_inode *ino)
{
	struct walk_ctx *w = ctx;
	struct file_ctx f = { .m = w->m };
	int ret;

	if (!S_ISREG(ino->mode))
		return 0;
	ret = fmt_bs_chunks(w->bs, ino, chunk_cb, &f);
	if (ret) {
		json_decref(f.chunks);
		return w->err = ret;
	}
	if (!f.chunks)
		return 0;
	if (w->n == w->cap) {
		size_t ncap = w->cap ? w->cap * 2 : 256;
		struct file_hit *nf = realloc(w->f, ncap * sizeof(*nf));

		if (!nf) {
			json_decref(f.chunks);
			return w->err = -ENOMEM;
		}
		w->f = nf;
		w->cap = ncap;
	}
	w->f[w->n] = (struct file_hit){ f.first, w->n, strndup(path, pathlen),
					f.chunks };
	if (!w->f[w->n].path) {
		json_decref(f.chunks);
		return w->err = -ENOMEM;
	}
	w->n++;
	return 0;
}

static int by_first(const void *a, const void *b)
{
	const struct file_hit *x = a, *y = b;

	if (x->first != y->first)
		return x->first > y->first ? 1 : -1;
	return (x->order > y->order) - (x->order < y->order);
}

int ld_trace_stop(struct ld_daemon *d, struct ld_image *im, json_t **out,
		  struct sk_err *e)
{
	struct first_map m = { 0 };
	struct walk_ctx w = { 0 };
	struct ld_trace *t;
	struct fmt_bs bs;
	json_t *files = NULL;
	int ret;

	pthread_mutex_lock(&d->lock);
	t = im->trace;
	im->trace = NULL;
	if (t)
		atomic_fetch_sub(&d->tracing, 1);
	pthread_mutex_unlock(&d->lock);
	if (!t) {
		sk_err_set(e, "image %s is not recording a trace", im->id);
		return -ENOENT;
	}
	ret = fmt_bs_open(&bs, im->bs_buf, im->bootstrap_size);
	if (ret) {
		sk_err_set(e, "bootstrap of %s: %s", im->id, bs.err.msg);
		goto out;
	}
	ret = map_build(&m, im, t);
	if (!ret) {
		w.bs = &bs;
		w.m = &m;
		ret = fmt_bs_walk(&bs, walk_cb, &w);
		if (!ret)
			ret = w.err;
		else if (ret > 0)
			ret = -EIO;
		if (ret && bs.err.msg[0])
			sk_err_set(e, "bootstrap of %s: %s", im->id, bs.err.msg);
	}
	fmt_bs_close(&bs);
	if (ret)
		goto out;
	/* files first read by the same request keep tree order; no file
	 * read leaves w.f NULL, which qsort must not get even for 0 */
	if (w.n)
		qsort(w.f, w.n, sizeof(*w.f), by_first);
	files = json_array();
	if (!files) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < w.n; i++) {
		json_t *f = json_pack("{s:s, s:o}", "path", w.f[i].path,
				      "chunks", w.f[i].chunks);

		w.f[i].chunks = NULL;	/* json_pack took it */
		if (!f || json_array_append_new(files, f)) {
			ret = -ENOMEM;
			goto out;
		}
	}
	*out = json_pack("{s:I, s:f, s:b, s:o}", "reads", (json_int_t)t->n,
			 "seconds", sk_now() - t->started,
			 "truncated", t->truncated, "files", files);
	files = NULL;	/* json_pack took it, also when it failed */
	if (!*out)
		ret = -ENOMEM;
out:
	json_decref(files);
	for (size_t i = 0; i < w.n; i++) {
		free(w.f[i].path);
		json_decref(w.f[i].chunks);
	}
	free(w.f);
	map_free(&m);
	free(t->r);
	free(t);
	return ret;
}
