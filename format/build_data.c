/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Data pass: cuts every regular file into chunks, reads, hashes and
 * compresses them on a worker pool, and appends unique chunks to the blob
 * in walk order. The main thread opens files and queues chunks into a ring
 * of slots; results are committed strictly in submission order, so the
 * blob is identical whatever the thread count.
 */
#include "build_int.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "blob.h"

/* An open source file shared by its queued chunks; closed by the commit of
 * its last one. Only the main thread touches the counts. */
struct src_file {
	int fd;
	uint32_t pending;
	bool queued_all;
};

struct slot {
	struct sk_job job;
	struct src_file *f;
	uint64_t off;
	int err;		/* read error, -errno */
	struct bld_node *node;
	uint64_t idx;
	uint8_t *buf;
	uint32_t len;
	uint8_t *cbuf;
	size_t ccap, clen;	/* clen 0: store raw */
	/* one compression context per worker, indexed by job.worker: a
	 * context reused by one thread keeps its tables warm in cache */
	ZSTD_CCtx **cctxs;
	int level, compress;
	bool zero, busy;
	uint8_t digest[SK_SHA256_LEN];
};

/* digest -> index into the chunk list, for deduplication */
struct dedup {
	uint64_t *slots;	/* index + 1, 0 = empty */
	size_t cap;
};

struct data_ctx {
	struct bld_tree *t;
	const struct fmt_build_opts *o;
	int fd;
	struct sk_sha256_ctx blob_hash;
	struct fmt_chunk *chunks;
	uint64_t nchunks, cap_chunks;
	struct dedup dd;
	uint64_t soff, uoff;
	double last_progress;
};

static bool all_zero(const uint8_t *p, size_t len)
{
	static const uint8_t zeros[4096];

	while (len) {
		size_t n = SK_MIN(len, sizeof(zeros));

		if (memcmp(p, zeros, n))
			return false;
		p += n;
		len -= n;
	}
	return true;
}

static void slot_work(struct sk_job *job)
{
	struct slot *s = (struct slot *)job;

	s->clen = 0;
	s->zero = false;
	s->err = sk_pread_full(s->f->fd, s->buf, s->len, s->off);
	if (s->err)
		return;
	s->zero = all_zero(s->buf, s->len);
	if (s->zero)
		return;
	sk_sha256(s->buf, s->len, s->digest);
	if (s->compress == SKIFF_COMP_ZSTD) {
		size_t n = ZSTD_compressCCtx(s->cctxs[s->job.worker], s->cbuf,
					     s->ccap, s->buf, s->len, s->level);

		/* keep raw when compression does not pay */
		if (!ZSTD_isError(n) && n < s->len)
			s->clen = n;
	}
}

static uint64_t *dedup_find(struct dedup *d, const struct fmt_chunk *chunks,
			    const uint8_t digest[SK_SHA256_LEN])
{
	uint64_t h;

	memcpy(&h, digest, sizeof(h));
	for (size_t i = (size_t)h & (d->cap - 1);; i = (i + 1) & (d->cap - 1)) {
		if (!d->slots[i] ||
		    !memcmp(chunks[d->slots[i] - 1].digest, digest, SK_SHA256_LEN))
			return &d->slots[i];
	}
}

static int dedup_grow(struct data_ctx *c)
{
	struct dedup nd;

	if (c->dd.cap && c->nchunks * 2 < c->dd.cap)
		return 0;
	nd.cap = c->dd.cap ? c->dd.cap * 2 : 4096;
	nd.slots = calloc(nd.cap, sizeof(*nd.slots));
	if (!nd.slots)
		return -ENOMEM;
	for (uint64_t i = 0; i < c->nchunks; i++)
		*dedup_find(&nd, c->chunks, c->chunks[i].digest) = i + 1;
	free(c->dd.slots);
	c->dd = nd;
	return 0;
}

static int blob_append(struct data_ctx *c, const void *buf, size_t len)
{
	int ret = sk_write_full(c->fd, buf, len);

	if (ret) {
		sk_err_set(c->t->err, "writing blob: %s", strerror(-ret));
		return ret;
	}
	sk_sha256_update(&c->blob_hash, buf, len);
	c->soff += len;
	return 0;
}

