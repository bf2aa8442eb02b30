/* SPDX-License-Identifier: Apache-2.0 */
/*
 * End-to-end tests of the format layer: fmt_build() on a small tree made
 * here, then the bootstrap reader, the tree walk and the file reader
 * checked against the source; then robustness of the readers against
 * truncated and byte-flipped bootstraps, and reproducibility of builds.
 */
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "../../format/builder.h"
#include "../../format/reader.h"
#include "../../format/walk.h"
#include "tap.h"

#define CHUNK 4096u
#define BIG_ENTRIES 500
/* Per-probe watchdog: a reader that loops on a crafted image is a bug. */
#define PROBE_ALARM 20

static char g_tmp[PATH_MAX];	/* scratch root, removed at exit */
static int g_have_xattr;

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1664525u + 1013904223u;
		p[i] = (uint8_t)(seed >> 24);
	}
}

static void put_file(const char *root, const char *rel, const void *data,
		     size_t len)
{
	char p[PATH_MAX];
	int fd;

	fmtpath(p, "%s/%s", root, rel);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || sk_write_full(fd, data, len) || close(fd))
		bail_out("writing %s: %s", p, strerror(errno));
}

static void put_dir(const char *root, const char *rel)
{
	char p[PATH_MAX];

	fmtpath(p, "%s/%s", root, rel);
	if (sk_mkdir_p(p, 0755))
		bail_out("mkdir %s", p);
}

static void put_xattr(const char *root, const char *rel, const char *name,
		      const char *value)
{
	char p[PATH_MAX];

	fmtpath(p, "%s/%s", root, rel);
	if (lsetxattr(p, name, value, strlen(value), 0) == 0)
		g_have_xattr = 1;
}

/* The test tree; every feature the builder handles for an unprivileged
 * source, in shapes that cross chunk and directory-block boundaries. */
static void make_tree(const char *root)
{
	uint8_t *buf = malloc(8 * CHUNK);
	char p[PATH_MAX], q[PATH_MAX], target[1600];

	if (!buf)
		bail_out("out of memory");
	put_dir(root, "");
	put_file(root, "small.txt", "hello, skiff\n", 13);
	put_file(root, "empty", "", 0);
	fill(buf, 5 * CHUNK + 123, 1);
	put_file(root, "multi.bin", buf, 5 * CHUNK + 123);

	/* text chunk, zero chunk (a hole), random chunk, a copy of a
	 * multi.bin chunk (deduplicated), and a short compressible tail */
	for (unsigned int i = 0; i < CHUNK; i++)
		buf[i] = (uint8_t)"compressible text "[i % 18];
	memset(buf + CHUNK, 0, CHUNK);
	fill(buf + 2 * CHUNK, CHUNK, 7);
	fill(buf + 3 * CHUNK, 2 * CHUNK, 1);	/* = multi.bin chunks 0, 1 */
	memmove(buf + 3 * CHUNK, buf + 4 * CHUNK, CHUNK);
	memset(buf + 4 * CHUNK, 'z', 2000);
	put_file(root, "mixed.bin", buf, 4 * CHUNK + 2000);

	fmtpath(p, "%s/sparse.bin", root);
	{
		int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		if (fd < 0 || ftruncate(fd, 3 * CHUNK + 77) ||
		    sk_pwrite_full(fd, "sparse data", 11, 2 * CHUNK + 5) || close(fd))
			bail_out("sparse file: %s", strerror(errno));
	}

	/* one data chunk, then two zero chunks that are never written */
	fmtpath(p, "%s/tailhole.bin", root);
	{
		int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

		if (fd < 0 || sk_write_full(fd, "head", 4) || ftruncate(fd, 3 * CHUNK) ||
		    close(fd))
			bail_out("tailhole file: %s", strerror(errno));
	}

	fmtpath(p, "%s/link", root);
	if (symlink("small.txt", p))
		bail_out("symlink: %s", strerror(errno));
	fmtpath(p, "%s/dirlink", root);
	if (symlink("a/b", p))
		bail_out("symlink: %s", strerror(errno));
	for (size_t i = 0; i + 1 < sizeof(target); i++)
		target[i] = "dir/"[i % 4];
	target[sizeof(target) - 1] = '\0';
	fmtpath(p, "%s/longlink", root);
	if (symlink(target, p))
		bail_out("symlink: %s", strerror(errno));

	put_dir(root, "a/b/c");
	put_file(root, "a/b/c/deep.txt", "deep\n", 5);
	put_file(root, "a/x", "x", 1);
	put_xattr(root, "a/x", "user.skiff.test", "value 1");
	put_xattr(root, "a/x", "user.second", "");
	put_xattr(root, "a", "user.dir", "d");
	put_xattr(root, "small.txt", "user.a-rather-long-attribute-name-for-alignment",
		  "0123456789abcdef0123456789");

	fmtpath(p, "%s/small.txt", root);
	fmtpath(q, "%s/hard", root);
	if (link(p, q))
		bail_out("link: %s", strerror(errno));
	fmtpath(p, "%s/fifo", root);
	if (mkfifo(p, 0600))
		bail_out("mkfifo: %s", strerror(errno));

	put_dir(root, "big");
	for (int i = 0; i < BIG_ENTRIES; i++) {
		char rel[64], body[32];

		snprintf(rel, sizeof(rel), "big/entry-with-a-longish-name-%03d", i);
		if (i % 50 == 7) {
			put_dir(root, rel);
		} else {
			snprintf(body, sizeof(body), "%d\n", i);
			put_file(root, rel, body, strlen(body));
		}
	}
	free(buf);
}

static int rm_rf(const char *path)
{
	char cmd[PATH_MAX + 32];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	return system(cmd);
}

/* ---------------- building ---------------- */

struct image {
	uint8_t *bs;
	size_t bs_size;
	int blob_fd;
	uint8_t *blob;		/* whole blob file, for comparisons */
	size_t blob_size;
	struct fmt_build_result res;
};

static int build_image(const char *src, const char *blob_path,
		       unsigned int threads, struct image *img, struct sk_err *e)
{
	struct fmt_build_opts o = {
		.chunk_bits = 12,
		.compress = SKIFF_COMP_ZSTD,
		.level = 3,
		.threads = threads,
	};
	void *blob = NULL;
	int ret;

	memset(img, 0, sizeof(*img));
	img->blob_fd = open(blob_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (img->blob_fd < 0)
		return -errno;
	ret = fmt_build(src, &o, img->blob_fd, &img->res, e);
	if (ret)
		return ret;
	img->bs = img->res.bootstrap;
	img->bs_size = img->res.bootstrap_size;
	ret = sk_read_file(blob_path, 1u << 30, &blob, &img->blob_size);
	img->blob = blob;
	return ret;
}

static void image_free(struct image *img)
{
	free(img->res.bootstrap);
	free(img->blob);
	if (img->blob_fd >= 0)
		close(img->blob_fd);
	memset(img, 0, sizeof(*img));
	img->blob_fd = -1;
}

/* ---------------- blob source ---------------- */

struct src_ctx {
	int fd;
	const uint8_t *mem;	/* serve from memory instead, when set */
	size_t mem_size;
	uint64_t corrupt_off;	/* stored byte to damage, UINT64_MAX: none */
	unsigned int reads;
};

static int src_read(void *ctx, unsigned int blob, uint64_t off, void *buf,
		    size_t len)
{
	struct src_ctx *s = ctx;
	int ret;

	if (blob != 0)
		return -EINVAL;
	s->reads++;
	if (s->mem) {
		if (off > s->mem_size || len > s->mem_size - off)
			return -ENODATA;
		memcpy(buf, s->mem + off, len);
		ret = 0;
	} else {
		ret = sk_pread_full(s->fd, buf, len, off);
	}
	if (!ret && s->corrupt_off >= off && s->corrupt_off - off < len)
		((uint8_t *)buf)[s->corrupt_off - off] ^= 0x20;
	return ret;
}

/* ---------------- comparing the image with the source ---------------- */

struct xlist {
	char names[64][300];
	char values[64][128];
	size_t vlens[64];
	int n;
	int bad;
};

static int xattr_collect(void *ctx, const struct fmt_xattr *x)
{
	struct xlist *l = ctx;

	if (l->n == 64 || x->value_len > sizeof(l->values[0]) ||
	    fmt_xattr_fullname(x, l->names[l->n], sizeof(l->names[0])) < 0) {
		l->bad++;
		return 0;
	}
	memcpy(l->values[l->n], x->value, x->value_len);
	l->vlens[l->n++] = x->value_len;
	return 0;
}

static int known_xattr_namespace(const char *name)
{
	return !strncmp(name, "user.", 5) || !strncmp(name, "trusted.", 8) ||
	       !strncmp(name, "security.", 9) ||
	       !strcmp(name, "system.posix_acl_access") ||
	       !strcmp(name, "system.posix_acl_default");
}

struct cmp_ctx {
	struct fmt_bs *bs;
	struct fmt_reader *rd;
	const char *src;
	unsigned int entries, mismatches, files_read, xattrs_seen;
	uint8_t *buf;		/* file scratch */
	size_t cap;
};

static TAP_PRINTF(2, 3) void mismatch(struct cmp_ctx *c, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->mismatches++ < 20)
		diag("mismatch: %s", msg);
}

