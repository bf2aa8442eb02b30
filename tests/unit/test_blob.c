/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for format/blob.c: chunk records and footer encode/parse,
 * every validation rule of the (untrusted) parsers, lookups, and chunk
 * decoding with digest verification.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "../../format/blob.h"
#include "tap.h"

#define NCHUNKS 3

/*
 * An in-memory blob: three chunks (raw 4 KiB, zstd 8 KiB, raw 100 bytes),
 * the chunk table, the footer. The data area leaves a gap before the
 * table so that soff rules can be probed without moving the table.
 */
struct blob {
	uint8_t *buf;
	size_t size;
	struct fmt_chunk c[NCHUNKS];
	uint8_t *plain[NCHUNKS];	/* uncompressed chunk bytes */
	uint64_t table_off, table_size, usize;
};

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1664525u + 1013904223u;
		p[i] = (uint8_t)(seed >> 24);
	}
}

static void blob_make(struct blob *b)
{
	static const uint32_t usize[NCHUNKS] = { 4096, 8192, 100 };
	uint8_t *data;
	size_t cap = 64 << 10, soff = 0;
	uint64_t uoff = 0;

	memset(b, 0, sizeof(*b));
	data = calloc(1, cap);
	if (!data)
		bail_out("out of memory");
	for (int i = 0; i < NCHUNKS; i++) {
		struct fmt_chunk *c = &b->c[i];

		b->plain[i] = malloc(usize[i]);
		if (!b->plain[i])
			bail_out("out of memory");
		if (i == 1)	/* compressible: a short pattern repeated */
			for (uint32_t k = 0; k < usize[i]; k++)
				b->plain[i][k] = (uint8_t)"skiff chunk "[k % 12];
		else
			fill(b->plain[i], usize[i], (uint32_t)i + 1);
		c->uoff = uoff;
		c->soff = soff;
		c->usize = usize[i];
		sk_sha256(b->plain[i], usize[i], c->digest);
		if (i == 1) {
			size_t n = ZSTD_compress(data + soff, cap - soff, b->plain[i],
						 usize[i], 3);

			if (ZSTD_isError(n) || n >= usize[i])
				bail_out("zstd did not compress the test chunk");
			c->comp = SKIFF_COMP_ZSTD;
			c->ssize = (uint32_t)n;
		} else {
			memcpy(data + soff, b->plain[i], usize[i]);
			c->comp = SKIFF_COMP_NONE;
			c->ssize = usize[i];
		}
		soff += c->ssize;
		uoff += SK_ALIGN_UP((uint64_t)usize[i], EROFS_BLKSIZ);
	}
	b->usize = uoff;
	b->table_off = soff + 20000;	/* slack for soff probes */
	b->table_size = NCHUNKS * sizeof(struct skiff_chunk_rec);
	b->size = b->table_off + b->table_size + sizeof(struct skiff_blob_footer);
	b->buf = calloc(1, b->size);
	if (!b->buf)
		bail_out("out of memory");
	memcpy(b->buf, data, soff);
	free(data);
}

/* Writes table and footer for chunks c[0..n) into b->buf; returns the
 * geometry a footer would carry, digest included. */
static void blob_seal(struct blob *b, const struct fmt_chunk *c, size_t n,
		      struct fmt_blob_table *t)
{
	struct skiff_chunk_rec *recs = (void *)(b->buf + b->table_off);
	struct skiff_blob_footer f;

	memset(t, 0, sizeof(*t));
	for (size_t i = 0; i < n; i++)
		fmt_chunk_encode(&c[i], &recs[i]);
	t->stored_size = b->size;
	t->usize = b->usize;
	t->table_off = b->table_off;
	t->table_size = n * sizeof(*recs);
	t->count = n;
	sk_sha256(recs, t->table_size, t->table_digest);
	fmt_blob_footer_encode(t, &f);
	memcpy(b->buf + b->size - sizeof(f), &f, sizeof(f));
}

static void blob_free(struct blob *b)
{
	for (int i = 0; i < NCHUNKS; i++)
		free(b->plain[i]);
	free(b->buf);
}

