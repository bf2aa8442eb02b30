/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Layered build: merges tar layers into one bld_tree the way a container
 * runtime applies them to a root filesystem, streaming each layer's file
 * data into the chunk pipeline as it goes (so a layer is read once and
 * never unpacked).
 *
 * While merging, a directory's entries are unsorted and a deleted entry
 * keeps its name with node == NULL; one hash table maps (directory, name)
 * to the entry. Nodes are never freed before the end (a freed address
 * could come back as another directory and meet stale table entries);
 * fmt_layers_finish() walks the result from the root, sorts and compacts
 * directories, counts links, and frees what is no longer reachable.
 */
#include "build_int.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bootstrap.h"
#include "tar.h"
#include "walk.h"

#define PATH_DEPTH_MAX	4096	/* components of one path */
#define SYMLINK_HOPS	40	/* as Linux's path walk */
#define WH_PREFIX	".wh."
#define WH_OPAQUE	".wh..wh..opq"

/* (directory, name) -> index in dir->ents */
struct ent_ref {
	struct bld_node *dir;
	uint32_t idx;
};

struct fmt_layers {
	struct fmt_build_opts o;
	struct sk_err *err;
	struct fmt_build_stats stats;
	struct bld_tree t;
	struct bld_data *data;
	struct bld_node *all;		/* every node made, via all_next */
	struct ent_ref *hash;
	size_t hcap, hused;
	struct bld_blob *blobs;		/* build-local blob index -> blob */
	bool *blob_dict;
	unsigned int *blob_src;		/* dictionary index or layer number */
	int *blob_fd;			/* borrowed, readable (or -1): the
					 * prefetch blob copies chunks from it */
	unsigned int nblobs, cap_blobs, ndict;
	uint32_t layer;			/* layers applied so far */
	uint64_t claimed;		/* this layer's regular files' sizes */
	bool merged;			/* merge(): no more layers */
	const char *where;		/* member path, for messages */
};

static uint64_t name_hash(const struct bld_node *dir, const char *name,
			  size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)(uintptr_t)dir;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (uint8_t)name[i]) * 0x100000001b3ull;
	return h ^ (h >> 31);
}

static struct ent_ref *hash_slot(struct ent_ref *tab, size_t cap,
				 const struct bld_node *dir, const char *name,
				 size_t len)
{
	for (size_t i = name_hash(dir, name, len) & (cap - 1);; i = (i + 1) & (cap - 1)) {
		struct ent_ref *r = &tab[i];
		const struct bld_dentry *d;

		if (!r->dir)
			return r;
		d = &r->dir->ents[r->idx];
		if (r->dir == dir && d->namelen == len && !memcmp(d->name, name, len))
			return r;
	}
}

static int hash_grow(struct fmt_layers *l)
{
	size_t ncap;
	struct ent_ref *nt;

	if (l->hcap && l->hused * 2 < l->hcap)
		return 0;
	ncap = l->hcap ? l->hcap * 2 : 4096;
	nt = calloc(ncap, sizeof(*nt));
	if (!nt)
		return -ENOMEM;
	for (size_t i = 0; i < l->hcap; i++) {
		struct ent_ref *r = &l->hash[i];
		const struct bld_dentry *d;

		if (!r->dir)
			continue;
		d = &r->dir->ents[r->idx];
		*hash_slot(nt, ncap, r->dir, d->name, d->namelen) = *r;
	}
	free(l->hash);
	l->hash = nt;
	l->hcap = ncap;
	return 0;
}

/* The entry `name` of dir, made (with node NULL) when create is set. */
static int dir_entry(struct fmt_layers *l, struct bld_node *dir,
		     const char *name, size_t len, bool create,
		     struct bld_dentry **out)
{
	struct ent_ref *r;
	struct bld_dentry *d;
	int ret;

	*out = NULL;
	if ((ret = hash_grow(l)))
		return ret;
	r = hash_slot(l->hash, l->hcap, dir, name, len);
	if (r->dir) {
		*out = &dir->ents[r->idx];
		return 0;
	}
	if (!create)
		return 0;
	if (dir->nents == dir->cap_ents) {
		uint32_t ncap = dir->cap_ents ? dir->cap_ents * 2 : 8;
		struct bld_dentry *ne;

		if (ncap <= dir->cap_ents)
			return -E2BIG;
		ne = realloc(dir->ents, ncap * sizeof(*ne));
		if (!ne)
			return -ENOMEM;
		dir->ents = ne;
		dir->cap_ents = ncap;
	}
	d = &dir->ents[dir->nents];
	d->name = strndup(name, len);
	if (!d->name)
		return -ENOMEM;
	d->namelen = (uint16_t)len;
	d->node = NULL;
	d->layer = 0;
	r->dir = dir;
	r->idx = dir->nents++;
	l->hused++;
	*out = d;
	return 0;
}

