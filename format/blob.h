/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Data blobs: chunk table and footer, encode and (untrusted) parse, and
 * chunk decoding with digest verification.
 */
#ifndef SKIFF_FORMAT_BLOB_H
#define SKIFF_FORMAT_BLOB_H

#include <stddef.h>
#include <stdint.h>

#include "../common/sk.h"
#include "ondisk.h"

#define FMT_CHUNK_MAX	(64u << 20)	/* largest chunk the format allows */
#define FMT_CHUNK_MIN	4096u

/* Packed: skiffd keeps one per chunk of every registered blob, and 57
 * bytes instead of 64 is what holds its memory under 64 bytes a chunk
 * (bench/scale-bench.sh). Members are read by value, never by address. */
struct fmt_chunk {
	uint64_t uoff;
	uint64_t soff;
	uint32_t usize;
	uint32_t ssize;
	uint8_t comp;
	uint8_t digest[SK_SHA256_LEN];
} __attribute__((packed));

/* What a blob says about itself; chunks is owned (malloc'd). */
struct fmt_blob_table {
	uint64_t stored_size;
	uint64_t usize;
	uint64_t table_off;
	uint64_t table_size;
	uint64_t count;
	uint8_t table_digest[SK_SHA256_LEN];
	struct fmt_chunk *chunks;
};

void fmt_chunk_encode(const struct fmt_chunk *c, struct skiff_chunk_rec *out);
void fmt_blob_footer_encode(const struct fmt_blob_table *t,
			    struct skiff_blob_footer *out);

/* Fills t's geometry from the last 128 bytes of a stored blob. */
int fmt_blob_footer_parse(const void *buf, size_t len, uint64_t stored_size,
			  struct fmt_blob_table *t, struct sk_err *e);
/*
 * Parses and validates a chunk table against t's geometry (from the footer
 * or the bootstrap's blob table): digest, record sanity, ascending
 * non-overlapping cache offsets, stored ranges inside the data area.
 */
int fmt_blob_table_parse(struct fmt_blob_table *t, const void *buf, size_t len,
			 struct sk_err *e);
void fmt_blob_table_free(struct fmt_blob_table *t);
/* The chunk that starts at cache offset uoff, or NULL. */
const struct fmt_chunk *fmt_blob_find(const struct fmt_blob_table *t,
				      uint64_t uoff);
/* Index of the first chunk whose cache range ends after uoff. */
uint64_t fmt_blob_lower_bound(const struct fmt_blob_table *t, uint64_t uoff);
/* Checks data[usize] (uncompressed) against the chunk's digest. */
int fmt_chunk_verify(const struct fmt_chunk *c, const void *data,
		     struct sk_err *e);
/* Decompresses (if needed) into out[usize] and verifies the digest. */
int fmt_chunk_decode(const struct fmt_chunk *c, const void *stored,
		     void *out, struct sk_err *e);

#endif
