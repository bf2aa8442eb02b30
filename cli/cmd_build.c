/* SPDX-License-Identifier: Apache-2.0 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../format/builder.h"
#include "../format/ondisk.h"

static const char build_usage[] =
"usage: skiff build [options] DIR OUTPUT[:TAG]\n"
"\n"
"Builds a skiff image (EROFS bootstrap + data blob) from DIR into the OCI\n"
"image layout OUTPUT, created if needed, optionally tagged TAG.\n"
"\n"
"  -c, --chunk-size SIZE  chunk size, a power of two from 4K to 64M (default 1M)\n"
"      --compress ALG     zstd (default) or none\n"
"  -l, --level N          zstd level, 1 to 19 (default 3)\n"
"  -j, --threads N        hashing/compression threads (default: one per CPU)\n"
"      --uuid UUID|random volume UUID (default: all zeros, for reproducible builds)\n"
"      --prefetch-list FILE  files read first, one path a line (or a trace from\n"
"                         `skiff trace stop`): stored first in the blob and\n"
"                         listed in the bootstrap for skiffd to prefetch\n"
CLI_BUILD_USAGE_MAX_EXPANSION
"  -q, --quiet            no progress or summary\n"
"  -h, --help             this help\n";

struct progress_ctx {
	double start;
	int tty;
};

static void show_progress(void *ctx, const struct fmt_build_stats *s, int final)
{
	struct progress_ctx *p = ctx;
	double t = sk_now() - p->start;
	char rd[32], st[32];

	if (!p->tty)
		return;
	sk_human_size(s->read_bytes, rd, sizeof(rd));
	sk_human_size(s->blob_stored, st, sizeof(st));
	fprintf(stderr, "\r\033[Kbuilding: %llu files, read %s, stored %s, %.0f MB/s",
		(unsigned long long)s->files, rd, st,
		t > 0 ? (double)s->read_bytes / 1e6 / t : 0.0);
	if (final)
		fputc('\n', stderr);
}

static int parse_uuid(const char *s, uint8_t out[16])
{
	char hex[33];
	size_t n = 0;

	if (!strcmp(s, "random")) {
		int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC), ret;

		if (fd < 0)
			return -errno;
		ret = sk_pread_full(fd, out, 16, 0) ? -EIO : 0;
		close(fd);
		if (ret)
			return ret;
		out[6] = (out[6] & 0x0f) | 0x40;	/* version 4 */
		out[8] = (out[8] & 0x3f) | 0x80;	/* RFC 4122 variant */
		return 0;
	}
	for (; *s; s++) {
		if (*s == '-')
			continue;
		if (n == 32)
			return -EINVAL;
		hex[n++] = (*s >= 'A' && *s <= 'F') ? (char)(*s - 'A' + 'a') : *s;
	}
	if (n != 32)
		return -EINVAL;
	return sk_unhex(hex, 32, out);
}

