/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Access traces (loader/trace.c) without a kernel: a small image built
 * with the format/ builder, registered in a daemon struct that holds only
 * what traces use (the lock, the image list), and reads noted as a
 * frontend notes them. Stopping must name the files in the order they
 * were first read, with the chunks read of each.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../format/bootstrap.h"
#include "../../format/builder.h"
#include "../../loader/daemon.h"
#include "../../loader/trace.h"
#include "tap.h"

#define BLK 4096

static char g_tmp[PATH_MAX];

/* A file of nblk 4 KiB blocks, block k filled with fill + k: no two
 * blocks alike, so no chunk is shared (deduplicated) with another. */
static void put(const char *name, char fill, unsigned int nblk)
{
	char p[PATH_MAX], buf[BLK];
	int fd;

	fmtpath(p, "%s/src/%s", g_tmp, name);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		bail_out("creating %s", p);
	for (unsigned int k = 0; k < nblk; k++) {
		memset(buf, fill + (char)k, sizeof(buf));
		if (sk_write_full(fd, buf, sizeof(buf)))
			bail_out("writing %s", p);
	}
	close(fd);
}

/* The cache-file offset of chunk idx of path. */
static uint64_t chunk_off(struct fmt_bs *bs, const char *path, uint64_t idx)
{
	struct fmt_inode ino;
	unsigned int dev;
	uint32_t blk;

	if (fmt_bs_resolve(bs, path, &ino) || fmt_bs_chunk(bs, &ino, idx, &dev, &blk))
		bail_out("no chunk %llu of %s", (unsigned long long)idx, path);
	return (uint64_t)blk * BLK;
}

/* files[i] of a stopped trace: its path, and its chunks as "0,2". */
static void file_at(json_t *out, size_t i, const char **path, char *chunks,
		    size_t len)
{
	json_t *f = json_array_get(json_object_get(out, "files"), i);
	json_t *c = json_object_get(f, "chunks");
	size_t k, n = 0;
	json_t *v;

	*path = json_string_value(json_object_get(f, "path"));
	chunks[0] = '\0';
	json_array_foreach(c, k, v)
		n += (size_t)snprintf(chunks + n, n < len ? len - n : 0, "%s%lld",
				      k ? "," : "", (long long)json_integer_value(v));
}

