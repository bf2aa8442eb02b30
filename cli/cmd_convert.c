/* SPDX-License-Identifier: Apache-2.0 */
/*
 * skiff convert SOURCE TARGET: an ordinary OCI or Docker image (tar
 * layers) into a skiff image. Each layer is streamed once from the source
 * through the tar reader into the layered builder; its digest and diff id
 * are checked as it is read. Sources and targets are the interfaces of
 * convert.h.
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../backend/remote.h"
#include "../format/blob.h"
#include "../format/builder.h"
#include "../format/ondisk.h"
#include "convert.h"
#include "registry.h"

static const char convert_usage[] =
"usage: skiff convert [options] SOURCE TARGET\n"
"\n"
"Converts an OCI or Docker image with tar layers (plain, gzip or zstd) into\n"
"a skiff image: one data blob per layer that brings new data, and a\n"
"bootstrap. SOURCE and TARGET are OCI image layouts, oci:DIR[:TAG], or\n"
"registry images, docker://HOST[:PORT]/REPO[:TAG] (a source also\n"
"REPO@sha256:DIGEST): layers are streamed from the source, the skiff image\n"
"pushed to the target (blobs it has are skipped). The source image's\n"
"config (entrypoint, command, environment, ...) is kept.\n"
"\n"
"  -c, --chunk-size SIZE  chunk size, a power of two from 4K to 64M (default 1M)\n"
"      --compress ALG     zstd (default) or none\n"
"  -l, --level N          zstd level, 1 to 19 (default 3)\n"
"  -j, --threads N        hashing/compression threads (default: one per CPU)\n"
"      --platform P       os/arch[/variant] picked from an index (default linux/amd64)\n"
"      --chunk-dict IMAGE reuse chunks stored in the skiff image IMAGE (DIR[:TAG])\n"
"      --tag TAG          tag of the target image (default: TARGET's)\n"
"      --prefetch-list FILE  files listed in the bootstrap for skiffd to prefetch,\n"
"                         one path a line (or a trace from `skiff trace stop`);\n"
"                         their chunks are copied, in list order, into one\n"
"                         more blob, read first\n"
CLI_BUILD_USAGE_MAX_EXPANSION
"  -q, --quiet            no progress or summary\n"
"  -h, --help             this help\n"
"\n"
"Registries (docker://; credentials from the Docker config file):\n"
CLI_REG_USAGE
"      --upload-chunk-size SIZE  push in chunks of SIZE (PATCH requests)\n"
"                         instead of one request per blob\n";

static const char *const layer_types[] = {
	"application/vnd.oci.image.layer.v1.tar",
	"application/vnd.oci.image.layer.v1.tar+gzip",
	"application/vnd.oci.image.layer.v1.tar+zstd",
	"application/vnd.oci.image.layer.nondistributable.v1.tar",
	"application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
	"application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
	"application/vnd.docker.image.rootfs.diff.tar",
	"application/vnd.docker.image.rootfs.diff.tar.gzip",
	"application/vnd.docker.image.rootfs.diff.tar.zstd",
};

struct conv_progress {
	int tty, quiet;
	double start;
	unsigned int layer, nlayers;
	struct fmt_tar *tar;		/* the layer being read */
	uint64_t read_before;		/* source bytes of finished layers */
};

static void show_progress(void *ctx, const struct fmt_build_stats *s, int final)
{
	struct conv_progress *p = ctx;
	uint64_t rd = p->read_before + (p->tar ? fmt_tar_stream_bytes(p->tar) : 0);
	double t = sk_now() - p->start;
	char a[32], b[32], c[32];

	if (!p->tty || p->quiet)
		return;
	sk_human_size(rd, a, sizeof(a));
	sk_human_size(s->read_bytes, b, sizeof(b));
	sk_human_size(s->blob_stored, c, sizeof(c));
	fprintf(stderr, "\r\033[Klayer %u/%u: read %s (%s of files), stored %s, %.0f MB/s",
		p->layer, p->nlayers, a, b, c, t > 0 ? (double)rd / 1e6 / t : 0.0);
	(void)final;
}

static int check_digest(const void *buf, size_t len, const char *hex,
			const char *what, struct sk_err *e)
{
	uint8_t d[SK_SHA256_LEN];
	char h[SK_HEX_LEN + 1];

	sk_sha256(buf, len, d);
	sk_hex(d, sizeof(d), h);
	if (strcmp(h, hex)) {
		sk_err_set(e, "%s sha256:%.12s...: digest mismatch (got %.12s...)", what, hex, h);
		return -EBADMSG;
	}
	return 0;
}