static int commit_data(struct data_ctx *c, struct slot *s);

static void file_put(struct src_file *f)
{
	if (--f->pending == 0 && f->queued_all) {
		close(f->fd);
		free(f);
	}
}

static int commit(struct data_ctx *c, struct slot *s)
{
	struct erofs_inode_chunk_index *ci = &s->node->chunks[s->idx];

	s->busy = false;
	file_put(s->f);
	if (s->err) {
		sk_err_set(c->t->err, "%s: %s", s->node->path,
			   s->err == -ENODATA ? "file shrank during the build"
					      : strerror(-s->err));
		return s->err;
	}
	c->t->stats->read_bytes += s->len;
	if (s->zero) {
		ci->blkaddr = htole32(EROFS_NULL_ADDR);
		c->t->stats->chunks_hole++;
		return 0;
	}
	return commit_data(c, s);
}

/* Deduplicates a hashed (and maybe compressed) chunk and maps it. */
static int commit_data(struct data_ctx *c, struct slot *s)
{
	struct erofs_inode_chunk_index *ci = &s->node->chunks[s->idx];
	struct fmt_build_stats *st = c->t->stats;
	struct fmt_chunk *ch;
	uint64_t *slotp;
	int ret;

	st->chunks++;
	ret = dedup_grow(c);
	if (ret)
		return ret;
	slotp = dedup_find(&c->dd, c->chunks, s->digest);
	if (!*slotp) {
		if (c->nchunks == c->cap_chunks) {
			uint64_t ncap = c->cap_chunks ? c->cap_chunks * 2 : 1024;
			struct fmt_chunk *nc = realloc(c->chunks, ncap * sizeof(*nc));

			if (!nc)
				return -ENOMEM;
			c->chunks = nc;
			c->cap_chunks = ncap;
			/* slotp points into dd, which did not move */
		}
		if (c->uoff / EROFS_BLKSIZ >= EROFS_NULL_ADDR) {
			sk_err_set(c->t->err, "blob larger than 16 TiB");
			return -EFBIG;
		}
		ch = &c->chunks[c->nchunks];
		memset(ch, 0, sizeof(*ch));
		ch->uoff = c->uoff;
		ch->soff = c->soff;
		ch->usize = s->len;
		ch->ssize = s->clen ? (uint32_t)s->clen : s->len;
		ch->comp = s->clen ? SKIFF_COMP_ZSTD : SKIFF_COMP_NONE;
		memcpy(ch->digest, s->digest, SK_SHA256_LEN);
		ret = blob_append(c, s->clen ? s->cbuf : s->buf, ch->ssize);
		if (ret)
			return ret;
		c->uoff += SK_ALIGN_UP((uint64_t)s->len, EROFS_BLKSIZ);
		*slotp = ++c->nchunks;
		st->chunks_unique++;
		st->chunks_compressed += s->clen != 0;
	}
	ch = &c->chunks[*slotp - 1];
	ci->device_id = htole16(1);
	ci->blkaddr = htole32((uint32_t)(ch->uoff / EROFS_BLKSIZ));
	return 0;
}

static void progress(struct data_ctx *c, int final)
{
	double now;

	if (!c->o->progress)
		return;
	now = sk_now();
	if (!final && now - c->last_progress < 0.25)
		return;
	c->last_progress = now;
	c->t->stats->blob_stored = c->soff;
	c->t->stats->blob_usize = c->uoff;
	c->o->progress(c->o->progress_ctx, c->t->stats, final);
}

