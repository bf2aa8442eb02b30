/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Bootstrap reader. A bootstrap is untrusted input: every offset, length
 * and count is checked against the buffer before use, so a malformed image
 * yields -EFSCORRUPTED (or -EINVAL) with a message, never a crash or an
 * endless loop. The reader borrows the caller's buffer; it owns only the
 * decoded blob table.
 */
#ifndef SKIFF_FORMAT_BOOTSTRAP_H
#define SKIFF_FORMAT_BOOTSTRAP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "../common/sk.h"
#include "ondisk.h"

#ifndef EFSCORRUPTED
#define EFSCORRUPTED EUCLEAN
#endif

/* One data blob as the bootstrap's blob table describes it. */
struct fmt_blob_ref {
	uint8_t id[SK_SHA256_LEN];
	char hex[SK_HEX_LEN + 1];
	uint64_t stored_size;
	uint64_t usize;
	uint64_t table_off;
	uint64_t table_size;
	uint64_t chunk_count;
	uint8_t table_digest[SK_SHA256_LEN];
};

struct fmt_bs {
	const uint8_t *buf;	/* borrowed */
	size_t size;
	uint64_t meta_off;
	uint64_t root_nid;
	uint64_t inos;
	uint32_t blocks;
	uint32_t chunk_bits;	/* build chunk size, log2 */
	uint32_t nblobs;
	struct fmt_blob_ref *blobs;	/* owned, nblobs entries */
	uint64_t prefetch_off, prefetch_size;	/* absolute, 0 if none */
	struct sk_err err;
};

struct fmt_inode {
	uint64_t nid;
	uint32_t mode, uid, gid, nlink;
	uint64_t size;
	uint64_t mtime;
	uint32_t mtime_nsec;
	uint32_t rdev;		/* EROFS (new_encode_dev) encoding */
	unsigned int layout;
	uint64_t pos;		/* byte offset of the inode */
	unsigned int isize;	/* 32 or 64 */
	unsigned int xattr_isize;
	uint32_t raw_blkaddr;
	unsigned int chunk_bits;	/* log2 chunk size (chunk-based) */
	uint64_t chunk_count;
	uint64_t chunk_pos;	/* offset of the first chunk index */
};

int fmt_bs_open(struct fmt_bs *bs, const void *buf, size_t size);
void fmt_bs_close(struct fmt_bs *bs);

int fmt_bs_inode(struct fmt_bs *bs, uint64_t nid, struct fmt_inode *out);
/* Reads directory or symlink bytes [off, off+len) of a flat inode. */
int fmt_bs_read_flat(struct fmt_bs *bs, const struct fmt_inode *ino,
		     uint64_t off, void *out, size_t len);

struct fmt_dirent {
	const char *name;	/* not NUL-terminated, points into the image */
	unsigned int namelen;
	uint64_t nid;
	unsigned int type;	/* EROFS_FT_* */
};
/* Calls cb for each entry (including "." and ".."); a non-zero return
 * from cb stops the walk and is returned. */
int fmt_bs_readdir(struct fmt_bs *bs, const struct fmt_inode *dir,
		   int (*cb)(void *ctx, const struct fmt_dirent *de), void *ctx);
int fmt_bs_lookup(struct fmt_bs *bs, const struct fmt_inode *dir,
		  const char *name, size_t namelen, uint64_t *nid);
/* Resolves an absolute or root-relative path without following symlinks. */
int fmt_bs_resolve(struct fmt_bs *bs, const char *path, struct fmt_inode *out);

struct fmt_xattr {
	unsigned int index;	/* EROFS_XATTR_INDEX_* */
	const char *name;	/* suffix after the prefix, not NUL-terminated */
	unsigned int namelen;
	const void *value;
	unsigned int value_len;
};
int fmt_bs_xattrs(struct fmt_bs *bs, const struct fmt_inode *ino,
		  int (*cb)(void *ctx, const struct fmt_xattr *x), void *ctx);
/* Full xattr name ("user.foo") into out; returns length or -errno. */
int fmt_xattr_fullname(const struct fmt_xattr *x, char *out, size_t outlen);

/* The prefetch list: NIDs of files in the order they are first read.
 * An entry is only a number: check it with fmt_bs_inode() before use. */
uint32_t fmt_bs_prefetch_count(const struct fmt_bs *bs);
int fmt_bs_prefetch_nid(struct fmt_bs *bs, uint32_t i, uint64_t *nid);
/* Chunk i of a chunk-based inode: device slot (0 = none/hole) and block. */
int fmt_bs_chunk(struct fmt_bs *bs, const struct fmt_inode *ino, uint64_t i,
		 unsigned int *device, uint32_t *blkaddr);

/* One mapped chunk of a regular file, as a range of a blob's cache file. */
struct fmt_chunk_range {
	uint64_t index;		/* chunk index in the file */
	uint64_t len;		/* file bytes in it: the chunk size, less for the last */
	unsigned int blob;	/* device slot, 0-based (chunk index device id - 1) */
	uint32_t blkaddr;	/* first 4 KiB block in the blob's cache file */
};
/*
 * Calls cb for each mapped chunk of a regular file in index order,
 * skipping holes. Every range lies inside its blob's cache file:
 * blkaddr * 4096 + len rounded up to 4096 <= that blob's usize. A chunk
 * index naming a device with no blob, or a range past the end of the
 * blob, is -EFSCORRUPTED with a message in bs->err, at the first such
 * chunk; a non-regular inode is -EINVAL. A non-zero return from cb stops
 * the walk and is returned.
 */
int fmt_bs_chunks(struct fmt_bs *bs, const struct fmt_inode *ino,
		  int (*cb)(void *ctx, const struct fmt_chunk_range *r),
		  void *ctx);

/* The dirent file type EROFS records for an inode mode. */
static inline unsigned int fmt_file_type(uint32_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG: return EROFS_FT_REG_FILE;
	case S_IFDIR: return EROFS_FT_DIR;
	case S_IFCHR: return EROFS_FT_CHRDEV;
	case S_IFBLK: return EROFS_FT_BLKDEV;
	case S_IFIFO: return EROFS_FT_FIFO;
	case S_IFSOCK: return EROFS_FT_SOCK;
	case S_IFLNK: return EROFS_FT_SYMLINK;
	default: return EROFS_FT_UNKNOWN;
	}
}

/* Encoding of device numbers the kernel uses (new_encode_dev). */
static inline uint32_t fmt_encode_dev(unsigned int major, unsigned int minor)
{
	return (minor & 0xff) | (major << 8) | ((minor & ~0xffu) << 12);
}
static inline unsigned int fmt_dev_major(uint32_t d)
{
	return (d & 0xfff00) >> 8;
}
static inline unsigned int fmt_dev_minor(uint32_t d)
{
	return (d & 0xff) | ((d >> 12) & 0xfff00);
}

#endif
