/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Streaming tar reader: container image layers (ustar, PAX extended
 * headers, GNU long names and sparse files), plain, gzip or zstd, read
 * once from a caller-supplied byte source and never unpacked to disk.
 * Every header byte is untrusted: fields are bound-checked and a bad
 * archive is -EINVAL (or -EIO when it ends early) with a message in the
 * reader's err. The reader also hashes what it reads, so a caller checks
 * a layer's digest (compressed bytes) and diff id (tar bytes) on the way.
 */
#ifndef SKIFF_FORMAT_TAR_H
#define SKIFF_FORMAT_TAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "../common/sk.h"

/* Where the archive bytes come from: read() returns the count read (at
 * most len), 0 at the end, or -errno. */
struct fmt_tar_src {
	ssize_t (*read)(void *ctx, void *buf, size_t len);
	void *ctx;
};

enum fmt_tar_comp {
	FMT_TAR_PLAIN,
	FMT_TAR_GZIP,
	FMT_TAR_ZSTD,
};

struct fmt_tar_xattr {
	char *name;		/* full name, "user.foo"; NUL-terminated */
	uint8_t *value;
	size_t vlen;
};

/* The largest file size (and member data size) the reader passes on. */
#define FMT_TAR_SIZE_MAX ((uint64_t)INT64_MAX)

/* A data segment of a (sparse) file: logical offset and length. */
struct fmt_tar_seg {
	uint64_t off, len;
};

enum fmt_tar_type {
	FMT_TAR_REG = '0',
	FMT_TAR_HARDLINK = '1',
	FMT_TAR_SYMLINK = '2',
	FMT_TAR_CHR = '3',
	FMT_TAR_BLK = '4',
	FMT_TAR_DIR = '5',
	FMT_TAR_FIFO = '6',
};

/* One archive member. Valid until the next fmt_tar_next(); the reader
 * owns every pointer in it. */
struct fmt_tar_entry {
	enum fmt_tar_type type;
	const char *path;	/* as stored, NUL-terminated, no NUL inside */
	const char *link;	/* symlink target / hard-link target, or "" */
	uint32_t mode;		/* S_IFMT bits for the type | 07777 */
	uint32_t uid, gid;
	int64_t mtime;
	uint32_t mtime_nsec;
	uint64_t size;		/* regular files: logical size, <= FMT_TAR_SIZE_MAX */
	uint32_t devmajor, devminor;
	const struct fmt_tar_xattr *xattrs;	/* in archive order */
	unsigned int nxattrs;
	/* Data segments, ascending and disjoint, inside [0, size): one
	 * covering the file unless it is sparse. */
	const struct fmt_tar_seg *segs;
	size_t nsegs;
	bool sparse;
};

struct fmt_tar;

/* Detects the compression from the first bytes (gzip 1f 8b, zstd
 * 28 b5 2f fd, else plain tar). The source must outlive the reader. */
int fmt_tar_open(struct fmt_tar **out, const struct fmt_tar_src *src,
		 struct sk_err *e);
/* 1 and *ent at the next member, 0 at the end of the archive (the rest of
 * the stream has then been read and hashed), -errno on error. */
int fmt_tar_next(struct fmt_tar *t, const struct fmt_tar_entry **ent);
/*
 * Logical bytes [off, off+len) of the current regular file into buf,
 * holes as zeros. Calls must not go backwards (off >= the end of the
 * previous read): the archive is a stream.
 */
int fmt_tar_read(struct fmt_tar *t, uint64_t off, void *buf, size_t len);
/* Whether any data segment of the entry meets [off, off+len). */
bool fmt_tar_has_data(const struct fmt_tar_entry *ent, uint64_t off,
		      uint64_t len);
/* After fmt_tar_next() returned 0: SHA-256 of the bytes the source gave
 * and of the uncompressed archive. */
void fmt_tar_digests(struct fmt_tar *t, uint8_t stream[SK_SHA256_LEN],
		     uint8_t archive[SK_SHA256_LEN]);
enum fmt_tar_comp fmt_tar_compression(const struct fmt_tar *t);
/* Bytes read from the source so far (for progress). */
uint64_t fmt_tar_stream_bytes(const struct fmt_tar *t);
/* Bytes of the (uncompressed) archive parsed so far: after
 * fmt_tar_next(), up to the end of the member's header. */
uint64_t fmt_tar_archive_bytes(const struct fmt_tar *t);
const char *fmt_tar_error(const struct fmt_tar *t);
void fmt_tar_close(struct fmt_tar *t);

#endif
