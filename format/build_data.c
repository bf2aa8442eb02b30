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
#include "tar.h"

/* An open source file shared by its queued chunks; closed by the commit of
 * its last one. Only the main thread touches the counts. */
struct src_file {
	int fd;
	uint32_t pending;
	bool queued_all;
};

struct slot {
	struct sk_job job;
	struct src_file *f;	/* NULL: buf was filled by the main thread */
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

/* digest -> index into the known chunks, for deduplication */
struct dedup {
	uint64_t *slots;	/* index + 1, 0 = empty */
	size_t cap;
};

/* A chunk stored in some blob of this build (or of a chunk dictionary):
 * where a chunk index finds it. */
struct known_chunk {
	uint8_t digest[SK_SHA256_LEN];
	uint32_t usize;
	uint32_t blob;		/* build-local blob index */
	uint32_t blkaddr;	/* its cache-file block */
};

struct bld_data {
	struct bld_tree *t;
	const struct fmt_build_opts *o;
	unsigned int nthreads, nslots, next;
	struct slot *slots;
	ZSTD_CCtx **cctxs;
	struct sk_pool *pool;
	struct known_chunk *known;
	uint64_t nknown, cap_known;
	struct dedup dd;
	uint64_t stored_done, usize_done;	/* finished blobs, for stats */
	/* the blob being written */
	bool open;
	uint32_t blob;
	int fd;
	struct sk_sha256_ctx blob_hash;
	bool hash_live;
	struct fmt_chunk *chunks;	/* its chunk table, in cache order */
	uint64_t nchunks, cap_chunks;
	uint64_t soff, uoff;
	struct bld_node **files;	/* files chunked while it was open */
	uint64_t nfiles, cap_files;
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
	s->err = s->f ? sk_pread_full(s->f->fd, s->buf, s->len, s->off) : 0;
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

static uint64_t *dedup_find(struct dedup *d, const struct known_chunk *known,
			    const uint8_t digest[SK_SHA256_LEN], uint32_t usize)
{
	uint64_t h;

	memcpy(&h, digest, sizeof(h));
	for (size_t i = (size_t)h & (d->cap - 1);; i = (i + 1) & (d->cap - 1)) {
		const struct known_chunk *k = d->slots[i] ? &known[d->slots[i] - 1] : NULL;

		if (!k || (k->usize == usize &&
			   !memcmp(k->digest, digest, SK_SHA256_LEN)))
			return &d->slots[i];
	}
}

static int dedup_grow(struct bld_data *c)
{
	struct dedup nd;

	if (c->dd.cap && c->nknown * 2 < c->dd.cap)
		return 0;
	nd.cap = c->dd.cap ? c->dd.cap * 2 : 4096;
	nd.slots = calloc(nd.cap, sizeof(*nd.slots));
	if (!nd.slots)
		return -ENOMEM;
	for (uint64_t i = 0; i < c->nknown; i++)
		*dedup_find(&nd, c->known, c->known[i].digest, c->known[i].usize) = i + 1;
	free(c->dd.slots);
	c->dd = nd;
	return 0;
}

/* Records a stored chunk for deduplication; *slotp is its empty dedup
 * slot, found by the caller after dedup_grow(). */
static int known_add(struct bld_data *c, uint64_t *slotp,
		     const uint8_t digest[SK_SHA256_LEN], uint32_t usize,
		     uint32_t blob, uint32_t blkaddr)
{
	struct known_chunk *k;

	if (c->nknown == c->cap_known) {
		uint64_t ncap = c->cap_known ? c->cap_known * 2 : 1024;
		struct known_chunk *nk = realloc(c->known, ncap * sizeof(*nk));

		if (!nk)
			return -ENOMEM;
		c->known = nk;
		c->cap_known = ncap;
	}
	k = &c->known[c->nknown];
	memcpy(k->digest, digest, SK_SHA256_LEN);
	k->usize = usize;
	k->blob = blob;
	k->blkaddr = blkaddr;
	*slotp = ++c->nknown;
	return 0;
}

int bld_data_add_known(struct bld_data *c, uint32_t blob,
		       const struct fmt_chunk *chunks, uint64_t count)
{
	for (uint64_t i = 0; i < count; i++) {
		uint64_t *slotp;
		int ret = dedup_grow(c);

		if (ret)
			return ret;
		if (chunks[i].uoff % EROFS_BLKSIZ ||
		    chunks[i].uoff / EROFS_BLKSIZ >= EROFS_NULL_ADDR)
			return -EINVAL;
		slotp = dedup_find(&c->dd, c->known, chunks[i].digest, chunks[i].usize);
		if (*slotp)
			continue;	/* the first blob that has it wins */
		ret = known_add(c, slotp, chunks[i].digest, chunks[i].usize, blob,
				(uint32_t)(chunks[i].uoff / EROFS_BLKSIZ));
		if (ret)
			return ret;
	}
	return 0;
}

int bld_blob_write(int fd, struct sk_sha256_ctx *h, uint64_t *soff,
		   const void *buf, size_t len, struct sk_err *e)
{
	int ret = sk_write_full(fd, buf, len);

	if (ret) {
		sk_err_set(e, "writing blob: %s", strerror(-ret));
		return ret;
	}
	sk_sha256_update(h, buf, len);
	*soff += len;
	return 0;
}

static int blob_append(struct bld_data *c, const void *buf, size_t len)
{
	return bld_blob_write(c->fd, &c->blob_hash, &c->soff, buf, len, c->t->err);
}

static int commit_data(struct bld_data *c, struct slot *s);

static void file_put(struct src_file *f)
{
	if (!f)
		return;
	if (--f->pending == 0 && f->queued_all) {
		close(f->fd);
		free(f);
	}
}

static int commit(struct bld_data *c, struct slot *s)
{
	struct erofs_inode_chunk_index *ci = &s->node->chunks[s->idx];

	s->busy = false;
	file_put(s->f);
	if (s->err) {
		sk_err_set(c->t->err, "%s: %s", s->node->path ? s->node->path : "file",
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
static int commit_data(struct bld_data *c, struct slot *s)
{
	struct erofs_inode_chunk_index *ci = &s->node->chunks[s->idx];
	struct fmt_build_stats *st = c->t->stats;
	struct fmt_chunk *ch;
	const struct known_chunk *k;
	uint64_t *slotp;
	int ret;

	st->chunks++;
	ret = dedup_grow(c);
	if (ret)
		return ret;
	slotp = dedup_find(&c->dd, c->known, s->digest, s->len);
	if (!*slotp) {
		if (c->nchunks == c->cap_chunks) {
			uint64_t ncap = c->cap_chunks ? c->cap_chunks * 2 : 1024;
			struct fmt_chunk *nc = realloc(c->chunks, ncap * sizeof(*nc));

			if (!nc)
				return -ENOMEM;
			c->chunks = nc;
			c->cap_chunks = ncap;
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
		ret = known_add(c, slotp, s->digest, s->len, c->blob,
				(uint32_t)(c->uoff / EROFS_BLKSIZ));
		if (ret)
			return ret;
		c->uoff += SK_ALIGN_UP((uint64_t)s->len, EROFS_BLKSIZ);
		c->nchunks++;
		st->chunks_unique++;
		st->chunks_compressed += s->clen != 0;
	}
	k = &c->known[*slotp - 1];
	ci->device_id = htole16((uint16_t)(k->blob + 1));
	ci->blkaddr = htole32(k->blkaddr);
	return 0;
}

static void progress(struct bld_data *c, int final)
{
	double now;

	if (!c->o->progress)
		return;
	now = sk_now();
	if (!final && now - c->last_progress < 0.25)
		return;
	c->last_progress = now;
	c->t->stats->blob_stored = c->stored_done + c->soff;
	c->t->stats->blob_usize = c->usize_done + c->uoff;
	c->o->progress(c->o->progress_ctx, c->t->stats, final);
}

/* The next free slot: waits for (and commits) the job it held. */
static int next_slot(struct bld_data *c, struct slot **out)
{
	struct slot *s = &c->slots[c->next];
	int ret = 0;

	c->next = (c->next + 1) % c->nslots;
	if (s->busy) {
		sk_pool_wait(c->pool, &s->job);
		ret = commit(c, s);
	}
	*out = s;
	return ret;
}

static void submit(struct bld_data *c, struct slot *s, struct src_file *f,
		   uint64_t off, struct bld_node *n, uint64_t idx, uint32_t len)
{
	s->f = f;
	if (f)
		f->pending++;
	s->off = off;
	s->node = n;
	s->idx = idx;
	s->len = len;
	s->busy = true;
	s->job.fn = slot_work;
	sk_pool_submit(c->pool, &s->job);
	progress(c, 0);
}

/* Sizes a file's chunk indexes and remembers it for map_inner_holes(). */
static int file_begin(struct bld_data *c, struct bld_node *n)
{
	uint64_t csize = 1ull << c->o->chunk_bits;

	/* a size from a tar header may be anything: its chunk indexes must
	 * fit in a bootstrap (16 TiB) */
	n->nchunks = SK_DIV_ROUND_UP(n->size, csize);
	if (n->nchunks > ((uint64_t)UINT32_MAX << EROFS_BLKBITS) /
			 sizeof(*n->chunks)) {
		sk_err_set(c->t->err, "%s: %llu bytes need more chunk indexes than a bootstrap holds",
			   n->path ? n->path : "a file",
			   (unsigned long long)n->size);
		return -EFBIG;
	}
	free(n->chunks);
	n->chunks = calloc(n->nchunks, sizeof(*n->chunks));
	if (!n->chunks)
		return -ENOMEM;
	if (c->nfiles == c->cap_files) {
		uint64_t ncap = c->cap_files ? c->cap_files * 2 : 1024;
		struct bld_node **nf = realloc(c->files, ncap * sizeof(*nf));

		if (!nf)
			return -ENOMEM;
		c->files = nf;
		c->cap_files = ncap;
	}
	c->files[c->nfiles++] = n;
	return 0;
}

int bld_data_file(struct bld_data *c, struct bld_node *n)
{
	uint64_t csize = 1ull << c->o->chunk_bits;
	struct src_file *f;
	int ret;

	if ((ret = file_begin(c, n)))
		return ret;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
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
		if ((ret = next_slot(c, &s)))
			break;
		submit(c, s, f, start, n, i, len);
	}
	/* the last commit of this file closes it; none queued: close now */
	f->queued_all = true;
	f->pending++;
	file_put(f);
	return ret;
}

int bld_data_tar_file(struct bld_data *c, struct bld_node *n,
		      struct fmt_tar *tar, const struct fmt_tar_entry *ent)
{
	uint64_t csize = 1ull << c->o->chunk_bits;
	int ret;

	if ((ret = file_begin(c, n)))
		return ret;
	for (uint64_t i = 0; i < n->nchunks; i++) {
		uint64_t start = i * csize;
		uint32_t len = (uint32_t)SK_MIN(csize, n->size - start);
		struct slot *s;

		/* the stream is read here, in order; workers hash and compress */
		if (!fmt_tar_has_data(ent, start, len)) {
			n->chunks[i].blkaddr = htole32(EROFS_NULL_ADDR);
			c->t->stats->chunks_hole++;
			continue;
		}
		if ((ret = next_slot(c, &s)))
			return ret;
		ret = fmt_tar_read(tar, start, s->buf, len);
		if (ret) {
			sk_err_set(c->t->err, "%s", fmt_tar_error(tar));
			return ret;
		}
		submit(c, s, NULL, start, n, i, len);
	}
	return 0;
}

/* Waits for every queued chunk, committing in order; after an error only
 * waits, so that no worker touches a slot that is going away. */
static int drain(struct bld_data *c, int ret)
{
	for (unsigned int k = 0; k < c->nslots; k++) {
		struct slot *s = &c->slots[(c->next + k) % c->nslots];

		if (!s->busy)
			continue;
		sk_pool_wait(c->pool, &s->job);
		if (!ret)
			ret = commit(c, s);
		else
			file_put(s->f);
		s->busy = false;
	}
	return ret;
}

/*
 * Linux's fscache read path (6.1 at least) zero-fills the rest of a
 * readahead window when it meets an unmapped chunk, wiping mapped data
 * that follows in the same window. So a hole is left unmapped only when
 * no data follows it in its file; the other holes share one all-zero
 * chunk, stored once (a few bytes compressed), appended after the blob's
 * files so the blob stays reproducible. A zero chunk an earlier blob of
 * the build (or the chunk dictionary) holds is reused.
 */
static int map_inner_holes(struct bld_data *c, struct slot *s)
{
	uint64_t csize = 1ull << c->o->chunk_bits;
	uint16_t zero_dev = 0;
	uint32_t zero_blk = 0;
	int ret;

	for (uint64_t f = 0; f < c->nfiles; f++) {
		struct bld_node *n = c->files[f];
		uint64_t last = n->nchunks;

		while (last > 0 &&
		       le32toh(n->chunks[last - 1].blkaddr) == EROFS_NULL_ADDR)
			last--;
		for (uint64_t i = 0; i + 1 < last; i++) {
			if (le32toh(n->chunks[i].blkaddr) != EROFS_NULL_ADDR)
				continue;
			if (!zero_dev) {
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
				zero_dev = le16toh(n->chunks[i].device_id);
				zero_blk = le32toh(n->chunks[i].blkaddr);
				c->t->stats->chunks_hole--;
				continue;
			}
			n->chunks[i].device_id = htole16(zero_dev);
			n->chunks[i].blkaddr = htole32(zero_blk);
			c->t->stats->chunks_hole--;
			c->t->stats->chunks++;
		}
	}
	return 0;
}

int bld_blob_seal(int fd, struct sk_sha256_ctx *h, uint64_t *soff,
		  const struct fmt_chunk *chunks, uint64_t n, uint64_t usize,
		  struct bld_blob *b, struct sk_err *e)
{
	struct fmt_blob_table t = { 0 };
	struct skiff_blob_footer f;
	struct skiff_chunk_rec *recs;
	size_t tsize = n * sizeof(*recs);
	int ret;

	recs = malloc(tsize ? tsize : 1);
	if (!recs)
		return -ENOMEM;
	for (uint64_t i = 0; i < n; i++)
		fmt_chunk_encode(&chunks[i], &recs[i]);
	t.table_off = *soff;
	t.table_size = tsize;
	t.count = n;
	t.usize = usize;
	sk_sha256(recs, tsize, t.table_digest);
	ret = bld_blob_write(fd, h, soff, recs, tsize, e);
	free(recs);
	if (ret)
		return ret;
	fmt_blob_footer_encode(&t, &f);
	ret = bld_blob_write(fd, h, soff, &f, sizeof(f), e);
	if (ret)
		return ret;
	sk_sha256_final(h, b->id);
	b->stored_size = *soff;
	b->usize = t.usize;
	b->table_off = t.table_off;
	b->table_size = t.table_size;
	b->count = t.count;
	memcpy(b->table_digest, t.table_digest, SK_SHA256_LEN);
	return 0;
}

static int finish_blob(struct bld_data *c, struct bld_blob *b)
{
	return bld_blob_seal(c->fd, &c->blob_hash, &c->soff, c->chunks,
			     c->nchunks, c->uoff, b, c->t->err);
}

int bld_data_begin_blob(struct bld_data *c, uint32_t blob, int fd)
{
	int ret;

	if (blob >= UINT16_MAX) {
		sk_err_set(c->t->err, "too many blobs");
		return -E2BIG;
	}
	ret = sk_sha256_init(&c->blob_hash);
	if (ret)
		return ret;
	c->hash_live = true;
	c->open = true;
	c->blob = blob;
	c->fd = fd;
	c->nchunks = c->nfiles = 0;
	c->soff = c->uoff = 0;
	return 0;
}

int bld_data_end_blob(struct bld_data *c, struct bld_blob *blob)
{
	int ret = drain(c, 0);

	memset(blob, 0, sizeof(*blob));
	if (!ret)
		ret = map_inner_holes(c, &c->slots[0]);
	if (!ret && c->nchunks)
		ret = finish_blob(c, blob);
	if (!ret) {
		progress(c, 1);
		c->stored_done += c->soff;
		c->usize_done += c->uoff;
	}
	c->soff = c->uoff = 0;
	if (c->hash_live)
		sk_sha256_free(&c->blob_hash);
	c->hash_live = false;
	c->open = false;
	return ret;
}

void bld_data_abort_blob(struct bld_data *c)
{
	drain(c, -ECANCELED);
	if (c->hash_live)
		sk_sha256_free(&c->blob_hash);
	c->hash_live = false;
	c->open = false;
	c->soff = c->uoff = 0;
}

int bld_data_new(struct bld_data **out, struct bld_tree *t,
		 const struct fmt_build_opts *o)
{
	struct bld_data *c = calloc(1, sizeof(*c));
	uint64_t csize = 1ull << o->chunk_bits;
	int ret = -ENOMEM;

	*out = NULL;
	if (!c)
		return -ENOMEM;
	c->t = t;
	c->o = o;
	c->nthreads = o->threads ? o->threads : sk_ncpus();
	/* Many slots, so that a run of tiny files never starves the workers
	 * while one big chunk is being compressed; bounded so that buffers
	 * (chunk + compressed copy, touched only as far as used) stay within
	 * about 256 MiB for large chunks. */
	c->nslots = (unsigned int)SK_MAX((uint64_t)2 * c->nthreads + 2,
				SK_MIN((uint64_t)256, (128ull << 20) / csize));
	c->slots = calloc(c->nslots, sizeof(*c->slots));
	if (!c->slots)
		goto fail;
	if (o->compress == SKIFF_COMP_ZSTD) {
		c->cctxs = calloc(c->nthreads, sizeof(*c->cctxs));
		if (!c->cctxs)
			goto fail;
		for (unsigned int i = 0; i < c->nthreads; i++)
			if (!(c->cctxs[i] = ZSTD_createCCtx()))
				goto fail;
	}
	for (unsigned int i = 0; i < c->nslots; i++) {
		struct slot *s = &c->slots[i];

		s->buf = malloc(csize);
		s->compress = o->compress;
		s->level = o->level;
		if (!s->buf)
			goto fail;
		if (o->compress == SKIFF_COMP_ZSTD) {
			s->ccap = ZSTD_compressBound(csize);
			s->cbuf = malloc(s->ccap);
			s->cctxs = c->cctxs;
			if (!s->cbuf)
				goto fail;
		}
	}
	ret = sk_pool_create(&c->pool, c->nthreads);
	if (ret)
		goto fail;
	*out = c;
	return 0;
fail:
	bld_data_free(c);
	return ret;
}

void bld_data_free(struct bld_data *c)
{
	if (!c)
		return;
	if (c->pool)
		drain(c, -ECANCELED);
	sk_pool_destroy(c->pool);
	for (unsigned int i = 0; c->slots && i < c->nslots; i++) {
		free(c->slots[i].buf);
		free(c->slots[i].cbuf);
	}
	for (unsigned int i = 0; c->cctxs && i < c->nthreads; i++)
		ZSTD_freeCCtx(c->cctxs[i]);
	if (c->hash_live)
		sk_sha256_free(&c->blob_hash);
	free(c->cctxs);
	free(c->slots);
	free(c->chunks);
	free(c->known);
	free(c->dd.slots);
	free(c->files);
	free(c);
}

int bld_data(struct bld_tree *t, const struct fmt_build_opts *o, int blob_fd,
	     struct bld_blob *blob)
{
	struct bld_data *c;
	int ret;

	memset(blob, 0, sizeof(*blob));
	ret = bld_data_new(&c, t, o);
	if (ret)
		return ret;
	ret = bld_data_begin_blob(c, 0, blob_fd);
	/* the prefetch list first, in its order: prefetching it then reads
	 * the blob front to back */
	for (size_t i = 0; i < t->nprefetch && !ret; i++)
		if (t->prefetch[i]->size)
			ret = bld_data_file(c, t->prefetch[i]);
	for (struct bld_node *n = t->head; n && !ret; n = n->next) {
		if ((n->mode & S_IFMT) != S_IFREG || !n->size || n->in_prefetch)
			continue;
		ret = bld_data_file(c, n);
	}
	if (!ret)
		ret = bld_data_end_blob(c, blob);
	bld_data_free(c);
	return ret;
}
