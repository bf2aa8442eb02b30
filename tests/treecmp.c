/*
 * treecmp - compare two directory trees exactly, metadata included.
 *
 * Used to check that an image builder (skiff, or mkfs.erofs as a reference)
 * reproduces a source tree faithfully: mount the image and compare it with
 * the tree it was built from. diff -r and rsync -n ignore most of what a
 * container runtime can observe, so this compares file type, mode (07777),
 * uid, gid, mtime including nanoseconds, link counts, hard-link sharing,
 * device numbers, symlink targets, every xattr (ACLs and capabilities
 * included) and file bytes. Holes present in both trees are skipped via
 * SEEK_DATA, so multi-GiB sparse files stay cheap.
 *
 * The link count a non-directory must have in B is the number of names
 * its inode has inside tree A, not A's st_nlink: links from outside tree
 * A (say a cache elsewhere hard-linking the same binaries) cannot be part
 * of an image of A. Names B lacks count too; names below a directory B
 * lacks do not, as the walk does not descend there. Link counts are
 * reported at the end of the walk.
 *
 * Usage: treecmp [-q] [--no-root-meta] [--skip-nlink-dirs] A B
 * Exit status: 0 identical, 1 different, 2 error.
 *
 * Deliberately not compared: atime and ctime (not reproducible), inode
 * numbers, st_blocks and directory st_size (filesystem specific).
 *
 * Build: cc -std=gnu11 -O2 -Wall -Wextra -o treecmp tests/treecmp.c
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

#define CHUNK (1024 * 1024)
/* Room for one escaped value in a message; longer values are cut short. */
#define ESC_SZ 512
/* "/proc/self/fd/<int>/<name>" */
#define PROCPATH_SZ (32 + NAME_MAX + 1)
/* Xattr lists can change between size query and read; don't loop forever. */
#define XATTR_RETRIES 8
/* Linux caps symlink targets at PATH_MAX, but be lenient with other FSes. */
#define LINK_MAX_SZ (1024 * 1024)

struct inokey {
	dev_t dev;
	ino_t ino;
};

struct inoent {
	bool used;
	bool paired; /* other, nlink_a and nlink_b are set */
	struct inokey key;
	struct inokey other;
	nlink_t nlink_a;
	nlink_t nlink_b;
	/* a2b only: names this A inode has in tree A (so far in the walk). */
	unsigned long long names;
	char *path; /* owned */
};

/* Open-addressing hash map from an inode in one tree to its peer in the
 * other tree, plus the path it was paired under (for messages). */
struct inomap {
	struct inoent *tab;
	size_t cap; /* power of two or 0 */
	size_t len;
};

struct ctx {
	bool quiet;
	bool no_root_meta;
	bool skip_nlink_dirs;
	unsigned long long entries;
	unsigned long long diffs;
	struct inomap a2b;
	struct inomap b2a;
	unsigned char *buf_a;
	unsigned char *buf_b;
};

/* ------------------------------------------------------------ messages */

static size_t esc_byte(unsigned char ch, char out[5])
{
	if (ch == '\\') {
		out[0] = '\\';
		out[1] = '\\';
		return 2;
	}
	if (ch < 0x20 || ch >= 0x7f) {
		static const char hex[] = "0123456789abcdef";

		out[0] = '\\';
		out[1] = 'x';
		out[2] = hex[ch >> 4];
		out[3] = hex[ch & 15];
		return 4;
	}
	out[0] = (char)ch;
	return 1;
}

static void put_esc(FILE *f, const void *p, size_t n)
{
	const unsigned char *s = p;
	char tmp[5];

	for (size_t i = 0; i < n; i++) {
		size_t k = esc_byte(s[i], tmp);

		fwrite(tmp, 1, k, f);
	}
}

/* Escapes into a fixed buffer, marking truncation, so messages never need
 * an allocation that could fail halfway through reporting. */
static void esc_buf(char dst[ESC_SZ], const void *p, size_t n)
{
	const unsigned char *s = p;
	/* Worst case of "...[<20 digits> bytes]" plus NUL. */
	const size_t tail_room = 40;
	size_t o = 0, i;
	char tmp[5];

	for (i = 0; i < n; i++) {
		size_t k = esc_byte(s[i], tmp);

		if (o + k + tail_room >= ESC_SZ)
			break;
		memcpy(dst + o, tmp, k);
		o += k;
	}
	dst[o] = '\0';
	if (i < n)
		snprintf(dst + o, ESC_SZ - o, "...[%zu bytes]", n);
}