static struct bld_node *new_node(struct fmt_layers *l, uint32_t mode,
				 struct bld_node *parent)
{
	struct bld_node *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->mode = mode;
	n->parent = parent ? parent : n;
	n->all_next = l->all;
	l->all = n;
	return n;
}

/* What runtimes give a directory a layer implies but does not hold. */
static struct bld_node *implicit_dir(struct fmt_layers *l, struct bld_node *parent)
{
	return new_node(l, S_IFDIR | 0755, parent);
}

/*
 * Walks the directories of path[0..len) (components separated by '/',
 * already cleaned) from dir, following symlinks inside the image as the
 * kernel would when a runtime extracts a layer; missing directories are
 * made when create is set, else *out is NULL.
 */
static int walk(struct fmt_layers *l, struct bld_node *dir, const char *path,
		size_t len, bool create, int *hops, struct bld_node **out)
{
	size_t i = 0;
	int ret;

	while (i < len) {
		size_t j = i;
		struct bld_dentry *d;
		struct bld_node *n;

		while (j < len && path[j] != '/')
			j++;
		if (j - i == 0 || (j - i == 1 && path[i] == '.')) {
			i = j + 1;
			continue;
		}
		if (j - i == 2 && path[i] == '.' && path[i + 1] == '.') {
			dir = dir->parent;	/* the root is its own parent */
			i = j + 1;
			continue;
		}
		if (j - i > EROFS_NAME_LEN) {
			sk_err_set(l->err, "%s: a name is longer than %d bytes", l->where,
				   EROFS_NAME_LEN);
			return -ENAMETOOLONG;
		}
		if ((ret = dir_entry(l, dir, path + i, j - i, create, &d)))
			return ret;
		n = d ? d->node : NULL;
		if (!n) {
			if (!create) {
				*out = NULL;
				return 0;
			}
			n = implicit_dir(l, dir);
			if (!n)
				return -ENOMEM;
			d->node = n;
			d->layer = l->layer;
		} else if (S_ISLNK(n->mode)) {
			if (++*hops > SYMLINK_HOPS) {
				sk_err_set(l->err, "%s: too many levels of symbolic links",
					   l->where);
				return -ELOOP;
			}
			ret = walk(l, n->link[0] == '/' ? l->t.root : dir, n->link,
				   strlen(n->link), create, hops, &n);
			if (ret || !n) {
				*out = NULL;
				return ret;
			}
		} else if (!S_ISDIR(n->mode)) {
			sk_err_set(l->err, "%s: %.*s is not a directory", l->where,
				   (int)(j - i), path + i);
			return -ENOTDIR;
		}
		dir = n;
		i = j + 1;
	}
	*out = dir;
	return 0;
}

/* Lexically cleans a member path into out: no leading '/', no ".", "..",
 * or empty components ("" is the root). ".." stops at the root. */
static int clean_path(struct fmt_layers *l, const char *in, char **out)
{
	size_t len = strlen(in), o = 0, depth = 0;
	char *p = malloc(len + 1);

	if (!p)
		return -ENOMEM;
	for (size_t i = 0; i < len;) {
		size_t j = i;

		while (j < len && in[j] != '/')
			j++;
		if (j - i == 0 || (j - i == 1 && in[i] == '.')) {
			/* nothing */
		} else if (j - i == 2 && in[i] == '.' && in[i + 1] == '.') {
			while (o > 0 && p[o - 1] != '/')
				o--;
			if (o > 0)
				o--;
			depth -= depth > 0;
		} else {
			if (++depth > PATH_DEPTH_MAX) {
				free(p);
				sk_err_set(l->err, "%s: path too deep", in);
				return -ELOOP;
			}
			if (o)
				p[o++] = '/';
			memcpy(p + o, in + i, j - i);
			o += j - i;
		}
		i = j + 1;
	}
	p[o] = '\0';
	*out = p;
	return 0;
}

