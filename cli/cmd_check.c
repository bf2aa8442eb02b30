/* SPDX-License-Identifier: Apache-2.0 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../format/check.h"

static const char check_usage[] =
"usage: skiff check IMAGE\n"
"\n"
"Verifies a skiff image: manifest, bootstrap and blob digests, the\n"
"bootstrap's structure (every inode, directory, xattr and chunk index),\n"
"every chunk table and every chunk's digest. Exits 1 naming each problem.\n";

#define MAX_REPORTS 20

struct check {
	struct cli_image *ci;
	uint64_t problems, chunks_checked;
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

static void bs_problem(void *ctx, const char *msg)
{
	problem(ctx, "%s", msg);
}

static int bs_table(void *ctx, unsigned int blob, const struct fmt_blob_table **t,
		    struct sk_err *e)
{
	struct check *c = ctx;
	int ret = fmt_reader_table(&c->ci->rd, blob, t);

	if (ret)
		*e = c->ci->rd.err;
	return ret;
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
	struct fmt_check bsck = { 0 };
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

	/* the same structural check skiffd runs before it registers */
	bsck.table = bs_table;
	bsck.problem = bs_problem;
	bsck.ctx = &c;
	if (fmt_bs_check(&ci.bs, &bsck) == -ENOMEM) {
		cli_err("out of memory");
		ret = 1;
		goto out;
	}
	if (c.problems) {
		cli_err("check: %s: %llu problem%s found", argv[1],
			(unsigned long long)c.problems, c.problems > 1 ? "s" : "");
		ret = 1;
	} else {
		printf("%s: ok: %llu inodes, %u blob%s, %llu chunks verified\n",
		       argv[1], (unsigned long long)bsck.inodes, ci.bs.nblobs,
		       ci.bs.nblobs == 1 ? "" : "s",
		       (unsigned long long)c.chunks_checked);
		ret = 0;
	}
out:
	cli_image_close(&ci);
	return ret;
}
