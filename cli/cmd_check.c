/* SPDX-License-Identifier: Apache-2.0 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../format/walk.h"

static const char check_usage[] =
"usage: skiff check IMAGE\n"
"\n"
"Verifies a skiff image: manifest, bootstrap and blob digests, the\n"
"bootstrap's structure (every inode, directory, xattr and chunk index),\n"
"every chunk table and every chunk's digest. Exits 1 naming each problem.\n";

#define MAX_REPORTS 20

struct check {
	struct cli_image *ci;
	uint32_t *refs;		/* names per nid */
	uint32_t *subdirs;	/* subdirectories per directory nid */
	uint64_t nslots;
	uint64_t inodes, problems, chunks_checked;
};

static void problem(struct check *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void problem(struct check *c, const char *fmt, ...)
{
	va_list ap;

	if (++c->problems > MAX_REPORTS)
		return;
	fputs("skiff: check: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int file_digest(const char *path, char hex[SK_HEX_LEN + 1])
{
	struct sk_sha256_ctx h;
	uint8_t d[SK_SHA256_LEN];
	size_t bufsz = 1 << 20;
	uint8_t *buf = malloc(bufsz);
	int fd, ret;

	if (!buf)
		return -ENOMEM;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		free(buf);
		return -errno;
	}
	ret = sk_sha256_init(&h);
	while (!ret) {
		ssize_t n = read(fd, buf, bufsz);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			ret = -errno;
		if (n <= 0)
			break;
		sk_sha256_update(&h, buf, (size_t)n);
	}
	if (h.md) {
		sk_sha256_final(&h, d);
		sk_sha256_free(&h);
		sk_hex(d, sizeof(d), hex);
	}
	close(fd);
	free(buf);
	return ret;
}

static void check_digest(struct check *c, const char *what, const char *hex)
{
	char p[PATH_MAX], got[SK_HEX_LEN + 1];
	int ret;

	be_store_blob_path(&c->ci->store, hex, p, sizeof(p));
	ret = file_digest(p, got);
	if (ret)
		problem(c, "%s %s: %s", what, p, strerror(-ret));
	else if (strcmp(got, hex))
		problem(c, "%s %s: content does not match its digest (sha256:%s)",
			what, p, got);
}

static int xattr_ok(void *ctx, const struct fmt_xattr *x)
{
	(void)ctx;
	(void)x;
	return 0;
}

static void put_path(char *out, size_t outlen, const char *path, size_t plen)
{
	FILE *f = fmemopen(out, outlen, "w");

	if (!f) {
		snprintf(out, outlen, "?");
		return;
	}
	cli_put_name(f, path, plen);
	fclose(f);
}

static int inode_cb(void *ctx, const char *path, size_t plen,
		    const struct fmt_inode *ino)
{
	struct check *c = ctx;
	struct fmt_bs *bs = &c->ci->bs;
	char name[1024];
	int ret;

	if (ino->nid >= c->nslots)	/* fmt_bs_inode bounds nids */
		return -EFSCORRUPTED;
	if (c->refs[ino->nid]++)
		return 0;	/* another name of a checked inode */
	c->inodes++;
	put_path(name, sizeof(name), path, plen);
	ret = fmt_bs_xattrs(bs, ino, xattr_ok, NULL);
	if (ret)
		problem(c, "%s: %s", name, bs->err.msg);
	if (S_ISLNK(ino->mode)) {
		char target[EROFS_BLKSIZ];

		if (fmt_bs_read_flat(bs, ino, 0, target, ino->size) ||
		    memchr(target, '\0', ino->size))
			problem(c, "%s: unreadable symlink target", name);
	}
	for (uint64_t i = 0; S_ISREG(ino->mode) && i < ino->chunk_count; i++) {
		const struct fmt_chunk *ch;
		unsigned int blob;

		ret = fmt_reader_map(&c->ci->rd, ino, i, &blob, &ch);
		if (ret) {
			problem(c, "%s: %s", name, c->ci->rd.err.msg);
			break;
		}
	}
	return 0;
}

/* Second pass: directories' link counts need every subdirectory seen. */
static int nlink_cb(void *ctx, const char *path, size_t plen,
		    const struct fmt_inode *ino)
{
	struct check *c = ctx;
	char name[1024];
	uint32_t want;

	if (S_ISDIR(ino->mode)) {
		want = 2 + c->subdirs[ino->nid];
	} else {
		want = c->refs[ino->nid];
	}
	if (ino->nlink != want) {
		put_path(name, sizeof(name), path, plen);
		problem(c, "%s: link count %u, the tree has %u", name,
			ino->nlink, want);
	}
	return 0;
}

struct subdir_ctx {
	struct check *c;
	uint64_t dir;
};

static int count_subdirs(void *ctx, const struct fmt_dirent *de)
{
	struct subdir_ctx *s = ctx;

	if (de->type == EROFS_FT_DIR &&
	    !(de->namelen == 1 && de->name[0] == '.') &&
	    !(de->namelen == 2 && !memcmp(de->name, "..", 2)))
		s->c->subdirs[s->dir]++;
	return 0;
}

static int subdir_cb(void *ctx, const char *path, size_t plen,
		     const struct fmt_inode *ino)
{
	struct subdir_ctx s = { ctx, ino->nid };

	(void)path;
	(void)plen;
	if (!S_ISDIR(ino->mode))
		return 0;
	return fmt_bs_readdir(&s.c->ci->bs, ino, count_subdirs, &s);
}

static void check_blobs(struct check *c)
{
	struct cli_image *ci = c->ci;

	for (unsigned int i = 0; i < ci->bs.nblobs; i++) {
		const struct fmt_blob_table *t;
		uint64_t bad = 0;

		if (fmt_reader_table(&ci->rd, i, &t)) {
			problem(c, "%s", ci->rd.err.msg);
			continue;
		}
		for (uint64_t k = 0; k < t->count; k++) {
			const uint8_t *data;

			if (fmt_reader_chunk(&ci->rd, i, &t->chunks[k], &data)) {
				if (!bad++)
					problem(c, "chunk %llu: %s",
						(unsigned long long)k,
						ci->rd.err.msg);
				continue;
			}
			c->chunks_checked++;
		}
		if (bad > 1)
			problem(c, "blob %s: %llu bad chunks in all",
				ci->bs.blobs[i].hex, (unsigned long long)bad);
	}
}

int cmd_check(int argc, char **argv)
{
	struct cli_image ci;
	struct check c = { .ci = &ci };
	struct sk_err e = { { 0 } };
	int ret;

	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		fputs(check_usage, stdout);
		return 0;
	}
	if (argc != 2) {
		fputs(check_usage, stderr);
		return 2;
	}
	if (cli_image_open(&ci, argv[1], &e)) {
		cli_err("check: %s", e.msg);
		return 1;
	}
	check_digest(&c, "manifest", ci.img.manifest_hex);
	for (unsigned int i = 0; i < ci.img.nblobs; i++)
		check_digest(&c, "blob", ci.img.blobs[i].hex);
	check_blobs(&c);

	c.nslots = (ci.bs.size >> EROFS_ISLOTBITS) + 1;
	c.refs = calloc(c.nslots, sizeof(*c.refs));
	c.subdirs = calloc(c.nslots, sizeof(*c.subdirs));
	if (!c.refs || !c.subdirs) {
		cli_err("out of memory");
		ret = 1;
		goto out;
	}
	ret = fmt_bs_walk(&ci.bs, inode_cb, &c);
	if (!ret)
		ret = fmt_bs_walk(&ci.bs, subdir_cb, &c);
	if (!ret) {
		/* refs now count names; the nlink pass must not add more */
		ret = fmt_bs_walk(&ci.bs, nlink_cb, &c);
	}
	if (ret)
		problem(&c, "bootstrap: %s",
			ci.bs.err.msg[0] ? ci.bs.err.msg : strerror(-ret));
	else if (c.inodes != ci.bs.inos)
		problem(&c, "bootstrap: superblock counts %llu inodes, the tree has %llu",
			(unsigned long long)ci.bs.inos,
			(unsigned long long)c.inodes);
	if (c.problems) {
		cli_err("check: %s: %llu problem%s found", argv[1],
			(unsigned long long)c.problems, c.problems > 1 ? "s" : "");
		ret = 1;
	} else {
		printf("%s: ok: %llu inodes, %u blob%s, %llu chunks verified\n",
		       argv[1], (unsigned long long)c.inodes, ci.bs.nblobs,
		       ci.bs.nblobs == 1 ? "" : "s",
		       (unsigned long long)c.chunks_checked);
		ret = 0;
	}
out:
	free(c.refs);
	free(c.subdirs);
	cli_image_close(&ci);
	return ret;
}