static void cmp_xattrs(struct cmp_ctx *c, const char *path, const char *sp,
		       const struct fmt_inode *ino)
{
	struct xlist *l = calloc(1, sizeof(*l));
	char names[4096];
	ssize_t len;
	int nsrc = 0, ret;

	if (!l)
		bail_out("out of memory");
	ret = fmt_bs_xattrs(c->bs, ino, xattr_collect, l);
	if (ret || l->bad)
		mismatch(c, "%s: reading xattrs: %d", path, ret);
	len = llistxattr(sp, names, sizeof(names));
	for (ssize_t off = 0; len > 0 && off < len; off += (ssize_t)strlen(names + off) + 1) {
		const char *name = names + off;
		char val[128];
		ssize_t vlen;
		int found = 0;

		if (!known_xattr_namespace(name))
			continue;
		nsrc++;
		vlen = lgetxattr(sp, name, val, sizeof(val));
		for (int i = 0; i < l->n; i++)
			if (!strcmp(l->names[i], name) && vlen >= 0 &&
			    (size_t)vlen == l->vlens[i] &&
			    !memcmp(l->values[i], val, (size_t)vlen))
				found = 1;
		if (!found)
			mismatch(c, "%s: xattr %s missing or different", path, name);
	}
	if (nsrc != l->n)
		mismatch(c, "%s: %d xattrs in the image, %d in the source", path,
			 l->n, nsrc);
	c->xattrs_seen += (unsigned int)l->n;
	free(l);
}

static int count_entries(const char *sp)
{
	DIR *d = opendir(sp);
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		n++;
	closedir(d);
	return n;
}

static int count_subdirs(const char *sp)
{
	DIR *d = opendir(sp);
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d))) {
		char p[PATH_MAX];
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		fmtpath(p, "%s/%s", sp, de->d_name);
		n += lstat(p, &st) == 0 && S_ISDIR(st.st_mode);
	}
	closedir(d);
	return n;
}

static int count_cb(void *ctx, const struct fmt_dirent *de)
{
	(*(int *)ctx)++;
	return 0;
}

static void cmp_data(struct cmp_ctx *c, const char *path, const char *sp,
		     const struct fmt_inode *ino)
{
	void *want = NULL;
	size_t wlen = 0;
	ssize_t n;

	if (sk_read_file(sp, 1u << 26, &want, &wlen)) {
		mismatch(c, "%s: cannot read the source", path);
		return;
	}
	if (ino->size + 4096 > c->cap) {
		free(c->buf);
		c->cap = ino->size + 4096;
		c->buf = malloc(c->cap);
		if (!c->buf)
			bail_out("out of memory");
	}
	/* one read asking for more than the file holds */
	n = fmt_reader_pread(c->rd, ino, c->buf, ino->size + 100, 0);
	if (n != (ssize_t)wlen || memcmp(c->buf, want, wlen))
		mismatch(c, "%s: whole-file read returned %zd of %zu bytes%s (%s)",
			 path, n, wlen, n == (ssize_t)wlen ? ", different" : "",
			 c->rd->err.msg);
	/* odd-sized reads that straddle chunk boundaries */
	memset(c->buf, 0xa5, wlen);
	for (size_t off = 0; off < wlen;) {
		size_t step = SK_MIN((size_t)1000 + off % 7, wlen - off);

		n = fmt_reader_pread(c->rd, ino, c->buf + off, step, off);
		if (n != (ssize_t)step) {
			mismatch(c, "%s: read at %zu returned %zd", path, off, n);
			break;
		}
		off += step;
	}
	if (memcmp(c->buf, want, wlen))
		mismatch(c, "%s: piecewise read differs", path);
	if (fmt_reader_pread(c->rd, ino, c->buf, 10, ino->size) != 0 ||
	    fmt_reader_pread(c->rd, ino, c->buf, 10, ino->size + 12345) != 0 ||
	    fmt_reader_pread(c->rd, ino, c->buf, 0, 0) != 0)
		mismatch(c, "%s: reads at or past EOF are not empty", path);
	c->files_read++;
	free(want);
}

static int cmp_cb(void *ctx, const char *path, size_t pathlen,
		  const struct fmt_inode *ino)
{
	struct cmp_ctx *c = ctx;
	char sp[PATH_MAX];
	struct stat st;

	c->entries++;
	if (strlen(path) != pathlen)
		mismatch(c, "%s: path length %zu", path, pathlen);
	fmtpath(sp, "%s%s", c->src, strcmp(path, "/") ? path : "");
	if (lstat(sp, &st)) {
		mismatch(c, "%s: not in the source", path);
		return 0;
	}
	/* some file systems (btrfs) report 1 link for every directory;
	 * EROFS wants the classic 2 + subdirectories */
	if (S_ISDIR(st.st_mode))
		st.st_nlink = (nlink_t)(2 + count_subdirs(sp));
	if (st.st_mode != ino->mode || st.st_uid != ino->uid ||
	    st.st_gid != ino->gid || (uint64_t)st.st_mtim.tv_sec != ino->mtime ||
	    (uint32_t)st.st_mtim.tv_nsec != ino->mtime_nsec ||
	    st.st_nlink != ino->nlink)
		mismatch(c, "%s: attributes differ (mode 0%o/0%o uid %u gid %u "
			 "mtime %llu.%u nlink %u/%u)", path, (unsigned int)st.st_mode,
			 ino->mode, ino->uid, ino->gid,
			 (unsigned long long)ino->mtime, ino->mtime_nsec,
			 (unsigned int)st.st_nlink, ino->nlink);
	if (g_have_xattr)
		cmp_xattrs(c, path, sp, ino);
	if (S_ISREG(st.st_mode)) {
		if ((uint64_t)st.st_size != ino->size)
			mismatch(c, "%s: size %llu, source %lld", path,
				 (unsigned long long)ino->size, (long long)st.st_size);
		else
			cmp_data(c, path, sp, ino);
	} else if (S_ISLNK(st.st_mode)) {
		char want[PATH_MAX], got[PATH_MAX];
		ssize_t n = readlink(sp, want, sizeof(want));

		if (n < 0 || (uint64_t)n != ino->size ||
		    fmt_bs_read_flat(c->bs, ino, 0, got, ino->size) ||
		    memcmp(got, want, (size_t)n))
			mismatch(c, "%s: symlink target differs", path);
	} else if (S_ISDIR(st.st_mode)) {
		int n = 0, ret = fmt_bs_readdir(c->bs, ino, count_cb, &n);

		if (ret || n != count_entries(sp))
			mismatch(c, "%s: %d entries (ret %d), source %d", path, n,
				 ret, count_entries(sp));
	}
	return 0;
}

static int count_source(const char *sp)
{
	DIR *d = opendir(sp);
	struct dirent *de;
	int n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d))) {
		char p[PATH_MAX];
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		n++;
		fmtpath(p, "%s/%s", sp, de->d_name);
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))	/* d_type may be DT_UNKNOWN */
			n += count_source(p);
	}
	closedir(d);
	return n;
}

/* ---------------- functional tests ---------------- */

struct name_ctx {
	char prev[300];
	int n, sorted, nonempty;
};

static int name_cb(void *ctx, const struct fmt_dirent *de)
{
	struct name_ctx *c = ctx;
	char name[300];

	memcpy(name, de->name, de->namelen);
	name[de->namelen] = '\0';
	if (c->n && strcmp(c->prev, name) >= 0)
		c->sorted = 0;
	if (!de->namelen)
		c->nonempty = 0;
	strcpy(c->prev, name);
	c->n++;
	return 0;
}

static int stop_cb(void *ctx, const struct fmt_dirent *de)
{
	return ++*(int *)ctx == 3 ? 42 : 0;
}

static int nothing_xattr_cb(void *ctx, const struct fmt_xattr *x)
{
	return 0;
}

static int stop_walk_cb(void *ctx, const char *path, size_t len,
			const struct fmt_inode *ino)
{
	return ++*(int *)ctx == 10 ? 7 : 0;
}