static int process_file(struct data_ctx *c, struct sk_pool *pool,
			struct slot *slots, unsigned int nslots,
			unsigned int *next, struct bld_node *n)
{
	uint64_t csize = 1ull << c->o->chunk_bits;
	struct src_file *f;
	int ret = 0;

	n->nchunks = SK_DIV_ROUND_UP(n->size, csize);
	n->chunks = calloc(n->nchunks, sizeof(*n->chunks));
	f = calloc(1, sizeof(*f));
	if (!n->chunks || !f) {
		free(f);
		return -ENOMEM;
	}
	f->fd = open(n->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (f->fd < 0) {
		ret = -errno;
		sk_err_set(c->t->err, "%s: %s", n->path, strerror(errno));
		free(f);
		return ret;
	}
	for (uint64_t i = 0; i < n->nchunks; i++) {
		uint64_t start = i * csize;
		uint32_t len = (uint32_t)SK_MIN(csize, n->size - start);
		struct slot *s;

		/* a chunk wholly inside a hole is never read */
		if (n->sparse) {
			off_t data = lseek(f->fd, (off_t)start, SEEK_DATA);

			if ((data < 0 && errno == ENXIO) ||
			    (data >= 0 && (uint64_t)data >= start + len)) {
				n->chunks[i].blkaddr = htole32(EROFS_NULL_ADDR);
				c->t->stats->chunks_hole++;
				continue;
			}
		}
		s = &slots[*next];
		*next = (*next + 1) % nslots;
		if (s->busy) {
			sk_pool_wait(pool, &s->job);
			ret = commit(c, s);
			if (ret)
				break;
		}
		s->f = f;
		f->pending++;
		s->off = start;
		s->node = n;
		s->idx = i;
		s->len = len;
		s->busy = true;
		s->job.fn = slot_work;
		sk_pool_submit(pool, &s->job);
		progress(c, 0);
	}
	/* the last commit of this file closes it; none queued: close now */
	f->queued_all = true;
	f->pending++;
	file_put(f);
	return ret;
}

/*
 * Linux's fscache read path (6.1 at least) zero-fills the rest of a
 * readahead window when it meets an unmapped chunk, wiping mapped data
 * that follows in the same window. So a hole is left unmapped only when
 * no data follows it in its file; the other holes share one all-zero
 * chunk, stored once (a few bytes compressed), appended after all files
 * so the blob stays reproducible.
 */
static int map_inner_holes(struct data_ctx *c, struct sk_pool *pool,
			   struct slot *s)
{
	uint64_t csize = 1ull << c->o->chunk_bits;
	struct bld_node *zero_owner = NULL;
	uint32_t zero_blk = 0;
	int ret;

	for (struct bld_node *n = c->t->head; n; n = n->next) {
		uint64_t last = n->nchunks;

		if ((n->mode & S_IFMT) != S_IFREG || !n->nchunks)
			continue;
		while (last > 0 &&
		       le32toh(n->chunks[last - 1].blkaddr) == EROFS_NULL_ADDR)
			last--;
		for (uint64_t i = 0; i + 1 < last; i++) {
			if (le32toh(n->chunks[i].blkaddr) != EROFS_NULL_ADDR)
				continue;
			if (!zero_owner) {
				/* run the zero chunk through the normal path,
				 * reading it from memory instead of a file */
				memset(s->buf, 0, csize);
				s->node = n;
				s->idx = i;
				s->len = (uint32_t)csize;
				s->zero = false;
				s->clen = 0;
				sk_sha256(s->buf, csize, s->digest);
				if (c->o->compress == SKIFF_COMP_ZSTD) {
					/* every job has drained: context 0 is free */
					size_t z = ZSTD_compressCCtx(s->cctxs[0], s->cbuf, s->ccap,
								     s->buf, csize, s->level);

					if (!ZSTD_isError(z) && z < csize)
						s->clen = z;
				}
				ret = commit_data(c, s);
				if (ret)
					return ret;
				zero_owner = n;
				zero_blk = le32toh(n->chunks[i].blkaddr);
				c->t->stats->chunks_hole--;
				continue;
			}
			n->chunks[i].device_id = htole16(1);
			n->chunks[i].blkaddr = htole32(zero_blk);
			c->t->stats->chunks_hole--;
			c->t->stats->chunks++;
		}
	}
	(void)pool;
	return 0;
}

static int finish_blob(struct data_ctx *c, struct bld_blob *b)
{
	struct fmt_blob_table t = { 0 };
	struct skiff_blob_footer f;
	struct skiff_chunk_rec *recs;
	size_t tsize = c->nchunks * sizeof(*recs);
	int ret;

	recs = malloc(tsize ? tsize : 1);
	if (!recs)
		return -ENOMEM;
	for (uint64_t i = 0; i < c->nchunks; i++)
		fmt_chunk_encode(&c->chunks[i], &recs[i]);
	t.table_off = c->soff;
	t.table_size = tsize;
	t.count = c->nchunks;
	t.usize = c->uoff;
	sk_sha256(recs, tsize, t.table_digest);
	ret = blob_append(c, recs, tsize);
	free(recs);
	if (ret)
		return ret;
	fmt_blob_footer_encode(&t, &f);
	ret = blob_append(c, &f, sizeof(f));
	if (ret)
		return ret;
	sk_sha256_final(&c->blob_hash, b->id);
	b->stored_size = c->soff;
	b->usize = t.usize;
	b->table_off = t.table_off;
	b->table_size = t.table_size;
	b->count = t.count;
	memcpy(b->table_digest, t.table_digest, SK_SHA256_LEN);
	return 0;
}

int bld_data(struct bld_tree *t, const struct fmt_build_opts *o, int blob_fd,
	     struct bld_blob *blob)
{
	struct data_ctx c = { .t = t, .o = o, .fd = blob_fd };
	unsigned int nthreads = o->threads ? o->threads : sk_ncpus();
	uint64_t csize = 1ull << o->chunk_bits;
	/* Many slots, so that a run of tiny files never starves the workers
	 * while one big chunk is being compressed; bounded so that buffers
	 * (chunk + compressed copy, touched only as far as used) stay within
	 * about 256 MiB for large chunks. */
	unsigned int nslots = (unsigned int)SK_MAX((uint64_t)2 * nthreads + 2,
				SK_MIN((uint64_t)256, (128ull << 20) / csize));
	struct slot *slots;
	ZSTD_CCtx **cctxs = NULL;
	struct sk_pool *pool = NULL;
	unsigned int next = 0;
	int ret;

	memset(blob, 0, sizeof(*blob));
	slots = calloc(nslots, sizeof(*slots));
	if (!slots)
		return -ENOMEM;
	ret = sk_sha256_init(&c.blob_hash);
	if (ret)
		goto out_slots;
	if (o->compress == SKIFF_COMP_ZSTD) {
		cctxs = calloc(nthreads, sizeof(*cctxs));
		if (!cctxs) {
			ret = -ENOMEM;
			goto out;
		}
		for (unsigned int i = 0; i < nthreads; i++) {
			cctxs[i] = ZSTD_createCCtx();
			if (!cctxs[i]) {
				ret = -ENOMEM;
				goto out;
			}
		}
	}
	for (unsigned int i = 0; i < nslots; i++) {
		struct slot *s = &slots[i];

		s->buf = malloc(csize);
		s->compress = o->compress;
		s->level = o->level;
		if (!s->buf) {
			ret = -ENOMEM;
			goto out;
		}
		if (o->compress == SKIFF_COMP_ZSTD) {
			s->ccap = ZSTD_compressBound(csize);
			s->cbuf = malloc(s->ccap);
			s->cctxs = cctxs;
			if (!s->cbuf) {
				ret = -ENOMEM;
				goto out;
			}
		}
	}
	ret = sk_pool_create(&pool, nthreads);
	if (ret)
		goto out;

	for (struct bld_node *n = t->head; n && !ret; n = n->next) {
		if ((n->mode & S_IFMT) != S_IFREG || !n->size)
			continue;
		ret = process_file(&c, pool, slots, nslots, &next, n);
	}
	/* drain in order, also on error so no worker touches freed slots */
	for (unsigned int k = 0; k < nslots; k++) {
		struct slot *s = &slots[(next + k) % nslots];

		if (!s->busy)
			continue;
		sk_pool_wait(pool, &s->job);
		if (!ret)
			ret = commit(&c, s);
		s->busy = false;
	}
	if (!ret)
		ret = map_inner_holes(&c, pool, &slots[0]);
	if (!ret && c.nchunks)
		ret = finish_blob(&c, blob);
	if (!ret)
		progress(&c, 1);
out:
	sk_pool_destroy(pool);
	for (unsigned int i = 0; i < nslots; i++) {
		free(slots[i].buf);
		free(slots[i].cbuf);
	}
	for (unsigned int i = 0; cctxs && i < nthreads; i++)
		ZSTD_freeCCtx(cctxs[i]);
	free(cctxs);
	sk_sha256_free(&c.blob_hash);
out_slots:
	free(slots);
	free(c.chunks);
	free(c.dd.slots);
	return ret;
}