/* Splits a cleaned path into its parent and last name. */
static void split(const char *p, size_t *plen, const char **name)
{
	const char *s = strrchr(p, '/');

	*plen = s ? (size_t)(s - p) : 0;
	*name = s ? s + 1 : p;
}

static int set_meta(struct fmt_layers *l, struct bld_node *n,
		    const struct fmt_tar_entry *ent)
{
	int ret;

	n->mode = ent->mode;
	n->uid = ent->uid;
	n->gid = ent->gid;
	/* two's complement: EROFS keeps a signed 64-bit time */
	n->mtime = (uint64_t)ent->mtime;
	n->mtime_nsec = ent->mtime_nsec;
	bld_xattrs_clear(n);
	for (unsigned int i = 0; i < ent->nxattrs; i++) {
		ret = bld_xattr_set(n, ent->xattrs[i].name, ent->xattrs[i].value,
				    ent->xattrs[i].vlen, ent->path, l->err);
		if (ret)
			return ret;
	}
	return bld_xattrs_done(n, ent->path, l->err);
}

/* Removes the entry (and so its subtree) when a lower layer made it. */
static void whiteout(struct fmt_layers *l, struct bld_dentry *d)
{
	if (d && d->node && d->layer < l->layer)
		d->node = NULL;
}

/*
 * Hides what lower layers made below dir: entries they set go, and in
 * the directories this layer set, the same again (a lower D/sub/x is
 * hidden under an opaque D even when this layer declares D/sub, as
 * overlayfs and runtimes have it). Entries this layer set stay.
 */
static void hide_lower(struct fmt_layers *l, struct bld_node *dir,
		       unsigned int depth)
{
	for (uint32_t i = 0; i < dir->nents; i++) {
		struct bld_dentry *d = &dir->ents[i];

		whiteout(l, d);
		/* paths are at most PATH_DEPTH_MAX deep: so is this */
		if (d->node && S_ISDIR(d->node->mode) && depth < PATH_DEPTH_MAX)
			hide_lower(l, d->node, depth + 1);
	}
}

/*
 * .wh.NAME removes what lower layers made of NAME. When this layer has
 * already declared NAME as a directory (its entry then comes before the
 * whiteout), that directory stays and only what lower layers put in it
 * goes, which is what applying the whiteout first and then the entry
 * gives.
 */
static void whiteout_name(struct fmt_layers *l, struct bld_dentry *d)
{
	struct bld_node *n = d ? d->node : NULL;

	if (!n)
		return;
	if (d->layer < l->layer)
		d->node = NULL;
	else if (S_ISDIR(n->mode))
		hide_lower(l, n, 0);
}

static int apply_whiteout(struct fmt_layers *l, const char *path,
			  size_t plen, const char *name)
{
	struct bld_node *dir;
	struct bld_dentry *d;
	int hops = 0, ret;

	if (!strcmp(name, WH_OPAQUE)) {
		ret = walk(l, l->t.root, path, plen, true, &hops, &dir);
		if (!ret)
			hide_lower(l, dir, 0);
		return ret;
	}
	if (!strncmp(name, WH_PREFIX WH_PREFIX, 8))
		return 0;	/* other AUFS bookkeeping: not files */
	name += strlen(WH_PREFIX);
	if (!*name || !strcmp(name, ".") || !strcmp(name, ".."))
		return 0;
	ret = walk(l, l->t.root, path, plen, false, &hops, &dir);
	if (ret || !dir)
		return ret;	/* nothing below to delete */
	ret = dir_entry(l, dir, name, strlen(name), false, &d);
	if (!ret)
		whiteout_name(l, d);
	return ret;
}

static int make_node(struct fmt_layers *l, struct fmt_tar *tar,
		     const struct fmt_tar_entry *ent, struct bld_node *dir,
		     struct bld_node **out)
{
	struct bld_node *n = new_node(l, ent->mode, dir);
	int ret;

