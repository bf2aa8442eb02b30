/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target: the tar reader (format/tar.c) and the layer merge
 * (format/build_layers.c) on arbitrary bytes. The first input byte sets
 * how many bytes the source hands out per read (0: as many as asked), so
 * that every buffer boundary gets hit; the rest is the layer stream
 * (plain, gzip or zstd: the reader detects it).
 *
 * Pass 1 reads every member and its data in uneven pieces and checks
 * the reader's promises: sparse segments ascending, disjoint, inside the
 * file, and fmt_tar_has_data agreeing with them. Pass 2 applies the
 * stream twice, as two layers, with the builder and checks that what it
 * writes is a bootstrap the reader opens and walks. A broken promise
 * traps.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../format/blob.h"
#include "../../format/bootstrap.h"
#include "../../format/builder.h"
#include "../../format/tar.h"
#include "../../format/walk.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MERGE_MAX (256u << 10)	/* pass 2 only for inputs this small */
#define FILE_MAX (64ull << 20)	/* logical bytes read per member */

struct mem {
	const uint8_t *p;
	size_t len, pos, step;
};

static ssize_t mem_read(void *ctx, void *buf, size_t len)
{
	struct mem *m = ctx;
	size_t n = len < m->len - m->pos ? len : m->len - m->pos;

	if (m->step && n > m->step)
		n = m->step;
	memcpy(buf, m->p + m->pos, n);
	m->pos += n;
	return (ssize_t)n;
}

static void check_entry(const struct fmt_tar_entry *e)
{
	uint64_t end = 0;

	for (size_t i = 0; i < e->nsegs; i++) {
		const struct fmt_tar_seg *s = &e->segs[i];

		if (s->off < end || s->len == 0 || s->len > e->size ||
		    s->off > e->size - s->len)
			__builtin_trap();
		if (!fmt_tar_has_data(e, s->off, 1) ||
		    (s->off > end && fmt_tar_has_data(e, end, s->off - end)))
			__builtin_trap();
		end = s->off + s->len;
	}
}

static void pass1(const uint8_t *data, size_t size, size_t step)
{
	struct mem m = { data, size, 0, step };
	struct fmt_tar_src src = { mem_read, &m };
	struct fmt_tar *t;
	struct sk_err e = { { 0 } };
	const struct fmt_tar_entry *ent;
	static uint8_t buf[70000];

	if (fmt_tar_open(&t, &src, &e))
		return;
	while (fmt_tar_next(t, &ent) > 0) {
		uint64_t off = 0, piece = 1;

		check_entry(ent);
		if (ent->type != FMT_TAR_REG)
			continue;
		while (off < ent->size && off < FILE_MAX) {
			size_t n = (size_t)(ent->size - off < piece ? ent->size - off : piece);

			if (fmt_tar_read(t, off, buf, n))
				break;
			off += n;
			piece = piece * 7 % sizeof(buf) + 1;
		}
		if (off < ent->size)
			break;
	}
	fmt_tar_close(t);
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

static void pass2(const uint8_t *data, size_t size, size_t step)
{
	struct fmt_build_opts o = { .chunk_bits = 12, .compress = SKIFF_COMP_NONE,
				    .threads = 1 };
	struct fmt_layers *l;
	struct fmt_build_result res;
	struct fmt_layers_slot *slots;
	unsigned int nslots;
	struct sk_err e = { { 0 } };
	int fd = open("/dev/null", O_WRONLY | O_CLOEXEC), ret;

	if (fd < 0 || fmt_layers_new(&l, &o, &e)) {
		if (fd >= 0)
			close(fd);
		return;
	}
	ret = 0;
	for (int i = 0; i < 2 && !ret; i++) {
		struct mem m = { data, size, 0, step };
		struct fmt_tar_src src = { mem_read, &m };
		struct fmt_tar *t;
		struct fmt_layer_result lr;

		ret = fmt_tar_open(&t, &src, &e);
		if (!ret)
			ret = fmt_layers_apply(l, t, fd, &lr);
		fmt_tar_close(t);
	}
	if (!ret && !fmt_layers_finish(l, &res, &slots, &nslots)) {
		struct fmt_bs bs;

		if (fmt_bs_open(&bs, res.bootstrap, res.bootstrap_size))
			__builtin_trap();
		if (fmt_bs_walk(&bs, walk_cb, NULL))
			__builtin_trap();
		fmt_bs_close(&bs);
		free(res.bootstrap);
		free(slots);
	}
	fmt_layers_free(l);
	close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t step;

	if (size < 1)
		return 0;
	step = data[0];
	pass1(data + 1, size - 1, step);
	if (size - 1 <= MERGE_MAX)
		pass2(data + 1, size - 1, step);
	return 0;
}