/* Follows indexes down to one image manifest. */
static int resolve_manifest(struct cli_conv_src *src, const char *platform,
			    struct be_manifest *m, char mhex[SK_HEX_LEN + 1],
			    struct sk_err *e)
{
	char *buf = NULL, mt[128] = "", hex[SK_HEX_LEN + 1];
	size_t len;
	int ret = src->ops->root(src, &buf, &len, mt, hex, e);

	for (int depth = 0; !ret; depth++) {
		struct be_desc d;

		if (hex[0] && (ret = check_digest(buf, len, hex, "manifest", e)))
			break;
		if (!be_is_index(buf, len, mt[0] ? mt : NULL)) {
			ret = be_manifest_parse(buf, len, m, e);
			memcpy(mhex, hex, SK_HEX_LEN + 1);
			break;
		}
		if (depth == 4) {
			sk_err_set(e, "indexes nest too deep");
			ret = -ELOOP;
			break;
		}
		ret = be_index_pick(buf, len, NULL, platform, &d, e);
		free(buf);
		buf = NULL;
		if (ret)
			break;
		if (d.size > CLI_CONV_JSON_MAX) {
			sk_err_set(e, "manifest sha256:%s: too large", d.hex);
			ret = -EFBIG;
			break;
		}
		snprintf(mt, sizeof(mt), "%s", d.mt);
		memcpy(hex, d.hex, sizeof(hex));
		ret = src->ops->manifest ?
		      src->ops->manifest(src, d.hex, &buf, &len, e) :
		      src->ops->blob(src, d.hex, CLI_CONV_JSON_MAX, &buf, &len, e);
	}
	free(buf);
	if (ret && !e->msg[0])
		sk_err_set(e, "%s", strerror(-ret));
	return ret;
}

/* The source config (kept for the target) and its diff ids; with
 * platform set, the image must be of that platform. */
static int load_config(struct cli_conv_src *src, const struct be_manifest *m,
		       const char *platform, char **text,
		       char (**diff_ids)[SK_HEX_LEN + 1], struct sk_err *e)
{
	char *buf;
	size_t len;
	int ret = src->ops->blob(src, m->config.hex, CLI_CONV_JSON_MAX, &buf, &len, e);

	if (ret)
		return ret;
	ret = check_digest(buf, len, m->config.hex, "image config", e);
	if (!ret)
		ret = cli_conv_config_parse(buf, len, m->nlayers, platform, diff_ids, e);
	/* the target store parses it as a C string */
	if (!ret && !(*text = malloc(len + 1))) {
		free(*diff_ids);
		*diff_ids = NULL;
		ret = -ENOMEM;
	}
	if (!ret) {
		memcpy(*text, buf, len);
		(*text)[len] = '\0';
	}
	free(buf);
	return ret;
}

static bool layer_type_ok(const char *mt)
{
	for (size_t i = 0; i < SK_ARRAY_SIZE(layer_types); i++)
		if (!strcmp(mt, layer_types[i]))
			return true;
	return false;
}

/* A layer's blob, written but not yet committed: a later layer may
 * delete every file that references it. */
struct layer_blob {
	void *handle;
	char hex[SK_HEX_LEN + 1];
	uint64_t size;
};

/* Names the layer in the message of a failed read or decode; the
 * source's own words on a failed read say more than its -errno. */
static void layer_err(const struct cli_conv_src *src, const struct be_desc *d,
		      unsigned int i, struct sk_err *e)
{
	char m[sizeof(e->msg)];

	snprintf(m, sizeof(m), "%s", src->err.msg[0] ? src->err.msg : e->msg);
	sk_err_set(e, "layer %u (sha256:%.12s): %s", i + 1, d->hex, m);
}

/* Reads one layer into the builder; lb->handle is set when it wrote a
 * blob. */
static int convert_layer(struct cli_conv_src *src, struct cli_conv_dst *dst,
			 struct fmt_layers *l, const struct be_desc *d,
			 const char *diff_id, unsigned int i,
			 struct conv_progress *pc, struct layer_blob *lb,
			 struct sk_err *e)
{
	struct fmt_tar_src ts;
	struct fmt_tar *tar = NULL;
	struct fmt_layer_result res;
	void *lh = NULL, *bh = NULL;
	uint8_t sd[SK_SHA256_LEN], ad[SK_SHA256_LEN];
	char sh[SK_HEX_LEN + 1], ah[SK_HEX_LEN + 1];
	int fd, ret;

