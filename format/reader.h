/* SPDX-License-Identifier: Apache-2.0 */
/*
 * File data reader: maps a regular file's bytes through its chunk indexes
 * to blob chunks, fetches stored bytes through a caller-supplied source,
 * and hands out only verified data. Chunk tables are loaded lazily, once
 * per blob, and checked against the bootstrap's blob table.
 */
#ifndef SKIFF_FORMAT_READER_H
#define SKIFF_FORMAT_READER_H

#include "blob.h"
#include "bootstrap.h"

/* Reads stored bytes [off, off+len) of blob slot `blob` (0-based). */
struct fmt_blob_src {
	int (*read)(void *ctx, unsigned int blob, uint64_t off, void *buf,
		    size_t len);
	void *ctx;
};

struct fmt_reader {
	struct fmt_bs *bs;		/* borrowed */
	struct fmt_blob_src src;
	struct fmt_blob_table *tables;	/* owned, nblobs entries */
	uint8_t *loaded;		/* per blob: table parsed */
	uint8_t *sbuf, *ubuf;		/* stored / decoded chunk scratch */
	int cached_blob;		/* chunk held in ubuf, -1 for none */
	uint64_t cached_uoff;
	struct sk_err err;
};

int fmt_reader_init(struct fmt_reader *r, struct fmt_bs *bs,
		    const struct fmt_blob_src *src);
void fmt_reader_free(struct fmt_reader *r);
/* Loads and verifies blob i's footer and chunk table. */
int fmt_reader_table(struct fmt_reader *r, unsigned int i,
		     const struct fmt_blob_table **out);
/* Fetches and verifies one chunk into the reader's buffer. */
int fmt_reader_chunk(struct fmt_reader *r, unsigned int blob,
		     const struct fmt_chunk *c, const uint8_t **data);
/* Maps chunk i of a file to its blob chunk (NULL *c for a hole) and checks
 * that the chunk has the length the file needs there. */
int fmt_reader_map(struct fmt_reader *r, const struct fmt_inode *ino,
		   uint64_t i, unsigned int *blob, const struct fmt_chunk **c);
/* Reads file bytes; returns the count (short only at end of file). */
ssize_t fmt_reader_pread(struct fmt_reader *r, const struct fmt_inode *ino,
			 void *buf, size_t len, uint64_t off);

#endif
