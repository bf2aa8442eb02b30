/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The prefetch blob of a layered build. Layers store file data in stream
 * order, so the files a workload reads first lie scattered over every
 * layer blob; this copies their stored chunks (as they are: no second
 * compression) into one more blob, in list order, so that prefetching
 * them is a few sequential reads, as in a directory build where the
 * list's data goes first.
 */
#include "build_int.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "blob.h"
#include "bootstrap.h"

/* (source blob, block) -> block in the prefetch blob: a chunk once */
struct moved {
	uint64_t key;		/* (blob << 32 | blkaddr) + 1, 0 = empty */
	uint32_t blkaddr;
};

struct pf {
	struct bld_tree *t;
	const struct bld_blob *blobs;
	const int *fds;
	unsigned int nblobs;
	struct fmt_blob_table *tables;	/* loaded on first use */
	bool *loaded;
	struct moved *map;
	size_t cap, used;
	struct fmt_chunk *chunks;	/* the new blob's table, cache order */
	uint64_t nchunks, cap_chunks;
	uint64_t soff, uoff;
	uint8_t *sbuf, *ubuf;		/* a stored chunk, its decoded bytes */
	size_t scap, ucap;
	int fd;
	struct sk_sha256_ctx hash;
	bool hash_live;
};

static struct moved *map_slot(struct moved *tab, size_t cap, uint64_t key)
{
	for (size_t i = (size_t)((key * 0x9e3779b97f4a7c15ull) >> 17) & (cap - 1);;
	     i = (i + 1) & (cap - 1))
		if (!tab[i].key || tab[i].key == key)
			return &tab[i];
}

static int map_grow(struct pf *p)
{
	size_t ncap;
	struct moved *nt;

	if (p->cap && p->used * 2 < p->cap)
		return 0;
	ncap = p->cap ? p->cap * 2 : 1024;
	nt = calloc(ncap, sizeof(*nt));
	if (!nt)
		return -ENOMEM;
	for (size_t i = 0; i < p->cap; i++)
		if (p->map[i].key)
			*map_slot(nt, ncap, p->map[i].key) = p->map[i];
	free(p->map);
	p->map = nt;
	p->cap = ncap;
	return 0;
}

/* Blob b's chunk table, read back from its fd and checked like any
 * stored blob's (a dictionary blob is a file we did not write). */
static int table(struct pf *p, unsigned int b, const struct fmt_blob_table **out)
{
	struct fmt_blob_table *tb = &p->tables[b];
	const struct bld_blob *bb = &p->blobs[b];
	struct sk_err *e = p->t->err;
	void *buf;
	int ret;

	if (p->loaded[b]) {
		*out = tb;
		return 0;
	}
	memset(tb, 0, sizeof(*tb));
	tb->stored_size = bb->stored_size;
	tb->usize = bb->usize;
	tb->table_off = bb->table_off;
	tb->table_size = bb->table_size;
	tb->count = bb->count;
	memcpy(tb->table_digest, bb->table_digest, SK_SHA256_LEN);
	if (bb->table_size > bb->stored_size || bb->table_off > bb->stored_size - bb->table_size) {
		sk_err_set(e, "blob %u: chunk table outside the blob", b);
		return -EFSCORRUPTED;
	}
	buf = malloc(bb->table_size ? bb->table_size : 1);
	if (!buf)
		return -ENOMEM;
	ret = sk_pread_full(p->fds[b], buf, bb->table_size, bb->table_off);
	if (ret)
		sk_err_set(e, "reading back blob %u: %s", b,
			   ret == -ENODATA ? "short file" : strerror(-ret));
	else
		ret = fmt_blob_table_parse(tb, buf, bb->table_size, e);
	free(buf);
	if (ret)
		return ret;
	p->loaded[b] = true;
	*out = tb;
	return 0;
}

static int grow_buf(uint8_t **buf, size_t *cap, size_t need)
{
	uint8_t *nb;

	if (need <= *cap)
		return 0;
	nb = realloc(*buf, need);
	if (!nb)
		return -ENOMEM;
	*buf = nb;
	*cap = need;
	return 0;
}

/* Appends chunk c of blob b (verified) to the prefetch blob; *blkaddr
 * is where it lands in the new cache file. */
