/* SPDX-License-Identifier: Apache-2.0 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../format/walk.h"

static const char ls_usage[] =
"usage: skiff ls [-R] [-x] IMAGE [PATH]\n"
"\n"
"Lists PATH (default /) inside a skiff image, in long form.\n"
"\n"
"  -R, --recursive  list every entry below PATH\n"
"  -x, --xattrs     also print extended attributes\n"
"  -h, --help       this help\n";

static const char cat_usage[] =
"usage: skiff cat IMAGE PATH\n"
"\n"
"Writes the contents of the regular file PATH to standard output,\n"
"verifying every chunk against its digest.\n";

static void mode_string(uint32_t m, char out[11])
{
	static const char types[] = "?pc?d?b?-?l?s???";

	out[0] = types[(m >> 12) & 15];
	for (int i = 0; i < 9; i++)
		out[1 + i] = (m & (0400 >> i)) ? "rwxrwxrwx"[i] : '-';
	if (m & S_ISUID)
		out[3] = (m & 0100) ? 's' : 'S';
	if (m & S_ISGID)
		out[6] = (m & 0010) ? 's' : 'S';
	if (m & S_ISVTX)
		out[9] = (m & 0001) ? 't' : 'T';
	out[10] = '\0';
}

static int print_xattr(void *ctx, const struct fmt_xattr *x)
{
	char name[300];

	(void)ctx;
	if (fmt_xattr_fullname(x, name, sizeof(name)) < 0)
		return 0;
	printf("    %s (%u bytes)\n", name, x->value_len);
	return 0;
}

struct ls_ctx {
	struct cli_image *ci;
	int xattrs;
	const char *prefix;	/* -R: only paths under this */
	size_t prefixlen;
};

static int print_entry(struct ls_ctx *l, const char *name, size_t namelen,
		       const struct fmt_inode *ino)
{
	char mode[11], when[64];
	time_t t = (time_t)ino->mtime;
	struct tm tm;

	mode_string(ino->mode, mode);
	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	if (S_ISCHR(ino->mode) || S_ISBLK(ino->mode))
		printf("%s %3u %6u %6u %5u, %5u %s.%09u ", mode, ino->nlink,
		       ino->uid, ino->gid, fmt_dev_major(ino->rdev),
		       fmt_dev_minor(ino->rdev), when, ino->mtime_nsec);
	else
		printf("%s %3u %6u %6u %12llu %s.%09u ", mode, ino->nlink,
		       ino->uid, ino->gid, (unsigned long long)ino->size, when,
		       ino->mtime_nsec);
	cli_put_name(stdout, name, namelen);
	if (S_ISLNK(ino->mode)) {
		char target[EROFS_BLKSIZ];

		if (!fmt_bs_read_flat(&l->ci->bs, ino, 0, target, ino->size)) {
			fputs(" -> ", stdout);
			cli_put_name(stdout, target, ino->size);
		}
	}
	fputc('\n', stdout);
	if (l->xattrs)
		return fmt_bs_xattrs(&l->ci->bs, ino, print_xattr, NULL);
	return 0;
}

static int ls_dir_cb(void *ctx, const struct fmt_dirent *de)
{
	struct ls_ctx *l = ctx;
	struct fmt_inode ino;
	int ret;

	if ((de->namelen == 1 && de->name[0] == '.') ||
	    (de->namelen == 2 && !memcmp(de->name, "..", 2)))
		return 0;
	ret = fmt_bs_inode(&l->ci->bs, de->nid, &ino);
	if (ret)
		return ret;
	return print_entry(l, de->name, de->namelen, &ino);
}

static int ls_walk_cb(void *ctx, const char *path, size_t plen,
		      const struct fmt_inode *ino)
{
	struct ls_ctx *l = ctx;

	if (plen < l->prefixlen || memcmp(path, l->prefix, l->prefixlen) ||
	    (plen > l->prefixlen && l->prefixlen > 1 && path[l->prefixlen] != '/'))
		return 0;
	return print_entry(l, path, plen, ino);
}

