/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tree walk: reads the source directory into bld_nodes. Entries are sorted
 * bytewise (EROFS's directory order) so that the walk order, and with it
 * the whole image, depends only on the tree.
 */
#include "build_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "bootstrap.h"

/* Hard links: (dev, ino) of multiply-linked non-directories -> node. */
struct link_map {
	struct bld_node **slots;
	size_t cap, used;
};

static size_t link_hash(dev_t d, ino_t i, size_t cap)
{
	uint64_t h = (uint64_t)i * 0x9e3779b97f4a7c15ull ^ (uint64_t)d;

	return (size_t)(h ^ (h >> 29)) & (cap - 1);
}

static int link_map_put(struct link_map *m, struct bld_node *n)
{
	if (m->used * 2 >= m->cap) {
		size_t ncap = m->cap ? m->cap * 2 : 1024;
		struct bld_node **ns = calloc(ncap, sizeof(*ns));

		if (!ns)
			return -ENOMEM;
		for (size_t i = 0; i < m->cap; i++) {
			struct bld_node *o = m->slots[i];
			size_t h;

			if (!o)
				continue;
			for (h = link_hash(o->sdev, o->sino, ncap); ns[h];
			     h = (h + 1) & (ncap - 1))
				;
			ns[h] = o;
		}
		free(m->slots);
		m->slots = ns;
		m->cap = ncap;
	}
	size_t h = link_hash(n->sdev, n->sino, m->cap);

	while (m->slots[h])
		h = (h + 1) & (m->cap - 1);
	m->slots[h] = n;
	m->used++;
	return 0;
}

static struct bld_node *link_map_get(struct link_map *m, dev_t d, ino_t i)
{
	if (!m->cap)
		return NULL;
	for (size_t h = link_hash(d, i, m->cap); m->slots[h];
	     h = (h + 1) & (m->cap - 1))
		if (m->slots[h]->sdev == d && m->slots[h]->sino == i)
			return m->slots[h];
	return NULL;
}

struct walker {
	struct bld_tree *t;
	struct link_map links;
	char path[PATH_MAX];
	char *xbuf;		/* scratch for xattr names and values */
	size_t xcap;
};

static const struct {
	const char *prefix;
	uint8_t index;
	bool whole;	/* the name is exactly the prefix (ACLs) */
} xattr_prefixes[] = {
	{ "user.", EROFS_XATTR_INDEX_USER, false },
	{ "trusted.", EROFS_XATTR_INDEX_TRUSTED, false },
	{ "security.", EROFS_XATTR_INDEX_SECURITY, false },
	{ "system.posix_acl_access", EROFS_XATTR_INDEX_POSIX_ACL_ACCESS, true },
	{ "system.posix_acl_default", EROFS_XATTR_INDEX_POSIX_ACL_DEFAULT, true },
};

static int xattr_cmp(const void *a, const void *b)
{
	const struct bld_xattr *x = a, *y = b;
	int c;

	if (x->index != y->index)
		return x->index < y->index ? -1 : 1;
	c = memcmp(x->name, y->name, SK_MIN(x->namelen, y->namelen));
	return c ? c : (int)x->namelen - (int)y->namelen;
}

int bld_xattr_set(struct bld_node *n, const char *name, const void *value,
		  size_t vlen, const char *where, struct sk_err *e)
{
	struct bld_xattr *x = NULL, *nx;
	const char *suffix = NULL;
	size_t i, sl;

	for (i = 0; i < SK_ARRAY_SIZE(xattr_prefixes); i++) {
		size_t pl = strlen(xattr_prefixes[i].prefix);

		if (xattr_prefixes[i].whole ? !strcmp(name, xattr_prefixes[i].prefix)
					    : !strncmp(name, xattr_prefixes[i].prefix, pl)) {
			suffix = name + pl;
			break;
		}
	}
	if (!suffix) {
		fprintf(stderr, "skiff: warning: %s: xattr %s has no EROFS namespace, skipped\n",
			where, name);
		return 0;
	}
	sl = strlen(suffix);
	if (sl > EROFS_NAME_LEN) {
		sk_err_set(e, "%s: xattr name %s too long", where, name);
		return -ENAMETOOLONG;
	}
	if (vlen > UINT16_MAX) {
		sk_err_set(e, "%s: xattr %s value too large", where, name);
		return -E2BIG;
	}
	for (uint32_t k = 0; k < n->nxattrs; k++)
		if (n->xattrs[k].index == xattr_prefixes[i].index &&
		    n->xattrs[k].namelen == sl && !memcmp(n->xattrs[k].name, suffix, sl))
			x = &n->xattrs[k];
	if (!x) {
		nx = realloc(n->xattrs, (n->nxattrs + 1) * sizeof(*nx));
		if (!nx)
			return -ENOMEM;
		n->xattrs = nx;
		x = &nx[n->nxattrs];
		x->name = strdup(suffix);
		if (!x->name)
			return -ENOMEM;
		x->value = NULL;
		x->index = xattr_prefixes[i].index;
		x->namelen = (uint8_t)sl;
		n->nxattrs++;
	}
	free(x->value);
	x->value = malloc(vlen ? vlen : 1);
	x->vlen = 0;
	if (!x->value)
		return -ENOMEM;
	memcpy(x->value, value, vlen);
	x->vlen = (uint16_t)vlen;
	return 0;
}

int bld_xattrs_done(struct bld_node *n, const char *where, struct sk_err *e)
{
	uint32_t body = 0;

	n->xattr_isize = 0;
	if (!n->nxattrs)
		return 0;
	qsort(n->xattrs, n->nxattrs, sizeof(*n->xattrs), xattr_cmp);
	for (uint32_t i = 0; i < n->nxattrs; i++)
		body += SK_ALIGN_UP(sizeof(struct erofs_xattr_entry) +
				    n->xattrs[i].namelen + n->xattrs[i].vlen, 4u);
	/* i_xattr_icount is 16 bits: 1 header + body/4 */
	if (body / 4 + 1 > UINT16_MAX) {
		sk_err_set(e, "%s: too many xattrs", where);
		return -E2BIG;
	}
	n->xattr_isize = sizeof(struct erofs_xattr_ibody_header) + body;
	return 0;
}

void bld_xattrs_clear(struct bld_node *n)
{
	for (uint32_t i = 0; i < n->nxattrs; i++) {
		free(n->xattrs[i].name);
		free(n->xattrs[i].value);
	}
	free(n->xattrs);
	n->xattrs = NULL;
	n->nxattrs = 0;
	n->xattr_isize = 0;
}

static int read_xattrs(struct walker *w, struct bld_node *n)
{
	ssize_t len;
	char names[XATTR_LIST_MAX];

	len = llistxattr(w->path, names, sizeof(names));
	if (len < 0) {
		if (errno == ENOTSUP)
			return 0;
		sk_err_set(w->t->err, "%s: listing xattrs: %s", w->path,
			   strerror(errno));
		return -errno;
	}
	for (char *name = names; name < names + len; name += strlen(name) + 1) {
		ssize_t vlen = lgetxattr(w->path, name, w->xbuf, w->xcap);
		int ret;

		if (vlen < 0) {
			sk_err_set(w->t->err, "%s: reading xattr %s: %s", w->path,
				   name, strerror(errno));
			return -errno;
		}
		ret = bld_xattr_set(n, name, w->xbuf, (size_t)vlen, w->path, w->t->err);
		if (ret)
			return ret;
	}
	return bld_xattrs_done(n, w->path, w->t->err);
}

int bld_dentry_cmp(const void *a, const void *b)
{
	const struct bld_dentry *x = a, *y = b;
	int c = memcmp(x->name, y->name, SK_MIN(x->namelen, y->namelen));

	return c ? c : (int)x->namelen - (int)y->namelen;
}

void bld_tree_append(struct bld_tree *t, struct bld_node *n)
{
	n->next = NULL;
	if (t->tail)
		t->tail->next = n;
	else
		t->head = n;
	t->tail = n;
	t->nnodes++;
}

static int fill_node(struct walker *w, struct bld_node *n, const struct stat *st)
{
	struct fmt_build_stats *s = w->t->stats;

	n->mode = st->st_mode;
	n->uid = st->st_uid;
	n->gid = st->st_gid;
	n->mtime = (uint64_t)st->st_mtim.tv_sec;
	n->mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;
	n->nlink = 1;
	n->sdev = st->st_dev;
	n->sino = st->st_ino;
	s->inodes++;
	switch (st->st_mode & S_IFMT) {
	case S_IFREG:
		n->size = (uint64_t)st->st_size;
		n->sparse = (uint64_t)st->st_blocks * 512 < n->size;
		w->t->stored += SK_MIN((uint64_t)st->st_blocks * 512, n->size);
		n->path = strdup(w->path);
		if (!n->path)
			return -ENOMEM;
		s->files++;
		s->file_bytes += n->size;
		break;
	case S_IFLNK: {
		char buf[PATH_MAX];
		ssize_t len = readlink(w->path, buf, sizeof(buf));

		if (len < 0) {
			sk_err_set(w->t->err, "%s: readlink: %s", w->path,
				   strerror(errno));
			return -errno;
		}
		if (len == 0 || len >= (ssize_t)EROFS_BLKSIZ) {
			sk_err_set(w->t->err, "%s: symlink target too long", w->path);
			return -ENAMETOOLONG;
		}
		n->link = strndup(buf, (size_t)len);
		if (!n->link)
			return -ENOMEM;
		n->size = (uint64_t)len;
		s->symlinks++;
		break;
	}
	case S_IFDIR:
		s->dirs++;
		n->nlink = 2;
		break;
	case S_IFCHR:
	case S_IFBLK:
		n->rdev = fmt_encode_dev(major(st->st_rdev), minor(st->st_rdev));
		/* fall through */
	default:
		s->specials++;
		break;
	}
	return read_xattrs(w, n);
}

static int walk_dir(struct walker *w, struct bld_node *dir, size_t plen,
		    unsigned int depth)
{
	DIR *d;
	struct dirent *de;
	int ret = 0;

	if (depth > 2048) {
		sk_err_set(w->t->err, "%s: tree too deep", w->path);
		return -ELOOP;
	}
	d = opendir(w->path);
	if (!d) {
		sk_err_set(w->t->err, "%s: %s", w->path, strerror(errno));
		return -errno;
	}
	while ((errno = 0, de = readdir(d))) {
		struct bld_dentry *e;
		size_t nl = strlen(de->d_name);

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (dir->nents == dir->cap_ents) {
			uint32_t ncap = dir->cap_ents ? dir->cap_ents * 2 : 16;
			struct bld_dentry *ne = realloc(dir->ents, ncap * sizeof(*ne));

			if (!ne) {
				ret = -ENOMEM;
				goto out;
			}
			dir->ents = ne;
			dir->cap_ents = ncap;
		}
		e = &dir->ents[dir->nents];
		e->name = strdup(de->d_name);
		if (!e->name) {
			ret = -ENOMEM;
			goto out;
		}
		e->namelen = (uint16_t)nl;
		e->node = NULL;
		dir->nents++;
	}
	if (errno) {
		ret = -errno;
		sk_err_set(w->t->err, "%s: readdir: %s", w->path, strerror(errno));
		goto out;
	}
	if (dir->nents)	/* ents is NULL for an empty directory */
		qsort(dir->ents, dir->nents, sizeof(*dir->ents), bld_dentry_cmp);

	for (uint32_t i = 0; i < dir->nents; i++) {
		struct bld_dentry *e = &dir->ents[i];
		struct bld_node *n;
		struct stat st;

		if (plen + 1 + e->namelen >= sizeof(w->path)) {
			sk_err_set(w->t->err, "%s/%s: path too long", w->path, e->name);
			ret = -ENAMETOOLONG;
			goto out;
		}
		w->path[plen] = '/';
		memcpy(w->path + plen + 1, e->name, e->namelen + 1u);
		if (lstat(w->path, &st) < 0) {
			ret = -errno;
			sk_err_set(w->t->err, "%s: %s", w->path, strerror(errno));
			goto out;
		}
		if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
			n = link_map_get(&w->links, st.st_dev, st.st_ino);
			if (n) {
				n->nlink++;
				e->node = n;
				w->t->stats->hardlinks++;
				continue;
			}
		}
		n = calloc(1, sizeof(*n));
		if (!n) {
			ret = -ENOMEM;
			goto out;
		}
		n->parent = dir;
		e->node = n;
		bld_tree_append(w->t, n);
		ret = fill_node(w, n, &st);
		if (ret)
			goto out;
		if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
			ret = link_map_put(&w->links, n);
			if (ret)
				goto out;
		}
		if (S_ISDIR(st.st_mode)) {
			dir->nlink++;
			dir->nsubdirs++;
			ret = walk_dir(w, n, plen + 1 + e->namelen, depth + 1);
			if (ret)
				goto out;
		}
	}