	*out = n;
	if (!n)
		return -ENOMEM;
	if ((ret = set_meta(l, n, ent)))
		return ret;
	switch (ent->type) {
	case FMT_TAR_REG: {
		/* stored: the archive so far and the data this member says
		 * follows (a stream that ends early fails anyway) */
		uint64_t data = 0, stored;

		for (size_t i = 0; i < ent->nsegs; i++)
			data += ent->segs[i].len;	/* the tar reader checked the sum */
		if (__builtin_add_overflow(fmt_tar_archive_bytes(tar), data, &stored))
			stored = UINT64_MAX;
		if (__builtin_add_overflow(l->claimed, ent->size, &l->claimed))
			l->claimed = UINT64_MAX;
		if ((ret = bld_claim_check(&l->o, l->claimed, stored,
					   "the layer's files", l->err))) {
			/* name the member that went over */
			char m[sizeof(l->err->msg)];

			snprintf(m, sizeof(m), "%s", l->err->msg);
			sk_err_set(l->err, "%s: %s", ent->path, m);
			return ret;
		}
		n->size = ent->size;
		l->stats.files++;
		l->stats.file_bytes += n->size;
		if (n->size)
			return bld_data_tar_file(l->data, n, tar, ent);
		return 0;
	}
	case FMT_TAR_SYMLINK: {
		size_t len = strlen(ent->link);

		if (!len || len >= EROFS_BLKSIZ) {
			sk_err_set(l->err, "%s: symlink target %s", ent->path,
				   len ? "too long" : "empty");
			return -EINVAL;
		}
		n->link = strdup(ent->link);
		if (!n->link)
			return -ENOMEM;
		n->size = len;
		return 0;
	}
	case FMT_TAR_CHR:
	case FMT_TAR_BLK:
		if (ent->devmajor > 0xfff || ent->devminor > 0xfffff) {
			sk_err_set(l->err, "%s: device number %u:%u too large", ent->path,
				   ent->devmajor, ent->devminor);
			return -ERANGE;
		}
		n->rdev = fmt_encode_dev(ent->devmajor, ent->devminor);
		return 0;
	default:
		return 0;
	}
}

static int apply_entry(struct fmt_layers *l, struct fmt_tar *tar,
		       const struct fmt_tar_entry *ent)
{
	char *path = NULL, *tpath = NULL;
	const char *name, *tname;
	struct bld_node *dir, *n = NULL, *target = NULL;
	struct bld_dentry *d;
	size_t plen, tplen;
	int hops = 0, ret;

	l->where = ent->path;
	if ((ret = clean_path(l, ent->path, &path)))
		return ret;
	split(path, &plen, &name);
	if (!*name) {
		/* the root itself ("./"): only its metadata can change */
		ret = 0;
		if (ent->type == FMT_TAR_DIR)
			ret = set_meta(l, l->t.root, ent);
		else if (ent->type != FMT_TAR_HARDLINK)
			fprintf(stderr, "skiff: warning: %s: a non-directory for the root, skipped\n",
				ent->path);
		goto out;
	}
	if (!strncmp(name, WH_PREFIX, strlen(WH_PREFIX))) {
		ret = apply_whiteout(l, path, plen, name);
		goto out;
	}
	if (ent->type == FMT_TAR_HARDLINK) {
		struct bld_dentry *td;

		if ((ret = clean_path(l, ent->link, &tpath)))
			goto out;
		split(tpath, &tplen, &tname);
		ret = walk(l, l->t.root, tpath, tplen, false, &hops, &dir);
		if (!ret && dir && *tname)
			ret = dir_entry(l, dir, tname, strlen(tname), false, &td);
		else
			td = NULL;
		if (ret)
			goto out;
		target = td ? td->node : NULL;
		if (!target || S_ISDIR(target->mode)) {
			sk_err_set(l->err, "%s: hard link to %s, which is %s", ent->path,
				   ent->link, target ? "a directory" : "missing");
			ret = -EINVAL;
			goto out;
		}
		hops = 0;
	}
	ret = walk(l, l->t.root, path, plen, true, &hops, &dir);
	if (!ret)
		ret = dir_entry(l, dir, name, strlen(name), true, &d);
	if (ret)
		goto out;
	if (ent->type == FMT_TAR_DIR && d->node && S_ISDIR(d->node->mode)) {
		/* an existing directory keeps its entries */
		ret = set_meta(l, d->node, ent);
		d->layer = l->layer;
		goto out;
	}
	if (target) {
		n = target;
		l->stats.hardlinks++;
	} else {
		/* d may move when make_node() adds entries elsewhere: find
		 * it again after */
		ret = make_node(l, tar, ent, dir, &n);
		if (ret)
			goto out;
		ret = dir_entry(l, dir, name, strlen(name), false, &d);
		if (ret)
			goto out;
	}
	d->node = n;
	d->layer = l->layer;
out:
	free(path);
	free(tpath);
	l->where = NULL;
	return ret;
}

