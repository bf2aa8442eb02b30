/* SPDX-License-Identifier: Apache-2.0 */
#include "check.h"
#include "walk.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct check {
	struct fmt_bs *bs;
	struct fmt_check *ck;
	uint32_t *refs;		/* names per nid */
	uint32_t *subdirs;	/* subdirectories per directory nid */
	uint64_t nslots;
	uint64_t dir;		/* the directory count_subdirs counts for */
};

static void problem(struct check *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void problem(struct check *c, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	c->ck->problems++;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->ck->problem(c->ck->ctx, msg);
}

/* A path for a message: names are untrusted bytes, so control bytes
 * become '?' and a long path is cut. */
static void show_path(char *out, size_t outlen, const char *path, size_t plen)
{
	size_t n = SK_MIN(plen, outlen - 1);

	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)path[i];

		out[i] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
	}
	out[n] = '\0';
}

static int xattr_ok(void *ctx, const struct fmt_xattr *x)
{
	(void)ctx;
	(void)x;
	return 0;
}

/* 0, or what ck->chunk returned */
static int check_chunks(struct check *c, const char *name,
			const struct fmt_inode *ino)
{
	struct fmt_bs *bs = c->bs;
	uint64_t csize = 1ull << ino->chunk_bits;

	for (uint64_t i = 0; i < ino->chunk_count; i++) {
		uint64_t want = SK_MIN(csize, ino->size - i * csize);
		const struct fmt_blob_table *t;
		const struct fmt_chunk *ch;
		struct sk_err e = { { 0 } };
		unsigned int dev;
		uint32_t blk;
		int ret = fmt_bs_chunk(bs, ino, i, &dev, &blk);

		if (ret) {
			problem(c, "%s: %s", name, bs->err.msg);
			return 0;
		}
		if (!dev)
			continue;	/* a hole */
		if ((uint64_t)blk * EROFS_BLKSIZ + want > bs->blobs[dev - 1].usize) {
			problem(c, "%s: chunk %llu lies past the end of blob %s", name,
				(unsigned long long)i, bs->blobs[dev - 1].hex);
			return 0;
		}
		if (!c->ck->table)
			continue;
		ret = c->ck->table(c->ck->ctx, dev - 1, &t, &e);
		if (ret) {
			problem(c, "%s: %s", name, e.msg);
			return 0;
		}
		ch = fmt_blob_find(t, (uint64_t)blk * EROFS_BLKSIZ);
		if (!ch || ch->usize != want) {
			problem(c, "%s: chunk %llu maps to no chunk of blob %s", name,
				(unsigned long long)i, bs->blobs[dev - 1].hex);
			return 0;
		}
		if (c->ck->chunk &&
		    (ret = c->ck->chunk(c->ck->ctx, ino, dev - 1, (uint64_t)(ch - t->chunks))))
			return ret;
	}
	return 0;
}

static int inode_cb(void *ctx, const char *path, size_t plen,
		    const struct fmt_inode *ino)
{
	struct check *c = ctx;
	struct fmt_bs *bs = c->bs;
	char name[512];

	if (ino->nid >= c->nslots)	/* fmt_bs_inode bounds nids */
		return -EFSCORRUPTED;
	if (c->refs[ino->nid]++)
		return 0;	/* another name of a checked inode */
	c->ck->inodes++;
	show_path(name, sizeof(name), path, plen);
	if (fmt_bs_xattrs(bs, ino, xattr_ok, NULL))
		problem(c, "%s: %s", name, bs->err.msg);
	if (S_ISLNK(ino->mode)) {
		char target[EROFS_BLKSIZ];

		if (ino->size == 0 || ino->size >= sizeof(target) ||
		    fmt_bs_read_flat(bs, ino, 0, target, ino->size) ||
		    memchr(target, '\0', ino->size))
			problem(c, "%s: unreadable symlink target", name);
	}
	return S_ISREG(ino->mode) ? check_chunks(c, name, ino) : 0;
}

static int count_subdirs(void *ctx, const struct fmt_dirent *de)
{
	struct check *c = ctx;

	if (de->type == EROFS_FT_DIR &&
	    !(de->namelen == 1 && de->name[0] == '.') &&
	    !(de->namelen == 2 && !memcmp(de->name, "..", 2)))
		c->subdirs[c->dir]++;
	return 0;
}

static int subdir_cb(void *ctx, const char *path, size_t plen,
		     const struct fmt_inode *ino)
{
	struct check *c = ctx;

	(void)path;
	(void)plen;
	if (!S_ISDIR(ino->mode))
		return 0;
	c->dir = ino->nid;
	return fmt_bs_readdir(c->bs, ino, count_subdirs, c);
}

/* Second pass: directories' link counts need every subdirectory seen. */
static int nlink_cb(void *ctx, const char *path, size_t plen,
		    const struct fmt_inode *ino)
{
	struct check *c = ctx;
	uint32_t want = S_ISDIR(ino->mode) ? 2 + c->subdirs[ino->nid]
					   : c->refs[ino->nid];
	char name[512];

	if (ino->nlink != want) {
		show_path(name, sizeof(name), path, plen);
		problem(c, "%s: link count %u, the tree has %u", name, ino->nlink, want);
	}
	return 0;
}

int fmt_bs_check(struct fmt_bs *bs, struct fmt_check *ck)
{
	struct check c = { .bs = bs, .ck = ck };
	int ret;

	ck->inodes = 0;
	ck->problems = 0;
	c.nslots = (bs->size >> EROFS_ISLOTBITS) + 1;
	c.refs = calloc(c.nslots, sizeof(*c.refs));
	c.subdirs = calloc(c.nslots, sizeof(*c.subdirs));
	if (!c.refs || !c.subdirs) {
		ret = -ENOMEM;
		goto out;
	}
	ret = fmt_bs_walk(bs, inode_cb, &c);
	if (!ret)
		ret = fmt_bs_walk(bs, subdir_cb, &c);
	/* refs now count names; the nlink pass must not add more */
	if (!ret)
		ret = fmt_bs_walk(bs, nlink_cb, &c);
	if (ret == -ENOMEM)
		goto out;
	if (ret)
		problem(&c, "bootstrap: %s", bs->err.msg[0] ? bs->err.msg : strerror(-ret));
	else if (ck->inodes != bs->inos)
		problem(&c, "bootstrap: superblock counts %llu inodes, the tree has %llu",
			(unsigned long long)bs->inos, (unsigned long long)ck->inodes);
	ret = ck->problems ? -EFSCORRUPTED : 0;
out:
	free(c.refs);
	free(c.subdirs);
	return ret;
}
