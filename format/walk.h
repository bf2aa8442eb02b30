/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Whole-tree walk over a bootstrap, depth first in directory order. It
 * checks what only a walk can see: "." and ".." point where they must,
 * names are valid and strictly sorted, the dirent type matches the inode,
 * and no directory is reachable twice (so a crafted image cannot make the
 * walk loop).
 */
#ifndef SKIFF_FORMAT_WALK_H
#define SKIFF_FORMAT_WALK_H

#include "bootstrap.h"

#define FMT_WALK_PATH_MAX 16384

/* path is "/" for the root, else "/a/b"; NUL-terminated. Return non-zero
 * to stop the walk (that value is returned). */
typedef int (*fmt_walk_fn)(void *ctx, const char *path, size_t pathlen,
			   const struct fmt_inode *ino);

int fmt_bs_walk(struct fmt_bs *bs, fmt_walk_fn cb, void *ctx);

#endif