static int add_blob(struct fmt_layers *l, const struct bld_blob *b, bool dict,
		    unsigned int src, int fd)
{
	if (l->nblobs == l->cap_blobs) {
		unsigned int ncap = l->cap_blobs ? l->cap_blobs * 2 : 16;
		struct bld_blob *nb = realloc(l->blobs, ncap * sizeof(*nb));
		bool *nd;
		unsigned int *ns;
		int *nf;

		if (!nb)
			return -ENOMEM;
		l->blobs = nb;
		nd = realloc(l->blob_dict, ncap * sizeof(*nd));
		if (!nd)
			return -ENOMEM;
		l->blob_dict = nd;
		ns = realloc(l->blob_src, ncap * sizeof(*ns));
		if (!ns)
			return -ENOMEM;
		l->blob_src = ns;
		nf = realloc(l->blob_fd, ncap * sizeof(*nf));
		if (!nf)
			return -ENOMEM;
		l->blob_fd = nf;
		l->cap_blobs = ncap;
	}
	l->blobs[l->nblobs] = *b;
	l->blob_dict[l->nblobs] = dict;
	l->blob_src[l->nblobs] = src;
	l->blob_fd[l->nblobs] = fd;
	l->nblobs++;
	return 0;
}

/* A blob the build wrote: a candidate device slot, told to the caller. */
static int keep_blob(struct fmt_layers *l, const struct bld_blob *b,
		     unsigned int src, int fd, struct fmt_layer_result *res)
{
	int ret = add_blob(l, b, false, src, fd);

	if (ret)
		return ret;
	res->has_blob = 1;
	memcpy(res->blob_id, b->id, SK_SHA256_LEN);
	res->blob_size = b->stored_size;
	return 0;
}

int fmt_layers_new(struct fmt_layers **out, const struct fmt_build_opts *o,
		   struct sk_err *e)
{
	struct fmt_layers *l;
	int ret;

	*out = NULL;
	if (o->chunk_bits < 12 || o->chunk_bits > 26) {
		sk_err_set(e, "chunk size must be a power of two from 4 KiB to 64 MiB");
		return -EINVAL;
	}
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->o = *o;
	l->err = e;
	l->t.stats = &l->stats;
	l->t.err = e;
	l->t.root = new_node(l, S_IFDIR | 0755, NULL);
	if (!l->t.root) {
		fmt_layers_free(l);
		return -ENOMEM;
	}
	ret = bld_data_new(&l->data, &l->t, &l->o);
	if (ret) {
		fmt_layers_free(l);
		return ret;
	}
	*out = l;
	return 0;
}

int fmt_layers_add_dict(struct fmt_layers *l, const uint8_t id[SK_SHA256_LEN],
			const struct fmt_blob_table *t, int fd)
{
	struct bld_blob b = { 0 };
	int ret;

	if (l->layer) {
		sk_err_set(l->err, "chunk dictionary blobs come before the layers");
		return -EINVAL;
	}
	memcpy(b.id, id, SK_SHA256_LEN);
	b.stored_size = t->stored_size;
	b.usize = t->usize;
	b.table_off = t->table_off;
	b.table_size = t->table_size;
	b.count = t->count;
	memcpy(b.table_digest, t->table_digest, SK_SHA256_LEN);
	ret = bld_data_add_known(l->data, l->nblobs, t->chunks, t->count);
	if (ret) {
		sk_err_set(l->err, "chunk dictionary: %s",
			   ret == -EINVAL ? "a chunk is not block-aligned" : strerror(-ret));
		return ret;
	}
	ret = add_blob(l, &b, true, l->ndict, fd);
	if (!ret)
		l->ndict++;
	return ret;
}

int fmt_layers_apply(struct fmt_layers *l, struct fmt_tar *tar, int blob_fd,
		     struct fmt_layer_result *res)
{
	const struct fmt_tar_entry *ent;
	struct bld_blob b;
	int ret;

