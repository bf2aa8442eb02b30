/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for format/tar.c and the layer merge (format/build_layers.c)
 * on archives built byte by byte here: numeric fields (octal, base-256),
 * checksums, PAX records, GNU long names, sparse maps, compression and
 * digests, every rejection with its message; and merge rules a reference
 * unpacker cannot show (symlinked parents, same-layer whiteouts, hard
 * links to missing files, paths with "..").
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "../../format/blob.h"
#include "../../format/bootstrap.h"
#include "../../format/builder.h"
#include "../../format/tar.h"
#include "tap.h"

/* ---------------- archive builder ---------------- */

struct ar {
	uint8_t *buf;
	size_t len, cap;
};

static void put(struct ar *a, const void *p, size_t n)
{
	if (a->len + n > a->cap) {
		a->cap = (a->len + n) * 2 + 4096;
		a->buf = realloc(a->buf, a->cap);
	}
	memcpy(a->buf + a->len, p, n);
	a->len += n;
}

static void octal(uint8_t *f, size_t len, uint64_t v)
{
	char tmp[32];

	snprintf(tmp, sizeof(tmp), "%0*llo", (int)len - 1, (unsigned long long)v);
	memcpy(f, tmp, len - 1);
	f[len - 1] = 0;
}

static void checksum(uint8_t *h)
{
	unsigned int s = 0;

	memset(h + 148, ' ', 8);
	for (int i = 0; i < 512; i++)
		s += h[i];
	snprintf((char *)h + 148, 8, "%06o", s);
	h[155] = ' ';
}

/* A ustar header; data (size bytes) and padding follow. */
static void member(struct ar *a, const char *name, char type, const void *data,
		   size_t size, const char *link)
{
	uint8_t h[512] = { 0 };
	static const uint8_t zero[512];

	strncpy((char *)h, name, 100);
	octal(h + 100, 8, type == '5' ? 0755 : 0644);
	octal(h + 108, 8, 1000);
	octal(h + 116, 8, 1001);
	octal(h + 124, 12, size);
	octal(h + 136, 12, 1700000000);
	h[156] = (uint8_t)type;
	if (link)
		strncpy((char *)h + 157, link, 100);
	memcpy(h + 257, "ustar\0" "00", 8);
	checksum(h);
	put(a, h, 512);
	if (size) {
		put(a, data, size);
		put(a, zero, (512 - size % 512) % 512);
	}
}

/* Appends the PAX record "LEN key=value\n" for kv ("key=value"). */
static void rec(char *dst, const char *kv)
{
	size_t n = strlen(kv) + 2, d = 1;

	while (snprintf(NULL, 0, "%zu", n + d) != (int)d)
		d++;
	sprintf(dst + strlen(dst), "%zu %s\n", n + d, kv);
}

static void pax(struct ar *a, const char *records)
{
	member(a, "PaxHeader", 'x', records, strlen(records), NULL);
}

static void end(struct ar *a)
{
	static const uint8_t zero[1024];

	put(a, zero, sizeof(zero));
}

/* ---------------- reading ---------------- */

struct mem {
	const uint8_t *p;
	size_t len, pos, step;	/* step: at most this many bytes a read */
};