int main(void)
{
	static const struct { const char *name; char fill; unsigned int nblk; } files[] = {
		{ "a", 'A', 3 }, { "b", 'b', 1 }, { "dir/c", 'c', 2 }, { "never", 'n', 2 },
	};
	const char *t = getenv("TMPDIR");
	struct fmt_build_opts o = { .chunk_bits = 12, .compress = SKIFF_COMP_NONE,
				    .threads = 1 };
	struct fmt_build_result res;
	struct sk_err e = { { 0 } };
	struct ld_daemon d;
	struct ld_image im;
	struct fmt_bs bs;
	json_t *out = NULL;
	const char *path;
	char p[PATH_MAX], cmd[PATH_MAX + 16], chunks[64], other[SK_HEX_LEN + 1];
	int fd;

	fmtpath(g_tmp, "%s/skiff-test-trace.XXXXXX", t ? t : "/tmp");
	if (!mkdtemp(g_tmp))
		bail_out("mkdtemp");
	fmtpath(p, "%s/src/dir", g_tmp);
	if (sk_mkdir_p(p, 0755))
		bail_out("mkdir %s", p);
	for (size_t i = 0; i < SK_ARRAY_SIZE(files); i++)
		put(files[i].name, files[i].fill, files[i].nblk);
	/* the blob itself is not read: traces need only the bootstrap */
	fd = open(g_tmp, O_TMPFILE | O_RDWR, 0600);
	fmtpath(p, "%s/src", g_tmp);
	if (fd < 0 || fmt_build(p, &o, fd, &res, &e))
		bail_out("build: %s", e.msg);
	close(fd);
	if (fmt_bs_open(&bs, res.bootstrap, res.bootstrap_size) || bs.nblobs != 1)
		bail_out("the bootstrap does not open with one blob");

	memset(&d, 0, sizeof(d));
	memset(&im, 0, sizeof(im));
	pthread_mutex_init(&d.lock, NULL);
	snprintf(im.id, sizeof(im.id), "trace-test");
	im.bs_buf = res.bootstrap;
	im.bootstrap_size = res.bootstrap_size;
	im.nblobs = bs.nblobs;
	im.refs = bs.blobs;
	d.images = &im;
	memset(other, 'f', SK_HEX_LEN);
	other[SK_HEX_LEN] = '\0';

	/* not recording: a note costs nothing and records nothing */
	ld_trace_note(&d, bs.blobs[0].hex, 0, BLK);
	is_int(ld_trace_stop(&d, &im, &out, &e), -ENOENT, "stop without a trace: -ENOENT");
	ok(strstr(e.msg, "not recording") != NULL, "... saying so: %s", e.msg);

	is_int(ld_trace_start(&d, &im, &e), 0, "start");
	is_int(atomic_load(&d.tracing), 1, "... counts one image tracing");
	is_int(ld_trace_start(&d, &im, &e), -EBUSY, "a second start: -EBUSY");
	ok(strstr(e.msg, "already recording") != NULL, "... saying so: %s", e.msg);

	/* b, then a's last chunk, then a's first, dir/c's second; a read of
	 * another blob and an empty read count as reads but name no file */
	ld_trace_note(&d, bs.blobs[0].hex, chunk_off(&bs, "/b", 0), BLK);
	ld_trace_note(&d, bs.blobs[0].hex, chunk_off(&bs, "/a", 2), 100);
	ld_trace_note(&d, other, chunk_off(&bs, "/never", 0), BLK);
	ld_trace_note(&d, bs.blobs[0].hex, chunk_off(&bs, "/never", 1), 0);
	ld_trace_note(&d, bs.blobs[0].hex, chunk_off(&bs, "/a", 0), BLK);
	ld_trace_note(&d, bs.blobs[0].hex, chunk_off(&bs, "/dir/c", 1), BLK);
	/* past the end of the cache file: clipped, not a crash */
	ld_trace_note(&d, bs.blobs[0].hex, bs.blobs[0].usize + BLK, BLK);

	e.msg[0] = '\0';
	if (!is_int(ld_trace_stop(&d, &im, &out, &e), 0, "stop (%s)", e.msg))
		bail_out("no trace");
	is_int(atomic_load(&d.tracing), 0, "... counts no image tracing");
	ok(im.trace == NULL, "... and the image records no more");
	is_int(json_integer_value(json_object_get(out, "reads")), 6,
	       "every read of the image's blob counted, the other blob's not");
	ok(json_is_false(json_object_get(out, "truncated")), "not truncated");
	is_int(json_array_size(json_object_get(out, "files")), 3, "three files were read");
	file_at(out, 0, &path, chunks, sizeof(chunks));
	is_str(path, "/b", "first /b");
	is_str(chunks, "0", "... its chunk 0");
	file_at(out, 1, &path, chunks, sizeof(chunks));
	is_str(path, "/a", "then /a");
	is_str(chunks, "0,2", "... chunks 0 and 2, in file order");
	file_at(out, 2, &path, chunks, sizeof(chunks));
	is_str(path, "/dir/c", "then /dir/c");
	is_str(chunks, "1", "... its chunk 1");
	json_decref(out);
	out = NULL;

	/* a second trace starts empty */
	is_int(ld_trace_start(&d, &im, &e), 0, "start again");
	e.msg[0] = '\0';
	if (is_int(ld_trace_stop(&d, &im, &out, &e), 0, "stop at once (%s)", e.msg)) {
		is_int(json_integer_value(json_object_get(out, "reads")), 0, "... no reads");
		is_int(json_array_size(json_object_get(out, "files")), 0, "... no files");
	} else {
		skip(2, "no trace");
	}
	json_decref(out);

	/* ld_trace_free drops a trace being recorded */
	is_int(ld_trace_start(&d, &im, &e), 0, "start a trace to drop");
	ld_trace_free(&im);
	ok(im.trace == NULL, "ld_trace_free drops it");

	fmt_bs_close(&bs);
	free(res.bootstrap);
	pthread_mutex_destroy(&d.lock);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_tmp);
	if (system(cmd))
		diag("could not remove %s", g_tmp);
	return done_testing();
}