	ret = src->ops->open_layer(src, d->hex, d->size, &ts, &lh, e);
	if (ret)
		return ret;
	ret = fmt_tar_open(&tar, &ts, e);
	if (ret) {
		layer_err(src, d, i, e);
		goto out;
	}
	ret = dst->ops->blob_begin(dst, &fd, &bh, e);
	if (ret)
		goto out;
	pc->tar = tar;
	ret = fmt_layers_apply(l, tar, fd, &res);
	pc->tar = NULL;
	pc->read_before += fmt_tar_stream_bytes(tar);
	if (ret) {
		layer_err(src, d, i, e);
		goto out;
	}
	fmt_tar_digests(tar, sd, ad);
	sk_hex(sd, sizeof(sd), sh);
	sk_hex(ad, sizeof(ad), ah);
	if (strcmp(sh, d->hex) || fmt_tar_stream_bytes(tar) != d->size) {
		sk_err_set(e, "layer %u: the blob does not match its digest sha256:%.12s... and size %llu",
			   i + 1, d->hex, (unsigned long long)d->size);
		ret = -EBADMSG;
		goto out;
	}
	if (strcmp(ah, diff_id)) {
		sk_err_set(e, "layer %u: the uncompressed tar does not match diff id sha256:%.12s...",
			   i + 1, diff_id);
		ret = -EBADMSG;
		goto out;
	}
	if (res.has_blob) {
		sk_hex(res.blob_id, SK_SHA256_LEN, lb->hex);
		lb->size = res.blob_size;
		lb->handle = bh;
		bh = NULL;
	}
out:
	if (bh)
		dst->ops->blob_abort(dst, bh);
	fmt_tar_close(tar);
	src->ops->close_layer(src, lh);
	return ret;
}

/* The listed files' chunks, copied in list order into one more blob
 * (lb, like a layer's: committed when the image references it). */
static int prefetch_blob(struct cli_conv_dst *dst, struct fmt_layers *l,
			 struct layer_blob *lb, struct sk_err *e)
{
	struct fmt_layer_result res;
	void *bh = NULL;
	int fd, ret = dst->ops->blob_begin(dst, &fd, &bh, e);

	if (ret)
		return ret;
	ret = fmt_layers_prefetch_blob(l, fd, &res);
	if (!ret && res.has_blob) {
		sk_hex(res.blob_id, SK_SHA256_LEN, lb->hex);
		lb->size = res.blob_size;
		lb->handle = bh;
		bh = NULL;
	}
	if (bh)
		dst->ops->blob_abort(dst, bh);
	return ret;
}

/* Offers the chunks of every blob of a local skiff image to the build. */
static int load_dict(struct cli_image *ci, const char *ref, struct fmt_layers *l,
		     unsigned int chunk_bits, struct sk_err *e)
{
	int ret = cli_image_open(ci, ref, e);

	if (ret)
		return ret;
	if (ci->bs.chunk_bits != chunk_bits)
		fprintf(stderr, "skiff: warning: --chunk-dict %s has %llu-byte chunks, this build %llu: few chunks will match\n",
			ref, 1ull << ci->bs.chunk_bits, 1ull << chunk_bits);
	for (unsigned int i = 0; i < ci->bs.nblobs; i++) {
		const struct fmt_blob_table *t;

		ret = fmt_reader_table(&ci->rd, i, &t);
		if (ret) {
			sk_err_set(e, "--chunk-dict %s: %s", ref, ci->rd.err.msg);
			return ret;
		}
		/* ci->fds stay open until cli_image_close, after the build */
		ret = fmt_layers_add_dict(l, ci->bs.blobs[i].id, t, ci->fds[i]);
		if (ret)
			return ret;
	}
	return 0;
}

static bool is_docker(const char *ref)
{
	return !strncmp(ref, "docker://", 9);
}

struct conv_opts {
	struct fmt_build_opts b;
	struct cli_reg_opts reg;
	const char *platform, *dict, *tag, *plist;
	int platform_given;
	int quiet;
};