static void test_functional(const char *src, struct image *img)
{
	struct fmt_bs bs;
	struct fmt_inode ino, ino2;
	struct fmt_reader rd;
	struct src_ctx sc = { .fd = img->blob_fd, .corrupt_off = UINT64_MAX };
	struct fmt_blob_src bsrc = { src_read, &sc };
	struct cmp_ctx cc = { .bs = &bs, .rd = &rd, .src = src };
	uint8_t digest[SK_SHA256_LEN];
	char buf[64];
	int ret, n;

	ret = fmt_bs_open(&bs, img->bs, img->bs_size);
	if (!is_int(ret, 0, "fmt_bs_open of the built bootstrap (%s)", bs.err.msg))
		bail_out("cannot continue without a bootstrap");
	is_int(img->bs_size % 4096, 0, "bootstrap is whole blocks");
	is_int(bs.blocks, img->bs_size / 4096, "superblock block count");
	is_int(bs.chunk_bits, 12, "header chunk size 4 KiB");
	is_int(bs.nblobs, 1, "one blob");
	ok(img->res.has_blob, "build reports a blob");
	is_mem(bs.blobs[0].id, img->res.blob_id, 32, "blob id in the bootstrap");
	sk_sha256(img->blob, img->blob_size, digest);
	is_mem(digest, img->res.blob_id, 32, "blob id is the SHA-256 of the blob file");
	is_int(bs.blobs[0].stored_size, img->blob_size, "blob stored size");
	is_int(img->res.blob_size, img->blob_size, "build result blob size");
	is_int(bs.inos, img->res.stats.inodes, "superblock inode count = stats.inodes");
	is_int(img->res.stats.files, 8 + BIG_ENTRIES - BIG_ENTRIES / 50,
	       "stats: regular files (hard link counted once)");
	ok(img->res.stats.chunks_hole >= 3, "stats: trailing holes found (%llu)",
	   (unsigned long long)img->res.stats.chunks_hole);
	ok(img->res.stats.chunks_unique < img->res.stats.chunks,
	   "stats: duplicate chunk stored once (%llu of %llu)",
	   (unsigned long long)img->res.stats.chunks_unique,
	   (unsigned long long)img->res.stats.chunks);
	ok(img->res.stats.chunks_compressed > 0, "stats: some chunks compressed");

	/* resolve */
	if (is_int(fmt_bs_resolve(&bs, "/", &ino), 0, "resolve /")) {
		ok(S_ISDIR(ino.mode), "... a directory");
		is_int(ino.nid, bs.root_nid, "... the root");
	} else {
		skip(2, "no /");
	}
	if (is_int(fmt_bs_resolve(&bs, "", &ino), 0, "resolve \"\""))
		is_int(ino.nid, bs.root_nid, "... the root");
	else
		skip(1, "no \"\"");
	if (is_int(fmt_bs_resolve(&bs, "/small.txt", &ino), 0, "resolve /small.txt")) {
		ok(S_ISREG(ino.mode), "... a regular file");
		is_int(ino.size, 13, "... of 13 bytes");
		is_int(ino.nlink, 2, "... nlink 2, for its hard link");
		if (is_int(fmt_bs_resolve(&bs, "small.txt", &ino2), 0,
			   "resolve without the leading slash"))
			is_int(ino2.nid, ino.nid, "... the same inode");
		else
			skip(1, "no small.txt");
		if (is_int(fmt_bs_resolve(&bs, "/hard", &ino2), 0, "resolve /hard"))
			is_int(ino2.nid, ino.nid, "... the hard link shares the inode");
		else
			skip(1, "no /hard");
	} else {
		skip(7, "no /small.txt");
	}
	if (is_int(fmt_bs_resolve(&bs, "/a/b/c/deep.txt", &ino), 0, "resolve a nested path"))
		is_int(ino.size, 5, "... its size");
	else
		skip(1, "no /a/b/c/deep.txt");
	if (is_int(fmt_bs_resolve(&bs, "//a/./b//c/", &ino), 0,
		   "resolve with ., doubled and trailing slashes"))
		ok(S_ISDIR(ino.mode), "... a directory");
	else
		skip(1, "no //a/./b//c/");
	if (!is_int(fmt_bs_resolve(&bs, "/a/b/..", &ino2), 0, "resolve .. through the stored entry"))
		skip(2, "no /a/b/..");
	else if (!is_int(fmt_bs_resolve(&bs, "/a", &ino), 0, "... and /a"))
		skip(1, "no /a");
	else
		is_int(ino2.nid, ino.nid, "... the same inode");
	is_int(fmt_bs_resolve(&bs, "/nonexistent", &ino), -ENOENT, "resolve a missing name");
	is_int(fmt_bs_resolve(&bs, "/big/entry-with-a-longish-name-500", &ino), -ENOENT,
	       "resolve a missing name in a multi-block directory");
	is_int(fmt_bs_resolve(&bs, "/small.txt/x", &ino), -ENOTDIR,
	       "resolve through a file");
	is_int(fmt_bs_resolve(&bs, "/dirlink/c", &ino), -ENOTDIR,
	       "resolve does not follow symlinks");
	if (is_int(fmt_bs_resolve(&bs, "/big/entry-with-a-longish-name-499", &ino), 0,
		   "resolve the last entry of /big")) {
		ok(S_ISREG(ino.mode), "... a regular file");
		is_int(ino.size, 4, "... of 4 bytes");
	} else {
		skip(2, "no last entry");
	}
	if (is_int(fmt_bs_resolve(&bs, "/big/entry-with-a-longish-name-457", &ino), 0,
		   "resolve a subdirectory of /big"))
		ok(S_ISDIR(ino.mode), "... a directory");
	else
		skip(1, "no subdirectory");
	if (is_int(fmt_bs_resolve(&bs, "/fifo", &ino), 0, "resolve a fifo")) {
		ok(S_ISFIFO(ino.mode), "... a fifo");
		is_int(ino.size, 0, "... of no size");
	} else {
		skip(2, "no /fifo");
	}

	/* readdir */
	if (fmt_bs_resolve(&bs, "/big", &ino) == 0) {
		struct name_ctx nc = { .sorted = 1, .nonempty = 1 };

		ok(ino.size > 4096, "/big spans several directory blocks (%llu bytes)",
		   (unsigned long long)ino.size);
		is_int(fmt_bs_readdir(&bs, &ino, name_cb, &nc), 0, "readdir /big");
		is_int(nc.n, BIG_ENTRIES + 2, "/big has 500 entries plus . and ..");
		ok(nc.sorted, "/big entries are strictly sorted");
		ok(nc.nonempty, "... none with an empty name");
		n = 0;
		is_int(fmt_bs_readdir(&bs, &ino, stop_cb, &n), 42,
		       "readdir stops with the callback's value");
		is_int(n, 3, "... after the third entry");
	} else {
		skip(7, "no /big");
	}
	if (fmt_bs_resolve(&bs, "/small.txt", &ino) == 0) {
		is_int(fmt_bs_readdir(&bs, &ino, count_cb, &n), -ENOTDIR,
		       "readdir of a file is -ENOTDIR");
		is_int(fmt_bs_read_flat(&bs, &ino, 10, buf, 4), -EINVAL,
		       "read_flat past the end is -EINVAL");
	} else {
		skip(2, "no /small.txt");
	}

	/* symlinks */
	if (fmt_bs_resolve(&bs, "/link", &ino) == 0 && S_ISLNK(ino.mode) &&
	    ino.size == 9) {
		if (is_int(fmt_bs_read_flat(&bs, &ino, 0, buf, 9), 0, "symlink target read"))
			is_mem(buf, "small.txt", 9, "... its bytes");
		else
			skip(1, "not read");
		if (is_int(fmt_bs_read_flat(&bs, &ino, 6, buf, 3), 0,
			   "symlink target read at an offset"))
			is_mem(buf, "txt", 3, "... its bytes");
		else
			skip(1, "not read");
		is_int(fmt_bs_read_flat(&bs, &ino, 6, buf, 4), -EINVAL,
		       "symlink read past the end");
	} else {
		skip(5, "no /link");
	}
	if (fmt_bs_resolve(&bs, "/longlink", &ino) == 0) {
		char *t = malloc(ino.size + 1);

		if (!t)
			bail_out("out of memory");
		if (!is_int(ino.size, 1599, "a 1599-byte symlink target"))
			skip(3, "another size");
		else if (!is_int(fmt_bs_read_flat(&bs, &ino, 0, t, ino.size), 0, "... read"))
			skip(2, "not read");
		else {
			is_mem(t, "dir/dir/", 8, "... its start");
			is_mem(t + 1592, "dir/dir", 7, "... its end");
		}
		free(t);
	} else {
		skip(4, "no /longlink");
	}

	/* xattrs */
	if (!g_have_xattr) {
		skip(14, "the scratch file system does not take user.* xattrs");
	} else if (fmt_bs_resolve(&bs, "/a/x", &ino) == 0) {
		struct xlist *l = calloc(1, sizeof(*l));

		if (!l)
			bail_out("out of memory");
		is_int(fmt_bs_xattrs(&bs, &ino, xattr_collect, l), 0, "xattrs of /a/x");
		if (is_int(l->n, 2, "... both")) {
			is_str(l->names[0], "user.second", "... sorted by name: user.second");
			is_int(l->vlens[0], 0, "... its empty value kept");
			is_str(l->names[1], "user.skiff.test", "... then user.skiff.test");
			if (is_int(l->vlens[1], 7, "... its value's length"))
				is_mem(l->values[1], "value 1", 7, "... its value");
			else
				skip(1, "another length");
		} else {
			skip(5, "not two xattrs");
		}
		if (is_int(fmt_bs_resolve(&bs, "/a", &ino), 0, "resolve /a")) {
			is_int(fmt_bs_xattrs(&bs, &ino, xattr_collect, l), 0,
			       "xattrs of a directory");
			if (is_int(l->n, 3, "... one"))
				is_str(l->names[2], "user.dir", "... user.dir");
			else
				skip(1, "not one xattr");
		} else {
			skip(3, "no /a");
		}
		if (is_int(fmt_bs_resolve(&bs, "/empty", &ino), 0, "resolve /empty")) {
			is_int(fmt_bs_xattrs(&bs, &ino, nothing_xattr_cb, NULL), 0,
			       "... no xattrs to list");
			is_int(ino.xattr_isize, 0, "... no xattr body");
		} else {
			skip(2, "no /empty");
		}
		free(l);
	} else {
		skip(14, "no /a/x");
	}
	{
		struct fmt_xattr x = { .index = EROFS_XATTR_INDEX_TRUSTED,
				       .name = "abc", .namelen = 3 };
		char out[32];

		if (is_int(fmt_xattr_fullname(&x, out, sizeof(out)), 11, "fmt_xattr_fullname's length"))
			is_str(out, "trusted.abc", "... the name");
		else
			skip(1, "no name");
		is_int(fmt_xattr_fullname(&x, out, 11), -ENAMETOOLONG,
		       "fmt_xattr_fullname leaves room for the NUL");
		x.index = 5;
		is_int(fmt_xattr_fullname(&x, out, sizeof(out)), -EINVAL,
		       "fmt_xattr_fullname of an unknown index");
		x.index = EROFS_XATTR_INDEX_POSIX_ACL_ACCESS;
		x.namelen = 0;
		if (is_int(fmt_xattr_fullname(&x, out, sizeof(out)), 23, "an ACL name's length"))
			is_str(out, "system.posix_acl_access", "... no suffix");
		else
			skip(1, "no name");
	}

	/* file data */
	if (!is_int(fmt_reader_init(&rd, &bs, &bsrc), 0, "fmt_reader_init"))
		bail_out("no reader");
	if (fmt_bs_resolve(&bs, "/mixed.bin", &ino) == 0) {
		const struct fmt_chunk *ch = NULL;
		unsigned int blob = 99, dev = 9;
		uint32_t blk = 0;

		is_int(ino.chunk_count, 5, "mixed.bin has 5 chunk indexes");
		/* a zero chunk with data after it may be a hole or map to a
		 * stored zero chunk (fscache readahead wants the latter) */
		if (fmt_reader_map(&rd, &ino, 1, &blob, &ch) == 0 && ch) {
			const uint8_t *z;

			if (!is_int(fmt_reader_chunk(&rd, blob, ch, &z), 0,
				    "the inner zero chunk maps to a stored chunk"))
				skip(3, "no chunk");
			else if (!is_int(ch->usize, CHUNK, "... a whole one"))
				skip(2, "another size");
			else {
				is_int(z[0], 0, "... its first byte zero");
				ok(!memcmp(z, z + 1, CHUNK - 1), "... every byte as the first");
			}
		} else {
			ok(ch == NULL, "the inner zero chunk is a hole");
			skip(3, "a hole has no bytes");
		}
		if (!is_int(fmt_reader_map(&rd, &ino, 4, &blob, &ch), 0, "the tail chunk maps"))
			skip(3, "no map");
		else if (!ok(ch != NULL, "... to a chunk"))
			skip(2, "no chunk");
		else {
			is_int(blob, 0, "... in blob 0");
			is_int(ch->usize, 2000, "... of 2000 bytes");
		}
		is_int(fmt_bs_chunk(&bs, &ino, 5, &dev, &blk), -EINVAL,
		       "chunk index past the end");
		if (fmt_bs_resolve(&bs, "/multi.bin", &ino2) == 0) {
			unsigned int d2;
			uint32_t b2;

			if (!is_int(fmt_bs_chunk(&bs, &ino, 3, &dev, &blk), 0, "mixed.bin's chunk 3"))
				skip(4, "no chunk index");
			else if (!is_int(fmt_bs_chunk(&bs, &ino2, 1, &d2, &b2), 0,
					 "... and multi.bin's chunk 1, the same bytes"))
				skip(3, "no chunk index");
			else {
				is_int(dev, 1, "... the first in the blob");
				is_int(d2, 1, "... the second too");
				is_int(blk, b2, "equal chunks share one blob chunk");
			}
		} else {
			skip(5, "no multi.bin");
		}
	} else {
		skip(15, "no /mixed.bin");
	}
	if (fmt_bs_resolve(&bs, "/tailhole.bin", &ino) == 0 && ino.chunk_count == 3) {
		const struct fmt_chunk *ch = NULL;
		unsigned int blob = 99, dev = 9;
		uint32_t blk = 0;

		if (is_int(fmt_reader_map(&rd, &ino, 2, &blob, &ch), 0, "a trailing zero chunk maps"))
			ok(ch == NULL, "... to a hole");
		else
			skip(1, "no map");
		if (is_int(fmt_bs_chunk(&bs, &ino, 2, &dev, &blk), 0, "... its chunk index")) {
			is_int(dev, 0, "... names no blob");
			is_int(blk, EROFS_NULL_ADDR, "... a null block");
		} else {
			skip(2, "no chunk index");
		}
		if (is_int(fmt_reader_map(&rd, &ino, 0, &blob, &ch), 0, "... after a chunk that maps"))
			ok(ch != NULL, "... to a chunk");
		else
			skip(1, "no map");
	} else {
		skip(7, "no /tailhole.bin");
	}
	if (fmt_bs_resolve(&bs, "/a", &ino) == 0)
		is_int(fmt_reader_pread(&rd, &ino, buf, 10, 0), -EISDIR,
		       "pread of a directory is -EISDIR");
	else
		skip(1, "no /a");
	{
		const struct fmt_blob_table *t;

		is_int(fmt_reader_table(&rd, 1, &t), -EINVAL, "table of a blob slot that does not exist");
		if (is_int(fmt_reader_table(&rd, 0, &t), 0, "the chunk table of blob 0"))
			is_int(t->count, img->res.stats.chunks_unique,
			       "... has one entry per unique chunk");
		else
			skip(1, "no table");
	}

	/* whole-tree comparison */
	is_int(fmt_bs_walk(&bs, cmp_cb, &cc), 0, "walk the whole tree (%s)", bs.err.msg);
	is_int(cc.entries, count_source(src) + 1, "walk visits every source entry and the root");
	is_int(cc.mismatches, 0, "image matches the source: attributes, data, links, dirs");
	is_int(cc.files_read, img->res.stats.files + 1, "every regular file read (the hard link twice)");
	if (g_have_xattr)
		is_int(cc.xattrs_seen, 5, "every xattr seen (small.txt's twice, via /hard)");
	else
		skip(1, "no xattrs");
	n = 0;
	is_int(fmt_bs_walk(&bs, stop_walk_cb, &n), 7, "walk stops with the callback's value");
	fmt_reader_free(&rd);
	free(cc.buf);

	/* damaged blob bytes are caught on the way in */
	{
		const struct fmt_chunk *ch;
		unsigned int blob;

		uint8_t *fbuf = malloc(8 * CHUNK);

		if (!fbuf || fmt_reader_init(&rd, &bs, &bsrc))
			bail_out("out of memory");
		if (fmt_bs_resolve(&bs, "/multi.bin", &ino) ||
		    fmt_reader_map(&rd, &ino, 2, &blob, &ch) || !ch) {
			skip(4, "cannot map multi.bin");
		} else {
			ssize_t r;

			sc.corrupt_off = ch->soff + ch->ssize / 2;
			r = fmt_reader_pread(&rd, &ino, fbuf, ino.size, 0);
			is_int(r, -EBADMSG, "damaged chunk byte: pread is -EBADMSG (%s)", rd.err.msg);
			ok(strstr(rd.err.msg, bs.blobs[0].hex) != NULL,
			   "... and the message names the blob");
			r = fmt_reader_pread(&rd, &ino, fbuf, CHUNK, 0);
			is_int(r, CHUNK, "other chunks of the file still read");
			fmt_reader_free(&rd);

			sc.corrupt_off = bs.blobs[0].table_off + 10;
			if (fmt_reader_init(&rd, &bs, &bsrc))
				bail_out("out of memory");
			is_int(fmt_reader_pread(&rd, &ino, fbuf, 10, 0), -EBADMSG,
			       "damaged chunk table: -EBADMSG (%s)", rd.err.msg);
		}
		fmt_reader_free(&rd);
		sc.corrupt_off = img->blob_size - 128 + 20;
		if (fmt_reader_init(&rd, &bs, &bsrc))
			bail_out("out of memory");
		if (is_int(fmt_bs_resolve(&bs, "/small.txt", &ino), 0, "resolve /small.txt"))
			ok(fmt_reader_pread(&rd, &ino, fbuf, 10, 0) < 0,
			   "damaged footer: reads fail (%s)", rd.err.msg);
		else
			skip(1, "no /small.txt");
		fmt_reader_free(&rd);
		sc.corrupt_off = UINT64_MAX;
		free(fbuf);
	}
	fmt_bs_close(&bs);
	fmt_bs_close(&bs);	/* idempotent */
}

