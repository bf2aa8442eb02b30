/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Streaming tar reader. Three stages, each pulling from the one before:
 * the caller's byte source (hashed: the layer digest), the decompressor
 * (its output hashed: the diff id), and the member parser. Nothing is
 * buffered beyond one input and one output buffer plus the current
 * member's names, xattrs and sparse map, each of them bounded.
 *
 * Formats: ustar (with its prefix field), v7, GNU (long names 'L', long
 * links 'K', old sparse 'S', dumpdir 'D' as a directory), PAX extended
 * headers 'x' (global 'g' headers are skipped, as most extractors do)
 * with path, linkpath, size, uid, gid, mtime (with nanoseconds),
 * SCHILY.xattr.*, LIBARCHIVE.xattr.* and GNU.sparse.* (0.0, 0.1, 1.0).
 * Numeric fields are octal or base-256.
 */
#include "tar.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>
#include <zstd.h>

#define TAR_BLK		512u
#define IO_BUF		(256u << 10)
#define PAX_MAX		(8u << 20)	/* one extended header */
#define LONGNAME_MAX	(64u << 10)	/* GNU 'L'/'K' member */
#define SEGS_MAX	(1u << 20)	/* sparse map entries per file */
#define XATTRS_MAX	4096u		/* xattrs per member */

struct fmt_tar {
	struct fmt_tar_src src;
	enum fmt_tar_comp comp;
	z_stream z;
	bool z_live, z_end, z_full;
	ZSTD_DStream *zs;
	size_t z_ret;		/* zstd: 0 once a frame is complete */
	uint8_t *ibuf;
	size_t ipos, ilen;
	bool ieof;
	uint8_t *obuf;		/* decompressor output */
	const uint8_t *out;	/* bytes ready for the parser */
	size_t opos, olen;
	bool oeof;
	struct sk_sha256_ctx hin, hout;
	bool hashing;
	uint64_t in_bytes, out_bytes;	/* from the source, from fill_out */

	/* extended header state for the next member */
	char *x_path, *x_link;		/* PAX path/linkpath or GNU L/K */
	bool x_has_size, x_has_uid, x_has_gid, x_has_mtime;
	uint64_t x_size;
	uint32_t x_uid, x_gid, x_nsec;
	int64_t x_mtime;
	int sp_major, sp_minor;		/* GNU.sparse.major/minor, -1 none */
	bool sp_pax;			/* any GNU.sparse.* seen */
	char *sp_name;
	bool sp_has_real;
	uint64_t sp_real;
	bool sp_half;			/* 0.0: an offset waits for its numbytes */
	uint64_t sp_off;

	/* the current member */
	struct fmt_tar_entry ent;
	char *path, *link;
	struct fmt_tar_xattr *xattrs;
	unsigned int nx, capx;
	struct fmt_tar_seg *segs;
	size_t nsegs, capsegs;
	uint64_t data_left, pad;	/* stored bytes still to read, then padding */
	size_t seg_i;
	uint64_t seg_done, lpos;
	bool is_file, done;
	struct sk_err err;
};

/* ---------------- input and decompression ---------------- */

static int fail(struct fmt_tar *t, int ret, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct fmt_tar *t, int ret, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(t->err.msg, sizeof(t->err.msg), fmt, ap);
	va_end(ap);
	return ret;
}

static int fill_in(struct fmt_tar *t)
{
	ssize_t n;

	t->ipos = t->ilen = 0;
	if (t->ieof)
		return 0;
	do
		n = t->src.read(t->src.ctx, t->ibuf, IO_BUF);
	while (n == -EINTR);
	if (n < 0)
		return fail(t, (int)n, "reading the layer: %s", strerror((int)-n));
	if (n == 0) {
		t->ieof = true;
		return 0;
	}
	if ((size_t)n > IO_BUF)
		return fail(t, -EIO, "layer source returned too many bytes");
	t->ilen = (size_t)n;
	t->in_bytes += (uint64_t)n;
	sk_sha256_update(&t->hin, t->ibuf, (size_t)n);
	return 0;
}

static int gzip_step(struct fmt_tar *t)
{
	int r;

	if (t->z_end) {
		/* a gzip file may hold several members back to back */
		if (t->ipos == t->ilen && (r = fill_in(t)))
			return r;
		if (t->ipos == t->ilen) {
			t->oeof = true;
			return 0;
		}
		if (inflateReset(&t->z) != Z_OK)
			return fail(t, -EINVAL, "gzip: cannot restart");
		t->z_end = false;
	}
	if (t->ipos == t->ilen && (r = fill_in(t)))
		return r;
	t->z.next_in = t->ibuf + t->ipos;
	t->z.avail_in = (uInt)(t->ilen - t->ipos);
	t->z.next_out = t->obuf;
	t->z.avail_out = IO_BUF;
	r = inflate(&t->z, Z_NO_FLUSH);
	t->ipos = t->ilen - t->z.avail_in;
	t->olen = IO_BUF - t->z.avail_out;
	if (r == Z_STREAM_END) {
		t->z_end = true;
	} else if (r == Z_BUF_ERROR) {
		if (t->ieof && t->ipos == t->ilen && !t->olen)
			return fail(t, -EIO, "gzip: the stream ends early");
	} else if (r != Z_OK) {
		return fail(t, -EINVAL, "gzip: %s", t->z.msg ? t->z.msg : "corrupt data");
	}
	return 0;
}

