/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the blob footer and chunk table parsers, lookups, and
 * chunk decoding. The input is laid out like the end and start of a
 * stored blob glued together:
 *
 *   [0, 128)            footer
 *   [128, 128 + T)      chunk table, T = the footer's table_size
 *   [128 + T, size)     the data area's first bytes (chunk soff 0 here)
 *
 * which is what tests/fuzz.t seeds it with (a real blob's last 128 bytes,
 * its chunk table, and its first chunks).
 *
 * Besides "no crash", it checks the promises the reader relies on: a
 * parsed table is sorted, non-overlapping and inside the blob, lookups
 * find exactly the listed chunks, and a chunk decodes exactly when its
 * bytes match its digest. A broken promise traps.
 */
#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "../../format/blob.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FOOTER sizeof(struct skiff_blob_footer)
#define DECODE_MAX (1u << 20)	/* larger chunks only cost time here */
#define CHECK_MAX 4096		/* chunks whose lookups are verified */

static void check_table(const struct fmt_blob_table *t)
{
	if (!t->chunks || t->count != t->table_size / sizeof(struct skiff_chunk_rec))
		__builtin_trap();
	for (uint64_t i = 0; i < t->count && i < CHECK_MAX; i++) {
		const struct fmt_chunk *c = &t->chunks[i];

		if (c->usize == 0 || c->usize > FMT_CHUNK_MAX || c->uoff % EROFS_BLKSIZ ||
		    c->uoff + c->usize > t->usize || c->soff + c->ssize > t->table_off ||
		    (c->comp == SKIFF_COMP_NONE && c->ssize != c->usize))
			__builtin_trap();
		if (i + 1 < t->count &&
		    (t->chunks[i + 1].uoff < c->uoff + c->usize ||
		     t->chunks[i + 1].soff < c->soff + c->ssize))
			__builtin_trap();
		if (fmt_blob_find(t, c->uoff) != c ||
		    fmt_blob_lower_bound(t, c->uoff) != i ||
		    fmt_blob_lower_bound(t, c->uoff + c->usize - 1) != i)
			__builtin_trap();
		if (c->usize > 1 && fmt_blob_find(t, c->uoff + 1))
			__builtin_trap();
	}
	if (fmt_blob_lower_bound(t, UINT64_MAX) != t->count ||
	    (t->count && fmt_blob_lower_bound(t, 0) != 0) ||
	    fmt_blob_find(t, t->usize) != NULL)
		__builtin_trap();
}

/* Decodes c from its stored bytes; then again with the digest its bytes
 * really have, which must succeed exactly when the bytes decompress. */
static void check_decode(const struct fmt_chunk *c, const uint8_t *stored)
{
	struct fmt_chunk fixed = *c;
	struct sk_err e;
	uint8_t *out = malloc(c->usize), *ref = malloc(c->usize);
	int ret, expect_ok;

	if (!out || !ref)
		abort();
	ret = fmt_chunk_decode(c, stored, out, &e);
	if (ret != 0 && ret != -EBADMSG)
		__builtin_trap();
	if (c->comp == SKIFF_COMP_NONE) {
		memcpy(ref, stored, c->usize);
		expect_ok = 1;
	} else {
		size_t n = ZSTD_decompress(ref, c->usize, stored, c->ssize);

		expect_ok = !ZSTD_isError(n) && n == c->usize;
	}
	if (ret == 0 && (!expect_ok || memcmp(out, ref, c->usize)))
		__builtin_trap();
	if (expect_ok) {
		sk_sha256(ref, c->usize, fixed.digest);
		if (fmt_chunk_decode(&fixed, stored, out, &e) != 0 ||
		    memcmp(out, ref, c->usize))
			__builtin_trap();
		fixed.digest[0] ^= 1;
		if (fmt_chunk_decode(&fixed, stored, out, &e) != -EBADMSG)
			__builtin_trap();
	} else if (ret == 0) {
		__builtin_trap();
	}
	free(out);
	free(ref);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct skiff_blob_footer f;
	struct fmt_blob_table t;
	struct sk_err e;
	const uint8_t *table, *area;
	uint8_t *copy;
	uint64_t stored, area_len;
	int ret;

	if (size < FOOTER)
		return 0;
	memcpy(&f, data, FOOTER);
	/* the input size is rarely the blob's: this mostly takes the
	 * rejecting paths */
	if (fmt_blob_footer_parse(data, FOOTER, size, &t, &e) == 0 &&
	    t.table_off + t.table_size + FOOTER != size)
		__builtin_trap();
	/* the stored size the footer implies (wrapping on purpose: the
	 * parser must reject geometry that only adds up modulo 2^64) */
	stored = le64toh(f.table_off) + le64toh(f.table_size) + FOOTER;
	if (fmt_blob_footer_parse(data, FOOTER, stored, &t, &e))
		return 0;
	if (t.table_off > stored - FOOTER || t.table_off + t.table_size + FOOTER != stored)
		__builtin_trap();
	if (t.table_size > size - FOOTER)
		return 0;

	/* an exact-size copy, so a parser overread hits ASan's redzone */
	copy = malloc(t.table_size ? t.table_size : 1);
	if (!copy)
		abort();
	memcpy(copy, data + FOOTER, t.table_size);
	table = copy;
	area = data + FOOTER + t.table_size;
	area_len = size - FOOTER - t.table_size;

	ret = fmt_blob_table_parse(&t, table, t.table_size, &e);
	if (ret == 0)
		fmt_blob_table_free(&t);
	else if (t.chunks)
		__builtin_trap();
	/*
	 * The table is digest-protected and a mutation cannot forge SHA-256,
	 * so patch the footer's digest to the table's real one (as a
	 * malicious blob writer would) to reach the record checks.
	 */
	sk_sha256(table, t.table_size, t.table_digest);
	ret = fmt_blob_table_parse(&t, table, t.table_size, &e);
	if (ret == 0) {
		check_table(&t);
		for (uint64_t i = 0; i < t.count && i < 4; i++) {
			const struct fmt_chunk *c = &t.chunks[i];

			if (c->usize <= DECODE_MAX && c->soff <= area_len &&
			    c->ssize <= area_len - c->soff)
				check_decode(c, area + c->soff);
		}
		fmt_blob_table_free(&t);
	} else if (ret != -EINVAL && ret != -EBADMSG && ret != -ENOMEM) {
		__builtin_trap();
	}
	free(copy);
	return 0;
}