static void test_edge_builds(void)
{
	char src[PATH_MAX], blob[PATH_MAX];
	struct image img;
	struct sk_err e = { { 0 } };
	struct fmt_build_opts o = { .chunk_bits = 11, .threads = 1 };
	struct fmt_build_result res;
	struct fmt_bs bs;
	int fd;

	fmtpath(src, "%s/emptytree", g_tmp);
	fmtpath(blob, "%s/empty.blob", g_tmp);
	put_dir(src, "");
	put_dir(src, "d");
	put_file(src, "d/zero", "", 0);
	if (is_int(build_image(src, blob, 1, &img, &e), 0, "build a tree without file data (%s)",
		   e.msg)) {
		ok(!img.res.has_blob, "... reports no blob");
		is_int(img.blob_size, 0, "... writes none");
		if (is_int(fmt_bs_open(&bs, img.bs, img.bs_size), 0, "... its bootstrap opens")) {
			is_int(bs.nblobs, 0, "... with no blobs");
			ok(fmt_bs_walk(&bs, stop_walk_cb, &(int){ 0 }) == 0, "... and walks");
			fmt_bs_close(&bs);
		} else {
			skip(2, "no bootstrap");
		}
	} else {
		skip(5, "no build");
	}
	image_free(&img);

	fd = open(blob, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	is_int(fmt_build(src, &o, fd, &res, &e), -EINVAL, "chunk_bits 11 rejected");
	o.chunk_bits = 27;
	is_int(fmt_build(src, &o, fd, &res, &e), -EINVAL, "chunk_bits 27 rejected");
	fmtpath(src, "%s/does-not-exist", g_tmp);
	o.chunk_bits = 12;
	e.msg[0] = '\0';
	ok(fmt_build(src, &o, fd, &res, &e) < 0, "missing source: an error");
	ok(e.msg[0], "... with a message (%s)", e.msg);
	close(fd);
}

/* ---------------- crafted extensions ---------------- */

/*
 * The blob table sits behind a SHA-256 in the header, so byte flips never
 * reach its checks. A crafted image recomputes that digest: these cases
 * do the same to probe every geometry rule of the blob table.
 */
struct crafted {
	uint8_t *buf;
	size_t size;
	uint64_t ext_off;
};

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void crafted_reset(struct crafted *c, const struct image *img)
{
	memcpy(c->buf, img->bs, img->bs_size);
	c->size = img->bs_size;
	c->ext_off = get_le64(c->buf + offsetof(struct skiff_bs_header, ext_off));
}

/* Re-seals the extension digest and reports whether the image opens. */
static int crafted_open(struct crafted *c)
{
	uint64_t len = get_le64(c->buf + offsetof(struct skiff_bs_header, ext_size));
	struct fmt_bs bs;
	int ret;

	if (c->ext_off <= c->size && len <= c->size - c->ext_off)
		sk_sha256(c->buf + c->ext_off, len,
			  c->buf + offsetof(struct skiff_bs_header, ext_digest));
	ret = fmt_bs_open(&bs, c->buf, c->size);
	if (!ret)
		fmt_bs_close(&bs);
	return ret;
}

static void test_crafted(const struct image *img)
{
	struct crafted c;
	uint8_t *rec;
	uint64_t stored;

#define REC(field) (rec + offsetof(struct skiff_blob_rec, field))
	c.buf = malloc(img->bs_size);
	if (!c.buf)
		bail_out("out of memory");
	crafted_reset(&c, img);
	rec = c.buf + c.ext_off;
	stored = get_le64(REC(stored_size));
	is_int(crafted_open(&c), 0, "crafted: re-sealing an unchanged extension opens");

	put_le64(REC(stored_size), 100);
	is_int(crafted_open(&c), -EFSCORRUPTED, "crafted: blob shorter than its footer");
	crafted_reset(&c, img);
	put_le64(REC(stored_size), stored + 64);
	is_int(crafted_open(&c), -EFSCORRUPTED, "crafted: stored size disagrees with the table");
	crafted_reset(&c, img);
	put_le64(REC(table_off), stored + 1);
	is_int(crafted_open(&c), -EFSCORRUPTED, "crafted: table beyond the blob");
	crafted_reset(&c, img);
	/* the table starting inside the footer, its size wrapping around */
	put_le64(REC(table_off), stored);
	put_le64(REC(table_size), (uint64_t)0 - 128);
	put_le64(REC(chunk_count), ((uint64_t)0 - 128) / 64);
	is_int(crafted_open(&c), -EFSCORRUPTED,
	       "crafted: table offset inside the footer (size wraps around)");
	crafted_reset(&c, img);
	put_le64(REC(chunk_count), get_le64(REC(chunk_count)) + 1);
	is_int(crafted_open(&c), -EFSCORRUPTED, "crafted: chunk count disagrees with the table");
	crafted_reset(&c, img);
	put_le64(REC(table_size), get_le64(REC(table_size)) + 32);
	put_le64(REC(table_off), get_le64(REC(table_off)) - 32);
	is_int(crafted_open(&c), -EFSCORRUPTED, "crafted: table size not whole records");
	crafted_reset(&c, img);
	put_le64(REC(usize), get_le64(REC(usize)) + 1);
	is_int(crafted_open(&c), -EFSCORRUPTED, "crafted: cache size not block aligned");
	crafted_reset(&c, img);
	put_le64(REC(usize), get_le64(REC(usize)) + 4096);
	is_int(crafted_open(&c), -EFSCORRUPTED, "crafted: cache size disagrees with the device slot");
	crafted_reset(&c, img);
	REC(blob_id)[5] ^= 1;
	is_int(crafted_open(&c), -EFSCORRUPTED, "crafted: blob id is not the device slot's tag");
	crafted_reset(&c, img);
	put_le64(c.buf + offsetof(struct skiff_bs_header, ext_size), 100);
	is_int(crafted_open(&c), -EFSCORRUPTED, "crafted: extension smaller than its blob table");
	crafted_reset(&c, img);
	put_le64(c.buf + offsetof(struct skiff_bs_header, prefetch_off), 64);
	put_le64(c.buf + offsetof(struct skiff_bs_header, prefetch_size), 4096);
	is_int(crafted_open(&c), -EFSCORRUPTED, "crafted: prefetch list outside the extension");
	crafted_reset(&c, img);
	put_le64(c.buf + offsetof(struct skiff_bs_header, prefetch_off), UINT64_MAX);
	put_le64(c.buf + offsetof(struct skiff_bs_header, prefetch_size), 2);
	is_int(crafted_open(&c), -EFSCORRUPTED, "crafted: prefetch offset that wraps around");
	crafted_reset(&c, img);
	put_le64(c.buf + offsetof(struct skiff_bs_header, ext_off), 0);
	c.ext_off = 0;
	is_int(crafted_open(&c), -EFSCORRUPTED, "crafted: extension over the header");
	crafted_reset(&c, img);
	c.buf[offsetof(struct skiff_bs_header, blob_count)] = 2;
	is_int(crafted_open(&c), -EFSCORRUPTED, "crafted: blob count disagrees with the device table");
#undef REC
	free(c.buf);
}

/* ---------------- chunks as blob ranges ---------------- */

#define MAX_RANGES 16

struct ranges {
	struct fmt_chunk_range r[MAX_RANGES];
	unsigned int n;
	unsigned int stop_at;	/* return 42 from this call on, 0: never */
};

static int range_cb(void *ctx, const struct fmt_chunk_range *r)
{
	struct ranges *rs = ctx;

	if (rs->n < MAX_RANGES)
		rs->r[rs->n] = *r;
	rs->n++;
	return rs->stop_at && rs->n >= rs->stop_at ? 42 : 0;
}

/* The last range rs holds, or NULL when it holds none or lost some. */
static const struct fmt_chunk_range *last_range(const struct ranges *rs)
{
	if (!rs->n || rs->n > MAX_RANGES)
		return NULL;
	return &rs->r[rs->n - 1];
}

/* fmt_bs_chunks of the file at path, into rs; its inode into ino. */
static int chunks_of(struct fmt_bs *bs, const char *path, struct fmt_inode *ino,
		     struct ranges *rs)
{
	memset(rs, 0, sizeof(*rs));
	if (fmt_bs_resolve(bs, path, ino))
		return -ENOENT;
	return fmt_bs_chunks(bs, ino, range_cb, rs);
}

/*
 * The ranges agree with the chunk indexes read one by one: one per
 * mapped chunk, in index order, none for a hole, each with the file's
 * bytes in that chunk and inside its blob's cache file.
 */
static int ranges_match(struct fmt_bs *bs, const struct fmt_inode *ino,
			const struct ranges *rs)
{
	uint64_t csize = 1ull << ino->chunk_bits;
	unsigned int k = 0;

	if (rs->n > MAX_RANGES)
		return 0;
	for (uint64_t i = 0; i < ino->chunk_count; i++) {
		const struct fmt_chunk_range *r = &rs->r[k];
		unsigned int dev;
		uint32_t blk;

		if (fmt_bs_chunk(bs, ino, i, &dev, &blk))
			return 0;
		if (dev == 0)
			continue;
		if (k == rs->n || r->index != i || r->blob != dev - 1 ||
		    r->blkaddr != blk ||
		    r->len != SK_MIN(csize, ino->size - i * csize) ||
		    (uint64_t)blk * 4096 + SK_ALIGN_UP(r->len, (uint64_t)4096) >
			    bs->blobs[r->blob].usize)
			return 0;
		k++;
	}
	return k == rs->n;
}

/* Sets chunk index i of ino in a copy of the bootstrap. */
static void put_chunk_index(uint8_t *buf, const struct fmt_inode *ino, uint64_t i,
			    uint16_t dev, uint32_t blk)
{
	struct erofs_inode_chunk_index ci = { 0, htole16(dev), htole32(blk) };

	memcpy(buf + ino->chunk_pos + i * sizeof(ci), &ci, sizeof(ci));
}

static void test_chunk_ranges(const struct image *img)
{
	const struct fmt_chunk_range *last;
	struct fmt_bs bs, cbs;
	struct fmt_inode ino, multi;
	struct ranges rs;
	uint8_t *copy;
	uint32_t nblk;
	int ret;

	if (fmt_bs_open(&bs, img->bs, img->bs_size)) {
		skip(44, "bootstrap does not open");
		return;
	}
	nblk = (uint32_t)(bs.blobs[0].usize / 4096);

	/* 5 full chunks and 123 bytes */
	ret = chunks_of(&bs, "/multi.bin", &multi, &rs);
	is_int(ret, 0, "chunks of multi.bin (%s)", bs.err.msg);
	if (is_int(rs.n, 6, "multi.bin: 6 ranges")) {
		is_int(rs.r[0].len, CHUNK, "... the first a whole chunk");
		is_int(rs.r[4].len, CHUNK, "... the fifth too");
		is_int(rs.r[5].index, 5, "... the last one chunk 5");
		is_int(rs.r[5].len, 123, "... of 123 bytes");
	} else {
		skip(4, "not 6 ranges");
	}
	ok(ranges_match(&bs, &multi, &rs), "... matching its chunk indexes");

	/* data, then two chunks never written */
	ret = chunks_of(&bs, "/tailhole.bin", &ino, &rs);
	is_int(ret, 0, "chunks of tailhole.bin (%s)", bs.err.msg);
	if (is_int(rs.n, 1, "tailhole.bin: one range, its trailing holes skipped")) {
		is_int(rs.r[0].index, 0, "... chunk 0");
		is_int(rs.r[0].len, CHUNK, "... a whole one");
	} else {
		skip(2, "not one range");
	}
	/* two zero chunks, data, and a 77-byte zero tail */
	ret = chunks_of(&bs, "/sparse.bin", &ino, &rs);
	is_int(ret, 0, "chunks of sparse.bin (%s)", bs.err.msg);
	is_int(ino.chunk_count, 4, "sparse.bin: 4 chunk indexes");
	last = last_range(&rs);
	if (ok(last != NULL, "... ranges (%u)", rs.n)) {
		is_int(last->index, 2, "... the last one chunk 2");
		is_int(last->len, CHUNK, "... a whole one: the 77-byte tail is a hole, skipped");
	} else {
		skip(2, "no ranges");
	}
	ok(ranges_match(&bs, &ino, &rs), "... the others match its chunk indexes");
	ret = chunks_of(&bs, "/mixed.bin", &ino, &rs);
	is_int(ret, 0, "chunks of mixed.bin (%s)", bs.err.msg);
	ok(ranges_match(&bs, &ino, &rs), "mixed.bin: ranges match");
	last = last_range(&rs);
	if (ok(last != NULL, "... ranges (%u)", rs.n))
		is_int(last->len, 2000, "... a 2000-byte tail");
	else
		skip(1, "no ranges");

	ret = chunks_of(&bs, "/empty", &ino, &rs);
	is_int(ret, 0, "chunks of an empty file (%s)", bs.err.msg);
	is_int(rs.n, 0, "... no ranges");
	is_int(chunks_of(&bs, "/a", &ino, &rs), -EINVAL, "a directory is -EINVAL");
	ino = multi;
	ino.chunk_count++;
	is_int(fmt_bs_chunks(&bs, &ino, range_cb, &rs), -EINVAL,
	       "an inode whose chunk count disagrees with its size is -EINVAL");
	memset(&rs, 0, sizeof(rs));
	rs.stop_at = 2;
	is_int(fmt_bs_chunks(&bs, &multi, range_cb, &rs), 42,
	       "the callback's non-zero value stops the walk and is returned");
	is_int(rs.n, 2, "... after the call that returned it");

	/* crafted chunk indexes (the inode area is not under a digest) */
	copy = malloc(img->bs_size);
	if (!copy)
		bail_out("out of memory");
#define CRAFT(i, dev, blk) do {						\
		memcpy(copy, img->bs, img->bs_size);				\
		put_chunk_index(copy, &multi, i, dev, blk);			\
		if (fmt_bs_open(&cbs, copy, img->bs_size))			\
			bail_out("crafted copy does not open");			\
	} while (0)
	CRAFT(2, 0, EROFS_NULL_ADDR);
	ret = fmt_bs_chunks(&cbs, &multi, range_cb, memset(&rs, 0, sizeof(rs)));
	is_int(ret, 0, "chunks with an inner hole (%s)", cbs.err.msg);
	if (is_int(rs.n, 5, "... the hole skipped: 5 ranges")) {
		is_int(rs.r[1].index, 1, "... the second chunk 1");
		is_int(rs.r[2].index, 3, "... the third chunk 3");
	} else {
		skip(2, "not 5 ranges");
	}
	ok(ranges_match(&cbs, &multi, &rs), "... matching the chunk indexes");
	fmt_bs_close(&cbs);
	CRAFT(2, 1, EROFS_NULL_ADDR);
	ret = fmt_bs_chunks(&cbs, &multi, range_cb, memset(&rs, 0, sizeof(rs)));
	is_int(ret, 0, "chunks with a null block address on a device (%s)", cbs.err.msg);
	is_int(rs.n, 5, "... a hole whatever the device");
	fmt_bs_close(&cbs);
	CRAFT(3, 2, 0);
	ret = fmt_bs_chunks(&cbs, &multi, range_cb, memset(&rs, 0, sizeof(rs)));
	is_int(ret, -EFSCORRUPTED, "a chunk naming device 2 of 1 is -EFSCORRUPTED (%s)",
	       cbs.err.msg);
	is_int(rs.n, 3, "... after the chunks before it");
	fmt_bs_close(&cbs);
	CRAFT(3, 0, 0);
	is_int(fmt_bs_chunks(&cbs, &multi, range_cb, memset(&rs, 0, sizeof(rs))),
	       -EFSCORRUPTED, "device 0 with a block address is -EFSCORRUPTED");
	fmt_bs_close(&cbs);
	CRAFT(5, 1, nblk - 1);
	ret = fmt_bs_chunks(&cbs, &multi, range_cb, memset(&rs, 0, sizeof(rs)));
	is_int(ret, 0, "a chunk in the blob's last block is in range (%s)", cbs.err.msg);
	if (is_int(rs.n, 6, "... 6 ranges"))
		is_int(rs.r[5].blkaddr, nblk - 1, "... the last one at that block");
	else
		skip(1, "not 6 ranges");
	fmt_bs_close(&cbs);
	CRAFT(5, 1, nblk);
	ret = fmt_bs_chunks(&cbs, &multi, range_cb, memset(&rs, 0, sizeof(rs)));
	is_int(ret, -EFSCORRUPTED, "a chunk starting at the blob's end is -EFSCORRUPTED");
	is_int(rs.n, 5, "... after the chunks before it");
	has_str(cbs.err.msg, "past blob", "... saying so");
	fmt_bs_close(&cbs);
	CRAFT(0, 1, EROFS_NULL_ADDR - 1);
	is_int(fmt_bs_chunks(&cbs, &multi, range_cb, memset(&rs, 0, sizeof(rs))),
	       -EFSCORRUPTED, "block address 0xfffffffe is -EFSCORRUPTED");
	fmt_bs_close(&cbs);
#undef CRAFT
	free(copy);
	fmt_bs_close(&bs);
}