	memset(res, 0, sizeof(*res));
	if (l->merged) {
		sk_err_set(l->err, "a layer after the prefetch blob");
		return -EINVAL;
	}
	l->layer++;
	l->claimed = 0;
	ret = bld_data_begin_blob(l->data, l->nblobs, blob_fd);
	if (ret)
		return ret;
	while ((ret = fmt_tar_next(tar, &ent)) > 0) {
		res->entries++;
		ret = apply_entry(l, tar, ent);
		if (ret)
			break;
	}
	if (ret < 0) {
		if (!l->err->msg[0])
			sk_err_set(l->err, "%s", fmt_tar_error(tar)[0] ? fmt_tar_error(tar)
								       : strerror(-ret));
		bld_data_abort_blob(l->data);
		return ret;
	}
	ret = bld_data_end_blob(l->data, &b);
	if (ret)
		return ret;
	return b.count ? keep_blob(l, &b, l->layer - 1, blob_fd, res) : 0;
}

/* Sorts and compacts a directory, dropping deleted entries. */
static void compact(struct bld_node *d)
{
	uint32_t k = 0;

	for (uint32_t i = 0; i < d->nents; i++) {
		if (d->ents[i].node)
			d->ents[k++] = d->ents[i];
		else
			free(d->ents[i].name);
	}
	d->nents = k;
	if (k)
		qsort(d->ents, k, sizeof(*d->ents), bld_dentry_cmp);
	d->nsubdirs = 0;
	for (uint32_t i = 0; i < k; i++)
		d->nsubdirs += S_ISDIR(d->ents[i].node->mode) != 0;
	d->nlink = 2 + d->nsubdirs;
}

/* Pre-order walk in name order (the order bld_walk gives a directory
 * build), with an explicit stack: merged trees can be deep. */
static int relink(struct fmt_layers *l)
{
	struct frame {
		struct bld_node *dir;
		uint32_t i;
		size_t plen;	/* bytes of the directory's path */
	} *stack;
	size_t depth = 0, cap = 64;
	struct fmt_build_stats *s = &l->stats;

	for (struct bld_node *n = l->all; n; n = n->all_next) {
		n->live = false;
		n->nlink = 0;
	}
	s->inodes = s->files = s->dirs = s->symlinks = s->specials = 0;
	s->hardlinks = s->file_bytes = 0;
	stack = malloc(cap * sizeof(*stack));
	if (!stack)
		return -ENOMEM;
	l->t.head = l->t.tail = NULL;
	l->t.nnodes = 0;
	l->t.root->live = true;
	l->t.root->parent = l->t.root;
	bld_tree_append(&l->t, l->t.root);
	compact(l->t.root);
	s->inodes++;
	s->dirs++;
	stack[depth++] = (struct frame){ l->t.root, 0, 0 };
	while (depth) {
		struct frame *f = &stack[depth - 1];
		struct bld_node *n;
		size_t plen;

		if (f->i == f->dir->nents) {
			depth--;
			continue;
		}
		n = f->dir->ents[f->i++].node;
		if (!S_ISDIR(n->mode))
			n->nlink++;
		if (n->live) {
			s->hardlinks++;
			continue;
		}
		n->live = true;
		bld_tree_append(&l->t, n);
		s->inodes++;
		switch (n->mode & S_IFMT) {
		case S_IFREG:
			s->files++;
			s->file_bytes += n->size;
			break;
		case S_IFLNK:
			s->symlinks++;
			break;
		case S_IFDIR:
			s->dirs++;
			break;
		default:
			s->specials++;
		}
		if (!S_ISDIR(n->mode))
			continue;
		n->parent = f->dir;
		compact(n);
		/* what the image reader walks (fmt_bs_walk) must fit it;
		 * f dies with a realloc of the stack below */
		plen = f->plen + 1 + f->dir->ents[f->i - 1].namelen;
		if (depth >= 4096 || plen >= FMT_WALK_PATH_MAX) {
			free(stack);
			sk_err_set(l->err, "the merged tree is deeper than 4096 directories or has a path over %d bytes",
				   FMT_WALK_PATH_MAX - 1);
			return -ENAMETOOLONG;
		}
		if (depth == cap) {
			struct frame *ns = realloc(stack, cap * 2 * sizeof(*ns));

			if (!ns) {
				free(stack);
				return -ENOMEM;
			}
			stack = ns;
			cap *= 2;
		}
		stack[depth++] = (struct frame){ n, 0, plen };
	}
	free(stack);
	return 0;
}

/* The merged tree, once: walked in name order, links counted, the
 * prefetch list resolved, unreachable nodes freed. */