int cmd_ls(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "recursive", no_argument, NULL, 'R' },
		{ "xattrs", no_argument, NULL, 'x' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct cli_image ci;
	struct ls_ctx l = { .ci = &ci };
	struct sk_err e = { { 0 } };
	struct fmt_inode ino;
	const char *path = "/";
	int rec = 0, c, ret;

	while ((c = getopt_long(argc, argv, "Rxh", opts, NULL)) != -1) {
		switch (c) {
		case 'R': rec = 1; break;
		case 'x': l.xattrs = 1; break;
		case 'h': fputs(ls_usage, stdout); return 0;
		default: fputs(ls_usage, stderr); return 2;
		}
	}
	if (argc - optind < 1 || argc - optind > 2) {
		fputs(ls_usage, stderr);
		return 2;
	}
	if (argc - optind == 2)
		path = argv[optind + 1];
	if (cli_image_open(&ci, argv[optind], &e)) {
		cli_err("%s", e.msg);
		return 1;
	}
	ret = fmt_bs_resolve(&ci.bs, path, &ino);
	if (ret) {
		cli_err("%s: %s", path, ret == -EFSCORRUPTED ? ci.bs.err.msg
							     : strerror(-ret));
		cli_image_close(&ci);
		return 1;
	}
	if (rec) {
		/* walk paths are "/a/b": normalise PATH the same way */
		char norm[FMT_WALK_PATH_MAX];
		size_t n = 0;

		for (const char *p = path; *p && n + 2 < sizeof(norm); p++) {
			if (*p == '/' && (n == 0 || norm[n - 1] == '/'))
				continue;
			if (n == 0)
				norm[n++] = '/';
			norm[n++] = *p;
		}
		while (n > 1 && norm[n - 1] == '/')
			n--;
		if (n == 0)
			norm[n++] = '/';
		norm[n] = '\0';
		l.prefix = norm;
		l.prefixlen = n;
		ret = fmt_bs_walk(&ci.bs, ls_walk_cb, &l);
	} else if (S_ISDIR(ino.mode)) {
		ret = fmt_bs_readdir(&ci.bs, &ino, ls_dir_cb, &l);
	} else {
		ret = print_entry(&l, path, strlen(path), &ino);
	}
	if (ret < 0)
		cli_err("%s: %s", path, ci.bs.err.msg[0] ? ci.bs.err.msg
							 : strerror(-ret));
	cli_image_close(&ci);
	return ret < 0 ? 1 : 0;
}

int cmd_cat(int argc, char **argv)
{
	struct cli_image ci;
	struct sk_err e = { { 0 } };
	struct fmt_inode ino;
	size_t bufsz = 1 << 20;
	uint8_t *buf;
	uint64_t off = 0;
	int ret;

	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		fputs(cat_usage, stdout);
		return 0;
	}
	if (argc != 3) {
		fputs(cat_usage, stderr);
		return 2;
	}
	if (cli_image_open(&ci, argv[1], &e)) {
		cli_err("%s", e.msg);
		return 1;
	}
	ret = fmt_bs_resolve(&ci.bs, argv[2], &ino);
	if (!ret && !S_ISREG(ino.mode))
		ret = S_ISDIR(ino.mode) ? -EISDIR : -EINVAL;
	if (ret) {
		cli_err("%s: %s", argv[2], ret == -EFSCORRUPTED ? ci.bs.err.msg
								: strerror(-ret));
		cli_image_close(&ci);
		return 1;
	}
	buf = malloc(bufsz);
	ret = buf ? 0 : -ENOMEM;
	while (!ret && off < ino.size) {
		ssize_t n = fmt_reader_pread(&ci.rd, &ino, buf, bufsz, off);

		if (n <= 0) {
			ret = n ? (int)n : -EIO;
			cli_err("%s: %s", argv[2], ci.rd.err.msg[0] ? ci.rd.err.msg
								    : strerror(-ret));
			break;
		}
		ret = sk_write_full(1, buf, (size_t)n);
		if (ret)
			cli_err("writing output: %s", strerror(-ret));
		off += (uint64_t)n;
	}
	free(buf);
	cli_image_close(&ci);
	return ret ? 1 : 0;
}