static void test_encoding(struct blob *b)
{
	struct skiff_chunk_rec r;
	struct skiff_blob_footer f;
	struct fmt_blob_table t;
	const uint8_t *p = (const uint8_t *)&r, *fp;
	uint64_t v64;
	uint32_t v32;

	fmt_chunk_encode(&b->c[1], &r);
	memcpy(&v64, p + 0, 8);
	is_int(le64toh(v64), b->c[1].uoff, "record: uoff at byte 0, little-endian");
	memcpy(&v64, p + 8, 8);
	is_int(le64toh(v64), b->c[1].soff, "record: soff at byte 8");
	memcpy(&v32, p + 16, 4);
	is_int(le32toh(v32), b->c[1].usize, "record: usize at byte 16");
	memcpy(&v32, p + 20, 4);
	is_int(le32toh(v32), b->c[1].ssize, "record: ssize at byte 20");
	is_int(p[24], SKIFF_COMP_ZSTD, "record: comp at byte 24");
	ok(!memcmp(p + 25, "\0\0\0\0\0\0\0", 7), "record: reserved bytes are zero");
	is_mem(p + 32, b->c[1].digest, 32, "record: digest at byte 32");

	blob_seal(b, b->c, NCHUNKS, &t);
	fp = b->buf + b->size - sizeof(f);
	is_mem(fp, SKIFF_BLOB_MAGIC, 8, "footer: magic");
	memcpy(&v32, fp + 8, 4);
	is_int(le32toh(v32), SKIFF_BLOB_VERSION, "footer: version");
	memcpy(&v64, fp + 16, 8);
	is_int(le64toh(v64), b->table_off, "footer: table_off at byte 16");
	memcpy(&v64, fp + 24, 8);
	is_int(le64toh(v64), b->table_size, "footer: table_size at byte 24");
	memcpy(&v64, fp + 32, 8);
	is_int(le64toh(v64), NCHUNKS, "footer: chunk_count at byte 32");
	memcpy(&v64, fp + 40, 8);
	is_int(le64toh(v64), b->usize, "footer: usize at byte 40");
	is_mem(fp + 48, t.table_digest, 32, "footer: table digest at byte 48");
}

static int chunks_equal(const struct fmt_chunk *a, const struct fmt_chunk *b,
			size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (a[i].uoff != b[i].uoff || a[i].soff != b[i].soff ||
		    a[i].usize != b[i].usize || a[i].ssize != b[i].ssize ||
		    a[i].comp != b[i].comp ||
		    memcmp(a[i].digest, b[i].digest, SK_SHA256_LEN))
			return 0;
	return 1;
}

static void test_round_trip(struct blob *b)
{
	struct fmt_blob_table t, sealed;
	struct sk_err e = { { 0 } };
	int ret;

	blob_seal(b, b->c, NCHUNKS, &sealed);
	ret = fmt_blob_footer_parse(b->buf + b->size - 128, 128, b->size, &t, &e);
	if (!is_int(ret, 0, "footer parses (%s)", e.msg)) {
		skip(10, "no footer");
		return;
	}
	is_int(t.stored_size, b->size, "footer: stored size");
	is_int(t.table_off, b->table_off, "footer: table offset");
	is_int(t.table_size, b->table_size, "footer: table size");
	is_int(t.count, NCHUNKS, "footer: chunk count");
	is_int(t.usize, b->usize, "footer: cache size");
	is_mem(t.table_digest, sealed.table_digest, 32, "footer: table digest");
	ret = fmt_blob_table_parse(&t, b->buf + t.table_off, t.table_size, &e);
	if (!is_int(ret, 0, "chunk table parses (%s)", e.msg)) {
		skip(3, "no table");
		return;
	}
	if (ok(t.chunks != NULL, "the parsed table has chunks"))
		ok(chunks_equal(t.chunks, b->c, NCHUNKS),
		   "decoded chunks equal the encoded ones");
	else
		skip(1, "no chunks");
	fmt_blob_table_free(&t);
	ok(t.chunks == NULL, "fmt_blob_table_free clears the pointer");
	fmt_blob_table_free(&t);	/* twice is harmless */
}

static int parse_footer_bytes(const void *f, size_t len, uint64_t stored)
{
	struct fmt_blob_table t;
	struct sk_err e = { { 0 } };
	int ret = fmt_blob_footer_parse(f, len, stored, &t, &e);

	if (ret && !e.msg[0])
		return 1;	/* an error must say why */
	return ret;
}

