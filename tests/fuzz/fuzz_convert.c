/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for what skiff convert and skiff build read besides
 * the layers (fuzz_tar has those). The first byte picks one:
 *
 *  0  the source image's config (cli_conv_config_parse, as convert runs
 *     it): the second byte is the manifest's layer count, the third's
 *     low bit asks for platform linux/amd64; the rest is the JSON.
 *  1  a prefetch list or trace file (fmt_prefetch_list_parse).
 *  2  the same list, then resolved against a small layered build (files,
 *     a directory, a symlink, a hard link) with its prefetch blob, and
 *     the bootstrap read back.
 *
 * Besides the sanitizers it checks what callers rely on: results are 0
 * or a negative errno with a message; parsed diff ids are as many as
 * the layers, 64 lowercase hex digits each; a parsed list's paths are
 * absolute, at most one per line, and an error leaves no list; the
 * bootstrap opens and walks, lists each regular file at most once, and
 * every chunk of a listed file lies in the prefetch blob.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../cli/convert.h"
#include "../../format/bootstrap.h"
#include "../../format/builder.h"
#include "../../format/tar.h"
#include "../../format/walk.h"

/* the parser lives in the skiff binary, not in the library: take it as
 * the binary does */
#include "../../cli/convert_config.c"
#include "fuzz.h"

static void config(const uint8_t *data, size_t size)
{
	char (*ids)[SK_HEX_LEN + 1] = (void *)1;
	struct sk_err e = { { 0 } };
	unsigned int n;
	int ret;

	if (size < 2)
		return;
	n = data[0];
	ret = cli_conv_config_parse((const char *)data + 2, size - 2, n,
				    data[1] & 1 ? "linux/amd64" : NULL, &ids, &e);
	CHECK(ret <= 0 && ret > -4096);
	if (ret) {
		CHECK(!ids && e.msg[0]);
		return;
	}
	CHECK(ids);
	for (unsigned int i = 0; i < n; i++)
		CHECK(sk_is_hex_digest(ids[i]));
	CHECK(ids[n][0] == '\0');
	free(ids);
}

/* Parses the list; checks it; 0 and l, or -errno. */
static int list(const uint8_t *data, size_t size, struct fmt_prefetch_list *l)
{
	struct sk_err e = { { 0 } };
	size_t lines = 1;
	int ret = fmt_prefetch_list_parse((const char *)data, size, l, &e);

	CHECK(ret <= 0 && ret > -4096);
	if (ret) {
		CHECK(!l->paths && !l->n && (ret == -ENOMEM || e.msg[0]));
		return ret;
	}
	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	CHECK(l->n <= lines);
	for (size_t i = 0; i < l->n; i++)
		CHECK(l->paths[i] && l->paths[i][0] == '/' && strlen(l->paths[i]) <= size + 1);
	return 0;
}

/* ---------------- a small layer, made once ---------------- */

static uint8_t layer[32768];
static size_t layer_len;

static void octal(uint8_t *f, size_t len, uint64_t v)
{
	char tmp[32];

	snprintf(tmp, sizeof(tmp), "%0*llo", (int)len - 1, (unsigned long long)v);
	memcpy(f, tmp, len - 1);
}

static void member(const char *name, char type, size_t size, const char *link)
{
	uint8_t *h = layer + layer_len;
	unsigned int sum = 0;

	memset(h, 0, 512);
	snprintf((char *)h, 100, "%s", name);
	octal(h + 100, 8, type == '5' ? 0755 : 0644);
	octal(h + 108, 8, 0);
	octal(h + 116, 8, 0);
	octal(h + 124, 12, size);
	octal(h + 136, 12, 1700000000);
	h[156] = (uint8_t)type;
	if (link)
		snprintf((char *)h + 157, 100, "%s", link);
	memcpy(h + 257, "ustar\0" "00", 8);
	memset(h + 148, ' ', 8);
	for (int i = 0; i < 512; i++)
		sum += h[i];
	snprintf((char *)h + 148, 8, "%06o", sum);
	layer_len += 512;
	/* data: the name's first byte over and over, never all zeros */
	memset(layer + layer_len, name[0], size);
	layer_len += (size + 511) / 512 * 512;
}

static void make_layer(void)
{
	if (layer_len)
		return;
	member("a", '0', 8192, NULL);		/* two chunks */
	member("d", '5', 0, NULL);
	member("d/b", '0', 100, NULL);
	member("d/e", '0', 0, NULL);		/* empty: no chunk */
	member("l", '2', 0, "a");
	member("h", '1', 0, "a");
	member("z", '0', 5000, NULL);
	layer_len += 1024;			/* the end marker: zeros */
}