int cmd_build(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "chunk-size", required_argument, NULL, 'c' },
		{ "compress", required_argument, NULL, 'C' },
		{ "level", required_argument, NULL, 'l' },
		{ "threads", required_argument, NULL, 'j' },
		{ "uuid", required_argument, NULL, 'u' },
		{ "prefetch-list", required_argument, NULL, 'P' },
		CLI_BUILD_OPT_MAX_EXPANSION,
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct fmt_build_opts o = { .chunk_bits = 20, .compress = SKIFF_COMP_ZSTD,
				    .level = 3 };
	struct progress_ctx pc = { .start = sk_now(), .tty = isatty(2) };
	struct fmt_build_result res;
	struct be_store store;
	struct be_image img = { 0 };
	struct be_layer blob_layer = { 0 };
	struct sk_err e = { { 0 } };
	char dir[PATH_MAX], tmp[PATH_MAX], ann[512];
	uint8_t uuid[16];
	struct fmt_prefetch_list pl = { 0 };
	const char *plist = NULL;
	int quiet = 0, c, fd, ret;

	while ((c = getopt_long(argc, argv, "c:l:j:qh", opts, NULL)) != -1) {
		int r = cli_build_opt(c, optarg, &o);

		if (r < 0)
			return 2;
		if (r > 0)
			continue;
		switch (c) {
		case 'u':
			if (parse_uuid(optarg, uuid)) {
				cli_err("--uuid %s: need a UUID or \"random\"", optarg);
				return 2;
			}
			o.uuid = uuid;
			break;
		case 'P':
			plist = optarg;
			break;
		case 'q':
			quiet = 1;
			break;
		case 'h':
			fputs(build_usage, stdout);
			return 0;
		default:
			fputs(build_usage, stderr);
			return 2;
		}
	}
	if (argc - optind != 2) {
		fputs(build_usage, stderr);
		return 2;
	}
	if (be_ref_split(argv[optind + 1], dir, sizeof(dir), img.tag,
			 sizeof(img.tag))) {
		cli_err("%s: name too long", argv[optind + 1]);
		return 2;
	}
	if (plist && cli_prefetch_list_load(plist, &pl, &o))
		return 1;
	if (be_store_open(&store, dir, 1, &e)) {
		cli_err("%s", e.msg);
		return 1;
	}
	ret = be_store_tmp_blob(&store, tmp, sizeof(tmp), &fd);
	if (ret) {
		cli_err("%s: creating blob: %s", dir, strerror(-ret));
		return 1;
	}
	if (!quiet) {
		o.progress = show_progress;
		o.progress_ctx = &pc;
	}
	ret = fmt_build(argv[optind], &o, fd, &res, &e);
	close(fd);
	fmt_prefetch_list_free(&pl);
	if (ret) {
		unlink(tmp);
		cli_err("build failed: %s%s", e.msg[0] ? e.msg : strerror(-ret),
			cli_build_hint(ret));
		return 1;
	}
	if (res.has_blob) {
		img.nblobs = 1;
		blob_layer.size = res.blob_size;
		img.blobs = &blob_layer;
		sk_hex(res.blob_id, SK_SHA256_LEN, img.blobs[0].hex);
		ret = be_store_commit_blob(&store, tmp, img.blobs[0].hex);
	} else {
		unlink(tmp);
	}
	if (!ret)
		ret = be_store_put(&store, res.bootstrap, res.bootstrap_size,
				   img.bootstrap.hex);
	img.bootstrap.size = res.bootstrap_size;
	snprintf(ann, sizeof(ann),
		 "{\"dev.skiff.version\":\"1\",\"dev.skiff.chunk-size\":\"%llu\","
		 "\"dev.skiff.compression\":\"%s\"}",
		 1ull << o.chunk_bits,
		 o.compress == SKIFF_COMP_ZSTD ? "zstd" : "none");
	if (!ret)
		ret = be_store_add_image(&store, &img, ann, &e);
	free(res.bootstrap);
	if (ret) {
		cli_err("%s: writing image: %s", dir,
			e.msg[0] ? e.msg : strerror(-ret));
		return 1;
	}
	if (!quiet) {
		const struct fmt_build_stats *s = &res.stats;
		char in[32], st[32], bs[32];
		double t = sk_now() - pc.start;

		sk_human_size(s->file_bytes, in, sizeof(in));
		sk_human_size(s->blob_stored, st, sizeof(st));
		sk_human_size(res.bootstrap_size, bs, sizeof(bs));
		fprintf(stderr,
			"built %s%s%s in %.2fs: %llu inodes (%llu files, %llu dirs, %llu symlinks, %llu other), %s of file data\n"
			"  blob %s: %s stored, %llu unique chunks of %llu (%llu holes), bootstrap %s\n",
			dir, img.tag[0] ? ":" : "", img.tag, t,
			(unsigned long long)s->inodes, (unsigned long long)s->files,
			(unsigned long long)s->dirs, (unsigned long long)s->symlinks,
			(unsigned long long)s->specials, in,
			res.has_blob ? img.blobs[0].hex : "(none)", st,
			(unsigned long long)s->chunks_unique,
			(unsigned long long)s->chunks,
			(unsigned long long)s->chunks_hole, bs);
		if (plist)
			fprintf(stderr, "  prefetch list: %llu files stored first\n",
				(unsigned long long)s->prefetch_files);
	}
	return 0;
}
