/* SPDX-License-Identifier: Apache-2.0 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char export_usage[] =
"usage: skiff export-cache IMAGE DIR\n"
"\n"
"Writes the bootstrap as DIR/bootstrap and each blob's cache-file form\n"
"(the uncompressed bytes the kernel reads) as DIR/<blob id>, verifying\n"
"every chunk, and prints the blob ids in device-table order, one a line.\n"
"The image then mounts without the daemon:\n"
"  mount -t erofs -o device=DIR/<id> DIR/bootstrap MNT\n";

static int export_blob(struct cli_image *ci, unsigned int i, const char *dir)
{
	const struct fmt_blob_table *t;
	char p[PATH_MAX];
	int fd, ret;

	ret = fmt_reader_table(&ci->rd, i, &t);
	if (ret) {
		cli_err("%s", ci->rd.err.msg);
		return ret;
	}
	snprintf(p, sizeof(p), "%s/%s", dir, ci->bs.blobs[i].hex);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		ret = -errno;
		cli_err("%s: %s", p, strerror(errno));
		return ret;
	}
	/* sparse: only chunks are written, padding stays a hole */
	if (ftruncate(fd, (off_t)t->usize) < 0) {
		ret = -errno;
		cli_err("%s: %s", p, strerror(errno));
	}
	for (uint64_t k = 0; !ret && k < t->count; k++) {
		const uint8_t *data;

		ret = fmt_reader_chunk(&ci->rd, i, &t->chunks[k], &data);
		if (ret) {
			cli_err("%s", ci->rd.err.msg);
			break;
		}
		ret = sk_pwrite_full(fd, data, t->chunks[k].usize, t->chunks[k].uoff);
		if (ret)
			cli_err("%s: %s", p, strerror(-ret));
	}
	if (close(fd) < 0 && !ret)
		ret = -errno;
	return ret;
}

int cmd_export_cache(int argc, char **argv)
{
	struct cli_image ci;
	struct sk_err e = { { 0 } };
	char p[PATH_MAX];
	int ret;

	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		fputs(export_usage, stdout);
		return 0;
	}
	if (argc != 3) {
		fputs(export_usage, stderr);
		return 2;
	}
	if (cli_image_open(&ci, argv[1], &e)) {
		cli_err("%s", e.msg);
		return 1;
	}
	ret = sk_mkdir_p(argv[2], 0755);
	if (ret) {
		cli_err("%s: %s", argv[2], strerror(-ret));
		goto out;
	}
	snprintf(p, sizeof(p), "%s/bootstrap", argv[2]);
	ret = sk_write_file_atomic(p, ci.bs_buf, ci.bs_size);
	if (ret) {
		cli_err("%s: %s", p, strerror(-ret));
		goto out;
	}
	for (unsigned int i = 0; !ret && i < ci.bs.nblobs; i++)
		ret = export_blob(&ci, i, argv[2]);
	for (unsigned int i = 0; !ret && i < ci.bs.nblobs; i++)
		printf("%s\n", ci.bs.blobs[i].hex);
out:
	cli_image_close(&ci);
	return ret ? 1 : 0;
}