static void test_footer_rules(struct blob *b)
{
	struct fmt_blob_table t;
	struct skiff_blob_footer f, g;
	uint64_t v;

	blob_seal(b, b->c, NCHUNKS, &t);
	memcpy(&f, b->buf + b->size - sizeof(f), sizeof(f));

	is_int(parse_footer_bytes(&f, 127, b->size), -EINVAL, "footer: 127 bytes rejected");
	is_int(parse_footer_bytes(&f, 129, b->size), -EINVAL, "footer: 129 bytes rejected");
	is_int(parse_footer_bytes(&f, 128, 127), -EINVAL, "footer: blob shorter than a footer");
	g = f;
	g.magic[0] ^= 1;
	is_int(parse_footer_bytes(&g, 128, b->size), -EINVAL, "footer: bad magic");
	g = f;
	g.version = htole32(2);
	is_int(parse_footer_bytes(&g, 128, b->size), -EINVAL, "footer: unknown version");
	g = f;
	g.version = htole32(0);
	is_int(parse_footer_bytes(&g, 128, b->size), -EINVAL, "footer: version 0");
	is_int(parse_footer_bytes(&f, 128, b->size + 1), -EINVAL,
	       "footer: stored size one more than the layout");
	is_int(parse_footer_bytes(&f, 128, b->size - 1), -EINVAL,
	       "footer: stored size one less than the layout");
	g = f;
	g.table_off = htole64(b->size);
	is_int(parse_footer_bytes(&g, 128, b->size), -EINVAL,
	       "footer: table offset inside the footer");
	g = f;
	g.table_off = htole64(UINT64_MAX);
	is_int(parse_footer_bytes(&g, 128, b->size), -EINVAL,
	       "footer: table offset UINT64_MAX");
	g = f;
	g.table_size = htole64(b->table_size + 64);
	is_int(parse_footer_bytes(&g, 128, b->size), -EINVAL,
	       "footer: table overlaps the footer");
	g = f;
	/* table_off + table_size wraps around to exactly stored - 128 */
	v = 1ull << 63;
	g.table_off = htole64(v);
	g.table_size = htole64((b->size - 128) - v);
	is_int(parse_footer_bytes(&g, 128, b->size), -EINVAL,
	       "footer: offset + size that wraps around");
	g = f;
	g.table_off = htole64(0);
	g.table_size = htole64(b->size - 128);
	is_int(parse_footer_bytes(&g, 128, b->size), 0,
	       "footer: table at offset 0 is geometrically fine");
	g = f;
	g.table_off = htole64(b->size - 128);
	g.table_size = 0;
	g.chunk_count = 0;
	is_int(parse_footer_bytes(&g, 128, b->size), 0, "footer: empty table before the footer");
	is_int(parse_footer_bytes(&g, 128, 128), -EINVAL,
	       "footer: offset past a footer-only blob");
	g.table_off = 0;
	is_int(parse_footer_bytes(&g, 128, 128), 0, "footer: footer-only blob");
}

/* Seals c[0..n) into the blob, re-parses, and returns the table parser's
 * verdict, so each rule can be probed with the digest still valid. */
static int table_verdict(struct blob *b, const struct fmt_chunk *c, size_t n)
{
	struct fmt_blob_table t;
	struct sk_err e = { { 0 } };
	int ret;

	blob_seal(b, c, n, &t);
	ret = fmt_blob_table_parse(&t, b->buf + b->table_off, t.table_size, &e);
	if (!ret)
		fmt_blob_table_free(&t);
	else if (!e.msg[0] || t.chunks)
		return 1;	/* must explain and must not hand out chunks */
	return ret;
}