static int zstd_step(struct fmt_tar *t)
{
	ZSTD_inBuffer in;
	ZSTD_outBuffer o = { t->obuf, IO_BUF, 0 };
	size_t r2;
	int r;

	if (t->ipos == t->ilen && (r = fill_in(t)))
		return r;
	/* with the input used up, a full output buffer may still have more
	 * to flush; otherwise the stream is over */
	if (t->ipos == t->ilen && !t->z_full) {
		if (t->z_ret)
			return fail(t, -EIO, "zstd: the stream ends inside a frame");
		t->oeof = true;
		return 0;
	}
	in = (ZSTD_inBuffer){ t->ibuf, t->ilen, t->ipos };
	r2 = ZSTD_decompressStream(t->zs, &o, &in);
	if (ZSTD_isError(r2))
		return fail(t, -EINVAL, "zstd: %s", ZSTD_getErrorName(r2));
	/* a flush call that found nothing left says "next frame header";
	 * the frame before it did end */
	if (in.pos != t->ipos || o.pos)
		t->z_ret = r2;
	t->ipos = in.pos;
	t->olen = o.pos;
	t->z_full = o.pos == o.size;
	return 0;
}

/* Makes more archive bytes ready; at the end t->oeof is set instead. */
static int fill_out(struct fmt_tar *t)
{
	int r;

	t->opos = t->olen = 0;
	while (!t->olen && !t->oeof) {
		switch (t->comp) {
		case FMT_TAR_PLAIN:
			if (t->ipos == t->ilen && (r = fill_in(t)))
				return r;
			if (t->ipos == t->ilen) {
				t->oeof = true;
				break;
			}
			t->out = t->ibuf + t->ipos;
			t->olen = t->ilen - t->ipos;
			t->ipos = t->ilen;
			break;
		case FMT_TAR_GZIP:
			t->out = t->obuf;
			if ((r = gzip_step(t)))
				return r;
			break;
		case FMT_TAR_ZSTD:
			t->out = t->obuf;
			if ((r = zstd_step(t)))
				return r;
			break;
		}
	}
	if (t->olen)
		sk_sha256_update(&t->hout, t->out, t->olen);
	t->out_bytes += t->olen;
	return 0;
}

/* Exactly n archive bytes into buf (NULL: skip them). */
static int pull(struct fmt_tar *t, void *buf, uint64_t n)
{
	uint8_t *p = buf;
	int r;

	while (n) {
		size_t k;

		if (t->opos == t->olen) {
			if ((r = fill_out(t)))
				return r;
			if (t->oeof)
				return fail(t, -EIO, "the archive ends in the middle of a member");
		}
		k = (size_t)SK_MIN((uint64_t)(t->olen - t->opos), n);
		if (p) {
			memcpy(p, t->out + t->opos, k);
			p += k;
		}
		t->opos += k;
		n -= k;
	}
	return 0;
}

/* ---------------- fields ---------------- */

/* Numeric header field: octal (leading spaces or NULs, ended by a space or
 * NUL) or base-256 (first byte 0x80 positive, 0xff negative). */
static int parse_num(const uint8_t *f, size_t len, int64_t *out)
{
	uint64_t v = 0;
	size_t i = 0;

	if (f[0] & 0x80) {
		uint8_t inv = (f[0] & 0x40) ? 0xff : 0;

		for (i = 0; i < len; i++) {
			uint8_t c = f[i] ^ inv;

			if (i == 0)
				c &= 0x7f;
			if (v >> 56)
				return -EINVAL;
			v = v << 8 | c;
		}
		if (v >> 63)
			return -EINVAL;
		*out = inv ? ~(int64_t)v : (int64_t)v;
		return 0;
	}
	while (i < len && (f[i] == ' ' || f[i] == '\0'))
		i++;
	for (; i < len && f[i] >= '0' && f[i] <= '7'; i++) {
		if (v >> 60)
			return -EINVAL;
		v = v << 3 | (uint64_t)(f[i] - '0');
	}
	for (; i < len; i++)
		if (f[i] != ' ' && f[i] != '\0')
			return -EINVAL;
	*out = (int64_t)v;
	return 0;
}

static int header_num(struct fmt_tar *t, const uint8_t *h, size_t off,
		      size_t len, const char *what, uint64_t max, uint64_t *out)
{
	int64_t v;

	if (parse_num(h + off, len, &v) || v < 0 || (uint64_t)v > max)
		return fail(t, -EINVAL, "tar header: bad %s field", what);
	*out = (uint64_t)v;
	return 0;
}

/* A member's size rounded up to whole tar blocks. Sizes are range-checked
 * when parsed, but rounding a header's number never trusts that. */
static int padded(struct fmt_tar *t, uint64_t size, uint64_t *out)
{
	if (!sk_align_up(size, TAR_BLK, out))
		return fail(t, -EINVAL, "tar header: size %llu too large",
			    (unsigned long long)size);
	return 0;
}

static char *field_str(const uint8_t *f, size_t len)
{
	return strndup((const char *)f, strnlen((const char *)f, len));
}

