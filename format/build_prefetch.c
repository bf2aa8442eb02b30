/* SPDX-License-Identifier: Apache-2.0 */
/* The builder's prefetch list: paths resolved to the tree's files. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "build_int.h"

static struct bld_node *child(const struct bld_node *d, const char *name,
			      size_t len)
{
	uint32_t lo = 0, hi = d->nents;

	/* entries are sorted by name, bytewise, as EROFS wants them */
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		const struct bld_dentry *de = &d->ents[mid];
		int c = memcmp(de->name, name, SK_MIN((size_t)de->namelen, len));

		if (!c)
			c = (de->namelen > len) - (de->namelen < len);
		if (!c)
			return de->node;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* The node at an image path, symlinks not followed; NULL if none. */
static struct bld_node *lookup(struct bld_tree *t, const char *path)
{
	struct bld_node *n = t->root;
	const char *p = path;

	while (n && *p) {
		const char *end;

		while (*p == '/')
			p++;
		if (!*p)
			break;
		end = strchr(p, '/');
		if (!end)
			end = p + strlen(p);
		if (!S_ISDIR(n->mode))
			return NULL;
		if (end - p == 1 && p[0] == '.') {
			p = end;
			continue;
		}
		n = (end - p == 2 && p[0] == '.' && p[1] == '.') ?
		    (n->parent ? n->parent : n) : child(n, p, (size_t)(end - p));
		p = end;
	}
	return n;
}

int bld_prefetch_resolve(struct bld_tree *t, const struct fmt_build_opts *o)
{
	if (!o->nprefetch)
		return 0;
	t->prefetch = calloc(o->nprefetch, sizeof(*t->prefetch));
	if (!t->prefetch)
		return -ENOMEM;
	for (size_t i = 0; i < o->nprefetch; i++) {
		struct bld_node *n = lookup(t, o->prefetch[i]);

		/* a list recorded on another build may name what is gone */
		if (!n || !S_ISREG(n->mode) || n->in_prefetch)
			continue;
		n->in_prefetch = true;
		t->prefetch[t->nprefetch++] = n;
	}
	if (t->stats)
		t->stats->prefetch_files = t->nprefetch;
	return 0;
}

void fmt_prefetch_list_free(struct fmt_prefetch_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->paths[i]);
	free(l->paths);
	l->paths = NULL;
	l->n = 0;
}

/* One line's path: up to a tab, with \\, \t and \n unescaped. */
static char *line_path(const char *p, size_t len)
{
	char *out = malloc(len + 2), *o = out;

	if (!out)
		return NULL;
	if (len == 0 || p[0] != '/')
		*o++ = '/';	/* paths are from the image root either way */
	for (size_t i = 0; i < len && p[i] != '\t'; i++) {
		if (p[i] == '\\' && i + 1 < len) {
			char c = p[++i];

			*o++ = c == 't' ? '\t' : c == 'n' ? '\n' : c;
		} else {
			*o++ = p[i];
		}
	}
	*o = 0;
	return out;
}

int fmt_prefetch_list_parse(const char *buf, size_t len,
			    struct fmt_prefetch_list *l, struct sk_err *e)
{
	size_t cap = 0, pos = 0, line = 0;

	memset(l, 0, sizeof(*l));
	while (pos < len) {
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (buf + pos)) : len - pos;
		const char *p = buf + pos;

		pos += n + (nl != NULL);
		line++;
		if (n && p[n - 1] == '\r')
			n--;
		if (n == 0 || p[0] == '#')
			continue;
		if (memchr(p, 0, n)) {
			sk_err_set(e, "line %zu: a NUL byte", line);
			fmt_prefetch_list_free(l);
			return -EINVAL;
		}
		if (l->n == cap) {
			size_t ncap = cap ? cap * 2 : 256;
			char **np = realloc(l->paths, ncap * sizeof(*np));

			if (!np) {
				fmt_prefetch_list_free(l);
				return -ENOMEM;
			}
			l->paths = np;
			cap = ncap;
		}
		if (!(l->paths[l->n] = line_path(p, n))) {
			fmt_prefetch_list_free(l);
			return -ENOMEM;
		}
		l->n++;
	}
	return 0;
}