/* A chunk larger than a block: the last one's bytes round up to blocks. */
static void test_chunk_ranges_big(void)
{
	struct fmt_build_opts o = { .chunk_bits = 14, .threads = 1 };
	struct fmt_build_result res;
	struct sk_err e = { { 0 } };
	char src[PATH_MAX], p[PATH_MAX];
	struct fmt_inode odd, ino;
	struct ranges rs;
	struct fmt_bs bs;
	uint8_t *buf = malloc(2 * 16384 + 5000);
	uint32_t nblk;
	int fd, ret;

	if (!buf)
		bail_out("out of memory");
	fmtpath(src, "%s/bigchunks", g_tmp);
	put_dir(src, "");
	fill(buf, 2 * 16384 + 5000, 3);
	put_file(src, "odd.bin", buf, 2 * 16384 + 5000);
	/* one data chunk, then holes up to a 100-byte last chunk */
	fmtpath(p, "%s/holes.bin", src);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || sk_write_full(fd, buf, 16384) || ftruncate(fd, 4 * 16384 + 100) ||
	    close(fd))
		bail_out("holes.bin: %s", strerror(errno));
	free(buf);
	fmtpath(p, "%s/bigchunks.blob", g_tmp);
	fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		bail_out("%s: %s", p, strerror(errno));
	ret = fmt_build(src, &o, fd, &res, &e);
	close(fd);
	if (!is_int(ret, 0, "build with 16 KiB chunks (%s)", e.msg)) {
		skip(15, "no build");
		return;
	}
	if (fmt_bs_open(&bs, res.bootstrap, res.bootstrap_size))
		bail_out("16 KiB chunk bootstrap does not open: %s", bs.err.msg);
	nblk = (uint32_t)(bs.blobs[0].usize / 4096);
	ret = chunks_of(&bs, "/odd.bin", &odd, &rs);
	is_int(ret, 0, "chunks of odd.bin (%s)", bs.err.msg);
	if (is_int(rs.n, 3, "odd.bin: 3 ranges")) {
		is_int(rs.r[0].len, 16384, "... 16 KiB");
		is_int(rs.r[1].len, 16384, "... 16 KiB");
		is_int(rs.r[2].len, 5000, "... and a 5000-byte last chunk");
	} else {
		skip(3, "not 3 ranges");
	}
	ok(ranges_match(&bs, &odd, &rs), "... matching its chunk indexes");
	ret = chunks_of(&bs, "/holes.bin", &ino, &rs);
	is_int(ret, 0, "chunks of holes.bin (%s)", bs.err.msg);
	is_int(ino.chunk_count, 5, "holes.bin: 5 chunk indexes");
	if (is_int(rs.n, 1, "... one range, four trailing holes (the last 100 bytes) skipped"))
		is_int(rs.r[0].index, 0, "... chunk 0");
	else
		skip(1, "not one range");
	ok(ranges_match(&bs, &ino, &rs), "... matching its chunk indexes");

	/* 5000 bytes take two blocks: the last two fit, the last one does not */
	put_chunk_index(res.bootstrap, &odd, 2, 1, nblk - 2);
	ret = fmt_bs_chunks(&bs, &odd, range_cb, memset(&rs, 0, sizeof(rs)));
	is_int(ret, 0, "a 5000-byte chunk in the blob's last two blocks (%s)", bs.err.msg);
	is_int(rs.n, 3, "... all 3 ranges");
	put_chunk_index(res.bootstrap, &odd, 2, 1, nblk - 1);
	ret = fmt_bs_chunks(&bs, &odd, range_cb, memset(&rs, 0, sizeof(rs)));
	is_int(ret, -EFSCORRUPTED, "... but not in its last block alone: -EFSCORRUPTED (%s)",
	       bs.err.msg);
	is_int(rs.n, 2, "... after the 2 ranges before it");
	fmt_bs_close(&bs);
	free(res.bootstrap);
}