static int merge(struct fmt_layers *l)
{
	struct bld_node **prev;
	int ret;

	if (l->merged)
		return 0;
	ret = relink(l);
	if (!ret)
		ret = bld_prefetch_resolve(&l->t, &l->o);
	if (ret)
		return ret;
	l->merged = true;
	/* the metadata pass sees live nodes only */
	for (prev = &l->all; *prev;) {
		struct bld_node *x = *prev;

		if (x->live) {
			prev = &x->all_next;
			continue;
		}
		*prev = x->all_next;
		bld_node_free(x);
	}
	return 0;
}

int fmt_layers_prefetch_blob(struct fmt_layers *l, int blob_fd,
			     struct fmt_layer_result *res)
{
	struct bld_blob b = { 0 };
	int ret;

	memset(res, 0, sizeof(*res));
	if (l->merged) {
		sk_err_set(l->err, "the prefetch blob comes once, before finishing");
		return -EINVAL;
	}
	ret = merge(l);
	if (!ret && l->t.nprefetch)
		ret = bld_prefetch_blob(&l->t, l->blobs, l->blob_fd, l->nblobs,
					l->nblobs, blob_fd, &b);
	if (ret || !l->t.nprefetch || !b.count)
		return ret;
	/* it has no layer: its source index is the layer count */
	return keep_blob(l, &b, l->layer, blob_fd, res);
}

int fmt_layers_finish(struct fmt_layers *l, struct fmt_build_result *res,
		      struct fmt_layers_slot **slots, unsigned int *nslots)
{
	unsigned int *map = NULL, n = 0;
	struct bld_blob *used = NULL;
	struct fmt_layers_slot *out = NULL;
	int ret;

	memset(res, 0, sizeof(*res));
	*slots = NULL;
	*nslots = 0;
	ret = merge(l);
	if (ret)
		return ret;
	/* device slots: the blobs live files reference, in blob order */
	map = calloc(l->nblobs + 1, sizeof(*map));
	used = calloc(l->nblobs + 1, sizeof(*used));
	out = calloc(l->nblobs + 1, sizeof(*out));
	if (!map || !used || !out) {
		ret = -ENOMEM;
		goto out;
	}
	for (struct bld_node *x = l->t.head; x; x = x->next)
		for (uint64_t i = 0; S_ISREG(x->mode) && i < x->nchunks; i++)
			if (le32toh(x->chunks[i].blkaddr) != EROFS_NULL_ADDR)
				map[le16toh(x->chunks[i].device_id) - 1] = 1;
	for (unsigned int b = 0; b < l->nblobs; b++) {
		if (!map[b])
			continue;
		map[b] = n + 1;
		used[n] = l->blobs[b];
		out[n].dict = l->blob_dict[b];
		out[n].index = l->blob_src[b];
		memcpy(out[n].blob_id, l->blobs[b].id, SK_SHA256_LEN);
		out[n].blob_size = l->blobs[b].stored_size;
		n++;
	}
	for (struct bld_node *x = l->t.head; x; x = x->next)
		for (uint64_t i = 0; S_ISREG(x->mode) && i < x->nchunks; i++)
			if (le32toh(x->chunks[i].blkaddr) != EROFS_NULL_ADDR)
				x->chunks[i].device_id = htole16((uint16_t)
					map[le16toh(x->chunks[i].device_id) - 1]);
	ret = bld_meta(&l->t, &l->o, used, n, &res->bootstrap, &res->bootstrap_size);
	if (ret) {
		if (!l->err->msg[0])
			sk_err_set(l->err, "%s", strerror(-ret));
		goto out;
	}
	res->has_blob = n != 0;
	res->stats = l->stats;
	res->stats.bootstrap_size = res->bootstrap_size;
	res->stats.blob_stored = res->stats.blob_usize = 0;
	for (unsigned int i = 0; i < n; i++) {
		res->stats.blob_stored += used[i].stored_size;
		res->stats.blob_usize += used[i].usize;
	}
	*slots = out;
	*nslots = n;
	out = NULL;
out:
	free(map);
	free(used);
	free(out);
	return ret;
}

void fmt_layers_free(struct fmt_layers *l)
{
	struct bld_node *n, *next;

	if (!l)
		return;
	bld_data_free(l->data);
	for (n = l->all; n; n = next) {
		next = n->all_next;
		bld_node_free(n);
	}
	free(l->t.prefetch);
	free(l->hash);
	free(l->blobs);
	free(l->blob_dict);
	free(l->blob_src);
	free(l->blob_fd);
	free(l);
}
