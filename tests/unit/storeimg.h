/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What unit tests of the loader share: a tree built with the format
 * builder into a local store (an OCI layout), as skiff build does, so the
 * loader can read its blob through a real source. Include after tap.h.
 */
#ifndef SKIFF_TESTS_STOREIMG_H
#define SKIFF_TESTS_STOREIMG_H

#include <limits.h>
#include <unistd.h>

#include "../../backend/store.h"
#include "../../format/builder.h"

/* Builds src with o into the layout at `layout` (made if missing): its
 * blob committed under its id, the path in blob_path (may be NULL), the
 * bootstrap in res. Bails out on any failure. */
static inline void storeimg_build(const char *src, const struct fmt_build_opts *o,
				  const char *layout, struct fmt_build_result *res,
				  char *blob_path)
{
	struct sk_err e = { { 0 } };
	struct be_store s;
	char tmp[PATH_MAX], hex[SK_HEX_LEN + 1];
	int fd;

	if (be_store_open(&s, layout, 1, &e) || be_store_tmp_blob(&s, tmp, sizeof(tmp), &fd))
		bail_out("store %s: %s", layout, e.msg);
	if (fmt_build(src, o, fd, res, &e) || !res->has_blob)
		bail_out("fmt_build %s: %s", src, e.msg);
	close(fd);
	sk_hex(res->blob_id, SK_SHA256_LEN, hex);
	if (be_store_commit_blob(&s, tmp, hex) ||
	    (blob_path && be_store_blob_path(&s, hex, blob_path, PATH_MAX)))
		bail_out("committing the blob of %s", src);
}

#endif