/* ---------------- robustness ---------------- */

struct probe {
	struct fmt_bs *bs;
	struct fmt_reader *rd;
	struct sk_sha256_ctx h;
	uint8_t *buf;
	int xattr_fail, read_fail;
};

static int probe_xattr_cb(void *ctx, const struct fmt_xattr *x)
{
	struct probe *p = ctx;
	char name[300];
	int n = fmt_xattr_fullname(x, name, sizeof(name));

	if (n > 0)
		sk_sha256_update(&p->h, name, (size_t)n);
	sk_sha256_update(&p->h, x->value, x->value_len);
	return 0;
}

#define PROBE_READ_MAX (1u << 20)

static int probe_cb(void *ctx, const char *path, size_t pathlen,
		    const struct fmt_inode *ino)
{
	struct probe *p = ctx;
	uint32_t attrs[6] = { ino->mode, ino->uid, ino->gid, ino->nlink,
			      ino->mtime_nsec, (uint32_t)ino->mtime };
	int ret;

	sk_sha256_update(&p->h, path, pathlen + 1);
	sk_sha256_update(&p->h, attrs, sizeof(attrs));
	sk_sha256_update(&p->h, &ino->size, sizeof(ino->size));
	ret = fmt_bs_xattrs(p->bs, ino, probe_xattr_cb, p);
	if (ret) {
		p->xattr_fail = 1;
		return ret;
	}
	if (S_ISLNK(ino->mode)) {
		ret = fmt_bs_read_flat(p->bs, ino, 0, p->buf, ino->size);
		if (ret) {
			p->read_fail = 1;
			return ret;
		}
		sk_sha256_update(&p->h, p->buf, ino->size);
	} else if (S_ISREG(ino->mode)) {
		/* a damaged size can claim gigabytes of holes: read a bounded
		 * prefix, which still crosses every chunk of the real files */
		uint64_t want = SK_MIN(ino->size, (uint64_t)PROBE_READ_MAX);

		for (uint64_t off = 0; off < want;) {
			ssize_t n = fmt_reader_pread(p->rd, ino, p->buf,
						     (size_t)SK_MIN(want - off, 65536u), off);

			if (n <= 0) {
				p->read_fail = 1;
				return n < 0 ? (int)n : -EIO;
			}
			sk_sha256_update(&p->h, p->buf, (size_t)n);
			off += (uint64_t)n;
		}
	}
	return 0;
}