static ssize_t mem_read(void *ctx, void *buf, size_t len)
{
	size_t *pos = ctx, n = SK_MIN(len, layer_len - *pos);

	memcpy(buf, layer + *pos, n);
	*pos += n;
	return (ssize_t)n;
}

struct chunk_ctx {
	unsigned int want;	/* the slot every chunk must be in */
};

static int chunk_cb(void *ctx, const struct fmt_chunk_range *r)
{
	CHECK(r->blob == ((struct chunk_ctx *)ctx)->want);
	return 0;
}

static int walk_cb(void *ctx, const char *path, size_t plen,
		   const struct fmt_inode *ino)
{
	(void)ctx;
	(void)path;
	(void)plen;
	(void)ino;
	return 0;
}

static void resolve(const struct fmt_prefetch_list *l)
{
	struct fmt_build_opts o = { .chunk_bits = 12, .compress = SKIFF_COMP_NONE,
				    .threads = 1,
				    .prefetch = (const char *const *)l->paths,
				    .nprefetch = l->n };
	struct sk_err e = { { 0 } };
	struct fmt_layers *fl;
	struct fmt_layer_result lr, pr = { 0 };
	struct fmt_build_result res = { 0 };
	struct fmt_layers_slot *slots = NULL;
	unsigned int nslots = 0;
	struct fmt_bs bs;
	size_t pos = 0;
	int fds[2] = { memfd_create("layer", MFD_CLOEXEC), memfd_create("pf", MFD_CLOEXEC) };
	int ret;

	make_layer();
	CHECK(fds[0] >= 0 && fds[1] >= 0);
	ret = fmt_layers_new(&fl, &o, &e);
	CHECK(!ret);
	{
		struct fmt_tar_src src = { mem_read, &pos };
		struct fmt_tar *t;

		ret = fmt_tar_open(&t, &src, &e);
		if (!ret)
			ret = fmt_layers_apply(fl, t, fds[0], &lr);
		fmt_tar_close(t);
	}
	CHECK(!ret);	/* the layer is fine: any error is the list's doing */
	ret = fmt_layers_prefetch_blob(fl, fds[1], &pr);
	CHECK(!ret);
	ret = fmt_layers_finish(fl, &res, &slots, &nslots);
	CHECK(!ret);
	CHECK(!fmt_bs_open(&bs, res.bootstrap, res.bootstrap_size));
	CHECK(!fmt_bs_walk(&bs, walk_cb, NULL));
	{
		/* regular files: a (h is a), d/b, d/e (empty), z */
		uint32_t n = fmt_bs_prefetch_count(&bs);
		uint64_t nids[4];
		struct chunk_ctx cc = { nslots - 1 };
		bool data = false;

		CHECK(n <= 4 && n <= l->n);
		for (uint32_t i = 0; i < n; i++) {
			struct fmt_inode ino;

			CHECK(!fmt_bs_prefetch_nid(&bs, i, &nids[i]));
			CHECK(!fmt_bs_inode(&bs, nids[i], &ino));
			CHECK(S_ISREG(ino.mode));
			for (uint32_t k = 0; k < i; k++)
				CHECK(nids[k] != nids[i]);
			data |= ino.size != 0;
			CHECK(!fmt_bs_chunks(&bs, &ino, chunk_cb, &cc));
		}
		/* a listed file with data: the prefetch blob is the last slot
		 * (its index is the layer count), maybe the only one */
		CHECK(!data || (pr.has_blob && nslots >= 1 && !slots[nslots - 1].dict &&
				slots[nslots - 1].index == 1));
	}
	fmt_bs_close(&bs);
	free(res.bootstrap);
	free(slots);
	fmt_layers_free(fl);
	close(fds[0]);
	close(fds[1]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fmt_prefetch_list l;

	if (size < 1 || size > 1 << 16)
		return 0;
	switch (data[0] % 3) {
	case 0:
		config(data + 1, size - 1);
		break;
	case 1:
		if (!list(data + 1, size - 1, &l))
			fmt_prefetch_list_free(&l);
		break;
	case 2:
		if (!list(data + 1, size - 1, &l)) {
			resolve(&l);
			fmt_prefetch_list_free(&l);
		}
		break;
	}
	return 0;
}
