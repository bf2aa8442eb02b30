/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The structural check of a bootstrap: what `skiff check` judges of the
 * metadata, and what skiffd runs before the kernel's EROFS parser sees a
 * bootstrap it got from a source. Every inode reachable from the root
 * (fmt_bs_walk's rules), its xattrs, symlink target and chunk indexes
 * (each names a device of the blob table and, given the blobs' chunk
 * tables, maps to exactly one chunk of the right size), link counts, and
 * the superblock's inode count.
 *
 * Bounded: time and memory are linear in the bootstrap's size (each
 * directory is walked once, each inode checked once whatever its names,
 * two 4-byte counters per 32-byte inode slot), so a limit on the
 * bootstrap's size bounds the check.
 */
#ifndef SKIFF_FORMAT_CHECK_H
#define SKIFF_FORMAT_CHECK_H

#include "blob.h"
#include "bootstrap.h"

/* The verified chunk table of blob `blob` (device slot blob + 1). */
typedef int (*fmt_check_table_fn)(void *ctx, unsigned int blob,
				  const struct fmt_blob_table **t,
				  struct sk_err *e);
/* One problem found, as a message naming the path or inode. */
typedef void (*fmt_check_problem_fn)(void *ctx, const char *msg);
/* A chunk of regular file `ino` found right: chunk `chunk` of blob
 * `blob`'s table. A non-zero return stops the check (-ENOMEM is
 * returned as it is). */
typedef int (*fmt_check_chunk_fn)(void *ctx, const struct fmt_inode *ino,
				  unsigned int blob, uint64_t chunk);

struct fmt_check {
	/* NULL: chunk indexes are judged against the blob table alone */
	fmt_check_table_fn table;
	fmt_check_problem_fn problem;	/* called for each problem found */
	/* NULL, or (with `table`) each inode's chunks in index order,
	 * holes skipped, each inode once whatever its names: what a caller
	 * that maps chunks to files needs, without walking again */
	fmt_check_chunk_fn chunk;
	void *ctx;
	/* out */
	uint64_t inodes;	/* distinct inodes reachable from the root */
	uint64_t problems;
};

/*
 * Checks the whole of bs. 0: no problem; -EFSCORRUPTED: ck->problems
 * problems were reported through ck->problem; another -errno (-ENOMEM)
 * when the check could not be done.
 */
int fmt_bs_check(struct fmt_bs *bs, struct fmt_check *ck);

#endif