enum verdict { V_OPEN, V_WALK, V_XATTR, V_READ, V_SAME, V_CHANGED, V_NVERDICT };
static const char *const verdict_names[V_NVERDICT] = {
	"rejected by fmt_bs_open", "rejected by the walk", "rejected reading xattrs",
	"rejected reading data", "undetected, no visible change",
	"undetected, visible change",
};

/*
 * Probing state. fmt_reader_init allocates two 64 MiB scratch buffers,
 * which costs more than the whole probe (and minutes under ASan), so one
 * reader serves every probe: it is bound to `bs`, which each probe reopens
 * in place. Sharing the reader's cached chunk table is sound only while
 * the probed image describes the blobs exactly as the intact one does, so
 * a probe whose blob table differs gets a reader of its own.
 */
struct prober {
	struct fmt_bs bs;
	struct fmt_reader rd;
	const uint8_t *orig;
	size_t orig_size;
	struct fmt_blob_ref *blobs;	/* the intact image's blob table */
	unsigned int nblobs;
	struct fmt_blob_src *src;
	uint8_t *scratch;
	unsigned int private_readers;
};

static void prober_init(struct prober *pr, const uint8_t *bs, size_t size,
			struct fmt_blob_src *src)
{
	memset(pr, 0, sizeof(*pr));
	pr->orig = bs;
	pr->orig_size = size;
	pr->src = src;
	pr->scratch = malloc(PROBE_READ_MAX);
	if (!pr->scratch || fmt_bs_open(&pr->bs, bs, size) ||
	    fmt_reader_init(&pr->rd, &pr->bs, src))
		bail_out("cannot set up the prober");
	pr->nblobs = pr->bs.nblobs;
	pr->blobs = malloc((pr->nblobs + 1) * sizeof(*pr->blobs));
	if (!pr->blobs)
		bail_out("out of memory");
	memcpy(pr->blobs, pr->bs.blobs, pr->nblobs * sizeof(*pr->blobs));
	fmt_bs_close(&pr->bs);	/* every probe reopens it */
}

static void prober_free(struct prober *pr)
{
	/* the reader frees one table per blob of the image it is bound to */
	if (fmt_bs_open(&pr->bs, pr->orig, pr->orig_size))
		bail_out("the intact bootstrap no longer opens");
	fmt_reader_free(&pr->rd);
	fmt_bs_close(&pr->bs);
	free(pr->blobs);
	free(pr->scratch);
}

