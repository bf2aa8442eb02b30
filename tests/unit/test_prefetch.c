/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Prefetch lists: the list file parser, and a build with a list puts the
 * listed files first in the blob and their NIDs in the bootstrap.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../format/bootstrap.h"
#include "../../format/builder.h"
#include "tap.h"

static void test_parse(void)
{
	static const char in[] =
		"# skiff trace v1\n"
		"/usr/bin/python3\t0-3,7\n"
		"\n"
		"lib/a b.py\n"
		"/tab\\there\\nnl\\\\back\t1\r\n"
		"/last-no-newline";
	struct fmt_prefetch_list l;
	struct sk_err e = { { 0 } };

	is_int(fmt_prefetch_list_parse(in, sizeof(in) - 1, &l, &e), 0, "parse a list");
	is_int((int)l.n, 4, "comments and empty lines skipped");
	if (l.n == 4) {
		ok(!strcmp(l.paths[0], "/usr/bin/python3"), "a tab ends the path");
		ok(!strcmp(l.paths[1], "/lib/a b.py"), "a relative path is from the root");
		ok(!strcmp(l.paths[2], "/tab\there\nnl\\back"), "escapes: %s", l.paths[2]);
		ok(!strcmp(l.paths[3], "/last-no-newline"), "a last line without newline");
	}
	fmt_prefetch_list_free(&l);
	is_int(fmt_prefetch_list_parse("a\0b\n", 4, &l, &e), -EINVAL, "a NUL byte is refused");
	ok(strstr(e.msg, "line 1") != NULL, "... naming the line: %s", e.msg);
	is_int(fmt_prefetch_list_parse("", 0, &l, &e), 0, "an empty list");
	is_int((int)l.n, 0, "... has no entries");
}

static char g_tmp[PATH_MAX];

static void put(const char *name, char fill, size_t size)
{
	char p[PATH_MAX];
	char *buf = malloc(size);
	int fd;

	fmtpath(p, "%s/src/%s", g_tmp, name);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || !buf)
		bail_out("creating %s", p);
	memset(buf, fill, size);
	if (sk_write_full(fd, buf, size))
		bail_out("writing %s", p);
	close(fd);
	free(buf);
}

/* Which file's data the blob's first chunk is: the block address of
 * chunk 0 of each file; the one at block 0 comes first. */
static uint32_t first_block(struct fmt_bs *bs, const char *path)
{
	struct fmt_inode ino;
	unsigned int dev;
	uint32_t blk;

	if (fmt_bs_resolve(bs, path, &ino) || fmt_bs_chunk(bs, &ino, 0, &dev, &blk))
		return UINT32_MAX;
	return blk;
}

static void test_build(void)
{
	const char *list[] = { "/z-last", "/missing", "/dir", "/m-middle", "/z-last" };
	struct fmt_build_opts o = { .chunk_bits = 12, .compress = SKIFF_COMP_NONE,
				    .threads = 1, .prefetch = list, .nprefetch = 5 };
	struct fmt_build_result res;
	struct sk_err e = { { 0 } };
	struct fmt_bs bs;
	char p[PATH_MAX];
	int fd;

	fmtpath(p, "%s/src", g_tmp);
	if (mkdir(p, 0755))
		bail_out("mkdir");
	fmtpath(p, "%s/src/dir", g_tmp);
	if (mkdir(p, 0755))
		bail_out("mkdir");
	put("a-first", 'a', 10000);
	put("m-middle", 'm', 5000);
	put("z-last", 'z', 3000);
	fmtpath(p, "%s/blob", g_tmp);
	fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	fmtpath(p, "%s/src", g_tmp);
	if (fd < 0 || fmt_build(p, &o, fd, &res, &e))
		bail_out("build: %s", e.msg);
	close(fd);
	is_int((int)res.stats.prefetch_files, 2, "two list entries are files of the tree");
	if (!ok(fmt_bs_open(&bs, res.bootstrap, res.bootstrap_size) == 0,
		"the bootstrap opens"))
		return;
	if (is_int((int)fmt_bs_prefetch_count(&bs), 2, "it lists 2 files")) {
		struct fmt_inode ino;
		uint64_t nid;

		if (!is_int(fmt_bs_prefetch_nid(&bs, 0, &nid), 0, "the list's entry 0"))
			skip(2, "no entry 0");
		else if (!is_int(fmt_bs_resolve(&bs, "/z-last", &ino), 0, "/z-last resolves"))
			skip(1, "no /z-last");
		else
			is_int(ino.nid, nid, "first the file listed first");
		if (!is_int(fmt_bs_prefetch_nid(&bs, 1, &nid), 0, "the list's entry 1"))
			skip(2, "no entry 1");
		else if (!is_int(fmt_bs_resolve(&bs, "/m-middle", &ino), 0, "/m-middle resolves"))
			skip(1, "no /m-middle");
		else
			is_int(ino.nid, nid, "then the next one");
		is_int(fmt_bs_prefetch_nid(&bs, 2, &nid), -EINVAL, "no third entry");
	}
	is_int((int)first_block(&bs, "/z-last"), 0, "the first listed file's data is first in the blob");
	is_int((int)first_block(&bs, "/m-middle"), 1, "then the second's");
	is_int((int)first_block(&bs, "/a-first"), 3, "the others follow in tree order");
	fmt_bs_close(&bs);
	free(res.bootstrap);
}

int main(void)
{
	const char *t = getenv("TMPDIR");
	char cmd[PATH_MAX];

	test_parse();
	fmtpath(g_tmp, "%s/skiff-test-prefetch.XXXXXX", t ? t : "/tmp");
	if (!mkdtemp(g_tmp))
		bail_out("mkdtemp");
	test_build();
	fmtpath(cmd, "rm -rf '%s'", g_tmp);
	if (system(cmd))
		diag("could not remove %s", g_tmp);
	return done_testing();
}