static ssize_t mem_read(void *ctx, void *buf, size_t len)
{
	struct mem *m = ctx;
	size_t n = SK_MIN(len, m->len - m->pos);

	if (m->step)
		n = SK_MIN(n, m->step);
	memcpy(buf, m->p + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}

/* Reads the whole archive; returns the last fmt_tar_next() result and
 * the error text, and the number of members. */
static int read_all(const uint8_t *p, size_t len, size_t step, int *members,
		    char *err, size_t errlen)
{
	struct mem m = { p, len, 0, step };
	struct fmt_tar_src s = { mem_read, &m };
	struct fmt_tar *t;
	struct sk_err e = { { 0 } };
	const struct fmt_tar_entry *ent;
	static uint8_t buf[1 << 16];
	int ret;

	*members = 0;
	if ((ret = fmt_tar_open(&t, &s, &e))) {
		snprintf(err, errlen, "%s", e.msg);
		return ret;
	}
	while ((ret = fmt_tar_next(t, &ent)) > 0) {
		int r = 0;

		(*members)++;
		for (uint64_t o = 0; !r && ent->type == FMT_TAR_REG && o < ent->size;
		     o += sizeof(buf))
			r = fmt_tar_read(t, o, buf, (size_t)SK_MIN((uint64_t)sizeof(buf), ent->size - o));
		if (r) {
			ret = r;
			break;
		}
	}
	snprintf(err, errlen, "%s", fmt_tar_error(t));
	fmt_tar_close(t);
	return ret;
}

static void expect_error(struct ar *a, const char *what, const char *msg)
{
	char err[512];
	int n, ret = read_all(a->buf, a->len, 0, &n, err, sizeof(err));

	ok(ret < 0, "%s: rejected (%d, \"%s\")", what, ret, err);
	has_str(err, msg, "... saying why");
}

static void test_fields(void)
{
	struct ar a = { 0 };
	struct mem m;
	struct fmt_tar_src s = { mem_read, &m };
	struct fmt_tar *t;
	struct sk_err e = { { 0 } };
	const struct fmt_tar_entry *ent;
	uint8_t h[512] = { 0 }, buf[64];

	/* a GNU header with base-256 uid and size, and a negative mtime */
	strcpy((char *)h, "big-ids");
	octal(h + 100, 8, 0600);
	h[108] = 0x80;
	h[108 + 7] = 0x11;	/* uid 0x11 as base-256 */
	h[116] = 0x80;
	memset(h + 117, 0, 7);
	h[123] = 0x01;
	h[116 + 4] = 0x01;	/* gid 0x01000001 */
	h[124] = 0x80;
	h[135] = 5;		/* size 5 */
	memset(h + 136, 0xff, 12);	/* mtime -1 */
	h[156] = '0';
	memcpy(h + 257, "ustar  \0", 8);
	checksum(h);
	put(&a, h, 512);
	put(&a, "hello", 5);
	{
		static const uint8_t zero[512];

		put(&a, zero, 507);
	}
	end(&a);
	m = (struct mem){ a.buf, a.len, 0, 0 };
	ok(fmt_tar_open(&t, &s, &e) == 0, "open a plain archive");
	ok(fmt_tar_next(t, &ent) == 1, "read a GNU member with base-256 fields");
	is_int(ent->uid, 0x11, "base-256 uid");
	is_int(ent->gid, 0x01000001, "base-256 gid");
	is_int((long long)ent->size, 5, "base-256 size");
	is_int(ent->mtime, -1, "base-256 negative mtime");
	is_int(ent->mode, S_IFREG | 0600, "mode with the type bits");
	if (is_int(fmt_tar_read(t, 1, buf, 3), 0, "read from an offset"))
		is_mem(buf, "ell", 3, "... the bytes there");
	else
		skip(1, "not read");
	ok(fmt_tar_read(t, 0, buf, 1) < 0, "reading backwards is refused");
	fmt_tar_close(t);
	free(a.buf);
}

static void test_pax_and_gnu(void)
{
	struct ar a = { 0 };
	char longname[300], recs[1024], err[256];
	struct mem m;
	struct fmt_tar_src s = { mem_read, &m };
	struct fmt_tar *t;
	struct sk_err e = { { 0 } };
	const struct fmt_tar_entry *ent;
	int n;

	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	/* PAX: long path, ns mtime, big uid, two xattrs (one replaced, one
	 * deleted by an empty record) */
	recs[0] = 0;
	{
		char kv[400];

		snprintf(kv, sizeof(kv), "path=%s", longname);
		rec(recs, kv);
	}
	rec(recs, "mtime=1700000000.123456789");
	rec(recs, "uid=70000000");
	rec(recs, "SCHILY.xattr.user.a=1");
	rec(recs, "SCHILY.xattr.user.a=2");
	rec(recs, "SCHILY.xattr.user.b=3");
	rec(recs, "SCHILY.xattr.user.b=");
	rec(recs, "LIBARCHIVE.xattr.user.c%3Dd=ZGF0YQ==");
	pax(&a, recs);
	member(&a, "short", '0', "x", 1, NULL);
	/* GNU long link on a symlink */
	memset(longname, 'k', 200);
	longname[200] = 0;
	member(&a, "././@LongLink", 'K', longname, 201, NULL);
	member(&a, "sym", '2', NULL, 0, "short-target");
	end(&a);

	m = (struct mem){ a.buf, a.len, 0, 7 };	/* 7-byte reads */
	ok(fmt_tar_open(&t, &s, &e) == 0, "open");
	ok(fmt_tar_next(t, &ent) == 1, "PAX member");
	is_int((long long)strlen(ent->path), 299, "PAX path of 299 bytes");
	is_int(ent->mtime_nsec, 123456789, "PAX nanoseconds");
	is_int(ent->uid, 70000000, "PAX uid");
	if (is_int(ent->nxattrs, 2, "a replaced, b deleted, c from LIBARCHIVE")) {
		is_str(ent->xattrs[0].name, "user.a", "... user.a");
		if (is_int(ent->xattrs[0].vlen, 1, "... its value's length"))
			is_mem(ent->xattrs[0].value, "2", 1, "... =2");
		else
			skip(1, "another length");
		is_str(ent->xattrs[1].name, "user.c=d", "... user.c=d (escaped name)");
		if (is_int(ent->xattrs[1].vlen, 4, "... its value's length"))
			is_mem(ent->xattrs[1].value, "data", 4, "... =data (base64 value)");
		else
			skip(1, "another length");
	} else {
		skip(6, "not two xattrs");
	}
	if (is_int(fmt_tar_next(t, &ent), 1, "GNU long link member")) {
		is_int(ent->type, FMT_TAR_SYMLINK, "... a symlink");
		is_int((long long)strlen(ent->link), 200, "... its 200-byte target");
		is_int(ent->uid, 1000, "extended headers do not leak into the next member");
	} else {
		skip(3, "no member");
	}
	ok(fmt_tar_next(t, &ent) == 0, "end of archive");
	fmt_tar_close(t);

	/* digests of the stream */
	{
		uint8_t sd[32], ad[32], want[32];

		m = (struct mem){ a.buf, a.len, 0, 0 };
		fmt_tar_open(&t, &s, &e);
		while (fmt_tar_next(t, &ent) > 0)
			;
		fmt_tar_digests(t, sd, ad);
		sk_sha256(a.buf, a.len, want);
		is_mem(sd, want, 32, "plain: the stream digest covers every byte");
		is_mem(ad, want, 32, "... the diff id too");
		fmt_tar_close(t);
	}
	{
		int r = read_all(a.buf, a.len - 1024, 0, &n, err, sizeof(err));

		is_int(r, 0, "an archive ending without its zero blocks still reads (%s)", err);
		is_int(n, 2, "... both members");
	}
	free(a.buf);
}

static void test_compressed(void)
{
	struct ar a = { 0 };
	uint8_t *big = malloc(300000), *z = malloc(400000), sd[32], ad[32], w1[32], w2[32];
	size_t zl;
	struct mem m;
	struct fmt_tar_src s = { mem_read, &m };
	struct fmt_tar *t;
	struct sk_err e = { { 0 } };
	const struct fmt_tar_entry *ent;
	char err[256];
	int n;

	for (size_t i = 0; i < 300000; i++)
		big[i] = (uint8_t)(i * 131 + (i >> 9));
	member(&a, "big", '0', big, 300000, NULL);
	member(&a, "dir/", '5', NULL, 0, NULL);
	end(&a);
	sk_sha256(a.buf, a.len, w2);

	zl = ZSTD_compress(z, 400000, a.buf, a.len, 3);
	m = (struct mem){ z, zl, 0, 1000 };
	if (is_int(fmt_tar_open(&t, &s, &e), 0, "a zstd archive opens (%s)", e.msg)) {
		is_int(fmt_tar_compression(t), FMT_TAR_ZSTD, "zstd detected");
		n = 0;
		while (fmt_tar_next(t, &ent) > 0)
			n++;
		fmt_tar_digests(t, sd, ad);
		sk_sha256(z, zl, w1);
		is_int(n, 2, "zstd: both members");
		is_mem(sd, w1, 32, "... stream digest");
		is_mem(ad, w2, 32, "... diff id");
		fmt_tar_close(t);
	} else {
		skip(4, "no reader");
	}
	ok(read_all(z, zl - 10, 0, &n, err, sizeof(err)) < 0, "truncated zstd fails (%s)", err);

	{
		z_stream zs = { 0 };

		deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
		zs.next_in = a.buf;
		zs.avail_in = (uInt)a.len;
		zs.next_out = z;
		zs.avail_out = 400000;
		deflate(&zs, Z_FINISH);
		zl = zs.total_out;
		deflateEnd(&zs);
	}
	m = (struct mem){ z, zl, 0, 0 };
	if (is_int(fmt_tar_open(&t, &s, &e), 0, "a gzip archive opens (%s)", e.msg)) {
		is_int(fmt_tar_compression(t), FMT_TAR_GZIP, "gzip detected");
		n = 0;
		while (fmt_tar_next(t, &ent) > 0)
			n++;
		fmt_tar_digests(t, sd, ad);
		sk_sha256(z, zl, w1);
		is_int(n, 2, "gzip: both members");
		is_mem(sd, w1, 32, "... stream digest");
		is_mem(ad, w2, 32, "... diff id");
		fmt_tar_close(t);
	} else {
		skip(4, "no reader");
	}
	ok(read_all(z, zl / 2, 0, &n, err, sizeof(err)) < 0, "truncated gzip fails (%s)", err);
	has_str(err, "ends", "... saying it ends early");
	z[zl / 2] ^= 0x55;
	ok(read_all(z, zl, 0, &n, err, sizeof(err)) < 0, "corrupt gzip fails (%s)", err);
	free(big);
	free(z);
	free(a.buf);
}

static int merge(struct ar *layers, int n, void **bs, size_t *bslen, char *err,
		 size_t errlen);

static void test_sparse(void)
{
	struct ar a = { 0 };
	char recs[512];
	const char *map = "3\n0\n10\n1000\n5\n4096\n2\n";
	uint8_t blk[512] = { 0 }, out[5000], want[5000] = { 0 };
	struct mem m;
	struct fmt_tar_src s = { mem_read, &m };
	struct fmt_tar *t;
	struct sk_err e = { { 0 } };
	const struct fmt_tar_entry *ent;

	/* PAX 1.0: map at the head of the data */
	recs[0] = 0;
	rec(recs, "GNU.sparse.major=1");
	rec(recs, "GNU.sparse.minor=0");
	rec(recs, "GNU.sparse.name=sparse");
	rec(recs, "GNU.sparse.realsize=5000");
	pax(&a, recs);
	memcpy(blk, map, strlen(map));
	{
		uint8_t data[512 + 17];

		memcpy(data, blk, 512);
		memcpy(data + 512, "0123456789abcdeXY", 17);
		member(&a, "GNUSparseFile.1/sparse", '0', data, sizeof(data), NULL);
	}
	end(&a);
	m = (struct mem){ a.buf, a.len, 0, 0 };
	memcpy(want, "0123456789", 10);
	memcpy(want + 1000, "abcde", 5);
	memcpy(want + 4096, "XY", 2);
	if (!is_int(fmt_tar_open(&t, &s, &e), 0, "an archive with a sparse member opens (%s)",
		    e.msg)) {
		skip(12, "no reader");
	} else {
		if (is_int(fmt_tar_next(t, &ent), 1, "PAX 1.0 sparse member")) {
			ok(ent->sparse, "... sparse");
			is_str(ent->path, "sparse", "... its real name");
			is_int(ent->size, 5000, "... its real size");
			is_int(ent->nsegs, 3, "... 3 segments");
			ok(fmt_tar_has_data(ent, 0, 10), "has_data follows the map: data at 0");
			ok(!fmt_tar_has_data(ent, 10, 990), "... a hole after it");
			ok(fmt_tar_has_data(ent, 999, 2), "... data at 1000");
			ok(!fmt_tar_has_data(ent, 4098, 902), "... a hole after the last data");
			if (!is_int(fmt_tar_read(t, 0, out, 2000), 0, "the first 2000 logical bytes read"))
				skip(2, "not read");
			else if (!is_int(fmt_tar_read(t, 2000, out + 2000, 3000), 0,
					 "... the other 3000"))
				skip(1, "not read");
			else
				is_mem(out, want, sizeof(want), "... holes as zeros");
		} else {
			skip(11, "no member");
		}
		fmt_tar_close(t);
	}
	free(a.buf);

	/* overlapping segments */
	memset(&a, 0, sizeof(a));
	recs[0] = 0;
	rec(recs, "GNU.sparse.map=0,10,5,10");
	rec(recs, "GNU.sparse.realsize=100");
	pax(&a, recs);
	member(&a, "s", '0', "01234567890123456789", 20, NULL);
	end(&a);
	expect_error(&a, "overlapping sparse segments", "sparse map");
	free(a.buf);

	/* mapped bytes that do not match the stored ones */
	memset(&a, 0, sizeof(a));
	recs[0] = 0;
	rec(recs, "GNU.sparse.map=0,10");
	rec(recs, "GNU.sparse.realsize=100");
	pax(&a, recs);
	member(&a, "s", '0', "0123456789ab", 12, NULL);
	end(&a);
	expect_error(&a, "sparse map not matching the data", "mapped");
	free(a.buf);

	/* a real size near 2^64, told by each PAX sparse keyword: capped
	 * like every other size, so nothing computed from it wraps (a
	 * chunk count of 0 for a file of 2^64 - 7 bytes) */
	for (int k = 0; k < 2; k++) {
		char err[512];
		void *bs = NULL;
		size_t bslen;

		memset(&a, 0, sizeof(a));
		recs[0] = 0;
		rec(recs, "GNU.sparse.map=0,5");
		rec(recs, k ? "GNU.sparse.size=18446744073709551609"
			    : "GNU.sparse.realsize=18446744073709551609");
		pax(&a, recs);
		member(&a, "huge", '0', "01234", 5, NULL);
		end(&a);
		/* the member alone: reading 2^64 bytes of holes takes forever */
		m = (struct mem){ a.buf, a.len, 0, 0 };
		if (fmt_tar_open(&t, &s, &e) == 0) {
			int r = fmt_tar_next(t, &ent);

			snprintf(err, sizeof(err), "%s", fmt_tar_error(t));
			is_int(r, -EINVAL, "GNU.sparse.%s of 2^64 - 7: rejected",
			       k ? "size" : "realsize");
			has_str(err, "huge: file size 18446744073709551609 is too large",
				"... as too large");
			fmt_tar_close(t);
		} else {
			ok(0, "open");
			skip(1, "no reader");
		}
		ok(merge(&a, 1, &bs, &bslen, err, sizeof(err)) < 0, "... and the merge fails (%s)", err);
		ok(!bs, "... no bootstrap");
		has_str(err, "too large", "... the size too large");
		free(bs);
		free(a.buf);
	}
}

static void test_rejects(void)
{
	struct ar a = { 0 };
	uint8_t *h;

	member(&a, "f", '0', "abc", 3, NULL);
	end(&a);
	a.buf[10] ^= 1;
	expect_error(&a, "bad checksum", "checksum");
	free(a.buf);

	memset(&a, 0, sizeof(a));
	member(&a, "f", '0', "abc", 3, NULL);
	h = a.buf;
	memcpy(h + 124, "00000000x03", 11);	/* non-octal size */
	checksum(h);
	end(&a);
	expect_error(&a, "non-octal size", "size");
	free(a.buf);

	memset(&a, 0, sizeof(a));
	member(&a, "f", '0', "abcdefgh", 8, NULL);
	expect_error(&(struct ar){ a.buf, 512 + 4, 0 }, "truncated data", "ends in the middle");
	free(a.buf);

	memset(&a, 0, sizeof(a));
	pax(&a, "99 path=x\n");
	member(&a, "f", '0', NULL, 0, NULL);
	end(&a);
	expect_error(&a, "PAX record longer than its header", "PAX header");
	free(a.buf);

	memset(&a, 0, sizeof(a));
	member(&a, "weird", 'Z', NULL, 0, NULL);
	end(&a);
	expect_error(&a, "unknown member type", "type 'Z'");
	free(a.buf);

	memset(&a, 0, sizeof(a));
	pax(&a, "13 mtime=1.x\n");
	member(&a, "f", '0', NULL, 0, NULL);
	end(&a);
	expect_error(&a, "bad PAX mtime", "mtime");
	free(a.buf);

	memset(&a, 0, sizeof(a));
	pax(&a, "10 uid=12\n");
	end(&a);
	expect_error(&a, "an extended header with no member", "extended header");
	free(a.buf);

	memset(&a, 0, sizeof(a));
	put(&a, "\x1f\x8b\x08\x00garbage-that-is-no-gzip", 27);
	expect_error(&a, "gzip magic, garbage after", "gzip");
	free(a.buf);
}

/* ---------------- layer merge ---------------- */

/* Applies the archives as layers with options o and returns the
 * bootstrap. */
static int merge_opts(const struct fmt_build_opts *o, struct ar *layers, int n,
		      void **bs, size_t *bslen, char *err, size_t errlen)
{
	struct fmt_layers *l;
	struct fmt_build_result res;
	struct fmt_layers_slot *slots;
	unsigned int nslots;
	struct sk_err e = { { 0 } };
	int fd = open("/dev/null", O_WRONLY | O_CLOEXEC), ret;

	ret = fmt_layers_new(&l, o, &e);
	for (int i = 0; !ret && i < n; i++) {
		struct mem m = { layers[i].buf, layers[i].len, 0, 0 };
		struct fmt_tar_src s = { mem_read, &m };
		struct fmt_tar *t;
		struct fmt_layer_result lr;

		ret = fmt_tar_open(&t, &s, &e);
		if (!ret)
			ret = fmt_layers_apply(l, t, fd, &lr);
		fmt_tar_close(t);
	}
	if (!ret)
		ret = fmt_layers_finish(l, &res, &slots, &nslots);
	if (!ret) {
		*bs = res.bootstrap;
		*bslen = res.bootstrap_size;
		free(slots);
	}
	snprintf(err, errlen, "%s", e.msg);
	fmt_layers_free(l);
	close(fd);
	return ret;
}

static int merge(struct ar *layers, int n, void **bs, size_t *bslen, char *err,
		 size_t errlen)
{
	struct fmt_build_opts o = { .chunk_bits = 12, .compress = SKIFF_COMP_NONE,
				    .threads = 1 };

	return merge_opts(&o, layers, n, bs, bslen, err, errlen);
}

static int exists(struct fmt_bs *bs, const char *path, uint32_t fmt)
{
	struct fmt_inode ino;

	return fmt_bs_resolve(bs, path, &ino) == 0 && (ino.mode & S_IFMT) == fmt;
}

static void test_merge(void)
{
	struct ar l[3] = { { 0 } };
	struct fmt_bs bs;
	struct fmt_inode ino;
	void *buf = NULL;
	size_t len;
	char err[512];

	/* layer 1: usr-merged /bin, a directory with lower entries */
	member(&l[0], "usr/", '5', NULL, 0, NULL);
	member(&l[0], "usr/bin/", '5', NULL, 0, NULL);
	member(&l[0], "bin", '2', NULL, 0, "usr/bin");
	member(&l[0], "d/", '5', NULL, 0, NULL);
	member(&l[0], "d/lower", '0', "l", 1, NULL);
	member(&l[0], "loop", '2', NULL, 0, "loop/x");
	member(&l[0], "o/", '5', NULL, 0, NULL);
	member(&l[0], "o/sub/", '5', NULL, 0, NULL);
	member(&l[0], "o/sub/lower", '0', "l", 1, NULL);
	end(&l[0]);
	/* layer 2: through the symlink, ".." in a path, a directory entry
	 * then its own whiteout in the same layer */
	member(&l[1], "bin/tool", '0', "t", 1, NULL);
	member(&l[1], "a/../b/./c", '0', "c", 1, NULL);
	member(&l[1], "d/", '5', NULL, 0, NULL);
	member(&l[1], "d/upper", '0', "u", 1, NULL);
	member(&l[1], ".wh.d", '0', NULL, 0, NULL);
	member(&l[1], "h", '1', NULL, 0, "bin/tool");
	member(&l[1], "o/", '5', NULL, 0, NULL);
	member(&l[1], "o/sub/", '5', NULL, 0, NULL);
	member(&l[1], "o/sub/upper", '0', "u", 1, NULL);
	member(&l[1], "o/.wh..wh..opq", '0', NULL, 0, NULL);
	end(&l[1]);
	ok(merge(l, 2, &buf, &len, err, sizeof(err)) == 0, "merge two layers (%s)", err);
	if (!ok(buf != NULL, "... a bootstrap")) {
		skip(11, "no bootstrap");
	} else if (!is_int(fmt_bs_open(&bs, buf, len), 0, "the bootstrap parses")) {
		skip(10, "no bootstrap");
	} else {
		ok(exists(&bs, "/usr/bin/tool", S_IFREG),
		   "an entry below a symlinked parent lands in its target");
		ok(exists(&bs, "/bin", S_IFLNK), "... and the symlink stays");
		ok(exists(&bs, "/b/c", S_IFREG), "\"..\" is resolved lexically: /b/c");
		ok(!exists(&bs, "/a", S_IFDIR), "... no /a");
		ok(exists(&bs, "/d/upper", S_IFREG),
		   "a whiteout after its own layer's directory keeps that layer's entries");
		ok(!exists(&bs, "/d/lower", S_IFREG), "... and empties the lower entries");
		if (is_int(fmt_bs_resolve(&bs, "/h", &ino), 0, "a hard link through a symlinked parent"))
			is_int(ino.nlink, 2, "... nlink 2");
		else
			skip(1, "no /h");
		ok(exists(&bs, "/o/sub/upper", S_IFREG),
		   "an opaque directory keeps its own layer's entries deep down");
		ok(!exists(&bs, "/o/sub/lower", S_IFREG), "... and hides the lower ones");
		fmt_bs_close(&bs);
	}
	free(buf);
	buf = NULL;

	member(&l[2], "loop/f", '0', "x", 1, NULL);
	end(&l[2]);
	ok(merge(l, 3, &buf, &len, err, sizeof(err)) < 0, "a symlink loop in a parent fails");
	has_str(err, "symbolic links", "... saying so");
	free(buf);
	buf = NULL;
	free(l[2].buf);
	memset(&l[2], 0, sizeof(l[2]));
	member(&l[2], "x", '1', NULL, 0, "nowhere");
	end(&l[2]);
	ok(merge(l, 3, &buf, &len, err, sizeof(err)) < 0, "a hard link to a missing file fails");
	has_str(err, "missing", "... saying so");
	free(buf);
	buf = NULL;
	free(l[2].buf);
	memset(&l[2], 0, sizeof(l[2]));
	member(&l[2], "d/lower/x", '0', "x", 1, NULL);
	member(&l[2], "usr/bin/tool/x", '0', "x", 1, NULL);
	end(&l[2]);
	ok(merge(l, 3, &buf, &len, err, sizeof(err)) < 0, "a file as a parent fails");
	has_str(err, "not a directory", "... saying so");
	free(buf);
	for (int i = 0; i < 3; i++)
		free(l[i].buf);
}

/* ---------------- claimed sizes ---------------- */

/* A layer of one PAX 0.1 sparse file: 10 KiB of data at 0, real size
 * `real`; then (count - 1) more like it. */
static void sparse_layer(struct ar *a, uint64_t real, int count)
{
	static uint8_t data[10240];
	char recs[256], kv[64];

	memset(a, 0, sizeof(*a));
	memset(data, 'x', sizeof(data));
	for (int i = 0; i < count; i++) {
		char name[16];

		recs[0] = 0;
		rec(recs, "GNU.sparse.map=0,10240");
		snprintf(kv, sizeof(kv), "GNU.sparse.realsize=%llu", (unsigned long long)real);
		rec(recs, kv);
		pax(a, recs);
		snprintf(name, sizeof(name), "big%d", i);
		member(a, name, '0', data, sizeof(data), NULL);
	}
	end(a);
}

static void test_claims(void)
{
	struct fmt_build_opts o = { .chunk_bits = 26, .compress = SKIFF_COMP_NONE,
				    .threads = 1 };
	struct fmt_bs bs;
	struct fmt_inode ino;
	struct ar a;
	void *buf = NULL;
	size_t len;
	char err[512];
	int ret;

	/* a 12 KiB layer claiming 1 TiB: refused before a chunk index is
	 * made (at 4 KiB chunks that would be 2 GiB of them) */
	sparse_layer(&a, 1ull << 40, 1);
	o.chunk_bits = 12;
	ret = merge_opts(&o, &a, 1, &buf, &len, err, sizeof(err));
	is_int(ret, -EDQUOT, "a 12 KiB layer claiming 1 TiB is refused by default");
	ok(!buf, "... no bootstrap");
	has_str(err, "big0: the layer's files claim 1.0 TiB (1099511627776 bytes) of file size for 11.5 KiB stored: over the limit of 16 times what is stored, at least 16.0 GiB",
		"... saying which file claims how much, and the limit");
	free(buf);
	buf = NULL;
	/* allowed when the limit is raised (64 MiB chunks: 16384 indexes) */
	o.chunk_bits = 26;
	o.claim_min = 2ull << 40;
	ret = merge_opts(&o, &a, 1, &buf, &len, err, sizeof(err));
	if (!is_int(ret, 0, "... allowed with the limit raised to 2 TiB (%s)", err)) {
		skip(3, "no bootstrap");
	} else if (!is_int(fmt_bs_open(&bs, buf, len), 0, "... the bootstrap opens")) {
		skip(2, "no bootstrap");
	} else {
		if (is_int(fmt_bs_resolve(&bs, "/big0", &ino), 0, "... with /big0"))
			is_int(ino.size, 1ull << 40, "... of 1 TiB");
		else
			skip(1, "no /big0");
		fmt_bs_close(&bs);
	}
	free(buf);
	buf = NULL;
	o.claim_min = FMT_CLAIM_NONE;
	ret = merge_opts(&o, &a, 1, &buf, &len, err, sizeof(err));
	ok(ret == 0, "... and with no limit (%s)", err);
	free(buf);
	buf = NULL;
	free(a.buf);

	/* a sparse 1 GiB file is within the default limit, however little
	 * the layer stores */
	o.claim_min = 0;
	sparse_layer(&a, 1ull << 30, 1);
	ret = merge_opts(&o, &a, 1, &buf, &len, err, sizeof(err));
	ok(ret == 0, "a 12 KiB layer with a sparse 1 GiB file passes by default (%s)", err);
	free(buf);
	buf = NULL;
	free(a.buf);

	/* the ratio: each file stores 11.5 KiB of tar (headers and data);
	 * with a 256 KiB floor and 16 times, files of 150 KiB pass, files
	 * of 200 KiB pass the floor once and then go over, and the error
	 * names the file that did */
	o.claim_min = 256 << 10;
	o.claim_ratio = 16;
	sparse_layer(&a, 150 << 10, 3);
	ret = merge_opts(&o, &a, 1, &buf, &len, err, sizeof(err));
	ok(ret == 0, "3 x 150 KiB claimed in 3 x 11.5 KiB of tar: within 16 times (%s)", err);
	free(buf);
	buf = NULL;
	free(a.buf);
	sparse_layer(&a, 200 << 10, 3);
	ret = merge_opts(&o, &a, 1, &buf, &len, err, sizeof(err));
	is_int(ret, -EDQUOT, "3 x 200 KiB claimed: over 16 times");
	has_str(err, "big1: the layer's files claim 400.0 KiB (409600 bytes) of file size for 23.0 KiB stored",
		"... with the second file");
	free(buf);
	buf = NULL;
	/* the limit is per layer: each layer is judged by its own bytes */
	o.claim_ratio = 20;
	{
		struct ar two[2] = { a, a };

		ret = merge_opts(&o, two, 2, &buf, &len, err, sizeof(err));
		ok(ret == 0, "... within 20 times, two such layers pass (%s)", err);
	}
	free(buf);
	free(a.buf);
}

/* ---------------- the prefetch blob ---------------- */

/* The device slot (1-based) and block of chunk i of path. */
static int chunk_at(struct fmt_bs *bs, const char *path, uint64_t i,
		    unsigned int *dev, uint32_t *blk)
{
	struct fmt_inode ino;

	*dev = 0;
	*blk = 0;
	if (fmt_bs_resolve(bs, path, &ino))
		return -ENOENT;
	return fmt_bs_chunk(bs, &ino, i, dev, blk);
}

static void test_prefetch_blob(void)
{
	static const char *const list[] = { "/c", "/gone", "/hl", "/b", "/a" };
	struct fmt_build_opts o = { .chunk_bits = 12, .compress = SKIFF_COMP_ZSTD,
				    .level = 3, .threads = 2, .prefetch = list,
				    .nprefetch = SK_ARRAY_SIZE(list) };
	struct ar l[2] = { { 0 } };
	uint8_t *a = malloc(8192), *bb = malloc(4096), *d = malloc(4096);
	struct fmt_layers *fl;
	struct fmt_build_result res = { 0 };
	struct fmt_layers_slot *slots = NULL;
	struct fmt_layer_result lr, pr = { 0 };
	struct fmt_blob_table t = { 0 };
	struct sk_err e = { { 0 } };
	struct fmt_bs bs;
	unsigned int nslots = 0, dev;
	uint32_t blk;
	int fds[3], ret;

	memset(a, 'a', 4096);
	memset(a + 4096, 'c', 4096);	/* a's chunk 1 is c's only chunk */
	memset(bb, 'b', 4096);
	memset(d, 'd', 4096);
	member(&l[0], "a", '0', a, 8192, NULL);
	member(&l[0], "b", '0', bb, 4096, NULL);
	end(&l[0]);
	member(&l[1], "c", '0', a + 4096, 4096, NULL);
	member(&l[1], "d", '0', d, 4096, NULL);
	member(&l[1], "hl", '1', NULL, 0, "b");
	end(&l[1]);
	for (int i = 0; i < 3; i++)
		fds[i] = memfd_create("blob", MFD_CLOEXEC);
	ret = fmt_layers_new(&fl, &o, &e);
	for (int i = 0; !ret && i < 2; i++) {
		struct mem m = { l[i].buf, l[i].len, 0, 0 };
		struct fmt_tar_src src = { mem_read, &m };
		struct fmt_tar *tar;

		ret = fmt_tar_open(&tar, &src, &e);
		if (!ret)
			ret = fmt_layers_apply(fl, tar, fds[i], &lr);
		fmt_tar_close(tar);
	}
	if (!ret)
		ret = fmt_layers_prefetch_blob(fl, fds[2], &pr);
	is_int(ret, 0, "layers, then the prefetch blob (%s)", e.msg);
	ok(pr.has_blob, "... a prefetch blob written");
	is_int(fmt_layers_prefetch_blob(fl, fds[2], &lr), -EINVAL, "... once only");
	e.msg[0] = '\0';
	if (!ret)
		ret = fmt_layers_finish(fl, &res, &slots, &nslots);
	ok(ret == 0, "finish (%s)", e.msg);
	/* layer 1's files are all listed: its blob goes */
	if (is_int(nslots, 2, "2 device slots: layer 2's blob and the prefetch blob")) {
		ok(!slots[0].dict, "... the first with no dictionary");
		is_int(slots[0].index, 1, "... the first layer 2's");
		ok(!slots[1].dict, "... the second with no dictionary");
		is_int(slots[1].index, 2, "... the prefetch blob last, its index the layer count");
		is_mem(slots[1].blob_id, pr.blob_id, SK_SHA256_LEN, "... its id");
	} else {
		skip(5, "not 2 slots");
	}
	if (ret || fmt_bs_open(&bs, res.bootstrap, res.bootstrap_size)) {
		ok(0, "the bootstrap parses");
		goto out;
	}
	if (is_int(chunk_at(&bs, "/c", 0, &dev, &blk), 0, "c's chunk 0")) {
		is_int(dev, 2, "... c (first listed) is in the prefetch blob");
		is_int(blk, 0, "... at block 0");
	} else {
		skip(2, "no chunk");
	}
	if (is_int(chunk_at(&bs, "/b", 0, &dev, &blk), 0, "b's chunk 0")) {
		is_int(dev, 2, "... b (listed as its hard link hl) is in the prefetch blob");
		is_int(blk, 1, "... at block 1");
	} else {
		skip(2, "no chunk");
	}
	if (is_int(chunk_at(&bs, "/a", 0, &dev, &blk), 0, "a's chunk 0")) {
		is_int(dev, 2, "... in the prefetch blob");
		is_int(blk, 2, "... at block 2");
	} else {
		skip(2, "no chunk");
	}
	if (is_int(chunk_at(&bs, "/a", 1, &dev, &blk), 0, "a's chunk 1, c's bytes")) {
		is_int(dev, 2, "... in the prefetch blob");
		is_int(blk, 0, "... at c's block: stored once");
	} else {
		skip(2, "no chunk");
	}
	if (is_int(chunk_at(&bs, "/d", 0, &dev, &blk), 0, "d's chunk 0"))
		is_int(dev, 1, "... d, not listed, stays in layer 2's blob");
	else
		skip(1, "no chunk");
	fmt_bs_close(&bs);
	{
		struct stat st;
		uint8_t *blob = NULL, id[SK_SHA256_LEN];
		size_t n = 0;

		if (!fstat(fds[2], &st) && (blob = malloc((size_t)st.st_size + 1)))
			n = (size_t)st.st_size;
		if (!blob)
			bail_out("the prefetch blob: no size or no memory");
		is_int(n, pr.blob_size, "the prefetch blob has the size it says");
		is_int(sk_pread_full(fds[2], blob, n, 0), 0, "... and reads");
		sk_sha256(blob, n, id);
		is_mem(id, pr.blob_id, SK_SHA256_LEN, "... its id is the SHA-256 of its bytes");
		if (!ok(n >= sizeof(struct skiff_blob_footer), "... room for a footer (%zu bytes)", n))
			skip(2, "no footer");
		else if (!is_int(fmt_blob_footer_parse(blob + n - sizeof(struct skiff_blob_footer),
						       sizeof(struct skiff_blob_footer), n, &t, &e),
				 0, "... its footer parses (%s)", e.msg))
			skip(1, "no footer");
		else
			is_int(fmt_blob_table_parse(&t, blob + t.table_off, t.table_size, &e), 0,
			       "... its chunk table parses (%s)", e.msg);
		if (is_int(t.count, 3, "... 3 chunks")) {
			uint8_t out[4096];

			is_int(t.chunks[0].soff, 0, "... in list order: the first stored at the start");
			is_int(t.chunks[0].uoff, 0, "... the first at 0 in the cache file");
			is_int(t.chunks[1].uoff, 4096, "... the second at 4096");
			is_int(t.chunks[2].uoff, 8192, "... the third at 8192");
			if (is_int(fmt_chunk_decode(&t.chunks[0], blob + t.chunks[0].soff, out, &e), 0,
				   "... the first decodes (%s)", e.msg))
				is_mem(out, a + 4096, 4096, "... holding c's bytes");
			else
				skip(1, "not decoded");
			if (is_int(fmt_chunk_decode(&t.chunks[2], blob + t.chunks[2].soff, out, &e), 0,
				   "... the third decodes (%s)", e.msg))
				is_mem(out, a, 4096, "... holding a's bytes");
			else
				skip(1, "not decoded");
			ok(t.chunks[0].comp == SKIFF_COMP_ZSTD, "... compressed as stored");
		}
		fmt_blob_table_free(&t);
		free(blob);
	}
out:
	free(res.bootstrap);
	free(slots);
	fmt_layers_free(fl);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	for (int i = 0; i < 2; i++)
		free(l[i].buf);
	free(a);
	free(bb);
	free(d);
}

int main(void)
{
	test_fields();
	test_pax_and_gnu();
	test_compressed();
	test_sparse();
	test_rejects();
	test_merge();
	test_claims();
	test_prefetch_blob();
	return done_testing();
}
