/* SPDX-License-Identifier: Apache-2.0 */
#include "walk.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct walk {
	struct fmt_bs *bs;
	fmt_walk_fn cb;
	void *ctx;
	uint8_t *seen;		/* directory nids visited, one bit each */
	uint64_t dir_bytes;	/* directory data walked so far */
	char path[FMT_WALK_PATH_MAX];
};

struct ent {
	uint64_t nid;
	unsigned int type;
	unsigned int namelen;
	const char *name;	/* points into the bootstrap */
};

struct ents {
	struct ent *v;
	size_t n, cap;
	uint64_t self, parent;
	int has_dot, has_dotdot;
	const char *prev;
	unsigned int prevlen;
	struct fmt_bs *bs;
	uint64_t dir_nid;
};

static int collect(void *ctx, const struct fmt_dirent *de)
{
	struct ents *e = ctx;
	int c;

	if (e->prev) {
		c = memcmp(e->prev, de->name, SK_MIN(e->prevlen, de->namelen));
		if (c > 0 || (c == 0 && e->prevlen >= de->namelen)) {
			sk_err_set(&e->bs->err, "directory %llu: entries not sorted",
				   (unsigned long long)e->dir_nid);
			return -EFSCORRUPTED;
		}
	}
	e->prev = de->name;
	e->prevlen = de->namelen;
	if (memchr(de->name, '/', de->namelen) || memchr(de->name, '\0', de->namelen)) {
		sk_err_set(&e->bs->err, "directory %llu: invalid name",
			   (unsigned long long)e->dir_nid);
		return -EFSCORRUPTED;
	}
	if (de->namelen == 1 && de->name[0] == '.') {
		if (e->has_dot++ || de->nid != e->self) {
			sk_err_set(&e->bs->err, "directory %llu: bad \".\"",
				   (unsigned long long)e->dir_nid);
			return -EFSCORRUPTED;
		}
		return 0;
	}
	if (de->namelen == 2 && de->name[0] == '.' && de->name[1] == '.') {
		if (e->has_dotdot++ || de->nid != e->parent) {
			sk_err_set(&e->bs->err, "directory %llu: bad \"..\"",
				   (unsigned long long)e->dir_nid);
			return -EFSCORRUPTED;
		}
		return 0;
	}
	if (e->n == e->cap) {
		size_t ncap = e->cap ? e->cap * 2 : 64;
		struct ent *nv = realloc(e->v, ncap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		e->v = nv;
		e->cap = ncap;
	}
	e->v[e->n++] = (struct ent){ de->nid, de->type, de->namelen, de->name };
	return 0;
}

static int walk_dir(struct walk *w, const struct fmt_inode *dir,
		    uint64_t parent, size_t plen, unsigned int depth)
{
	struct ents e = { .self = dir->nid, .parent = parent, .bs = w->bs,
			  .dir_nid = dir->nid };
	int ret;

	if (depth > 4096) {
		sk_err_set(&w->bs->err, "directory tree too deep");
		return -ELOOP;
	}
	/* Directories of a real image never share blocks, so together they
	 * are smaller than the image; crafted ones pointing at the same
	 * blocks would make the walk quadratic. */
	w->dir_bytes += dir->size;
	if (w->dir_bytes > w->bs->size) {
		sk_err_set(&w->bs->err, "directories hold more bytes than the image: shared directory blocks");
		return -EFSCORRUPTED;
	}
	ret = fmt_bs_readdir(w->bs, dir, collect, &e);
	if (!ret && (!e.has_dot || !e.has_dotdot)) {
		sk_err_set(&w->bs->err, "%s: missing \".\" or \"..\"",
			   plen ? w->path : "/");
		ret = -EFSCORRUPTED;
	}
	for (size_t i = 0; !ret && i < e.n; i++) {
		struct fmt_inode ino;
		size_t nlen = plen + 1 + e.v[i].namelen;

		if (nlen >= sizeof(w->path)) {
			sk_err_set(&w->bs->err, "path too long under %s", w->path);
			ret = -ENAMETOOLONG;
			break;
		}
		w->path[plen] = '/';
		memcpy(w->path + plen + 1, e.v[i].name, e.v[i].namelen);
		w->path[nlen] = '\0';
		ret = fmt_bs_inode(w->bs, e.v[i].nid, &ino);
		if (ret)
			break;
		if (fmt_file_type(ino.mode) != e.v[i].type) {
			sk_err_set(&w->bs->err, "%s: dirent type %u does not match inode mode 0%o",
				   w->path, e.v[i].type, ino.mode);
			ret = -EFSCORRUPTED;
			break;
		}
		if (S_ISDIR(ino.mode)) {
			uint64_t b = ino.nid;

			if (w->seen[b / 8] & (1u << (b % 8))) {
				sk_err_set(&w->bs->err, "%s: directory reachable twice",
					   w->path);
				ret = -EFSCORRUPTED;
				break;
			}
			w->seen[b / 8] |= (uint8_t)(1u << (b % 8));
		}
		ret = w->cb(w->ctx, w->path, nlen, &ino);
		if (!ret && S_ISDIR(ino.mode))
			ret = walk_dir(w, &ino, dir->nid, nlen, depth + 1);
	}
	w->path[plen] = '\0';
	free(e.v);
	return ret;
}

int fmt_bs_walk(struct fmt_bs *bs, fmt_walk_fn cb, void *ctx)
{
	struct walk *w = calloc(1, sizeof(*w));
	struct fmt_inode root;
	int ret;

	if (!w)
		return -ENOMEM;
	w->bs = bs;
	w->cb = cb;
	w->ctx = ctx;
	/* nids are bounded by the bootstrap size (fmt_bs_inode checks) */
	w->seen = calloc(((bs->size - bs->meta_off) >> EROFS_ISLOTBITS) / 8 + 1, 1);
	if (!w->seen) {
		free(w);
		return -ENOMEM;
	}
	ret = fmt_bs_inode(bs, bs->root_nid, &root);
	if (!ret) {
		w->seen[root.nid / 8] |= (uint8_t)(1u << (root.nid % 8));
		strcpy(w->path, "/");
		ret = cb(ctx, w->path, 1, &root);
		w->path[0] = '\0';
	}
	if (!ret)
		ret = walk_dir(w, &root, root.nid, 0, 0);
	free(w->seen);
	free(w);
	return ret;
}
