/* SPDX-License-Identifier: Apache-2.0 */
#include "reader.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zstd.h>

int fmt_reader_init(struct fmt_reader *r, struct fmt_bs *bs,
		    const struct fmt_blob_src *src)
{
	memset(r, 0, sizeof(*r));
	r->bs = bs;
	r->src = *src;
	r->cached_blob = -1;
	r->tables = calloc(bs->nblobs ? bs->nblobs : 1, sizeof(*r->tables));
	r->loaded = calloc(bs->nblobs ? bs->nblobs : 1, 1);
	r->ubuf = malloc(FMT_CHUNK_MAX);
	r->sbuf = malloc(ZSTD_compressBound(FMT_CHUNK_MAX));
	if (!r->tables || !r->loaded || !r->ubuf || !r->sbuf) {
		fmt_reader_free(r);
		return -ENOMEM;
	}
	return 0;
}

void fmt_reader_free(struct fmt_reader *r)
{
	if (r->tables)
		for (unsigned int i = 0; i < r->bs->nblobs; i++)
			fmt_blob_table_free(&r->tables[i]);
	free(r->tables);
	free(r->loaded);
	free(r->ubuf);
	free(r->sbuf);
	r->tables = NULL;
	r->loaded = NULL;
	r->ubuf = r->sbuf = NULL;
}

int fmt_reader_table(struct fmt_reader *r, unsigned int i,
		     const struct fmt_blob_table **out)
{
	const struct fmt_blob_ref *b = &r->bs->blobs[i];
	struct fmt_blob_table *t = &r->tables[i];
	struct skiff_blob_footer f;
	void *buf;
	int ret;

	if (i >= r->bs->nblobs)
		return -EINVAL;
	if (r->loaded[i]) {
		*out = t;
		return 0;
	}
	ret = r->src.read(r->src.ctx, i, b->stored_size - sizeof(f), &f,
			  sizeof(f));
	if (ret) {
		sk_err_set(&r->err, "blob %s: reading footer: %s", b->hex,
			   strerror(-ret));
		return ret;
	}
	ret = fmt_blob_footer_parse(&f, sizeof(f), b->stored_size, t, &r->err);
	if (ret)
		return ret;
	if (t->table_off != b->table_off || t->table_size != b->table_size ||
	    t->count != b->chunk_count || t->usize != b->usize ||
	    memcmp(t->table_digest, b->table_digest, SK_SHA256_LEN)) {
		sk_err_set(&r->err, "blob %s: footer disagrees with the bootstrap",
			   b->hex);
		return -EBADMSG;
	}
	if (t->table_size > (1ull << 32)) {
		sk_err_set(&r->err, "blob %s: chunk table too large", b->hex);
		return -EFBIG;
	}
	buf = malloc(t->table_size ? t->table_size : 1);
	if (!buf)
		return -ENOMEM;
	ret = r->src.read(r->src.ctx, i, t->table_off, buf, t->table_size);
	if (!ret)
		ret = fmt_blob_table_parse(t, buf, t->table_size, &r->err);
	else
		sk_err_set(&r->err, "blob %s: reading chunk table: %s", b->hex,
			   strerror(-ret));
	free(buf);
	if (ret) {
		if (r->err.msg[0] && !strstr(r->err.msg, b->hex)) {
			char m[sizeof(r->err.msg)];

			memcpy(m, r->err.msg, sizeof(m));
			sk_err_set(&r->err, "blob %s: %s", b->hex, m);
		}
		return ret;
	}
	r->loaded[i] = 1;
	*out = t;
	return 0;
}

int fmt_reader_chunk(struct fmt_reader *r, unsigned int blob,
		     const struct fmt_chunk *c, const uint8_t **data)
{
	int ret;

	if (r->cached_blob == (int)blob && r->cached_uoff == c->uoff) {
		*data = r->ubuf;
		return 0;
	}
	r->cached_blob = -1;
	ret = r->src.read(r->src.ctx, blob, c->soff, r->sbuf, c->ssize);
	if (ret) {
		sk_err_set(&r->err, "blob %s: reading chunk at %llu: %s",
			   r->bs->blobs[blob].hex, (unsigned long long)c->soff,
			   strerror(-ret));
		return ret;
	}
	ret = fmt_chunk_decode(c, r->sbuf, r->ubuf, &r->err);
	if (ret) {
		char m[sizeof(r->err.msg)];

		memcpy(m, r->err.msg, sizeof(m));
		sk_err_set(&r->err, "blob %s: %s", r->bs->blobs[blob].hex, m);
		return ret;
	}
	r->cached_blob = (int)blob;
	r->cached_uoff = c->uoff;
	*data = r->ubuf;
	return 0;
}

int fmt_reader_map(struct fmt_reader *r, const struct fmt_inode *ino,
		   uint64_t i, unsigned int *blob, const struct fmt_chunk **c)
{
	const struct fmt_blob_table *t;
	uint64_t csize = 1ull << ino->chunk_bits;
	uint64_t want = SK_MIN(csize, ino->size - i * csize);
	unsigned int dev;
	uint32_t blk;
	int ret = fmt_bs_chunk(r->bs, ino, i, &dev, &blk);

	*c = NULL;
	if (ret) {
		r->err = r->bs->err;
		return ret;
	}
	if (!dev)
		return 0;
	*blob = dev - 1;
	ret = fmt_reader_table(r, *blob, &t);
	if (ret)
		return ret;
	*c = fmt_blob_find(t, (uint64_t)blk * EROFS_BLKSIZ);
	if (!*c || (*c)->usize != want) {
		sk_err_set(&r->err, "inode %llu: chunk %llu maps to no chunk of blob %s",
			   (unsigned long long)ino->nid, (unsigned long long)i,
			   r->bs->blobs[*blob].hex);
		*c = NULL;
		return -EFSCORRUPTED;
	}
	return 0;
}

ssize_t fmt_reader_pread(struct fmt_reader *r, const struct fmt_inode *ino,
			 void *buf, size_t len, uint64_t off)
{
	uint8_t *o = buf;
	size_t done = 0;

	if (!S_ISREG(ino->mode))
		return -EISDIR;
	if (off >= ino->size)
		return 0;
	len = (size_t)SK_MIN((uint64_t)len, ino->size - off);
	while (done < len) {
		uint64_t csize = 1ull << ino->chunk_bits;
		uint64_t i = off / csize, in = off % csize;
		size_t n = (size_t)SK_MIN((uint64_t)(len - done), csize - in);
		const struct fmt_chunk *c;
		const uint8_t *data;
		unsigned int blob;
		int ret = fmt_reader_map(r, ino, i, &blob, &c);

		if (ret)
			return ret;
		if (!c) {
			memset(o + done, 0, n);
		} else {
			ret = fmt_reader_chunk(r, blob, c, &data);
			if (ret)
				return ret;
			memcpy(o + done, data + in, n);
		}
		done += n;
		off += n;
	}
	return (ssize_t)done;
}