static int parse_opts(int argc, char **argv, struct conv_opts *o)
{
	static const struct option opts[] = {
		{ "chunk-size", required_argument, NULL, 'c' },
		{ "compress", required_argument, NULL, 'C' },
		{ "level", required_argument, NULL, 'l' },
		{ "threads", required_argument, NULL, 'j' },
		{ "platform", required_argument, NULL, 'P' },
		{ "chunk-dict", required_argument, NULL, 'D' },
		{ "tag", required_argument, NULL, 'T' },
		{ "prefetch-list", required_argument, NULL, 'F' },
		CLI_BUILD_OPT_MAX_EXPANSION,
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		CLI_REG_OPTIONS,
		{ "upload-chunk-size", required_argument, NULL, CLI_OPT_UPLOAD_CHUNK },
		{ 0 }
	};
	int c;

	while ((c = getopt_long(argc, argv, "c:l:j:qh", opts, NULL)) != -1) {
		int r = cli_build_opt(c, optarg, &o->b);

		if (!r)
			r = cli_reg_opt(c, optarg, &o->reg);
		if (r < 0)
			return 2;
		if (r > 0)
			continue;
		switch (c) {
		case 'P':
			if (!strchr(optarg, '/') || strlen(optarg) > 63) {
				cli_err("--platform %s: need os/arch[/variant]", optarg);
				return 2;
			}
			o->platform = optarg;
			o->platform_given = 1;
			break;
		case 'D':
			o->dict = optarg;
			break;
		case 'F':
			o->plist = optarg;
			break;
		case 'T':
			if (!*optarg || strlen(optarg) > 127) {
				cli_err("--tag %s: need 1 to 127 characters", optarg);
				return 2;
			}
			o->tag = optarg;
			break;
		case 'q':
			o->quiet = 1;
			break;
		case 'h':
			fputs(convert_usage, stdout);
			return 1;
		default:
			fputs(convert_usage, stderr);
			return 2;
		}
	}
	if (argc - optind != 2) {
		fputs(convert_usage, stderr);
		return 2;
	}
	return 0;
}