__attribute__((format(printf, 3, 4)))
static void report(struct ctx *c, const char *path, const char *fmt, ...)
{
	va_list ap;

	c->diffs++;
	if (c->quiet)
		return;
	fputs("treecmp: ", stdout);
	put_esc(stdout, path, strlen(path));
	fputs(": ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* Prints an error at the point where the path is known and hands the
 * error back, so callers further up only propagate it. */
static int fail(const char *path, const char *what, int err)
{
	fputs("treecmp: ", stderr);
	put_esc(stderr, path, strlen(path));
	fprintf(stderr, ": %s: %s\n", what, strerror(-err));
	return err;
}

static const char *type_name(mode_t m)
{
	switch (m & S_IFMT) {
	case S_IFREG: return "regular file";
	case S_IFDIR: return "directory";
	case S_IFLNK: return "symlink";
	case S_IFCHR: return "char device";
	case S_IFBLK: return "block device";
	case S_IFIFO: return "fifo";
	case S_IFSOCK: return "socket";
	default: return "unknown type";
	}
}

/* ------------------------------------------------------------ inode map */

static size_t ino_hash(const struct inokey *k)
{
	uint64_t h = (uint64_t)k->ino * 0x9e3779b97f4a7c15ULL;

	h ^= (uint64_t)k->dev + 0x632be59bd9b4e019ULL + (h << 6) + (h >> 2);
	return (size_t)(h ^ (h >> 29));
}

static bool ino_eq(const struct inokey *a, const struct inokey *b)
{
	return a->dev == b->dev && a->ino == b->ino;
}

static struct inoent *inomap_find(const struct inomap *m, const struct inokey *k)
{
	if (!m->cap)
		return NULL;
	for (size_t i = ino_hash(k) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		struct inoent *e = &m->tab[i];

		if (!e->used)
			return NULL;
		if (ino_eq(&e->key, k))
			return e;
	}
}

static int inomap_grow(struct inomap *m)
{
	size_t ncap = m->cap ? m->cap * 2 : 256;
	struct inoent *nt;

	if (ncap < m->cap || ncap > SIZE_MAX / sizeof(*nt))
		return -ENOMEM;
	nt = calloc(ncap, sizeof(*nt));
	if (!nt)
		return -ENOMEM;
	for (size_t i = 0; i < m->cap; i++) {
		struct inoent *e = &m->tab[i];
		size_t j;

		if (!e->used)
			continue;
		for (j = ino_hash(&e->key) & (ncap - 1); nt[j].used; j = (j + 1) & (ncap - 1))
			;
		nt[j] = *e;
	}
	free(m->tab);
	m->tab = nt;
	m->cap = ncap;
	return 0;
}

/* Key must not be present yet. Takes a copy of path. The new entry is
 * unpaired; *out stays valid until the next put into m. */
static int inomap_put(struct inomap *m, const struct inokey *k,
		      const char *path, struct inoent **out)
{
	size_t i;
	char *p;
	int r;

	/* Keep load <= 1/2 so probe sequences stay short and always end. */
	if ((m->len + 1) * 2 > m->cap) {
		r = inomap_grow(m);
		if (r < 0)
			return r;
	}
	p = strdup(path);
	if (!p)
		return -ENOMEM;
	for (i = ino_hash(k) & (m->cap - 1); m->tab[i].used; i = (i + 1) & (m->cap - 1))
		;
	memset(&m->tab[i], 0, sizeof(m->tab[i]));
	m->tab[i].used = true;
	m->tab[i].key = *k;
	m->tab[i].path = p;
	m->len++;
	*out = &m->tab[i];
	return 0;
}

static void inomap_free(struct inomap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		if (m->tab[i].used)
			free(m->tab[i].path);
	free(m->tab);
	m->tab = NULL;
	m->cap = m->len = 0;
}

/*
 * Hard links of non-directories, called for every name of tree A: sb is
 * the stat of the same name in B, or NULL when B has no such name (or one
 * of another type).
 *
 * The A-inode -> B-inode relation must be a bijection. Only entries with
 * nlink != 1 on some side are recorded; nlink == 1 on both sides cannot
 * share anything and is already the right count. *seen is set when this
 * exact inode pair was compared before under another name, so content need
 * not be read again.
 *
 * Link counts are checked after the walk (check_nlinks): an inode of A may
 * have names outside tree A (another tree hard-linking the same files),
 * which an image of tree A cannot hold, so what B must have is the number
 * of names the inode has inside tree A, counted here.
 */
static int check_links(struct ctx *c, const char *path,
		       const struct stat *sa, const struct stat *sb, bool *seen)
{
	struct inokey ka = { sa->st_dev, sa->st_ino };
	struct inokey kb;
	struct inoent *ea, *eb;
	int r;

	*seen = false;
	if (sa->st_nlink == 1 && (!sb || sb->st_nlink == 1))
		return 0;

	ea = inomap_find(&c->a2b, &ka);
	if (!ea) {
		r = inomap_put(&c->a2b, &ka, path, &ea);
		if (r < 0)
			return fail(path, "inode map", r);
	}
	ea->names++;
	if (!sb)
		return 0;

	kb.dev = sb->st_dev;
	kb.ino = sb->st_ino;
	if (!ea->paired) {
		/* Seen before only as a name missing from B: the messages
		 * should name a path that B has. */
		if (strcmp(ea->path, path)) {
			char *p = strdup(path);

			if (!p)
				return fail(path, "inode map", -ENOMEM);
			free(ea->path);
			ea->path = p;
		}
		ea->paired = true;
		ea->other = kb;
		ea->nlink_a = sa->st_nlink;
		ea->nlink_b = sb->st_nlink;
	} else if (ino_eq(&ea->other, &kb)) {
		*seen = true;
	} else {
		char p[ESC_SZ];

		esc_buf(p, ea->path, strlen(ea->path));
		report(c, path, "hard link differs (A: same inode as %s, B: not)", p);
	}

	eb = inomap_find(&c->b2a, &kb);
	if (eb) {
		if (!ino_eq(&eb->other, &ka)) {
			char p[ESC_SZ];

			esc_buf(p, eb->path, strlen(eb->path));
			report(c, path, "hard link differs (B: same inode as %s, A: not)", p);
		}
	} else {
		r = inomap_put(&c->b2a, &kb, path, &eb);
		if (r < 0)
			return fail(path, "inode map", r);
		eb->paired = true;
		eb->other = ka;
	}
	return 0;
}

static int cmp_ent_path(const void *a, const void *b)
{
	return strcmp((*(struct inoent *const *)a)->path,
		      (*(struct inoent *const *)b)->path);
}

/*
 * After the walk: every recorded A inode must have, in B, as many links as
 * it has names in tree A. Extra links of A outside the tree are expected
 * and not reported. Reports come sorted by path so output is stable.
 */
static int check_nlinks(struct ctx *c)
{
	struct inoent **bad;
	size_t n = 0, k = 0;

	for (size_t i = 0; i < c->a2b.cap; i++) {
		struct inoent *e = &c->a2b.tab[i];

		if (e->used && e->paired && e->nlink_b != e->names)
			n++;
	}
	if (!n)
		return 0;
	bad = calloc(n, sizeof(*bad));
	if (!bad)
		return fail(".", "nlink check", -ENOMEM);
	for (size_t i = 0; i < c->a2b.cap; i++) {
		struct inoent *e = &c->a2b.tab[i];

		if (e->used && e->paired && e->nlink_b != e->names)
			bad[k++] = e;
	}
	qsort(bad, n, sizeof(*bad), cmp_ent_path);
	for (k = 0; k < n; k++) {
		const struct inoent *e = bad[k];

		if (e->nlink_a == e->names)
			report(c, e->path, "nlink differs (A=%ju B=%ju)",
			       (uintmax_t)e->nlink_a, (uintmax_t)e->nlink_b);
		else
			report(c, e->path,
			       "nlink differs (A=%ju, %llu of them in the tree; B=%ju)",
			       (uintmax_t)e->nlink_a, e->names, (uintmax_t)e->nlink_b);
	}
	free(bad);
	return 0;
}

/* --------------------------------------------------------------- names */

struct names {
	char **v;
	size_t n;
	size_t cap;
};

static void names_free(struct names *ns)
{
	for (size_t i = 0; i < ns->n; i++)
		free(ns->v[i]);
	free(ns->v);
	ns->v = NULL;
	ns->n = ns->cap = 0;
}

static int names_push(struct names *ns, const char *name)
{
	if (ns->n == ns->cap) {
		size_t ncap = ns->cap ? ns->cap * 2 : 64;
		char **nv;

		if (ncap < ns->cap || ncap > SIZE_MAX / sizeof(*nv))
			return -ENOMEM;
		nv = realloc(ns->v, ncap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		ns->v = nv;
		ns->cap = ncap;
	}
	ns->v[ns->n] = strdup(name);
	if (!ns->v[ns->n])
		return -ENOMEM;
	ns->n++;
	return 0;
}

/* strcmp orders by unsigned bytes, which gives a locale-independent order
 * for arbitrary (non-UTF-8) names. */
static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int names_read(int dirfd, const char *path, struct names *ns)
{
	DIR *d;
	int fd, r = 0;

	/* A fresh fd: closedir() closes it, and the caller keeps dirfd. */
	fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return fail(path, "open directory", -errno);
	d = fdopendir(fd);
	if (!d) {
		r = -errno;
		close(fd);
		return fail(path, "fdopendir", r);
	}
	for (;;) {
		struct dirent *de;

		errno = 0;
		de = readdir(d);
		if (!de) {
			if (errno)
				r = fail(path, "readdir", -errno);
			break;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		r = names_push(ns, de->d_name);
		if (r < 0) {
			fail(path, "readdir", r);
			break;
		}
	}
	closedir(d);
	if (r < 0) {
		names_free(ns);
		return r;
	}
	if (ns->n > 1)
		qsort(ns->v, ns->n, sizeof(*ns->v), cmp_str);
	return 0;
}

/* -------------------------------------------------------------- xattrs */

/* Where to read xattrs from: the fd itself (name == NULL) or the entry
 * `name` inside directory fd, not following a symlink. */
struct xsrc {
	int fd;
	const char *name;
};

/* glibc has no l*xattrat(); going through the directory fd's /proc magic
 * link avoids building full paths, which could exceed PATH_MAX in deep
 * trees, and still lets the l* variants refuse to follow the final
 * symlink. */
static int proc_path(char buf[PROCPATH_SZ], const struct xsrc *s)
{
	int n = snprintf(buf, PROCPATH_SZ, "/proc/self/fd/%d/%s", s->fd, s->name);

	if (n < 0 || n >= PROCPATH_SZ)
		return -ENAMETOOLONG;
	return 0;
}

static ssize_t x_list(const struct xsrc *s, char *buf, size_t sz)
{
	char p[PROCPATH_SZ];
	int r;

	if (!s->name)
		return flistxattr(s->fd, buf, sz);
	r = proc_path(p, s);
	if (r < 0) {
		errno = -r;
		return -1;
	}
	return llistxattr(p, buf, sz);
}

static ssize_t x_get(const struct xsrc *s, const char *attr, void *buf, size_t sz)
{
	char p[PROCPATH_SZ];
	int r;

	if (!s->name)
		return fgetxattr(s->fd, attr, buf, sz);
	r = proc_path(p, s);
	if (r < 0) {
		errno = -r;
		return -1;
	}
	return lgetxattr(p, attr, buf, sz);
}

/* Size query and read race with concurrent changes (ERANGE), hence the
 * retry loop shared by list and get. */
static int x_fetch(const struct xsrc *s, const char *attr, char **out, size_t *outlen)
{
	*out = NULL;
	*outlen = 0;
	for (int tries = 0; tries < XATTR_RETRIES; tries++) {
		ssize_t n, m;
		char *b;

		n = attr ? x_get(s, attr, NULL, 0) : x_list(s, NULL, 0);
		if (n < 0) {
			if (!attr && (errno == ENOTSUP || errno == EOPNOTSUPP))
				return 0;
			return -errno;
		}
		/* +1 so an empty value still gets a valid, freeable buffer. */
		b = malloc((size_t)n + 1);
		if (!b)
			return -ENOMEM;
		m = attr ? x_get(s, attr, b, (size_t)n) : x_list(s, b, (size_t)n);
		if (m < 0) {
			int e = errno;

			free(b);
			if (e == ERANGE)
				continue;
			return -e;
		}
		/* Grew between the two calls (possible when n == 0, where the
		 * second call only reports the size): start over. */
		if (m > n) {
			free(b);
			continue;
		}
		*out = b;
		*outlen = (size_t)m;
		return 0;
	}
	return -ERANGE;
}

struct xnames {
	char *raw;
	const char **v;
	size_t n;
};

static void xnames_free(struct xnames *x)
{
	free(x->raw);
	free(x->v);
	x->raw = NULL;
	x->v = NULL;
	x->n = 0;
}

static int xnames_read(const struct xsrc *s, struct xnames *x)
{
	size_t len, cnt = 0;
	int r;

	x->raw = NULL;
	x->v = NULL;
	x->n = 0;
	r = x_fetch(s, NULL, &x->raw, &len);
	if (r < 0)
		return r;
	if (!len)
		return 0;
	/* The list is NUL-separated and must end in NUL, or parsing would run
	 * off the end of the buffer. */
	if (x->raw[len - 1] != '\0') {
		xnames_free(x);
		return -EIO;
	}
	for (size_t i = 0; i < len; i++)
		if (x->raw[i] == '\0')
			cnt++;
	x->v = calloc(cnt, sizeof(*x->v));
	if (!x->v) {
		xnames_free(x);
		return -ENOMEM;
	}
	for (size_t i = 0; i < len; i += strlen(x->raw + i) + 1)
		if (x->raw[i] != '\0')
			x->v[x->n++] = x->raw + i;
	if (x->n > 1)
		qsort(x->v, x->n, sizeof(*x->v), cmp_str);
	return 0;
}

static int compare_xattr_value(struct ctx *c, const char *path, const char *attr,
			       const struct xsrc *sa, const struct xsrc *sb)
{
	char *va = NULL, *vb = NULL;
	size_t la, lb;
	int r;

	r = x_fetch(sa, attr, &va, &la);
	if (r < 0)
		return fail(path, "getxattr (A)", r);
	r = x_fetch(sb, attr, &vb, &lb);
	if (r < 0) {
		free(va);
		return fail(path, "getxattr (B)", r);
	}
	if (la != lb || memcmp(va, vb, la)) {
		char en[ESC_SZ], ea[ESC_SZ], eb[ESC_SZ];

		esc_buf(en, attr, strlen(attr));
		esc_buf(ea, va, la);
		esc_buf(eb, vb, lb);
		report(c, path, "xattr %s value differs (A=\"%s\" B=\"%s\")", en, ea, eb);
	}
	free(va);
	free(vb);
	return 0;
}

static int compare_xattrs(struct ctx *c, const char *path,
			  const struct xsrc *sa, const struct xsrc *sb)
{
	struct xnames xa, xb;
	size_t i = 0, j = 0;
	int r;

	r = xnames_read(sa, &xa);
	if (r < 0)
		return fail(path, "listxattr (A)", r);
	r = xnames_read(sb, &xb);
	if (r < 0) {
		xnames_free(&xa);
		return fail(path, "listxattr (B)", r);
	}
	while (i < xa.n || j < xb.n) {
		int d;

		if (i == xa.n)
			d = 1;
		else if (j == xb.n)
			d = -1;
		else
			d = strcmp(xa.v[i], xb.v[j]);

		if (d) {
			const char *nm = d < 0 ? xa.v[i++] : xb.v[j++];
			char en[ESC_SZ];

			esc_buf(en, nm, strlen(nm));
			report(c, path, "xattr %s only in %s", en, d < 0 ? "A" : "B");
			continue;
		}
		r = compare_xattr_value(c, path, xa.v[i], sa, sb);
		if (r < 0)
			break;
		i++;
		j++;
	}
	xnames_free(&xa);
	xnames_free(&xb);
	return r;
}

/* ------------------------------------------------------------- content */

static int pread_full(int fd, unsigned char *buf, size_t len, off_t off)
{
	while (len) {
		ssize_t n = pread(fd, buf, len, off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		/* Size was taken from fstatat; a short file means it changed
		 * under us, and comparing against garbage would mislead. */
		if (n == 0)
			return -ENODATA;
		buf += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

/* Next data region at or after off: [*data, *end). Filesystems without
 * SEEK_DATA support behave as if everything is data, which is still
 * correct, only slower. */
static int next_data(int fd, off_t off, off_t size, off_t *data, off_t *end)
{
	off_t d, h;

	d = lseek(fd, off, SEEK_DATA);
	if (d < 0) {
		if (errno != ENXIO)
			return -errno;
		*data = *end = size;
		return 0;
	}
	h = lseek(fd, d, SEEK_HOLE);
	if (h < 0) {
		if (errno != ENXIO)
			return -errno;
		h = size;
	}
	*data = d < size ? d : size;
	*end = h < size ? h : size;
	if (*end <= *data)
		*end = size;
	return 0;
}

/* memcmp() first: it is vectorised, and equal ranges are the common case
 * (a 5 GiB hole read back from a filesystem without SEEK_DATA). */
static size_t first_diff(const unsigned char *a, const unsigned char *b, size_t n)
{
	size_t i = 0;

	if (!memcmp(a, b, n))
		return n;
	while (i < n && a[i] == b[i])
		i++;
	return i;
}

static size_t first_nonzero(const unsigned char *a, size_t n)
{
	size_t i = 0;

	/* All zero iff a[0] is zero and every byte equals its successor. */
	if (!n || (!a[0] && !memcmp(a, a + 1, n - 1)))
		return n;
	while (i < n && !a[i])
		i++;
	return i;
}

/*
 * Byte-exact comparison. A hole is only trusted on the side that reports
 * it; where one side has a hole and the other data, the data side is read
 * and must be zero. Ranges that are holes on both sides are skipped, which
 * is what keeps a 5 GiB sparse file fast when both trees support
 * SEEK_DATA.
 */
static int compare_fds(struct ctx *c, const char *path, int fa, int fb, off_t size)
{
	off_t off = 0, da = 0, ea = 0, db = 0, eb = 0;
	int r;

	while (off < size) {
		bool ha, hb;
		off_t end, lim;
		size_t len, k;

		if (off >= ea) {
			r = next_data(fa, off, size, &da, &ea);
			if (r < 0)
				return fail(path, "lseek (A)", r);
		}
		if (off >= eb) {
			r = next_data(fb, off, size, &db, &eb);
			if (r < 0)
				return fail(path, "lseek (B)", r);
		}
		ha = off < da;
		hb = off < db;
		if (ha && hb) {
			off = da < db ? da : db;
			continue;
		}
		end = size - off > CHUNK ? off + CHUNK : size;
		lim = ha ? da : ea;
		if (lim > off && lim < end)
			end = lim;
		lim = hb ? db : eb;
		if (lim > off && lim < end)
			end = lim;
		len = (size_t)(end - off);

		if (!ha) {
			r = pread_full(fa, c->buf_a, len, off);
			if (r < 0)
				return fail(path, "read (A)", r);
		}
		if (!hb) {
			r = pread_full(fb, c->buf_b, len, off);
			if (r < 0)
				return fail(path, "read (B)", r);
		}
		if (ha)
			k = first_nonzero(c->buf_b, len);
		else if (hb)
			k = first_nonzero(c->buf_a, len);
		else
			k = first_diff(c->buf_a, c->buf_b, len);
		if (k < len) {
			report(c, path, "content differs at offset %jd (A=0x%02x B=0x%02x)",
			       (intmax_t)(off + (off_t)k),
			       ha ? 0 : c->buf_a[k], hb ? 0 : c->buf_b[k]);
			return 0;
		}
		off = end;
	}
	return 0;
}

static int compare_content(struct ctx *c, int dir_a, int dir_b, const char *name,
			   const char *path, off_t size)
{
	const int fl = O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC;
	int fa, fb, r;

	fa = openat(dir_a, name, fl);
	if (fa < 0)
		return fail(path, "open (A)", -errno);
	fb = openat(dir_b, name, fl);
	if (fb < 0) {
		r = -errno;
		close(fa);
		return fail(path, "open (B)", r);
	}
	r = compare_fds(c, path, fa, fb, size);
	close(fa);
	close(fb);
	return r;
}

/* ------------------------------------------------------------ symlinks */

static int read_link(int dirfd, const char *name, char **out, size_t *outlen)
{
	size_t sz = PATH_MAX;

	*out = NULL;
	*outlen = 0;
	for (;;) {
		char *b = malloc(sz);
		ssize_t n;

		if (!b)
			return -ENOMEM;
		n = readlinkat(dirfd, name, b, sz);
		if (n < 0) {
			int e = errno;

			free(b);
			return -e;
		}
		/* A full buffer may mean truncation: retry bigger. */
		if ((size_t)n < sz) {
			*out = b;
			*outlen = (size_t)n;
			return 0;
		}
		free(b);
		if (sz >= LINK_MAX_SZ)
			return -ENAMETOOLONG;
		sz *= 2;
	}
}

static int compare_links(struct ctx *c, int dir_a, int dir_b, const char *name,
			 const char *path)
{
	char *ta, *tb;
	size_t la, lb;
	int r;

	r = read_link(dir_a, name, &ta, &la);
	if (r < 0)
		return fail(path, "readlink (A)", r);
	r = read_link(dir_b, name, &tb, &lb);
	if (r < 0) {
		free(ta);
		return fail(path, "readlink (B)", r);
	}
	if (la != lb || memcmp(ta, tb, la)) {
		char ea[ESC_SZ], eb[ESC_SZ];
		size_t k = first_diff((unsigned char *)ta, (unsigned char *)tb,
				      la < lb ? la : lb);

		esc_buf(ea, ta, la);
		esc_buf(eb, tb, lb);
		report(c, path, "symlink target differs at byte %zu (A=\"%s\" B=\"%s\")",
		       k, ea, eb);
	}
	free(ta);
	free(tb);
	return 0;
}

/* ---------------------------------------------------------------- walk */

static void compare_meta(struct ctx *c, const char *path,
			 const struct stat *a, const struct stat *b)
{
	mode_t t = a->st_mode & S_IFMT;

	if ((a->st_mode & 07777) != (b->st_mode & 07777))
		report(c, path, "mode differs (A=%04o B=%04o)",
		       (unsigned)(a->st_mode & 07777), (unsigned)(b->st_mode & 07777));
	if (a->st_uid != b->st_uid)
		report(c, path, "uid differs (A=%ju B=%ju)",
		       (uintmax_t)a->st_uid, (uintmax_t)b->st_uid);
	if (a->st_gid != b->st_gid)
		report(c, path, "gid differs (A=%ju B=%ju)",
		       (uintmax_t)a->st_gid, (uintmax_t)b->st_gid);
	if (a->st_mtim.tv_sec != b->st_mtim.tv_sec ||
	    a->st_mtim.tv_nsec != b->st_mtim.tv_nsec)
		report(c, path, "mtime differs (A=%jd.%09ld B=%jd.%09ld)",
		       (intmax_t)a->st_mtim.tv_sec, (long)a->st_mtim.tv_nsec,
		       (intmax_t)b->st_mtim.tv_sec, (long)b->st_mtim.tv_nsec);
	/* Other types: check_links() and check_nlinks(). */
	if (t == S_IFDIR && !c->skip_nlink_dirs && a->st_nlink != b->st_nlink)
		report(c, path, "nlink differs (A=%ju B=%ju)",
		       (uintmax_t)a->st_nlink, (uintmax_t)b->st_nlink);
	/* Directory sizes are an artefact of the on-disk format. */
	if (t != S_IFDIR && a->st_size != b->st_size)
		report(c, path, "size differs (A=%jd B=%jd)",
		       (intmax_t)a->st_size, (intmax_t)b->st_size);
	if ((t == S_IFCHR || t == S_IFBLK) && a->st_rdev != b->st_rdev)
		report(c, path, "rdev differs (A=%u:%u B=%u:%u)",
		       major(a->st_rdev), minor(a->st_rdev),
		       major(b->st_rdev), minor(b->st_rdev));
}

static int compare_dir(struct ctx *c, int dir_a, int dir_b, const char *path);

static char *join_path(const char *dir, const char *name)
{
	char *p;

	if (!strcmp(dir, "."))
		return strdup(name);
	if (asprintf(&p, "%s/%s", dir, name) < 0)
		return NULL;
	return p;
}

/*
 * Compares one entry present on both sides. name == NULL means the two
 * roots, whose fds are dir_a/dir_b themselves.
 */
static int compare_entry(struct ctx *c, int dir_a, int dir_b, const char *name,
			 const char *path)
{
	struct stat sa, sb;
	bool is_root = !name;
	bool seen = false;
	mode_t t;
	int r;

	c->entries++;
	r = is_root ? fstat(dir_a, &sa) : fstatat(dir_a, name, &sa, AT_SYMLINK_NOFOLLOW);
	if (r < 0)
		return fail(path, "stat (A)", -errno);
	r = is_root ? fstat(dir_b, &sb) : fstatat(dir_b, name, &sb, AT_SYMLINK_NOFOLLOW);
	if (r < 0)
		return fail(path, "stat (B)", -errno);

	t = sa.st_mode & S_IFMT;
	if (t != (sb.st_mode & S_IFMT)) {
		report(c, path, "type differs (A=%s B=%s)",
		       type_name(sa.st_mode), type_name(sb.st_mode));
		/* Still a name of A's inode, for its expected link count. */
		if (t != S_IFDIR)
			return check_links(c, path, &sa, NULL, &seen);
		return 0;
	}

	if (!(is_root && c->no_root_meta)) {
		struct xsrc xa = { dir_a, name }, xb = { dir_b, name };

		compare_meta(c, path, &sa, &sb);
		if (t != S_IFDIR) {
			r = check_links(c, path, &sa, &sb, &seen);
			if (r < 0)
				return r;
		}
		if (!seen) {
			r = compare_xattrs(c, path, &xa, &xb);
			if (r < 0)
				return r;
		}
	}

	if (t == S_IFREG && !seen && sa.st_size == sb.st_size)
		return compare_content(c, dir_a, dir_b, name, path, sa.st_size);
	if (t == S_IFLNK)
		return compare_links(c, dir_a, dir_b, name, path);
	if (t == S_IFDIR) {
		const int fl = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
		int ca, cb;

		if (is_root)
			return compare_dir(c, dir_a, dir_b, path);
		ca = openat(dir_a, name, fl);
		if (ca < 0)
			return fail(path, "open directory (A)", -errno);
		cb = openat(dir_b, name, fl);
		if (cb < 0) {
			r = -errno;
			close(ca);
			return fail(path, "open directory (B)", r);
		}
		r = compare_dir(c, ca, cb, path);
		close(ca);
		close(cb);
		return r;
	}
	return 0;
}

static int report_only(struct ctx *c, int dirfd, const char *name,
		       const char *path, bool is_a)
{
	const char *side = is_a ? "A" : "B";
	struct stat st;

	c->entries++;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return fail(path, "stat", -errno);
	report(c, path, "only in %s (%s)", side, type_name(st.st_mode));
	/* Still a name of A's inode, for its expected link count. */
	if (is_a && !S_ISDIR(st.st_mode)) {
		bool seen;

		return check_links(c, path, &st, NULL, &seen);
	}
	return 0;
}

/* Merge walk over the two sorted name lists. Entries present on one side
 * only are reported once; their subtrees are not descended into. */
static int compare_dir(struct ctx *c, int dir_a, int dir_b, const char *path)
{
	struct names na = { 0 }, nb = { 0 };
	size_t i = 0, j = 0;
	int r;

	r = names_read(dir_a, path, &na);
	if (r < 0)
		return r;
	r = names_read(dir_b, path, &nb);
	if (r < 0) {
		names_free(&na);
		return r;
	}
	while (i < na.n || j < nb.n) {
		const char *nm;
		char *child;
		int d;

		if (i == na.n)
			d = 1;
		else if (j == nb.n)
			d = -1;
		else
			d = strcmp(na.v[i], nb.v[j]);
		nm = d <= 0 ? na.v[i] : nb.v[j];
		child = join_path(path, nm);
		if (!child) {
			r = fail(path, "path", -ENOMEM);
			break;
		}
		if (d < 0) {
			r = report_only(c, dir_a, nm, child, true);
			i++;
		} else if (d > 0) {
			r = report_only(c, dir_b, nm, child, false);
			j++;
		} else {
			r = compare_entry(c, dir_a, dir_b, nm, child);
			i++;
			j++;
		}
		free(child);
		if (r < 0)
			break;
	}
	names_free(&na);
	names_free(&nb);
	return r;
}

/* ---------------------------------------------------------------- main */

/* The walk holds two directory fds per level, so the common soft limit of
 * 1024 would cap comparable depth at ~500 levels. */
static int raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -errno;
	if (rl.rlim_cur == rl.rlim_max)
		return 0;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		return -errno;
	return 0;
}

static void usage(FILE *f)
{
	fputs("usage: treecmp [-q] [--no-root-meta] [--skip-nlink-dirs] A B\n"
	      "  -q, --quiet         print only the summary line\n"
	      "  --no-root-meta      ignore metadata and xattrs of A and B themselves\n"
	      "  --skip-nlink-dirs   ignore link counts of directories\n"
	      "exit status: 0 identical, 1 different, 2 error\n", f);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "quiet", no_argument, NULL, 'q' },
		{ "no-root-meta", no_argument, NULL, 'R' },
		{ "skip-nlink-dirs", no_argument, NULL, 'N' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct ctx c = { 0 };
	int opt, fa, fb, r, status;

	while ((opt = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
		switch (opt) {
		case 'q': c.quiet = true; break;
		case 'R': c.no_root_meta = true; break;
		case 'N': c.skip_nlink_dirs = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (argc - optind != 2) {
		usage(stderr);
		return 2;
	}

	r = raise_nofile();
	if (r < 0)
		fprintf(stderr, "treecmp: warning: cannot raise fd limit: %s\n", strerror(-r));
	if (access("/proc/self/fd", X_OK) < 0) {
		fprintf(stderr, "treecmp: /proc/self/fd: %s (procfs must be mounted)\n",
			strerror(errno));
		return 2;
	}
	fa = open(argv[optind], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fa < 0) {
		fail(argv[optind], "open", -errno);
		return 2;
	}
	fb = open(argv[optind + 1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fb < 0) {
		fail(argv[optind + 1], "open", -errno);
		close(fa);
		return 2;
	}
	c.buf_a = malloc(CHUNK);
	c.buf_b = malloc(CHUNK);
	if (!c.buf_a || !c.buf_b) {
		fprintf(stderr, "treecmp: out of memory\n");
		r = -ENOMEM;
	} else {
		r = compare_entry(&c, fa, fb, NULL, ".");
		if (r >= 0)
			r = check_nlinks(&c);
	}

	close(fa);
	close(fb);
	free(c.buf_a);
	free(c.buf_b);
	inomap_free(&c.a2b);
	inomap_free(&c.b2a);

	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, "treecmp: writing output: %s\n", strerror(errno));
		r = r < 0 ? r : -EIO;
	}
	fprintf(stderr, "treecmp: %llu entries compared, %llu differences%s\n",
		c.entries, c.diffs, r < 0 ? " (aborted on error)" : "");
	if (r < 0)
		status = 2;
	else
		status = c.diffs ? 1 : 0;
	return status;
}