out:
	w->path[plen] = '\0';
	closedir(d);
	return ret;
}

int bld_walk(struct bld_tree *t, const char *srcdir)
{
	struct walker w = { .t = t };
	struct stat st;
	size_t plen = strlen(srcdir);
	int ret;

	while (plen > 1 && srcdir[plen - 1] == '/')
		plen--;
	if (plen >= sizeof(w.path)) {
		sk_err_set(t->err, "%s: path too long", srcdir);
		return -ENAMETOOLONG;
	}
	memcpy(w.path, srcdir, plen);
	w.path[plen] = '\0';
	if (stat(w.path, &st) < 0) {
		sk_err_set(t->err, "%s: %s", srcdir, strerror(errno));
		return -errno;
	}
	if (!S_ISDIR(st.st_mode)) {
		sk_err_set(t->err, "%s: not a directory", srcdir);
		return -ENOTDIR;
	}
	w.xcap = 65536;
	w.xbuf = malloc(w.xcap);
	t->root = calloc(1, sizeof(*t->root));
	if (!w.xbuf || !t->root) {
		free(w.xbuf);
		return -ENOMEM;
	}
	t->root->parent = t->root;
	bld_tree_append(t, t->root);
	ret = fill_node(&w, t->root, &st);
	if (!ret)
		ret = walk_dir(&w, t->root, plen, 0);
	free(w.xbuf);
	free(w.links.slots);
	return ret;
}

void bld_node_free(struct bld_node *n)
{
	for (uint32_t i = 0; i < n->nents; i++)
		free(n->ents[i].name);
	bld_xattrs_clear(n);
	free(n->ents);
	free(n->path);
	free(n->link);
	free(n->chunks);
	free(n->dirblk_first);
	free(n);
}

void bld_tree_free(struct bld_tree *t)
{
	struct bld_node *n = t->head, *next;

	for (; n; n = next) {
		next = n->next;
		bld_node_free(n);
	}
	t->head = t->tail = t->root = NULL;
	free(t->prefetch);
	t->prefetch = NULL;
	t->nprefetch = 0;
}