int cmd_convert(int argc, char **argv)
{
	struct conv_opts o = { .b = { .chunk_bits = 20, .compress = SKIFF_COMP_ZSTD,
				      .level = 3 }, .platform = "linux/amd64" };
	struct conv_progress pc = { .start = sk_now(), .tty = isatty(2) };
	struct cli_conv_src *src = NULL;
	struct cli_conv_dst *dst = NULL;
	struct be_manifest m = { 0 };
	struct fmt_layers *l = NULL;
	struct fmt_build_result res = { 0 };
	struct fmt_layers_slot *slots = NULL;
	unsigned int nslots = 0;
	struct cli_image dict = { 0 };
	struct fmt_prefetch_list pl = { 0 };
	struct be_image img = { 0 };
	struct sk_err e = { { 0 } };
	char (*diff_ids)[SK_HEX_LEN + 1] = NULL;
	char *config = NULL, mhex[SK_HEX_LEN + 1] = "", ann[1024];
	uint64_t dict_bytes = 0, src_bytes = 0;
	unsigned int dict_slots = 0;
	int ret;

	cli_reg_opts_init(&o.reg);
	ret = parse_opts(argc, argv, &o);
	if (ret)
		return ret == 1 ? 0 : ret;
	if (o.plist && cli_prefetch_list_load(o.plist, &pl, &o.b))
		return 1;
	pc.quiet = o.quiet;
	if (!o.quiet) {
		o.b.progress = show_progress;
		o.b.progress_ctx = &pc;
	}
	ret = is_docker(argv[optind]) ? cli_conv_reg_src(argv[optind], &o.reg, &src, &e)
				      : cli_conv_oci_src(argv[optind], &src, &e);
	if (!ret)
		ret = resolve_manifest(src, o.platform, &m, mhex, &e);
	if (!ret)
		ret = load_config(src, &m, o.platform_given ? o.platform : NULL,
				  &config, &diff_ids, &e);
	for (unsigned int i = 0; !ret && i < m.nlayers; i++) {
		if (!layer_type_ok(m.layers[i].mt)) {
			sk_err_set(&e, "layer %u: media type %s is not a tar layer%s",
				   i + 1, m.layers[i].mt,
				   strstr(m.layers[i].mt, "skiff") ? " (already a skiff image)" : "");
			ret = -EMEDIUMTYPE;
		}
		src_bytes += m.layers[i].size;
	}
	if (!ret)
		ret = is_docker(argv[optind + 1]) ?
		      cli_conv_reg_dst(argv[optind + 1], o.tag, &o.reg, !o.quiet, &dst, &e) :
		      cli_conv_oci_dst(argv[optind + 1], o.tag, &dst, &e);
	if (!ret)
		ret = fmt_layers_new(&l, &o.b, &e);
	if (!ret && o.dict)
		ret = load_dict(&dict, o.dict, l, o.b.chunk_bits, &e);
	img.blobs = calloc(m.nlayers + dict.bs.nblobs + 1, sizeof(*img.blobs));
	if (!ret && !img.blobs)
		ret = -ENOMEM;
	pc.nlayers = m.nlayers;
	struct layer_blob *lbs = calloc(m.nlayers + 1, sizeof(*lbs));

	if (!ret && !lbs)
		ret = -ENOMEM;
	for (unsigned int i = 0; !ret && i < m.nlayers; i++) {
		pc.layer = i + 1;
		ret = convert_layer(src, dst, l, &m.layers[i], diff_ids[i], i, &pc,
				    &lbs[i], &e);
	}
	if (!ret && o.plist)
		ret = prefetch_blob(dst, l, &lbs[m.nlayers], &e);
	if (!ret)
		ret = fmt_layers_finish(l, &res, &slots, &nslots);
	for (unsigned int i = 0; !ret && i < nslots; i++) {
		struct be_layer *b = &img.blobs[img.nblobs++];

		sk_hex(slots[i].blob_id, SK_SHA256_LEN, b->hex);
		b->size = slots[i].blob_size;
		if (!slots[i].dict) {
			struct layer_blob *lb = &lbs[slots[i].index];

			ret = dst->ops->blob_commit(dst, lb->handle, lb->hex, lb->size, &e);
			lb->handle = NULL;
		} else {
			char p[PATH_MAX];

			be_store_blob_path(&dict.store, b->hex, p, sizeof(p));
			ret = dst->ops->have_blob(dst, b->hex, b->size, p, &e);
			dict_bytes += b->size;
			dict_slots++;
		}
	}
	if (!ret) {
		img.bootstrap.size = res.bootstrap_size;
		ret = dst->ops->put(dst, res.bootstrap, res.bootstrap_size,
				    img.bootstrap.hex, &e);
	}
	if (!ret) {
		snprintf(ann, sizeof(ann),
			 "{\"dev.skiff.version\":\"1\",\"dev.skiff.chunk-size\":\"%llu\","
			 "\"dev.skiff.compression\":\"%s\"%s%s%s}",
			 1ull << o.b.chunk_bits,
			 o.b.compress == SKIFF_COMP_ZSTD ? "zstd" : "none",
			 mhex[0] ? ",\"dev.skiff.source-manifest\":\"sha256:" : "",
			 mhex, mhex[0] ? "\"" : "");
		ret = dst->ops->add_image(dst, &img, config, ann, &e);
	}
	if (pc.tty && !o.quiet)
		fputs("\r\033[K", stderr);
	if (ret) {
		cli_err("convert %s: %s%s", argv[optind], e.msg[0] ? e.msg : strerror(-ret),
			cli_build_hint(ret));
	} else if (!o.quiet) {
		const struct fmt_build_stats *s = &res.stats;
		char a[32], b[32], c[32], d[32];
		double t = sk_now() - pc.start;

		sk_human_size(src_bytes, a, sizeof(a));
		sk_human_size(s->file_bytes, b, sizeof(b));
		sk_human_size(s->blob_stored - dict_bytes, c, sizeof(c));
		sk_human_size(res.bootstrap_size, d, sizeof(d));
		fprintf(stderr,
			"converted %s to %s in %.2fs: %u layers (%s), %llu inodes, %s of files; "
			"%u blobs (%u from the chunk dictionary), %s newly stored, %llu of %llu chunks unique, bootstrap %s%s%s\n",
			src->desc, dst->desc, t, m.nlayers, a,
			(unsigned long long)s->inodes, b, nslots, dict_slots, c,
			(unsigned long long)s->chunks_unique,
			(unsigned long long)s->chunks, d, dst->note[0] ? "; " : "", dst->note);
	}
	/* blobs no file of the image references any more, and all of them
	 * after an error */
	for (unsigned int i = 0; lbs && i <= m.nlayers; i++)	/* + prefetch blob */
		if (lbs[i].handle)
			dst->ops->blob_abort(dst, lbs[i].handle);
	if (ret && dst && dst->ops->discard)
		dst->ops->discard(dst);
	free(lbs);
	free(slots);
	free(res.bootstrap);
	free(img.blobs);
	fmt_layers_free(l);
	cli_image_close(&dict);
	fmt_prefetch_list_free(&pl);
	free(diff_ids);
	free(config);
	be_manifest_free(&m);
	if (dst)
		dst->ops->destroy(dst);
	if (src)
		src->ops->destroy(src);
	return ret ? 1 : 0;
}