static int dec_u64(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;

	if (!len || len > 20)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		if (v > (UINT64_MAX - 9) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

/* PAX time: [-]seconds[.fraction] */
static int dec_time(const char *s, size_t len, int64_t *sec, uint32_t *nsec)
{
	bool neg = len && s[0] == '-';
	const char *dot = memchr(s, '.', len);
	size_t il = dot ? (size_t)(dot - s) : len;
	uint64_t v;
	uint32_t ns = 0;

	if (dec_u64(s + neg, il - neg, &v) || v > INT64_MAX)
		return -EINVAL;
	if (dot) {
		size_t fl = len - il - 1;

		for (size_t i = 0; i < fl; i++) {
			char c = dot[1 + i];

			if (c < '0' || c > '9')
				return -EINVAL;
			if (i < 9)
				ns = ns * 10 + (uint32_t)(c - '0');
		}
		for (size_t i = fl; i < 9; i++)
			ns *= 10;
	}
	if (neg && ns) {
		/* -1.25 is 1.25 s before the epoch: -2 s + 0.75 s */
		*sec = -(int64_t)v - 1;
		*nsec = 1000000000u - ns;
	} else {
		*sec = neg ? -(int64_t)v : (int64_t)v;
		*nsec = ns;
	}
	return 0;
}

static int set_str(char **dst, const char *s, size_t len)
{
	char *n;

	if (memchr(s, '\0', len))
		return -EINVAL;
	n = strndup(s, len);
	if (!n)
		return -ENOMEM;
	free(*dst);
	*dst = n;
	return 0;
}

/* ---------------- member state ---------------- */

static void clear_member(struct fmt_tar *t)
{
	free(t->path);
	free(t->link);
	t->path = t->link = NULL;
	for (unsigned int i = 0; i < t->nx; i++) {
		free(t->xattrs[i].name);
		free(t->xattrs[i].value);
	}
	t->nx = 0;
	t->nsegs = 0;
	t->data_left = t->pad = 0;
	t->seg_i = 0;
	t->seg_done = t->lpos = 0;
	t->is_file = false;
	memset(&t->ent, 0, sizeof(t->ent));
}

static void clear_ext(struct fmt_tar *t)
{
	free(t->x_path);
	free(t->x_link);
	free(t->sp_name);
	t->x_path = t->x_link = t->sp_name = NULL;
	t->x_has_size = t->x_has_uid = t->x_has_gid = t->x_has_mtime = false;
	t->sp_major = t->sp_minor = -1;
	t->sp_pax = t->sp_has_real = t->sp_half = false;
}

static int add_xattr(struct fmt_tar *t, const char *name, size_t nlen,
		     const uint8_t *val, size_t vlen)
{
	struct fmt_tar_xattr *x = NULL;

	if (!nlen || memchr(name, '\0', nlen))
		return fail(t, -EINVAL, "PAX header: bad xattr name");
	for (unsigned int i = 0; i < t->nx; i++)
		if (strlen(t->xattrs[i].name) == nlen &&
		    !memcmp(t->xattrs[i].name, name, nlen))
			x = &t->xattrs[i];	/* a later record replaces it */
	if (!x) {
		if (t->nx == XATTRS_MAX)
			return fail(t, -E2BIG, "PAX header: too many xattrs");
		if (t->nx == t->capx) {
			unsigned int nc = t->capx ? t->capx * 2 : 8;
			struct fmt_tar_xattr *n = realloc(t->xattrs, nc * sizeof(*n));

			if (!n)
				return -ENOMEM;
			t->xattrs = n;
			t->capx = nc;
		}
		x = &t->xattrs[t->nx++];
		x->name = strndup(name, nlen);
		x->value = NULL;
		if (!x->name) {
			t->nx--;
			return -ENOMEM;
		}
	}
	free(x->value);
	x->value = malloc(vlen ? vlen : 1);
	if (!x->value) {
		x->vlen = 0;
		return -ENOMEM;
	}
	memcpy(x->value, val, vlen);
	x->vlen = vlen;
	return 0;
}

static void del_xattr(struct fmt_tar *t, const char *name, size_t nlen)
{
	for (unsigned int i = 0; i < t->nx; i++) {
		if (strlen(t->xattrs[i].name) != nlen ||
		    memcmp(t->xattrs[i].name, name, nlen))
			continue;
		free(t->xattrs[i].name);
		free(t->xattrs[i].value);
		t->xattrs[i] = t->xattrs[--t->nx];
		return;
	}
}

static int add_seg(struct fmt_tar *t, uint64_t off, uint64_t len)
{
	if (t->nsegs == SEGS_MAX)
		return fail(t, -E2BIG, "sparse map: too many entries");
	if (t->nsegs == t->capsegs) {
		size_t nc = t->capsegs ? t->capsegs * 2 : 16;
		struct fmt_tar_seg *n = realloc(t->segs, nc * sizeof(*n));

		if (!n)
			return -ENOMEM;
		t->segs = n;
		t->capsegs = nc;
	}
	t->segs[t->nsegs++] = (struct fmt_tar_seg){ off, len };
	return 0;
}

static int unhex1(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int b64val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* LIBARCHIVE.xattr.<%-escaped name>=<base64 value> */
static int libarchive_xattr(struct fmt_tar *t, const char *k, size_t kl,
			    const char *v, size_t vl)
{
	char *name = malloc(kl + 1);
	uint8_t *val = malloc(vl * 3 / 4 + 3);
	size_t nl = 0, n = 0;
	uint32_t acc = 0;
	int bits = 0, ret = -EINVAL;

	if (!name || !val) {
		ret = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < kl; i++) {
		if (k[i] == '%') {
			int hi, lo;

			if (i + 2 >= kl)
				goto bad;
			hi = unhex1(k[i + 1]);
			lo = unhex1(k[i + 2]);
			if (hi < 0 || lo < 0)
				goto bad;
			name[nl++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			name[nl++] = k[i];
		}
	}
	for (size_t i = 0; i < vl; i++) {
		int d = b64val(v[i]);

		if (v[i] == '=')
			break;
		if (d < 0)
			goto bad;
		acc = acc << 6 | (uint32_t)d;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			val[n++] = (uint8_t)(acc >> bits);
		}
	}
	ret = add_xattr(t, name, nl, val, n);
	goto out;
bad:
	ret = fail(t, -EINVAL, "PAX header: bad LIBARCHIVE.xattr record");
out:
	free(name);
	free(val);
	return ret;
}

/* GNU.sparse.map: "off,len,off,len,..." (format 0.1) */
static int sparse_map01(struct fmt_tar *t, const char *v, size_t vl)
{
	size_t i = 0;
	uint64_t nums[2];
	int k = 0, ret;

	t->nsegs = 0;
	while (i < vl) {
		size_t j = i;

		while (j < vl && v[j] != ',')
			j++;
		if (dec_u64(v + i, j - i, &nums[k]))
			return fail(t, -EINVAL, "PAX header: bad GNU.sparse.map");
		if (++k == 2) {
			if ((ret = add_seg(t, nums[0], nums[1])))
				return ret;
			k = 0;
		}
		i = j + 1;
	}
	if (k)
		return fail(t, -EINVAL, "PAX header: odd GNU.sparse.map");
	return 0;
}

static bool key_is(const char *k, size_t kl, const char *want)
{
	return strlen(want) == kl && !memcmp(k, want, kl);
}

static int pax_record(struct fmt_tar *t, const char *k, size_t kl,
		      const char *v, size_t vl)
{
	static const char schily[] = "SCHILY.xattr.", libarch[] = "LIBARCHIVE.xattr.";
	uint64_t n;

	if (key_is(k, kl, "path"))
		return vl ? set_str(&t->x_path, v, vl) : 0;
	if (key_is(k, kl, "linkpath"))
		return vl ? set_str(&t->x_link, v, vl) : 0;
	if (key_is(k, kl, "size")) {
		if (dec_u64(v, vl, &t->x_size) || t->x_size > FMT_TAR_SIZE_MAX)
			return fail(t, -EINVAL, "PAX header: bad size");
		t->x_has_size = true;
		return 0;
	}
	if (key_is(k, kl, "uid") || key_is(k, kl, "gid")) {
		if (dec_u64(v, vl, &n) || n > UINT32_MAX)
			return fail(t, -EINVAL, "PAX header: bad %.3s", k);
		if (k[0] == 'u') {
			t->x_uid = (uint32_t)n;
			t->x_has_uid = true;
		} else {
			t->x_gid = (uint32_t)n;
			t->x_has_gid = true;
		}
		return 0;
	}
	if (key_is(k, kl, "mtime")) {
		if (dec_time(v, vl, &t->x_mtime, &t->x_nsec))
			return fail(t, -EINVAL, "PAX header: bad mtime");
		t->x_has_mtime = true;
		return 0;
	}
	/* POSIX: a record with an empty value deletes the keyword */
	if (!vl && ((kl > sizeof(schily) - 1 && !memcmp(k, schily, sizeof(schily) - 1)) ||
		    (kl > sizeof(libarch) - 1 && !memcmp(k, libarch, sizeof(libarch) - 1)))) {
		size_t pl = k[0] == 'S' ? sizeof(schily) - 1 : sizeof(libarch) - 1;

		del_xattr(t, k + pl, kl - pl);
		return 0;
	}
	if (kl > sizeof(schily) - 1 && !memcmp(k, schily, sizeof(schily) - 1))
		return add_xattr(t, k + sizeof(schily) - 1, kl - (sizeof(schily) - 1),
				 (const uint8_t *)v, vl);
	if (kl > sizeof(libarch) - 1 && !memcmp(k, libarch, sizeof(libarch) - 1))
		return libarchive_xattr(t, k + sizeof(libarch) - 1,
					kl - (sizeof(libarch) - 1), v, vl);
	if (kl > 11 && !memcmp(k, "GNU.sparse.", 11)) {
		const char *s = k + 11;
		size_t sl = kl - 11;

		t->sp_pax = true;
		if (key_is(s, sl, "name"))
			return set_str(&t->sp_name, v, vl);
		if (key_is(s, sl, "map"))
			return sparse_map01(t, v, vl);
		if (key_is(s, sl, "numblocks"))
			return 0;
		if (dec_u64(v, vl, &n))
			return fail(t, -EINVAL, "PAX header: bad GNU.sparse.%.*s", (int)sl, s);
		if (key_is(s, sl, "major") || key_is(s, sl, "minor")) {
			if (n > 1)
				return fail(t, -EINVAL, "unknown GNU sparse format version");
			*(s[1] == 'a' ? &t->sp_major : &t->sp_minor) = (int)n;
		} else if (key_is(s, sl, "size") || key_is(s, sl, "realsize")) {
			t->sp_real = n;
			t->sp_has_real = true;
		} else if (key_is(s, sl, "offset")) {
			if (t->sp_half)
				return fail(t, -EINVAL, "PAX header: GNU.sparse.offset without numbytes");
			t->sp_off = n;
			t->sp_half = true;
		} else if (key_is(s, sl, "numbytes")) {
			if (!t->sp_half)
				return fail(t, -EINVAL, "PAX header: GNU.sparse.numbytes without offset");
			t->sp_half = false;
			return add_seg(t, t->sp_off, n);
		}
		return 0;
	}
	return 0;	/* atime, ctime, uname, gname, comment, charset, ... */
}

/* "<len> <key>=<value>\n" records */
static int pax_parse(struct fmt_tar *t, const char *buf, size_t len)
{
	size_t pos = 0;
	int ret;

	while (pos < len) {
		size_t i = pos, dl;
		uint64_t rl;
		const char *key, *eq, *end;

		while (i < len && buf[i] >= '0' && buf[i] <= '9')
			i++;
		dl = i - pos;
		if (i == len || buf[i] != ' ' || dec_u64(buf + pos, dl, &rl) ||
		    rl < dl + 3 || rl > len - pos || buf[pos + rl - 1] != '\n')
			return fail(t, -EINVAL, "PAX header: bad record at byte %zu", pos);
		key = buf + i + 1;
		end = buf + pos + rl - 1;
		eq = memchr(key, '=', (size_t)(end - key));
		if (!eq || eq == key || memchr(key, '\0', (size_t)(eq - key)))
			return fail(t, -EINVAL, "PAX header: bad record at byte %zu", pos);
		ret = pax_record(t, key, (size_t)(eq - key), eq + 1,
				 (size_t)(end - eq - 1));
		if (ret)
			return ret;
		pos += rl;
	}
	return 0;
}

/* Reads a member's data (extended header, long name) into memory. */
static int read_blob(struct fmt_tar *t, uint64_t size, uint64_t max,
		     const char *what, char **out)
{
	char *b;
	int ret;

	if (size > max)
		return fail(t, -E2BIG, "%s of %llu bytes is too large", what,
			    (unsigned long long)size);
	b = malloc(size + 1);
	if (!b)
		return -ENOMEM;
	ret = pull(t, b, size);
	if (!ret)	/* size <= max: no wrap */
		ret = pull(t, NULL, SK_ALIGN_UP(size, (uint64_t)TAR_BLK) - size);
	if (ret) {
		free(b);
		return ret;
	}
	b[size] = '\0';
	*out = b;
	return 0;
}

/* GNU old sparse entries: count entries of 24 bytes at h + off */
static int gnu_sparse_entries(struct fmt_tar *t, const uint8_t *h, size_t off,
			      unsigned int count)
{
	for (unsigned int i = 0; i < count; i++) {
		const uint8_t *p = h + off + i * 24;
		uint64_t so = 0, sl = 0;
		int ret;

		if (!p[0])	/* unused slots are NUL */
			break;
		if ((ret = header_num(t, p, 0, 12, "sparse offset", INT64_MAX, &so)) ||
		    (ret = header_num(t, p, 12, 12, "sparse length", INT64_MAX, &sl)))
			return ret;
		if ((ret = add_seg(t, so, sl)))
			return ret;
	}
	return 0;
}

/* GNU.sparse 1.0: the map heads the data, decimal numbers ended by '\n',
 * count first, padded to a block. */
static int sparse_map10(struct fmt_tar *t)
{
	uint8_t blk[TAR_BLK];
	size_t pos = TAR_BLK;
	uint64_t count = 0, nums[2];
	int k = 0, ret;
	bool have_count = false;

	t->nsegs = 0;
	for (;;) {
		char num[21];
		size_t nl = 0;
		uint64_t v;

		if (have_count && t->nsegs == count && k == 0)
			break;
		for (;;) {
			if (pos == TAR_BLK) {
				if (t->data_left < TAR_BLK)
					return fail(t, -EINVAL, "sparse map runs past the member");
				if ((ret = pull(t, blk, TAR_BLK)))
					return ret;
				t->data_left -= TAR_BLK;
				pos = 0;
			}
			if (blk[pos] == '\n') {
				pos++;
				break;
			}
			if (nl == sizeof(num))
				return fail(t, -EINVAL, "sparse map: number too long");
			num[nl++] = (char)blk[pos++];
		}
		if (dec_u64(num, nl, &v))
			return fail(t, -EINVAL, "sparse map: bad number");
		if (!have_count) {
			if (v > SEGS_MAX)
				return fail(t, -E2BIG, "sparse map: too many entries");
			count = v;
			have_count = true;
			continue;
		}
		nums[k++] = v;
		if (k == 2) {
			if ((ret = add_seg(t, nums[0], nums[1])))
				return ret;
			k = 0;
		}
	}
	return 0;
}

/* Checks a sparse map against the real size and the stored bytes, and
 * drops empty segments (GNU tar ends a map with one at the real size). */
static int check_segs(struct fmt_tar *t, uint64_t real, uint64_t stored)
{
	uint64_t end = 0, sum = 0;
	size_t n = 0;

	for (size_t i = 0; i < t->nsegs; i++) {
		struct fmt_tar_seg s = t->segs[i];

		if (s.off < end || s.off > real || s.len > real - s.off)
			return fail(t, -EINVAL, "sparse map: entry %zu out of order or past the file size", i);
		end = s.off + s.len;
		sum += s.len;
		if (s.len)
			t->segs[n++] = s;
	}
	t->nsegs = n;
	if (sum != stored)
		return fail(t, -EINVAL, "sparse map: %llu data bytes mapped, %llu stored",
			    (unsigned long long)sum, (unsigned long long)stored);
	return 0;
}

static bool zero_block(const uint8_t *b)
{
	for (size_t i = 0; i < TAR_BLK; i++)
		if (b[i])
			return false;
	return true;
}

static int check_sum(struct fmt_tar *t, const uint8_t *h)
{
	uint64_t want = 0;
	int64_t s = 0;
	uint64_t u = 0;

	if (header_num(t, h, 148, 8, "checksum", UINT32_MAX, &want))
		return -EINVAL;
	for (size_t i = 0; i < TAR_BLK; i++) {
		uint8_t c = (i >= 148 && i < 156) ? ' ' : h[i];

		u += c;
		s += (int8_t)c;
	}
	if (want != u && (int64_t)want != s)
		return fail(t, -EINVAL, "tar header checksum mismatch: not a tar archive, or a damaged one");
	return 0;
}

/* Reads the rest of the stream after the end-of-archive marker, so that
 * both digests cover every byte. */
static int drain(struct fmt_tar *t)
{
	int r;

	for (;;) {
		t->opos = t->olen;
		if ((r = fill_out(t)))
			return r;
		if (t->oeof)
			break;
	}
	t->done = true;
	return 0;
}

static int join_prefix(struct fmt_tar *t, const uint8_t *h)
{
	size_t pl = strnlen((const char *)h + 345, 155);
	size_t nl = strnlen((const char *)h, 100);
	char *p;

	if (!pl) {
		t->path = field_str(h, 100);
		return t->path ? 0 : -ENOMEM;
	}
	p = malloc(pl + 1 + nl + 1);
	if (!p)
		return -ENOMEM;
	memcpy(p, h + 345, pl);
	p[pl] = '/';
	memcpy(p + pl + 1, h, nl);
	p[pl + 1 + nl] = '\0';
	t->path = p;
	return 0;
}

static int member(struct fmt_tar *t, const uint8_t *h, char type, bool posix,
		  bool gnu)
{
	struct fmt_tar_entry *e = &t->ent;
	uint64_t v = 0, size = 0, real = 0;
	int ret;

	if ((ret = header_num(t, h, 100, 8, "mode", UINT32_MAX, &v)))
		return ret;
	e->mode = (uint32_t)v & 07777;
	if ((ret = header_num(t, h, 108, 8, "uid", UINT32_MAX, &v)))
		return ret;
	e->uid = t->x_has_uid ? t->x_uid : (uint32_t)v;
	if ((ret = header_num(t, h, 116, 8, "gid", UINT32_MAX, &v)))
		return ret;
	e->gid = t->x_has_gid ? t->x_gid : (uint32_t)v;
	if ((ret = header_num(t, h, 124, 12, "size", INT64_MAX, &size)))
		return ret;
	if (t->x_has_size)
		size = t->x_size;
	if (t->x_has_mtime) {
		e->mtime = t->x_mtime;
		e->mtime_nsec = t->x_nsec;
	} else {
		int64_t m;

		if (parse_num(h + 136, 12, &m))
			return fail(t, -EINVAL, "tar header: bad mtime field");
		e->mtime = m;
	}
	if ((posix || gnu) && (type == '3' || type == '4')) {
		if ((ret = header_num(t, h, 329, 8, "devmajor", UINT32_MAX, &v)))
			return ret;
		e->devmajor = (uint32_t)v;
		if ((ret = header_num(t, h, 337, 8, "devminor", UINT32_MAX, &v)))
			return ret;
		e->devminor = (uint32_t)v;
	}
	if (t->sp_name) {
		t->path = t->sp_name;
		t->sp_name = NULL;
	} else if (t->x_path) {
		t->path = t->x_path;
		t->x_path = NULL;
	} else if (posix) {
		if ((ret = join_prefix(t, h)))
			return ret;
	} else {
		if (!(t->path = field_str(h, 100)))
			return -ENOMEM;
	}
	if (t->x_link) {
		t->link = t->x_link;
		t->x_link = NULL;
	} else if (!(t->link = field_str(h + 157, 100))) {
		return -ENOMEM;
	}
	if (!t->path[0])
		return fail(t, -EINVAL, "tar member with an empty name");
	t->data_left = size;
	if ((ret = padded(t, size, &t->pad)))
		return ret;
	t->pad -= size;

	switch (type) {
	case '0': case '\0': case '7':
		if (type != '7' && t->path[strlen(t->path) - 1] == '/') {
			e->type = FMT_TAR_DIR;	/* pre-POSIX directory */
			break;
		}
		e->type = FMT_TAR_REG;
		break;
	case 'S':
		/* its sparse map sits where ustar keeps the name prefix */
		if (!gnu)
			return fail(t, -EINVAL, "%s: old GNU sparse member outside a GNU header",
				    t->path);
		e->type = FMT_TAR_REG;
		break;
	case '1': e->type = FMT_TAR_HARDLINK; break;
	case '2': e->type = FMT_TAR_SYMLINK; break;
	case '3': e->type = FMT_TAR_CHR; break;
	case '4': e->type = FMT_TAR_BLK; break;
	case '5': case 'D': e->type = FMT_TAR_DIR; break;
	case '6': e->type = FMT_TAR_FIFO; break;
	default:
		return fail(t, -EINVAL, "%s: unsupported tar member type '%c'",
			    t->path, type >= 0x20 && type < 0x7f ? type : '?');
	}
	static const uint32_t fmt_of[] = {
		['0'] = S_IFREG, ['1'] = S_IFREG, ['2'] = S_IFLNK, ['3'] = S_IFCHR,
		['4'] = S_IFBLK, ['5'] = S_IFDIR, ['6'] = S_IFIFO,
	};
	e->mode |= fmt_of[e->type];
	e->path = t->path;
	e->link = t->link;
	e->xattrs = t->xattrs;
	e->nxattrs = t->nx;
	if (e->type != FMT_TAR_REG)
		return 0;

	t->is_file = true;
	real = size;
	if (type == 'S') {
		/* old GNU sparse: 4 entries in the header, more in extension
		 * blocks, the real size at 483 */
		t->nsegs = 0;
		if ((ret = gnu_sparse_entries(t, h, 386, 4)) ||
		    (ret = header_num(t, h, 483, 12, "real size", INT64_MAX, &real)))
			return ret;
		for (uint8_t ext = h[482]; ext;) {
			uint8_t b[TAR_BLK];

			if ((ret = pull(t, b, TAR_BLK)) ||
			    (ret = gnu_sparse_entries(t, b, 0, 21)))
				return ret;
			ext = b[504];
		}
		e->sparse = true;
	} else if (t->sp_pax) {
		if (!t->sp_has_real)
			return fail(t, -EINVAL, "%s: GNU sparse member without its real size", t->path);
		real = t->sp_real;
		if (t->sp_major == 1) {
			if ((ret = sparse_map10(t)))
				return ret;
		} else if (t->sp_half) {
			return fail(t, -EINVAL, "PAX header: GNU.sparse.offset without numbytes");
		}
		e->sparse = true;
	}
	/* One cap on the file size, whichever field told it (ustar or PAX
	 * size, GNU.sparse.size or realsize, the old GNU real size): what
	 * callers compute from it (chunk counts, offset + length) cannot
	 * wrap. */
	if (real > FMT_TAR_SIZE_MAX)
		return fail(t, -EINVAL, "%s: file size %llu is too large", t->path,
			    (unsigned long long)real);
	if (e->sparse) {
		if ((ret = check_segs(t, real, t->data_left)))
			return ret;
	} else {
		t->nsegs = 0;
		if (size && (ret = add_seg(t, 0, size)))
			return ret;
	}
	e->size = real;
	e->segs = t->segs;
	e->nsegs = t->nsegs;
	return 0;
}

int fmt_tar_next(struct fmt_tar *t, const struct fmt_tar_entry **ent)
{
	uint8_t h[TAR_BLK];
	int ret;
	bool ext = false;

	if (t->done)
		return 0;
	ret = pull(t, NULL, t->data_left + t->pad);
	clear_member(t);
	if (ret)
		return ret;
	for (;;) {
		bool posix, gnu;
		char type, *blob = NULL;

		/* a stream that stops at a block boundary ends the archive */
		if (t->opos == t->olen) {
			if ((ret = fill_out(t)))
				return ret;
			if (t->oeof) {
				if (ext)
					return fail(t, -EIO, "the archive ends after an extended header");
				t->done = true;
				return 0;
			}
		}
		if ((ret = pull(t, h, TAR_BLK)))
			return ret;
		if (zero_block(h)) {
			if (ext)
				return fail(t, -EINVAL, "end of archive after an extended header");
			return drain(t);
		}
		if ((ret = check_sum(t, h)))
			return ret;
		posix = !memcmp(h + 257, "ustar\0", 6);
		gnu = !memcmp(h + 257, "ustar  \0", 8);
		type = (char)h[156];
		if (type == 'x' || type == 'g' || type == 'L' || type == 'K') {
			uint64_t size = 0;

			if ((ret = header_num(t, h, 124, 12, "size", INT64_MAX, &size)))
				return ret;
			if (type == 'g') {
				if ((ret = padded(t, size, &size)) ||
				    (ret = pull(t, NULL, size)))
					return ret;
				continue;
			}
			ret = read_blob(t, size, type == 'x' ? PAX_MAX : LONGNAME_MAX,
					type == 'x' ? "PAX header" : "GNU long name", &blob);
			if (ret)
				return ret;
			ext = true;
			if (type == 'x') {
				ret = pax_parse(t, blob, size);
				free(blob);
				if (ret)
					return ret;
				continue;
			}
			/* GNU long name or link: NUL-terminated inside */
			blob[strnlen(blob, size)] = '\0';
			free(type == 'L' ? t->x_path : t->x_link);
			*(type == 'L' ? &t->x_path : &t->x_link) = blob;
			if (!blob[0])
				return fail(t, -EINVAL, "empty GNU long name");
			continue;
		}
		if (type == 'V') {	/* volume label */
			uint64_t size = 0;

			if ((ret = header_num(t, h, 124, 12, "size", INT64_MAX, &size)) ||
			    (ret = padded(t, size, &size)) ||
			    (ret = pull(t, NULL, size)))
				return ret;
			clear_ext(t);
			ext = false;
			continue;
		}
		ret = member(t, h, type, posix, gnu);
		clear_ext(t);
		if (ret)
			return ret;
		if (t->ent.type == FMT_TAR_DIR && t->data_left) {
			/* GNU dumpdir contents, or a stray size: not data */
			ret = pull(t, NULL, t->data_left);
			t->data_left = 0;
			if (ret)
				return ret;
		}
		*ent = &t->ent;
		return 1;
	}
}

bool fmt_tar_has_data(const struct fmt_tar_entry *ent, uint64_t off,
		      uint64_t len)
{
	/* binary search: the first segment ending after off */
	size_t lo = 0, hi = ent->nsegs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (ent->segs[mid].off + ent->segs[mid].len <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < ent->nsegs && ent->segs[lo].off < off + len;
}

int fmt_tar_read(struct fmt_tar *t, uint64_t off, void *buf, size_t len)
{
	uint8_t *p = buf;
	int ret;

	if (!t->is_file || off < t->lpos || off > t->ent.size ||
	    len > t->ent.size - off)
		return fail(t, -EINVAL, "internal: tar read out of order");
	memset(buf, 0, len);
	while (t->seg_i < t->nsegs) {
		const struct fmt_tar_seg *s = &t->segs[t->seg_i];
		uint64_t cur = s->off + t->seg_done, end = s->off + s->len;
		uint64_t from, to;

		if (cur >= off + len)
			break;
		if (end <= off) {
			/* wholly before the range: skip what is left of it */
			if ((ret = pull(t, NULL, end - cur)))
				return ret;
			t->data_left -= end - cur;
			t->seg_i++;
			t->seg_done = 0;
			continue;
		}
		from = SK_MAX(cur, off);
		to = SK_MIN(end, off + len);
		if ((ret = pull(t, NULL, from - cur)) ||
		    (ret = pull(t, p + (from - off), to - from)))
			return ret;
		t->data_left -= to - cur;
		if (to == end) {
			t->seg_i++;
			t->seg_done = 0;
		} else {
			t->seg_done = to - s->off;
		}
	}
	t->lpos = off + len;
	return 0;
}

int fmt_tar_open(struct fmt_tar **out, const struct fmt_tar_src *src,
		 struct sk_err *e)
{
	struct fmt_tar *t = calloc(1, sizeof(*t));
	int ret;

	*out = NULL;
	if (!t)
		return -ENOMEM;
	t->src = *src;
	t->sp_major = t->sp_minor = -1;
	t->ibuf = malloc(IO_BUF);
	t->obuf = malloc(IO_BUF);
	if (!t->ibuf || !t->obuf) {
		ret = -ENOMEM;
		goto fail;
	}
	if ((ret = sk_sha256_init(&t->hin)))
		goto fail;
	if ((ret = sk_sha256_init(&t->hout))) {
		sk_sha256_free(&t->hin);
		goto fail;
	}
	t->hashing = true;
	/* the magic needs up to 4 bytes: read until there are that many */
	while (t->ilen < 4 && !t->ieof) {
		ssize_t n = t->src.read(t->src.ctx, t->ibuf + t->ilen, IO_BUF - t->ilen);

		if (n == -EINTR)
			continue;
		if (n < 0 || (size_t)n > IO_BUF - t->ilen) {
			ret = n < 0 ? (int)n : -EIO;
			sk_err_set(e, "reading the layer: %s", strerror(-ret));
			goto fail;
		}
		if (n == 0)
			t->ieof = true;
		sk_sha256_update(&t->hin, t->ibuf + t->ilen, (size_t)n);
		t->ilen += (size_t)n;
		t->in_bytes += (uint64_t)n;
	}
	if (t->ilen >= 2 && t->ibuf[0] == 0x1f && t->ibuf[1] == 0x8b) {
		t->comp = FMT_TAR_GZIP;
		if (inflateInit2(&t->z, 15 + 16) != Z_OK) {
			ret = -ENOMEM;
			goto fail;
		}
		t->z_live = true;
	} else if (t->ilen >= 4 && !memcmp(t->ibuf, "\x28\xb5\x2f\xfd", 4)) {
		t->comp = FMT_TAR_ZSTD;
		t->zs = ZSTD_createDStream();
		if (!t->zs || ZSTD_isError(ZSTD_initDStream(t->zs))) {
			ret = -ENOMEM;
			goto fail;
		}
		t->z_ret = 1;
	} else {
		t->comp = FMT_TAR_PLAIN;
	}
	*out = t;
	return 0;
fail:
	if (ret == -ENOMEM)
		sk_err_set(e, "out of memory");
	fmt_tar_close(t);
	return ret;
}

void fmt_tar_digests(struct fmt_tar *t, uint8_t stream[SK_SHA256_LEN],
		     uint8_t archive[SK_SHA256_LEN])
{
	if (t->hashing) {
		sk_sha256_final(&t->hin, stream);
		sk_sha256_final(&t->hout, archive);
	}
}

enum fmt_tar_comp fmt_tar_compression(const struct fmt_tar *t)
{
	return t->comp;
}

uint64_t fmt_tar_stream_bytes(const struct fmt_tar *t)
{
	return t->in_bytes;
}

uint64_t fmt_tar_archive_bytes(const struct fmt_tar *t)
{
	return t->out_bytes - (t->olen - t->opos);
}

const char *fmt_tar_error(const struct fmt_tar *t)
{
	return t->err.msg;
}

void fmt_tar_close(struct fmt_tar *t)
{
	if (!t)
		return;
	clear_member(t);
	clear_ext(t);
	free(t->xattrs);
	free(t->segs);
	if (t->z_live)
		inflateEnd(&t->z);
	ZSTD_freeDStream(t->zs);
	if (t->hashing) {
		sk_sha256_free(&t->hin);
		sk_sha256_free(&t->hout);
	}
	free(t->ibuf);
	free(t->obuf);
	free(t);
}
