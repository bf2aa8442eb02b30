/* SPDX-License-Identifier: Apache-2.0 */
#include "blob.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

void fmt_chunk_encode(const struct fmt_chunk *c, struct skiff_chunk_rec *out)
{
	memset(out, 0, sizeof(*out));
	out->uoff = htole64(c->uoff);
	out->soff = htole64(c->soff);
	out->usize = htole32(c->usize);
	out->ssize = htole32(c->ssize);
	out->comp = c->comp;
	memcpy(out->digest, c->digest, SK_SHA256_LEN);
}

void fmt_blob_footer_encode(const struct fmt_blob_table *t,
			    struct skiff_blob_footer *out)
{
	memset(out, 0, sizeof(*out));
	memcpy(out->magic, SKIFF_BLOB_MAGIC, 8);
	out->version = htole32(SKIFF_BLOB_VERSION);
	out->table_off = htole64(t->table_off);
	out->table_size = htole64(t->table_size);
	out->chunk_count = htole64(t->count);
	out->usize = htole64(t->usize);
	memcpy(out->table_digest, t->table_digest, SK_SHA256_LEN);
}

int fmt_blob_footer_parse(const void *buf, size_t len, uint64_t stored_size,
			  struct fmt_blob_table *t, struct sk_err *e)
{
	struct skiff_blob_footer f;

	if (len != sizeof(f) || stored_size < sizeof(f)) {
		sk_err_set(e, "blob too short for a footer");
		return -EINVAL;
	}
	memcpy(&f, buf, sizeof(f));
	if (memcmp(f.magic, SKIFF_BLOB_MAGIC, 8)) {
		sk_err_set(e, "bad blob footer magic");
		return -EINVAL;
	}
	if (le32toh(f.version) != SKIFF_BLOB_VERSION) {
		sk_err_set(e, "unsupported blob version %u", le32toh(f.version));
		return -EINVAL;
	}
	memset(t, 0, sizeof(*t));
	t->stored_size = stored_size;
	t->table_off = le64toh(f.table_off);
	t->table_size = le64toh(f.table_size);
	t->count = le64toh(f.chunk_count);
	t->usize = le64toh(f.usize);
	memcpy(t->table_digest, f.table_digest, SK_SHA256_LEN);
	if (t->table_off > stored_size - sizeof(f) ||
	    t->table_size != stored_size - sizeof(f) - t->table_off) {
		sk_err_set(e, "blob footer: chunk table outside the blob");
		return -EINVAL;
	}
	return 0;
}

int fmt_blob_table_parse(struct fmt_blob_table *t, const void *buf, size_t len,
			 struct sk_err *e)
{
	const struct skiff_chunk_rec *rec = buf;
	uint8_t digest[SK_SHA256_LEN];
	uint64_t next_uoff = 0, soff_end = 0;
	struct fmt_chunk *chunks;

	t->chunks = NULL;
	if (t->table_size != len || len % sizeof(*rec) ||
	    len / sizeof(*rec) != t->count) {
		sk_err_set(e, "chunk table size %zu does not match %llu chunks",
			   len, (unsigned long long)t->count);
		return -EINVAL;
	}
	if (t->usize % EROFS_BLKSIZ) {
		sk_err_set(e, "blob size %llu is not block aligned",
			   (unsigned long long)t->usize);
		return -EINVAL;
	}
	sk_sha256(buf, len, digest);
	if (memcmp(digest, t->table_digest, SK_SHA256_LEN)) {
		sk_err_set(e, "chunk table digest mismatch");
		return -EBADMSG;
	}
	chunks = calloc(t->count ? t->count : 1, sizeof(*chunks));
	if (!chunks)
		return -ENOMEM;
	for (uint64_t i = 0; i < t->count; i++) {
		struct fmt_chunk *c = &chunks[i];
		struct skiff_chunk_rec r;

		memcpy(&r, &rec[i], sizeof(r));
		c->uoff = le64toh(r.uoff);
		c->soff = le64toh(r.soff);
		c->usize = le32toh(r.usize);
		c->ssize = le32toh(r.ssize);
		c->comp = r.comp;
		memcpy(c->digest, r.digest, SK_SHA256_LEN);
		if (c->usize == 0 || c->usize > FMT_CHUNK_MAX || c->ssize == 0 ||
		    c->uoff % EROFS_BLKSIZ || c->uoff < next_uoff ||
		    c->uoff > t->usize || t->usize - c->uoff < c->usize ||
		    c->soff > t->table_off || t->table_off - c->soff < c->ssize ||
		    c->soff < soff_end ||
		    (c->comp != SKIFF_COMP_NONE && c->comp != SKIFF_COMP_ZSTD) ||
		    (c->comp == SKIFF_COMP_NONE && c->ssize != c->usize) ||
		    (c->comp == SKIFF_COMP_ZSTD &&
		     c->ssize > ZSTD_compressBound(c->usize)) ||
		    /* uoff + usize <= t->usize (above): the sum cannot wrap,
		     * its rounding is checked */
		    !sk_align_up(c->uoff + c->usize, EROFS_BLKSIZ, &next_uoff)) {
			sk_err_set(e, "chunk table entry %llu is invalid",
				   (unsigned long long)i);
			free(chunks);
			return -EINVAL;
		}
		soff_end = c->soff + c->ssize;
	}
	t->chunks = chunks;
	return 0;
}

void fmt_blob_table_free(struct fmt_blob_table *t)
{
	free(t->chunks);
	t->chunks = NULL;
}

uint64_t fmt_blob_lower_bound(const struct fmt_blob_table *t, uint64_t uoff)
{
	uint64_t lo = 0, hi = t->count;

	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		const struct fmt_chunk *c = &t->chunks[mid];

		if (c->uoff + c->usize <= uoff)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct fmt_chunk *fmt_blob_find(const struct fmt_blob_table *t,
				      uint64_t uoff)
{
	uint64_t i = fmt_blob_lower_bound(t, uoff);

	if (i < t->count && t->chunks[i].uoff == uoff)
		return &t->chunks[i];
	return NULL;
}

int fmt_chunk_verify(const struct fmt_chunk *c, const void *data,
		     struct sk_err *e)
{
	uint8_t digest[SK_SHA256_LEN];

	sk_sha256(data, c->usize, digest);
	if (memcmp(digest, c->digest, SK_SHA256_LEN)) {
		sk_err_set(e, "chunk at %llu: digest mismatch",
			   (unsigned long long)c->uoff);
		return -EBADMSG;
	}
	return 0;
}

int fmt_chunk_decode(const struct fmt_chunk *c, const void *stored,
		     void *out, struct sk_err *e)
{
	if (c->comp == SKIFF_COMP_NONE) {
		memcpy(out, stored, c->usize);
	} else {
		size_t n = ZSTD_decompress(out, c->usize, stored, c->ssize);

		if (ZSTD_isError(n) || n != c->usize) {
			sk_err_set(e, "chunk at %llu does not decompress",
				   (unsigned long long)c->uoff);
			return -EBADMSG;
		}
	}
	return fmt_chunk_verify(c, out, e);
}