static void test_table_rules(struct blob *b)
{
	struct fmt_chunk c[NCHUNKS];
	struct fmt_blob_table t;
	struct sk_err e = { { 0 } };
	uint8_t *table;

#define RESET() memcpy(c, b->c, sizeof(c))
	RESET();
	is_int(table_verdict(b, c, NCHUNKS), 0, "table: the valid table parses");
	is_int(table_verdict(b, c, 0), 0, "table: an empty table parses");
	is_int(table_verdict(b, c, 1), 0, "table: a prefix of the table parses");

	c[1].uoff = 0;
	is_int(table_verdict(b, c, NCHUNKS), -EINVAL, "table: duplicate cache offset");
	RESET();
	c[2].uoff = 0;
	is_int(table_verdict(b, c, NCHUNKS), -EINVAL, "table: cache offsets descending");
	RESET();
	c[0].usize = 4097;	/* stored range unchanged: only the cache overlaps */
	c[0].comp = SKIFF_COMP_ZSTD;
	is_int(table_verdict(b, c, NCHUNKS), -EINVAL,
	       "table: chunk overlaps the next one's aligned cache range");
	RESET();
	c[1].uoff = 4096 + 512;
	is_int(table_verdict(b, c, NCHUNKS), -EINVAL, "table: unaligned uoff");
	RESET();
	c[2].uoff = b->usize;
	is_int(table_verdict(b, c, NCHUNKS), -EINVAL, "table: chunk starts at the cache size");
	RESET();
	c[2].uoff = UINT64_MAX & ~4095ull;
	is_int(table_verdict(b, c, NCHUNKS), -EINVAL, "table: uoff far beyond the cache");
	RESET();
	c[2].usize = 4097;
	c[2].ssize = 4097;
	is_int(table_verdict(b, c, NCHUNKS), -EINVAL, "table: chunk ends past the cache size");
	RESET();
	c[0].usize = 0;
	c[0].ssize = 0;
	is_int(table_verdict(b, c, NCHUNKS), -EINVAL, "table: empty chunk");
	RESET();
	c[1].ssize = 0;
	is_int(table_verdict(b, c, NCHUNKS), -EINVAL, "table: zero stored size");
	RESET();
	c[2].comp = SKIFF_COMP_ZSTD;
	c[2].usize = FMT_CHUNK_MAX;
	b->usize += 2ull * FMT_CHUNK_MAX;	/* room, so only the size rule can fire */
	is_int(table_verdict(b, c, NCHUNKS), 0, "table: chunk of FMT_CHUNK_MAX is fine");
	c[2].usize = FMT_CHUNK_MAX + 1;
	is_int(table_verdict(b, c, NCHUNKS), -EINVAL, "table: chunk larger than FMT_CHUNK_MAX");
	b->usize -= 2ull * FMT_CHUNK_MAX;
	RESET();
	c[2].soff = b->table_off;
	is_int(table_verdict(b, c, NCHUNKS), -EINVAL, "table: soff at the table");
	RESET();
	c[2].soff = b->table_off + 64;
	is_int(table_verdict(b, c, NCHUNKS), -EINVAL, "table: soff beyond the table");
	RESET();
	c[2].soff = UINT64_MAX - 10;
	is_int(table_verdict(b, c, NCHUNKS), -EINVAL, "table: soff + ssize wraps around");
	RESET();
	c[2].soff = b->table_off - c[2].ssize + 1;
	is_int(table_verdict(b, c, NCHUNKS), -EINVAL, "table: stored range runs into the table");
	RESET();
	c[2].soff = b->table_off - c[2].ssize;
	is_int(table_verdict(b, c, NCHUNKS), 0, "table: stored range ends right at the table");
	RESET();
	c[1].soff = c[0].soff + c[0].ssize - 1;
	is_int(table_verdict(b, c, NCHUNKS), -EINVAL, "table: overlapping stored ranges");
	RESET();
	c[2].soff = 0;
	is_int(table_verdict(b, c, NCHUNKS), -EINVAL, "table: stored offsets out of order");
	RESET();
	c[1].soff += 7;	/* gaps between stored chunks are allowed */
	c[2].soff += 7;
	is_int(table_verdict(b, c, NCHUNKS), 0, "table: a gap between stored chunks is fine");
	RESET();
	c[0].ssize = 4000;
	is_int(table_verdict(b, c, NCHUNKS), -EINVAL, "table: comp=none with ssize != usize");
	RESET();
	c[2].comp = 2;
	is_int(table_verdict(b, c, NCHUNKS), -EINVAL, "table: unknown compression");
	RESET();
	c[2].comp = 255;
	is_int(table_verdict(b, c, NCHUNKS), -EINVAL, "table: compression 255");
	RESET();
	c[1].ssize = (uint32_t)ZSTD_compressBound(c[1].usize) + 1;
	c[2].soff = c[1].soff + c[1].ssize;
	if (c[2].soff + c[2].ssize <= b->table_off)
		is_int(table_verdict(b, c, NCHUNKS), -EINVAL,
		       "table: zstd ssize above ZSTD_compressBound(usize)");
	else
		skip(1, "data area too small for the compressBound probe");
	RESET();

	/* rules on the table as a whole */
	blob_seal(b, c, NCHUNKS, &t);
	table = b->buf + b->table_off;
	is_int(fmt_blob_table_parse(&t, table, t.table_size - 1, &e), -EINVAL,
	       "table: length differs from table_size");
	t.table_size -= 1;
	is_int(fmt_blob_table_parse(&t, table, t.table_size, &e), -EINVAL,
	       "table: size not a multiple of the record size");
	blob_seal(b, c, NCHUNKS, &t);
	t.count = NCHUNKS + 1;
	is_int(fmt_blob_table_parse(&t, table, t.table_size, &e), -EINVAL,
	       "table: count larger than the records");
	t.count = NCHUNKS - 1;
	is_int(fmt_blob_table_parse(&t, table, t.table_size, &e), -EINVAL,
	       "table: count smaller than the records");
	blob_seal(b, c, NCHUNKS, &t);
	t.usize += 1;
	is_int(fmt_blob_table_parse(&t, table, t.table_size, &e), -EINVAL,
	       "table: cache size not block aligned");
	blob_seal(b, c, NCHUNKS, &t);
	t.table_digest[31] ^= 0x80;
	is_int(fmt_blob_table_parse(&t, table, t.table_size, &e), -EBADMSG,
	       "table: digest mismatch is -EBADMSG");
	ok(t.chunks == NULL, "table: no chunks handed out on error");
	blob_seal(b, c, NCHUNKS, &t);
	table[70] ^= 1;	/* a record byte changes under a sealed digest */
	is_int(fmt_blob_table_parse(&t, table, t.table_size, &e), -EBADMSG,
	       "table: modified record fails the digest");
	table[70] ^= 1;
	blob_seal(b, c, NCHUNKS, &t);
	{
		/* the table bytes need no alignment */
		uint8_t *copy = malloc(t.table_size + 1);

		if (!copy)
			bail_out("out of memory");
		memcpy(copy + 1, table, t.table_size);
		is_int(fmt_blob_table_parse(&t, copy + 1, t.table_size, &e), 0,
		       "table: parses from an unaligned buffer");
		fmt_blob_table_free(&t);
		free(copy);
	}
#undef RESET
}

