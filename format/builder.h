/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Image builder: walks a directory tree and writes one data blob (to a
 * caller-supplied fd, sequentially) and a bootstrap (returned in memory).
 * Output depends only on the tree and the options: no timestamps, no
 * random UUIDs unless the caller passes one.
 */
#ifndef SKIFF_FORMAT_BUILDER_H
#define SKIFF_FORMAT_BUILDER_H

#include <stddef.h>
#include <stdint.h>

#include "../common/sk.h"

struct fmt_build_stats {
	uint64_t inodes, files, dirs, symlinks, specials, hardlinks;
	uint64_t file_bytes;	/* logical size of all regular files */
	uint64_t read_bytes;	/* bytes read from the source (holes skipped) */
	uint64_t chunks;	/* chunk indexes that map data */
	uint64_t chunks_unique;	/* chunks stored in the blob */
	uint64_t chunks_hole;	/* unmapped (all-zero or sparse) chunks */
	uint64_t chunks_compressed;
	uint64_t blob_usize;	/* cache-file size of the blob */
	uint64_t blob_stored;	/* stored blob size */
	uint64_t bootstrap_size;
};

struct fmt_build_opts {
	unsigned int chunk_bits;	/* 12..26 */
	int compress;			/* SKIFF_COMP_NONE or SKIFF_COMP_ZSTD */
	int level;			/* zstd level */
	unsigned int threads;		/* 0: one per CPU */
	const uint8_t *uuid;		/* 16 bytes or NULL for zeros */
	/* Called from the building thread now and then, and once at the end. */
	void (*progress)(void *ctx, const struct fmt_build_stats *s, int final);
	void *progress_ctx;
};

struct fmt_build_result {
	int has_blob;			/* 0 when the tree has no file data */
	uint8_t blob_id[SK_SHA256_LEN];
	uint64_t blob_size;
	void *bootstrap;		/* owned by the caller: free() */
	size_t bootstrap_size;
	struct fmt_build_stats stats;
};

int fmt_build(const char *srcdir, const struct fmt_build_opts *o, int blob_fd,
	      struct fmt_build_result *res, struct sk_err *e);

#endif
