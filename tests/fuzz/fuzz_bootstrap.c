/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the bootstrap reader on arbitrary bytes. Opens the
 * input with fmt_bs_open and, when it opens, walks the whole tree reading
 * every xattr, every symlink target and every chunk index (one by one and
 * as blob ranges through fmt_bs_chunks), the prefetch list, then resolves
 * a few paths. Any crash, sanitizer report, timeout or broken invariant
 * (__builtin_trap) is a bug in format/bootstrap.c or format/walk.c.
 *
 * File data is not read through fmt_reader here: that needs blob bytes,
 * and the blob parsers have their own target (fuzz_chunktable.c).
 */
#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../format/bootstrap.h"
#include "../../format/walk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct fuzz_ctx {
	struct fmt_bs *bs;
	uint8_t scratch[EROFS_BLKSIZ];
	unsigned int sink;	/* keeps reads of image bytes observable */
};

static void touch(struct fuzz_ctx *c, const void *p, size_t len)
{
	const volatile uint8_t *b = p;

	/* every byte handed out must be inside the buffer: ASan checks */
	for (size_t i = 0; i < len; i++)
		c->sink += b[i];
}

static int xattr_cb(void *ctx, const struct fmt_xattr *x)
{
	struct fuzz_ctx *c = ctx;
	char name[EROFS_NAME_LEN + 64];
	int n = fmt_xattr_fullname(x, name, sizeof(name));

	if (n >= (int)sizeof(name))
		__builtin_trap();
	touch(c, x->name, x->namelen);
	touch(c, x->value, x->value_len);
	return 0;
}

static int dirent_cb(void *ctx, const struct fmt_dirent *de)
{
	struct fuzz_ctx *c = ctx;

	if (de->namelen == 0 || de->namelen > EROFS_NAME_LEN ||
	    de->type >= EROFS_FT_MAX)
		__builtin_trap();
	touch(c, de->name, de->namelen);
	return 0;
}

struct range_ctx {
	struct fuzz_ctx *c;
	const struct fmt_inode *ino;
	uint64_t next;		/* lowest index the next range may have */
};

/* What fmt_bs_chunks promises of each range, checked against the chunk
 * index read on its own. */
static int range_cb(void *ctx, const struct fmt_chunk_range *r)
{
	struct range_ctx *rc = ctx;
	const struct fmt_inode *ino = rc->ino;
	uint64_t csize = 1ull << ino->chunk_bits;
	unsigned int dev;
	uint32_t blk;

	if (r->index < rc->next || r->index >= ino->chunk_count ||
	    r->blob >= rc->c->bs->nblobs || r->len == 0 || r->len > csize ||
	    r->len != SK_MIN(csize, ino->size - r->index * csize) ||
	    (uint64_t)r->blkaddr * EROFS_BLKSIZ +
		    SK_ALIGN_UP(r->len, (uint64_t)EROFS_BLKSIZ) >
		    rc->c->bs->blobs[r->blob].usize)
		__builtin_trap();
	if (fmt_bs_chunk(rc->c->bs, ino, r->index, &dev, &blk) ||
	    dev != r->blob + 1 || blk != r->blkaddr)
		__builtin_trap();
	rc->next = r->index + 1;
	return 0;
}