static void test_lookup(struct blob *b)
{
	struct fmt_blob_table t, empty;
	struct sk_err e = { { 0 } };
	static const struct {
		uint64_t uoff;
		uint64_t lb;
		int find;	/* chunk index or -1 */
	} cases[] = {
		{ 0, 0, 0 },
		{ 1, 0, -1 },
		{ 4095, 0, -1 },
		{ 4096, 1, 1 },
		{ 8192, 1, -1 },
		{ 12287, 1, -1 },
		{ 12288, 2, 2 },
		{ 12387, 2, -1 },
		{ 12388, 3, -1 },	/* in the last chunk's block padding */
		{ 16384, 3, -1 },
		{ UINT64_MAX, 3, -1 },
	};

	blob_seal(b, b->c, NCHUNKS, &t);
	if (fmt_blob_table_parse(&t, b->buf + b->table_off, t.table_size, &e)) {
		skip(2 * (int)SK_ARRAY_SIZE(cases) + 2, "table does not parse: %s", e.msg);
		return;
	}
	for (size_t i = 0; i < SK_ARRAY_SIZE(cases); i++) {
		const struct fmt_chunk *c = fmt_blob_find(&t, cases[i].uoff);

		is_int(fmt_blob_lower_bound(&t, cases[i].uoff), cases[i].lb,
		       "lower_bound(%llu) = %llu", (unsigned long long)cases[i].uoff,
		       (unsigned long long)cases[i].lb);
		if (cases[i].find < 0)
			ok(c == NULL, "find(%llu) = NULL", (unsigned long long)cases[i].uoff);
		else
			ok(c == &t.chunks[cases[i].find], "find(%llu) = chunk %d",
			   (unsigned long long)cases[i].uoff, cases[i].find);
	}
	fmt_blob_table_free(&t);

	memset(&empty, 0, sizeof(empty));
	empty.table_off = 0;
	sk_sha256("", 0, empty.table_digest);
	if (!fmt_blob_table_parse(&empty, "", 0, &e)) {
		is_int(fmt_blob_lower_bound(&empty, 0), 0, "lower_bound on an empty table");
		ok(fmt_blob_find(&empty, 0) == NULL, "find on an empty table");
		fmt_blob_table_free(&empty);
	} else {
		skip(2, "empty table does not parse: %s", e.msg);
	}
}