static int copy_chunk(struct pf *p, unsigned int b, const struct fmt_chunk *c,
		      uint32_t *blkaddr)
{
	struct sk_err *e = p->t->err;
	struct fmt_chunk *nc;
	int ret;

	if (p->uoff / EROFS_BLKSIZ >= EROFS_NULL_ADDR) {
		sk_err_set(e, "larger than 16 TiB");
		return -EFBIG;
	}
	if (p->nchunks == p->cap_chunks) {
		uint64_t ncap = p->cap_chunks ? p->cap_chunks * 2 : 256;
		struct fmt_chunk *n = realloc(p->chunks, ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		p->chunks = n;
		p->cap_chunks = ncap;
	}
	if ((ret = grow_buf(&p->sbuf, &p->scap, c->ssize)) ||
	    (ret = grow_buf(&p->ubuf, &p->ucap, c->usize)))
		return ret;
	ret = sk_pread_full(p->fds[b], p->sbuf, c->ssize, c->soff);
	if (ret) {
		sk_err_set(e, "reading back blob %u: %s", b,
			   ret == -ENODATA ? "short file" : strerror(-ret));
		return ret;
	}
	/* what goes out under a digest is what the digest says */
	ret = fmt_chunk_decode(c, p->sbuf, p->ubuf, e);
	if (ret)
		return ret;
	if (!p->hash_live) {
		if ((ret = sk_sha256_init(&p->hash)))
			return ret;
		p->hash_live = true;
	}
	nc = &p->chunks[p->nchunks];
	*nc = *c;
	nc->uoff = p->uoff;
	nc->soff = p->soff;
	ret = bld_blob_write(p->fd, &p->hash, &p->soff, p->sbuf, c->ssize, e);
	if (ret)
		return ret;
	*blkaddr = (uint32_t)(p->uoff / EROFS_BLKSIZ);
	p->uoff += SK_ALIGN_UP((uint64_t)c->usize, EROFS_BLKSIZ);
	p->nchunks++;
	return 0;
}

/* Points chunk index ci at the prefetch blob, copying its chunk there
 * the first time. */
static int move_chunk(struct pf *p, struct erofs_inode_chunk_index *ci,
		      uint16_t new_dev)
{
	unsigned int b = le16toh(ci->device_id) - 1u;
	uint32_t blk = le32toh(ci->blkaddr);
	const struct fmt_blob_table *tb;
	const struct fmt_chunk *c;
	struct moved *m;
	int ret;

	if (b >= p->nblobs) {
		sk_err_set(p->t->err, "a chunk index names blob %u of %u",
			   b, p->nblobs);
		return -EINVAL;
	}
	if (p->fds[b] < 0)
		return 0;	/* not readable: the chunk stays where it is */
	if ((ret = map_grow(p)))
		return ret;
	m = map_slot(p->map, p->cap, ((uint64_t)b << 32 | blk) + 1);
	if (!m->key) {
		if ((ret = table(p, b, &tb)))
			return ret;
		c = fmt_blob_find(tb, (uint64_t)blk * EROFS_BLKSIZ);
		if (!c) {
			sk_err_set(p->t->err, "blob %u has no chunk at block %u",
				   b, blk);
			return -EFSCORRUPTED;
		}
		if ((ret = copy_chunk(p, b, c, &m->blkaddr)))
			return ret;
		m->key = ((uint64_t)b << 32 | blk) + 1;
		p->used++;
	}
	ci->device_id = htole16(new_dev);
	ci->blkaddr = htole32(m->blkaddr);
	return 0;
}

int bld_prefetch_blob(struct bld_tree *t, const struct bld_blob *blobs,
		      const int *fds, unsigned int nblobs, uint32_t new_blob,
		      int out_fd, struct bld_blob *b)
{
	struct pf p = { .t = t, .blobs = blobs, .fds = fds, .nblobs = nblobs,
			.fd = out_fd };
	int ret = 0;

	memset(b, 0, sizeof(*b));
	if (new_blob >= UINT16_MAX) {
		sk_err_set(t->err, "too many blobs");
		return -E2BIG;
	}
	p.tables = calloc(nblobs + 1, sizeof(*p.tables));
	p.loaded = calloc(nblobs + 1, sizeof(*p.loaded));
	if (!p.tables || !p.loaded)
		ret = -ENOMEM;
	for (size_t i = 0; !ret && i < t->nprefetch; i++) {
		struct bld_node *n = t->prefetch[i];

		for (uint64_t k = 0; !ret && S_ISREG(n->mode) && k < n->nchunks; k++)
			if (le32toh(n->chunks[k].blkaddr) != EROFS_NULL_ADDR)
				ret = move_chunk(&p, &n->chunks[k], (uint16_t)(new_blob + 1));
	}
	if (!ret && p.nchunks)
		ret = bld_blob_seal(out_fd, &p.hash, &p.soff, p.chunks, p.nchunks,
				    p.uoff, b, t->err);
	if (ret) {
		char m[sizeof(t->err->msg)];

		snprintf(m, sizeof(m), "%s", t->err->msg[0] ? t->err->msg : strerror(-ret));
		sk_err_set(t->err, "prefetch blob: %s", m);
		memset(b, 0, sizeof(*b));
	}
	if (p.hash_live)
		sk_sha256_free(&p.hash);
	for (unsigned int i = 0; p.tables && i < nblobs; i++)
		fmt_blob_table_free(&p.tables[i]);
	free(p.tables);
	free(p.loaded);
	free(p.map);
	free(p.chunks);
	free(p.sbuf);
	free(p.ubuf);
	return ret;
}
