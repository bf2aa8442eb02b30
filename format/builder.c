/* SPDX-License-Identifier: Apache-2.0 */
#include "builder.h"

#include <errno.h>
#include <string.h>

#include "build_int.h"

int bld_claim_check(const struct fmt_build_opts *o, uint64_t claimed,
		    uint64_t stored, const char *what, struct sk_err *e)
{
	uint64_t min = o->claim_min ? o->claim_min : FMT_CLAIM_MIN_DEFAULT;
	uint64_t ratio = o->claim_ratio ? o->claim_ratio : FMT_CLAIM_RATIO_DEFAULT;
	uint64_t limit;
	char c[32], s[32], m[32];

	if (min == FMT_CLAIM_NONE)
		return 0;
	if (__builtin_mul_overflow(stored, ratio, &limit))
		limit = UINT64_MAX;
	if (claimed <= SK_MAX(limit, min))
		return 0;
	sk_human_size(claimed, c, sizeof(c));
	sk_human_size(stored, s, sizeof(s));
	sk_human_size(min, m, sizeof(m));
	sk_err_set(e, "%s claim %s (%llu bytes) of file size for %s stored: over the limit of %llu times what is stored, at least %s",
		   what, c, (unsigned long long)claimed, s,
		   (unsigned long long)ratio, m);
	return -EDQUOT;
}

int fmt_build(const char *srcdir, const struct fmt_build_opts *o, int blob_fd,
	      struct fmt_build_result *res, struct sk_err *e)
{
	struct bld_tree t = { 0 };
	struct bld_blob blob;
	int ret;

	memset(res, 0, sizeof(*res));
	if (o->chunk_bits < 12 || o->chunk_bits > 26) {
		sk_err_set(e, "chunk size must be a power of two from 4 KiB to 64 MiB");
		return -EINVAL;
	}
	t.stats = &res->stats;
	t.err = e;
	ret = bld_walk(&t, srcdir);
	if (!ret)
		ret = bld_claim_check(o, res->stats.file_bytes, t.stored,
				      "the tree's files", e);
	if (!ret)
		ret = bld_prefetch_resolve(&t, o);
	if (!ret)
		ret = bld_data(&t, o, blob_fd, &blob);
	if (!ret) {
		res->has_blob = blob.count != 0;
		ret = bld_meta(&t, o, &blob, res->has_blob ? 1 : 0,
			       &res->bootstrap, &res->bootstrap_size);
	}
	if (!ret) {
		memcpy(res->blob_id, blob.id, SK_SHA256_LEN);
		res->blob_size = blob.stored_size;
		res->stats.bootstrap_size = res->bootstrap_size;
		res->stats.blob_stored = blob.stored_size;
		res->stats.blob_usize = blob.usize;
	} else if (!e->msg[0]) {
		sk_err_set(e, "%s", strerror(-ret));
	}
	bld_tree_free(&t);
	return ret;
}