static void test_decode(struct blob *b)
{
	struct sk_err e = { { 0 } };
	uint8_t *out = malloc(16384), *bad;
	struct fmt_chunk c;

	if (!out)
		bail_out("out of memory");
	for (int i = 0; i < NCHUNKS; i++) {
		memset(out, 0xee, 16384);
		e.msg[0] = '\0';
		is_int(fmt_chunk_decode(&b->c[i], b->buf + b->c[i].soff, out, &e), 0,
		       "decode chunk %d (%s) %s", i,
		       b->c[i].comp == SKIFF_COMP_ZSTD ? "zstd" : "raw", e.msg);
		is_mem(out, b->plain[i], b->c[i].usize, "chunk %d bytes", i);
		ok(out[b->c[i].usize] == 0xee, "chunk %d: nothing written past usize", i);
	}

	bad = malloc(b->c[0].ssize);
	if (!bad)
		bail_out("out of memory");
	memcpy(bad, b->buf + b->c[0].soff, b->c[0].ssize);
	bad[1234] ^= 0x10;
	is_int(fmt_chunk_decode(&b->c[0], bad, out, &e), -EBADMSG,
	       "raw chunk with a flipped bit: -EBADMSG");
	ok(strstr(e.msg, "digest") != NULL, "... says digest mismatch (%s)", e.msg);
	free(bad);

	c = b->c[1];
	c.digest[0] ^= 1;
	is_int(fmt_chunk_decode(&c, b->buf + c.soff, out, &e), -EBADMSG,
	       "zstd chunk with the wrong digest: -EBADMSG");
	bad = malloc(b->c[1].ssize);
	if (!bad)
		bail_out("out of memory");
	memcpy(bad, b->buf + b->c[1].soff, b->c[1].ssize);
	memset(bad + 4, 0x5a, 8);	/* inside the frame header */
	is_int(fmt_chunk_decode(&b->c[1], bad, out, &e), -EBADMSG,
	       "corrupted zstd frame: -EBADMSG");
	memcpy(bad, b->buf + b->c[1].soff, b->c[1].ssize);
	bad[b->c[1].ssize - 2] ^= 0xff;	/* in the last block */
	is_int(fmt_chunk_decode(&b->c[1], bad, out, &e), -EBADMSG,
	       "zstd frame with a damaged tail: -EBADMSG");
	free(bad);
	c = b->c[1];
	c.usize = 4096;	/* frame holds 8 KiB: must not overflow out */
	is_int(fmt_chunk_decode(&c, b->buf + c.soff, out, &e), -EBADMSG,
	       "zstd frame larger than usize: -EBADMSG");
	c = b->c[1];
	c.usize = 12288;
	is_int(fmt_chunk_decode(&c, b->buf + c.soff, out, &e), -EBADMSG,
	       "zstd frame smaller than usize: -EBADMSG");
	c = b->c[1];
	c.ssize -= 3;
	is_int(fmt_chunk_decode(&c, b->buf + c.soff, out, &e), -EBADMSG,
	       "truncated zstd frame: -EBADMSG");
	c = b->c[0];
	c.comp = SKIFF_COMP_ZSTD;
	is_int(fmt_chunk_decode(&c, b->buf + c.soff, out, &e), -EBADMSG,
	       "raw bytes labelled zstd: -EBADMSG");
	free(out);
}

int main(void)
{
	struct blob b;

	blob_make(&b);
	test_encoding(&b);
	test_round_trip(&b);
	test_footer_rules(&b);
	test_table_rules(&b);
	test_lookup(&b);
	test_decode(&b);
	blob_free(&b);
	return done_testing();
}