static int walk_cb(void *ctx, const char *path, size_t pathlen,
		   const struct fmt_inode *ino)
{
	struct fuzz_ctx *c = ctx;
	uint64_t nid;

	if (strlen(path) != pathlen || path[0] != '/')
		__builtin_trap();
	/* per-inode errors do not stop the walk: later inodes get their turn */
	fmt_bs_xattrs(c->bs, ino, xattr_cb, c);
	switch (ino->mode & S_IFMT) {
	case S_IFLNK:
		if (ino->size == 0 || ino->size >= sizeof(c->scratch))
			__builtin_trap();	/* fmt_bs_inode promised otherwise */
		fmt_bs_read_flat(c->bs, ino, 0, c->scratch, ino->size);
		break;
	case S_IFDIR:
		/* the walk reads the entries; a lookup and a raw read of the
		 * last byte take the other paths through the same blocks */
		fmt_bs_readdir(c->bs, ino, dirent_cb, c);
		fmt_bs_lookup(c->bs, ino, "zz", 2, &nid);
		if (ino->size)
			fmt_bs_read_flat(c->bs, ino, ino->size - 1, c->scratch, 1);
		break;
	case S_IFREG:
		for (uint64_t i = 0; i < ino->chunk_count; i++) {
			unsigned int dev;
			uint32_t blk;

			if (fmt_bs_chunk(c->bs, ino, i, &dev, &blk))
				continue;
			if (dev > c->bs->nblobs)
				__builtin_trap();
		}
		if (fmt_bs_chunk(c->bs, ino, ino->chunk_count, &(unsigned int){ 0 },
				 &(uint32_t){ 0 }) != -EINVAL)
			__builtin_trap();
		/* the same indexes as ranges: stops at the first bad one */
		{
			struct range_ctx rc = { .c = c, .ino = ino };
			int ret = fmt_bs_chunks(c->bs, ino, range_cb, &rc);

			if (ret && ret != -EFSCORRUPTED)
				__builtin_trap();
		}
		break;
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const paths[] = {
		"/", "a", "/a/b", "//a/./b/", "/a/../b", "..", "/zz/zz/zz",
	};
	struct fuzz_ctx *c;
	struct fmt_inode ino;
	struct fmt_bs bs;
	uint8_t *buf;

	/* an exact-size private copy: overreads hit ASan's redzone, and the
	 * digest patch below needs a writable buffer */
	buf = malloc(size ? size : 1);
	c = calloc(1, sizeof(*c));
	if (!buf || !c)
		abort();
	memcpy(buf, data, size);

	/*
	 * fmt_bs_open verifies the SHA-256 of the skiff extension (the blob
	 * table) against ext_digest in the header at offset 0. A mutation
	 * cannot forge that digest, so almost every input would stop there
	 * and the EROFS parsing behind it would never be reached. When the
	 * header's ext_off/ext_size lie inside the input (and the extension
	 * does not cover the header itself), recompute the digest and patch
	 * it in, exactly as a malicious image builder would. The digest
	 * check itself stays covered by inputs whose range is out of bounds.
	 */
	if (size >= sizeof(struct skiff_bs_header)) {
		struct skiff_bs_header h;
		uint64_t off, len;

		memcpy(&h, buf, sizeof(h));
		off = le64toh(h.ext_off);
		len = le64toh(h.ext_size);
		if (off >= sizeof(h) && off <= size && len <= size - off) {
			sk_sha256(buf + off, (size_t)len, h.ext_digest);
			memcpy(buf + offsetof(struct skiff_bs_header, ext_digest),
			       h.ext_digest, sizeof(h.ext_digest));
		}
	}

	if (fmt_bs_open(&bs, buf, size) == 0) {
		c->bs = &bs;
		if (bs.nblobs && !bs.blobs)
			__builtin_trap();
		for (unsigned int i = 0; i < bs.nblobs; i++) {
			const struct fmt_blob_ref *b = &bs.blobs[i];

			/* readers size buffers from these: they must add up */
			if (b->stored_size < sizeof(struct skiff_blob_footer) ||
			    b->table_off > b->stored_size - sizeof(struct skiff_blob_footer) ||
			    b->table_off + b->table_size + sizeof(struct skiff_blob_footer) !=
				    b->stored_size ||
			    b->chunk_count * sizeof(struct skiff_chunk_rec) != b->table_size ||
			    b->usize % EROFS_BLKSIZ)
				__builtin_trap();
			touch(c, b->hex, SK_HEX_LEN);
		}
		fmt_bs_walk(&bs, walk_cb, c);
		/* the prefetch list: each NID is only a claim, checked by
		 * fmt_bs_inode as skiffd checks it */
		for (uint32_t i = 0; i < fmt_bs_prefetch_count(&bs) && i < 64; i++) {
			uint64_t pnid;

			if (fmt_bs_prefetch_nid(&bs, i, &pnid))
				__builtin_trap();
			if (fmt_bs_inode(&bs, pnid, &ino) == 0 && S_ISREG(ino.mode))
				walk_cb(c, "/", 1, &ino);
		}
		if (fmt_bs_prefetch_nid(&bs, fmt_bs_prefetch_count(&bs), &(uint64_t){ 0 }) !=
		    -EINVAL)
			__builtin_trap();
		for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
			fmt_bs_resolve(&bs, paths[i], &ino);
		fmt_bs_close(&bs);
	}
	free(c);
	free(buf);
	return 0;
}