/*
 * Opens buf[0..size) (a private malloc'd copy, so ASan sees overreads),
 * walks it, reads every xattr, symlink and file, and hashes what it saw
 * into got; compares that with want when given.
 */
static enum verdict probe(struct prober *pr, const uint8_t *buf, size_t size,
			  const uint8_t *want, uint8_t *got)
{
	struct fmt_reader own, *rd = &pr->rd;
	struct probe p = { .bs = &pr->bs, .buf = pr->scratch };
	enum verdict v;
	int ret;

	alarm(PROBE_ALARM);
	if (fmt_bs_open(&pr->bs, buf, size)) {
		alarm(0);
		return V_OPEN;
	}
	if (pr->bs.nblobs != pr->nblobs ||
	    memcmp(pr->bs.blobs, pr->blobs, pr->nblobs * sizeof(*pr->blobs))) {
		rd = &own;
		pr->private_readers++;
		if (fmt_reader_init(rd, &pr->bs, pr->src))
			bail_out("out of memory");
	}
	p.rd = rd;
	if (sk_sha256_init(&p.h))
		bail_out("out of memory");
	ret = fmt_bs_walk(&pr->bs, probe_cb, &p);
	sk_sha256_final(&p.h, got);
	sk_sha256_free(&p.h);
	if (rd == &own)
		fmt_reader_free(rd);
	fmt_bs_close(&pr->bs);
	alarm(0);
	if (ret)
		v = p.xattr_fail ? V_XATTR : p.read_fail ? V_READ : V_WALK;
	else
		v = want && memcmp(want, got, SK_SHA256_LEN) ? V_CHANGED : V_SAME;
	return v;
}

/* Probes the first len bytes in a buffer of exactly that size; returns 1
 * when that opened. */
static int truncated_probe(struct prober *pr, size_t len, const uint8_t *base,
			   unsigned int *tries)
{
	uint8_t got[SK_SHA256_LEN];
	uint8_t *copy = malloc(len ? len : 1);
	int opened;

	if (!copy)
		bail_out("out of memory");
	memcpy(copy, pr->orig, len);
	opened = probe(pr, copy, len, base, got) != V_OPEN;
	free(copy);
	(*tries)++;
	return opened;
}

/* Probes whose damage a reader noticed, by verdict counts. */
static unsigned int detected(const unsigned int *count)
{
	return count[V_OPEN] + count[V_WALK] + count[V_XATTR] + count[V_READ];
}

static void test_robustness(struct image *img)
{
	/* from memory: a million preads would dominate the run time */
	struct src_ctx sc = { .fd = -1, .mem = img->blob, .mem_size = img->blob_size,
			      .corrupt_off = UINT64_MAX };
	struct fmt_blob_src bsrc = { src_read, &sc };
	uint8_t base[SK_SHA256_LEN], got[SK_SHA256_LEN];
	unsigned int count[V_NVERDICT] = { 0 }, opened = 0, tries = 0, magic_kept = 0;
	size_t size = img->bs_size, nflip = 0;
	struct prober pr;
	uint8_t *copy;

	prober_init(&pr, img->bs, size, &bsrc);
	is_int(probe(&pr, img->bs, size, NULL, base), V_SAME,
	       "probe of the intact bootstrap walks and reads everything");

	/* (a) truncation: every 7th length, then each side of the
	 * superblock and of every block boundary */
	for (size_t len = 0; len < size; len += 7)
		opened += truncated_probe(&pr, len, base, &tries);
	for (size_t b = 1024; b <= 1024 + 128; b += 128)
		for (size_t l = b - 1; l <= b + 1; l++)
			opened += truncated_probe(&pr, l, base, &tries);
	for (size_t b = 4096; b <= size; b += 4096)
		for (size_t l = b - 1; l <= b + 1 && l < size; l++)
			opened += truncated_probe(&pr, l, base, &tries);
	/* a crash or hang (the probe's alarm) ends the run before the plan */
	is_int(opened, 0, "none of %u truncated bootstraps (0..%zu bytes) opens "
	       "(its block count says it is short)", tries, size - 1);

	/* (b) byte flips: each byte of the first 3 blocks, then a sample */
	copy = malloc(size);
	if (!copy)
		bail_out("out of memory");
	memcpy(copy, img->bs, size);
	for (size_t i = 0; i < size; i += i < 3 * 4096 ? 1 : 61) {
		enum verdict v;

		copy[i] ^= 0xff;
		v = probe(&pr, copy, size, base, got);
		copy[i] ^= 0xff;
		count[v]++;
		nflip++;
		if (i >= EROFS_SUPER_OFFSET && i < EROFS_SUPER_OFFSET + 4 && v != V_OPEN)
			magic_kept++;
	}
	for (int v = 0; v < V_NVERDICT; v++)
		diag("flips %-34s %5u", verdict_names[v], count[v]);
	is_int(magic_kept, 0, "a flipped byte of the superblock's magic: refused at open");
	ok(detected(count) > 0, "%u of %zu byte flips detected (the rest hit bytes "
	   "the readers ignore or metadata without a checksum)", detected(count), nflip);
	is_mem(copy, img->bs, size, "flipping left the bootstrap unchanged");

	/* single-bit flips in the inode area catch off-by-one size checks */
	memset(count, 0, sizeof(count));
	nflip = 0;
	for (size_t i = 4096; i < SK_MIN(size, (size_t)3 * 4096); i++) {
		copy[i] ^= (uint8_t)(1u << (i % 8));
		count[probe(&pr, copy, size, base, got)]++;
		copy[i] ^= (uint8_t)(1u << (i % 8));
		nflip++;
	}
	diag("bit flips: %u unchanged, %u changed silently", count[V_SAME],
	     count[V_CHANGED]);
	ok(detected(count) > 0, "%u of %zu single-bit flips in blocks 1-2 rejected",
	   detected(count), nflip);
	is_int(pr.private_readers, 0,
	       "no opened image disagreed with the digest-protected blob table");
	free(copy);
	prober_free(&pr);
}

static void test_reproducible(const char *src, struct image *first)
{
	struct image again, one;
	struct sk_err e = { { 0 } };
	char p[PATH_MAX];

	fmtpath(p, "%s/again.blob", g_tmp);
	if (!is_int(build_image(src, p, 2, &again, &e), 0, "second build (%s)", e.msg)) {
		skip(9, "no second build");
		return;
	}
	if (is_int(again.bs_size, first->bs_size, "same tree, same options: bootstrap size"))
		is_mem(again.bs, first->bs, first->bs_size, "... byte-identical bootstrap");
	else
		skip(1, "another size");
	if (is_int(again.blob_size, first->blob_size, "same tree, same options: blob size"))
		is_mem(again.blob, first->blob, first->blob_size, "... byte-identical blob");
	else
		skip(1, "another size");
	fmtpath(p, "%s/one.blob", g_tmp);
	if (is_int(build_image(src, p, 1, &one, &e), 0, "build with threads=1 (%s)", e.msg)) {
		if (is_int(one.bs_size, first->bs_size, "threads=1 and threads=2: bootstrap size"))
			is_mem(one.bs, first->bs, first->bs_size, "... identical bootstrap");
		else
			skip(1, "another size");
		if (is_int(one.blob_size, first->blob_size, "... blob size"))
			is_mem(one.blob, first->blob, first->blob_size, "... identical blob");
		else
			skip(1, "another size");
	} else {
		skip(4, "no threads=1 build");
	}
	image_free(&one);
	image_free(&again);
}

int main(void)
{
	const char *base = getenv("TMPDIR");
	char src[PATH_MAX], blob[PATH_MAX];
	struct image img;
	struct sk_err e = { { 0 } };

	snprintf(g_tmp, sizeof(g_tmp), "%s/skiff-bootstrap-XXXXXX",
		 base && *base ? base : "/tmp");
	if (!mkdtemp(g_tmp))
		bail_out("mkdtemp: %s", strerror(errno));
	fmtpath(src, "%s/src", g_tmp);
	fmtpath(blob, "%s/blob", g_tmp);
	make_tree(src);
	if (!g_have_xattr)
		diag("user.* xattrs not supported under %s: xattr checks skipped", g_tmp);

	if (build_image(src, blob, 2, &img, &e)) {
		rm_rf(g_tmp);
		bail_out("fmt_build: %s", e.msg);
	}
	is_int(img.bs_size % EROFS_BLKSIZ, 0, "fmt_build: a %zu-byte bootstrap, whole blocks",
	       img.bs_size);
	ok(img.blob_size > 0, "fmt_build: a %zu-byte blob", img.blob_size);
	test_functional(src, &img);
	test_edge_builds();
	test_crafted(&img);
	test_chunk_ranges(&img);
	test_chunk_ranges_big();
	test_reproducible(src, &img);
	test_robustness(&img);
	image_free(&img);
	rm_rf(g_tmp);
	return done_testing();
}
