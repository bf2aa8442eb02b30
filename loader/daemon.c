/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"
#include "daemon.h"
#include "prefetch.h"
#include "trace.h"

#include "../format/check.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const double ld_hist_bounds[LD_HIST_BUCKETS - 1] = {
	5e-6, 10e-6, 20e-6, 50e-6, 100e-6, 200e-6, 500e-6, 1e-3, 2e-3, 5e-3,
	10e-3, 50e-3, 100e-3, 1.0,
};

void ld_hist_observe(struct ld_hist *h, double seconds)
{
	unsigned int i = 0;

	while (i < LD_HIST_BUCKETS - 1 && seconds > ld_hist_bounds[i])
		i++;
	atomic_fetch_add(&h->b[i], 1);
	atomic_fetch_add(&h->count, 1);
	atomic_fetch_add(&h->sum_ns, (uint64_t)(seconds * 1e9));
}

void ld_log(const struct ld_daemon *d, int level, const char *fmt, ...)
{
	static const char *names[] = { "error", "warn", "info", "debug" };
	va_list ap;

	if (level > d->cfg.log_level)
		return;
	flockfile(stderr);
	fprintf(stderr, "skiffd: %s: ", names[level]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	funlockfile(stderr);
}

struct ld_image *ld_image_find(struct ld_daemon *d, const char *id)
{
	for (struct ld_image *i = d->images; i; i = i->next)
		if (!strcmp(i->id, id))
			return i;
	return NULL;
}

void ld_img_counters_put(struct ld_daemon *d, struct ld_img_counters *ic)
{
	if (ic && atomic_fetch_sub(&ic->refs, 1) == 1) {
		ld_counters_add(&d->retired, &ic->c);
		free(ic);
	}
}

static void source_put(struct ld_daemon *d, struct be_source *src);

/* What an image owns, once nothing uses it (its counters aside). */
static void image_free(struct ld_daemon *d, struct ld_image *im)
{
	free(im->blobs);
	free(im->refs);
	if (im->bs_buf)
		munmap(im->bs_buf, im->bootstrap_size);
	source_put(d, im->src);
	free(im);
}

void ld_image_hold(struct ld_image *im)
{
	atomic_fetch_add(&im->users, 1);
}

void ld_image_put(struct ld_daemon *d, struct ld_image *im)
{
	if (!im || atomic_fetch_sub(&im->users, 1) != 1)
		return;
	/* the counters too: an object opening a blob takes its reference
	 * on them from an image it holds, unregistered meanwhile or not */
	ld_img_counters_put(d, im->icnt);
	image_free(d, im);
}

struct ld_blob_file *ld_file_by_inode(struct ld_daemon *d, dev_t dev, ino_t ino)
{
	struct ld_blob_file *found = NULL;

	pthread_mutex_lock(&d->lock);
	for (struct ld_blob_file *f = d->files; f; f = f->next)
		if (f->dev == dev && f->ino == ino) {
			found = f;
			f->refs++;	/* an unmount meanwhile must not free it */
			break;
		}
	pthread_mutex_unlock(&d->lock);
	return found;
}

static int valid_id(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > 120)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)id[i]) && !strchr("._-", id[i]))
			return 0;
	return id[0] != '.';
}

/*
 * The source of reference r's location with a reference taken for the
 * caller (source_put() gives it back): the daemon's one for that location,
 * or a new one. Every image and every cache file holds one on the source
 * it reads from; the last put closes the source and its transport's
 * threads, so failed registrations and unmounted images leave nothing.
 */
static struct be_source *source_get(struct ld_daemon *d, const struct be_ref *r,
				    struct sk_err *e)
{
	struct ld_source_ent *s;
	struct be_source *src = NULL;

	pthread_mutex_lock(&d->src_lock);
	for (s = d->sources; s; s = s->next)
		if (!strcmp(s->dir, r->loc)) {
			s->refs++;
			src = s->src;
			goto out;
		}
	/* network sources keep the manifests they fetch here */
	if (!d->cfg.backend.manifest_dir[0] &&
	    sk_path_join(d->cfg.backend.manifest_dir, sizeof(d->cfg.backend.manifest_dir),
			 d->cfg.work_dir, "manifests"))
		d->cfg.backend.manifest_dir[0] = '\0';
	s = calloc(1, sizeof(*s));
	if (!s) {
		sk_err_set(e, "out of memory");
		goto out;
	}
	snprintf(s->dir, sizeof(s->dir), "%s", r->loc);
	if (be_source_open(r, &d->cfg.backend, &s->src, e)) {
		free(s);
		goto out;
	}
	s->refs = 1;
	s->next = d->sources;
	d->sources = s;
	src = s->src;
out:
	pthread_mutex_unlock(&d->src_lock);
	return src;
}

/* Another reference on src, which the caller holds one on already. */
static struct be_source *source_hold(struct ld_daemon *d, struct be_source *src)
{
	pthread_mutex_lock(&d->src_lock);
	for (struct ld_source_ent *s = d->sources; s; s = s->next)
		if (s->src == src)
			s->refs++;
	pthread_mutex_unlock(&d->src_lock);
	return src;
}

static void source_put(struct ld_daemon *d, struct be_source *src)
{
	struct ld_source_ent **pp, *s = NULL;

	if (!src)
		return;
	pthread_mutex_lock(&d->src_lock);
	for (pp = &d->sources; *pp; pp = &(*pp)->next)
		if ((*pp)->src == src) {
			if (--(*pp)->refs == 0) {
				s = *pp;
				*pp = s->next;
			}
			break;
		}
	pthread_mutex_unlock(&d->src_lock);
	/* no reference left, so no read is inside it */
	if (s) {
		be_source_destroy(s->src);
		free(s);
	}
}

static void file_unlist(struct ld_blob_file **head, struct ld_blob_file *f)
{
	for (struct ld_blob_file **pp = head; *pp; pp = &(*pp)->next)
		if (*pp == f) {
			*pp = f->next;
			return;
		}
}

/*
 * Drops a reference on f (an image's, or a read's being served), under
 * d->lock. The last one takes the
 * file out of use there: unwatches it first (no new event names it; one
 * already queued finds no file by its inode and is denied), then moves it
 * from d->files to d->closing, and returns it: the caller must hand it to
 * file_close() once it has let go of d->lock. NULL while others use it.
 */
static struct ld_blob_file *file_put(struct ld_daemon *d, struct ld_blob_file *f)
{
	if (--f->refs)
		return NULL;
	if (f->marked && d->fe)
		d->fe->ops->unwatch(d->fe, f);
	file_unlist(&d->files, f);
	f->next = d->closing;
	d->closing = f;
	return f;
}

/*
 * Finishes what file_put() started; called without d->lock (NULL: no-op).
 * Closing waits for the blob's read-ahead windows, each a backend fetch
 * that a stalled source may hold until the transport gives up: under
 * d->lock, which every fanotify event, status and /metrics take, that
 * would stall every other image's reads. The windows still count into
 * f's counters meanwhile, and /metrics sums d->closing, so the file is
 * counted all along; its counters move to d->retired in the same d->lock
 * section that unlists it, so no sample sees them twice or not at all.
 */
static void file_close(struct ld_daemon *d, struct ld_blob_file *f)
{
	if (!f)
		return;
	ld_cache_close(&f->cache);	/* waits for read-ahead windows */
	pthread_mutex_lock(&d->lock);
	file_unlist(&d->closing, f);
	ld_counters_add(&d->retired, f->cache.cnt);
	pthread_mutex_unlock(&d->lock);
	close(f->fd);
	source_put(d, f->src);
	free(f);
}

struct later_job {
	struct sk_job job;
	struct ld_daemon *d;
	void (*fn)(struct ld_daemon *d, void *arg);
	void *arg;
};

static void later_fn(struct sk_job *job)
{
	struct later_job *l = (struct later_job *)job;

	l->fn(l->d, l->arg);
	free(l);
}

void ld_run_later(struct ld_daemon *d, void (*fn)(struct ld_daemon *d, void *arg),
		  void *arg)
{
	struct later_job *l = d->pool ? calloc(1, sizeof(*l)) : NULL;

	if (!l) {
		fn(d, arg);
		return;
	}
	*l = (struct later_job){ .d = d, .fn = fn, .arg = arg };
	l->job.fn = later_fn;
	l->job.detached = true;	/* later_fn frees l */
	sk_pool_submit(d->pool, &l->job);
}

static void file_close_later(struct ld_daemon *d, void *f)
{
	file_close(d, f);
}

void ld_file_release(struct ld_daemon *d, struct ld_blob_file *f)
{
	struct ld_blob_file *last;

	pthread_mutex_lock(&d->lock);
	last = file_put(d, f);
	pthread_mutex_unlock(&d->lock);
	/* the image went while the read was served. Closing waits for
	 * read-ahead windows: never on the caller, which may be the
	 * frontend's event thread */
	if (last)
		ld_run_later(d, file_close_later, last);
}

const char *ld_table_path(const struct ld_daemon *d, const struct fmt_blob_ref *ref,
			  char *out, size_t outlen)
{
	char rel[16 + SK_HEX_LEN];

	memcpy(rel, "tables/", 7);
	sk_hex(ref->table_digest, SK_SHA256_LEN, rel + 7);
	return sk_path_join(out, outlen, d->cfg.cache_dir, rel) ? NULL : out;
}

/*
 * The network half of a blob's cache file, done holding no lock: a file
 * linked nowhere yet, with its chunk table read and verified (from
 * cache_dir/tables when kept there, else from the source, then kept).
 * file_get() links it, or drops it when the blob is linked already.
 */
static int file_prepare(struct ld_daemon *d, const struct fmt_blob_ref *ref,
			struct be_source *src, struct ld_blob_file **out,
			struct sk_err *e)
{
	char rel[16 + LD_CACHE_NAME_LEN], tpath[PATH_MAX];
	struct ld_blob_file *f = calloc(1, sizeof(*f));
	int ret;

	if (!f)
		return -ENOMEM;
	f->fd = -1;
	f->src = source_hold(d, src);
	memcpy(rel, "blobs/", 6);
	ld_cache_name(ref, rel + 6);
	ret = sk_path_join(f->path, sizeof(f->path), d->cfg.cache_dir, rel);
	if (ret)
		sk_err_set(e, "%s: path too long", d->cfg.cache_dir);
	else
		ret = ld_cache_open_kept(&f->cache, ref, src, d->cfg.merge_limit,
					 ld_table_path(d, ref, tpath, sizeof(tpath)), e);
	if (ret) {
		source_put(d, f->src);
		free(f);
		return ret;
	}
	*out = f;
	return 0;
}

/* Drops a prepared file that was never linked (NULL: nothing). */
static void file_discard(struct ld_daemon *d, struct ld_blob_file *f)
{
	if (!f)
		return;
	ld_cache_close(&f->cache);
	source_put(d, f->src);
	free(f);
}

/* Whether f caches blob ref as its table describes it (cache.h: a blob
 * id alone names no content). */
static bool same_cache(const struct ld_blob_file *f, const struct fmt_blob_ref *ref)
{
	return !strcmp(f->cache.hex, ref->hex) &&
	       !memcmp(f->cache.table.table_digest, ref->table_digest, SK_SHA256_LEN);
}

/*
 * Takes a reference on blob `ref`'s linked cache file, dropping `prep`,
 * or else links `prep` (from file_prepare()): opens the sparse file,
 * finds what it holds, watches it. Local work only, under d->lock; takes
 * `prep` over in every case.
 */
static int file_get(struct ld_daemon *d, const struct fmt_blob_ref *ref,
		    struct ld_blob_file *prep, struct ld_blob_file **out,
		    struct sk_err *e)
{
	struct ld_blob_file *f;
	struct stat st;
	int ret;

	for (f = d->files; f; f = f->next)
		if (same_cache(f, ref)) {
			f->refs++;
			*out = f;
			file_discard(d, prep);
			return 0;
		}
	for (f = d->closing; f; f = f->next)
		if (same_cache(f, ref)) {
			/* its windows may still write the file: a second cache
			 * of it would scan half-written chunks. The API's
			 * api_lock spans a whole unregistration, so this is a
			 * guard, not a path */
			sk_err_set(e, "blob %s is still being closed: try again", ref->hex);
			file_discard(d, prep);
			return -EBUSY;
		}
	f = prep;
	f->cache.rings = d->rings;
	f->cache.bufs = d->bufs;
	f->cache.pool = d->pool;
	f->cache.readahead = d->cfg.readahead;
	f->fd = open(f->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (f->fd < 0 || fstat(f->fd, &st) < 0) {
		ret = -errno;
		sk_err_set(e, "%s: %s", f->path, strerror(errno));
		goto fail;
	}
	if ((uint64_t)st.st_size != ref->usize) {
		/* new, or not ours: start from an empty sparse file */
		if (ftruncate(f->fd, 0) < 0 ||
		    ftruncate(f->fd, (off_t)ref->usize) < 0) {
			ret = -errno;
			sk_err_set(e, "%s: %s", f->path, strerror(errno));
			goto fail;
		}
	}
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	/* f->fd is opened before the file is marked: its writes raise no
	 * events (and dispatch() lets skiffd's own through anyway) */
	f->cache.bg_fd = f->fd;
	f->cache.bg_pool = d->ra_pool;
	f->cache.ahead = d->cfg.ahead;
	f->cache.sees_reads = true;	/* fanotify: every read raises an event */
	/* a restart trusts only chunks recorded as verified (cache.h) */
	ret = ld_cache_record_open(&f->cache, d->cfg.cache_dir, NULL, e);
	if (ret)
		goto fail;
	ld_cache_scan(&f->cache, f->fd);
	f->refs = 1;
	if (!ld_cache_complete(&f->cache) && d->fe) {
		ret = d->fe->ops->watch(d->fe, f);
		if (ret) {
			sk_err_set(e, "%s: cannot watch: %s", f->path, strerror(-ret));
			goto fail;
		}
	}
	f->next = d->files;
	d->files = f;
	*out = f;
	return 0;
fail:
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
	file_discard(d, f);
	return ret;
}

/* Stored bytes of the bootstrap read from a source at once: the memory a
 * registration needs whatever size a manifest claims. Most bootstraps fit
 * in one piece, one range request. */
#define BS_PIECE (8u << 20)

/*
 * Maps `path` read-only if it holds exactly `size` bytes whose SHA-256 is
 * `hex`. -ENOENT: no such file; -EBADMSG: another content.
 */
static int bs_map_verified(const char *path, uint64_t size, const char *hex,
			   void **out)
{
	char got[SK_HEX_LEN + 1];
	uint8_t dg[SK_SHA256_LEN];
	struct stat st;
	void *p;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), ret = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		ret = -errno;
	else if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != size || !size)
		ret = -EBADMSG;
	if (ret) {
		close(fd);
		return ret;
	}
	p = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
	ret = p == MAP_FAILED ? -errno : 0;
	close(fd);
	if (ret)
		return ret;
	sk_sha256(p, (size_t)size, dg);
	sk_hex(dg, sizeof(dg), got);
	if (strcmp(got, hex)) {
		munmap(p, (size_t)size);
		return -EBADMSG;
	}
	*out = p;
	return 0;
}

/*
 * Streams the bootstrap from src into `path` in BS_PIECE pieces, hashing
 * on the way; the file appears under its name only once the digest
 * matches the manifest, so a half-read or lying bootstrap never lands.
 */
static int bs_fetch(struct be_source *src, const struct be_image *bi,
		    const char *path, struct sk_err *e)
{
	const char *hex = bi->bootstrap.hex;
	uint64_t size = bi->bootstrap.size;
	size_t plen = (size_t)SK_MIN((uint64_t)BS_PIECE, size);
	char tmp[PATH_MAX] = "", got[SK_HEX_LEN + 1];
	uint8_t dg[SK_SHA256_LEN];
	struct sk_sha256_ctx h = { 0 };
	uint8_t *piece = malloc(plen ? plen : 1);
	int fd = -1, ret;

	if (!piece)
		return -ENOMEM;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d.%d", path, (int)getpid(),
		     (int)gettid()) >= (int)sizeof(tmp)) {
		tmp[0] = '\0';
		sk_err_set(e, "%s: path too long", path);
		ret = -ENAMETOOLONG;
		goto out;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		ret = -errno;
		sk_err_set(e, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	ret = sk_sha256_init(&h);
	for (uint64_t off = 0; !ret && off < size; off += plen) {
		size_t n = (size_t)SK_MIN((uint64_t)plen, size - off);

		ret = be_source_read(src, hex, off, piece, n);
		if (ret) {
			sk_err_set(e, "bootstrap %s from %s: %s", hex, src->desc,
				   strerror(-ret));
			break;
		}
		sk_sha256_update(&h, piece, n);
		ret = sk_write_full(fd, piece, n);
		if (ret)
			sk_err_set(e, "%s: %s", tmp, strerror(-ret));
	}
	if (h.md) {
		sk_sha256_final(&h, dg);
		sk_sha256_free(&h);
		sk_hex(dg, sizeof(dg), got);
		if (!ret && strcmp(got, hex)) {
			sk_err_set(e, "bootstrap %s from %s: digest does not match the manifest",
				   hex, src->desc);
			ret = -EBADMSG;
		}
	}
	if (!ret && fsync(fd) < 0) {
		ret = -errno;
		sk_err_set(e, "%s: %s", tmp, strerror(errno));
	}
	if (close(fd) < 0 && !ret) {
		ret = -errno;
		sk_err_set(e, "%s: %s", tmp, strerror(errno));
	}
	fd = -1;
	if (!ret && rename(tmp, path) < 0) {
		ret = -errno;
		sk_err_set(e, "%s: %s", path, strerror(errno));
	}
out:
	if (ret && tmp[0])
		unlink(tmp);
	if (fd >= 0)
		close(fd);
	free(piece);
	return ret;
}

/*
 * The image's bootstrap, verified against the manifest: a read-only
 * mapping of its copy in cache_dir/bootstraps (what the kernel mounts in
 * fanotify mode; cachefiles mode copies it into the kernel's cache file
 * from the mapping). A copy a previous registration left costs no network
 * round trip once it verifies. On success *map (im->bootstrap_size bytes)
 * is the caller's to munmap; on failure nothing is left to free.
 */
static int load_bootstrap(struct ld_daemon *d, struct be_source *src,
			  const struct be_image *bi, struct ld_image *im,
			  void **map, struct sk_err *e)
{
	char rel[16 + SK_HEX_LEN];
	const char *hex = bi->bootstrap.hex;
	uint64_t size = bi->bootstrap.size;
	int ret;

	*map = NULL;
	snprintf(rel, sizeof(rel), "bootstraps/%s", hex);
	ret = sk_path_join(im->bootstrap_path, sizeof(im->bootstrap_path),
			   d->cfg.cache_dir, rel);
	if (ret) {
		sk_err_set(e, "%s: path too long", d->cfg.cache_dir);
		return ret;
	}
	/* a manifest's claim, checked before a byte is read or a file
	 * grows: the size is the digest's, so it cannot change later */
	if (size > d->cfg.max_bootstrap_size || size > SIZE_MAX) {
		sk_err_set(e, "bootstrap %s: the manifest says %llu bytes, over "
			   "max_bootstrap_size (%llu bytes; skiffd.json)", hex,
			   (unsigned long long)size,
			   (unsigned long long)d->cfg.max_bootstrap_size);
		return -EFBIG;
	}
	if (!size) {
		sk_err_set(e, "bootstrap %s: the manifest says 0 bytes", hex);
		return -EBADMSG;
	}
	if (bs_map_verified(im->bootstrap_path, size, hex, map) == 0)
		goto done;
	ret = bs_fetch(src, bi, im->bootstrap_path, e);
	if (ret)
		return ret;
	ret = bs_map_verified(im->bootstrap_path, size, hex, map);
	if (ret) {
		sk_err_set(e, "%s: changed under skiffd: %s", im->bootstrap_path,
			   strerror(-ret));
		return ret;
	}
done:
	im->bootstrap_size = size;
	return 0;
}

/* A newly mounted image starts fetching its prefetch list at once. */
static void auto_prefetch(struct ld_daemon *d, struct ld_image *im)
{
	struct sk_err e = { { 0 } };
	int ret;

	if (!d->cfg.prefetch_on_mount || !im->mountpoint[0])
		return;
	ret = ld_pf_image(d, im, false, 0, &e);
	if (ret && ret != -ENODATA && ret != -EOPNOTSUPP)
		ld_log(d, LD_LOG_WARN, "prefetch of %s: %s", im->id, e.msg);
}

static bool same_image(const struct ld_image *im, const char *manifest,
		       const char *domain)
{
	return !strcmp(im->manifest, manifest) && !strcmp(im->domain, domain);
}

/* Whether registering im again for mnt (NULL or "": no mount point) may
 * return im: a registration serves one mount point, so one mounted
 * elsewhere may not (its `skiff umount` would no longer find it). */
static bool free_for(const struct ld_image *im, const char *mnt)
{
	return !mnt || !*mnt || !im->mountpoint[0] || !strcmp(im->mountpoint, mnt);
}

/*
 * An image registered without an id is named after its manifest,
 * skiff-<16 hex>, and each further mount point of the same image gets a
 * registration of its own, skiff-<16 hex>-2, -3, ...: `skiff umount MNT`
 * unregisters exactly the one at MNT, and in cachefiles mode an fsid
 * mounts once. The cache files stay shared (file_get counts the users).
 * Returns the registration to give again (the one at mnt, else one
 * mounted nowhere), or NULL with the first free name in id.
 */
static struct ld_image *pick_generated(struct ld_daemon *d, const char *manifest,
				       const char *domain, const char *mnt,
				       char *id, size_t idlen)
{
	struct ld_image *reuse = NULL;
	char base[32];
	size_t blen = (size_t)snprintf(base, sizeof(base), "skiff-%.16s", manifest);

	for (struct ld_image *im = d->images; im; im = im->next) {
		if (strncmp(im->id, base, blen) ||
		    (im->id[blen] && im->id[blen] != '-') ||
		    !same_image(im, manifest, domain) || !free_for(im, mnt))
			continue;
		if (mnt && *mnt && !strcmp(im->mountpoint, mnt))
			return im;
		if (!reuse)
			reuse = im;
	}
	if (reuse)
		return reuse;
	/* ends: a name is taken by at most one of the finitely many images */
	for (unsigned int n = 1;; n++) {
		if (n == 1)
			snprintf(id, idlen, "%s", base);
		else
			snprintf(id, idlen, "%s-%u", base, n);
		if (!ld_image_find(d, id))
			return NULL;
	}
}

/*
 * Whether im (not registered) is registered already (under d->lock):
 * *old is the registration to give again, or NULL when im is new; with
 * a generated id, im->id gets the first free name. -EEXIST when im's id
 * is taken by another image or mounted elsewhere.
 */
static int find_registered(struct ld_daemon *d, struct ld_image *im, bool gen_id,
			   struct ld_image **old, struct sk_err *e)
{
	if (gen_id) {
		*old = pick_generated(d, im->manifest, im->domain, im->mountpoint,
				      im->id, sizeof(im->id));
		return 0;
	}
	*old = ld_image_find(d, im->id);
	if (*old && !same_image(*old, im->manifest, im->domain)) {
		sk_err_set(e, "id %s is registered for another image", im->id);
		return -EEXIST;
	}
	if (*old && !free_for(*old, im->mountpoint)) {
		sk_err_set(e, "id %s is mounted at %s: unmount it there first, "
			   "or give this mount another id", im->id, (*old)->mountpoint);
		return -EEXIST;
	}
	return 0;
}

/* An image read from its source, not registered yet (ld_image_fetch). */
struct ld_image_new {
	struct ld_image *im;		/* owned, linked nowhere, no blob file yet */
	bool gen_id;			/* im->id is named in ld_image_add() */
	unsigned int count;		/* blobs */
	/* owned, per blob: its cache file from file_prepare() (fanotify
	 * mode; NULL in cachefiles mode, where the kernel has the files) */
	struct ld_blob_file **prep;
};

static void image_new_free(struct ld_daemon *d, struct ld_image_new *n)
{
	if (!n)
		return;
	for (unsigned int i = 0; n->prep && i < n->count; i++)
		file_discard(d, n->prep[i]);
	free(n->prep);
	if (n->im) {
		free(n->im->icnt);
		image_free(d, n->im);
	}
	free(n);
}

struct bs_check_ctx {
	struct ld_image_new *n;
	char first[256];	/* the first problem found */
};

static int bs_check_table(void *ctx, unsigned int blob, const struct fmt_blob_table **t,
			  struct sk_err *e)
{
	struct bs_check_ctx *c = ctx;

	(void)e;	/* every table of the image was read and verified */
	*t = &c->n->prep[blob]->cache.table;
	return 0;
}

static void bs_check_problem(void *ctx, const char *msg)
{
	struct bs_check_ctx *c = ctx;

	if (!c->first[0])
		snprintf(c->first, sizeof(c->first), "%s", msg);
}

/* fmt_bs_check() with the chunk tables file_prepare() read. */
static int check_bootstrap(struct fmt_bs *bs, struct ld_image_new *n,
			   const char *ref, struct sk_err *e)
{
	struct bs_check_ctx c = { .n = n };
	struct fmt_check ck = { .table = bs_check_table, .problem = bs_check_problem,
				.ctx = &c };
	int ret = fmt_bs_check(bs, &ck);

	if (ret == -EFSCORRUPTED)
		sk_err_set(e, "bootstrap of %s is damaged (%llu problem%s; skiff check "
			   "names them all): %s", ref, (unsigned long long)ck.problems,
			   ck.problems > 1 ? "s" : "", c.first);
	else if (ret)
		sk_err_set(e, "checking the bootstrap of %s: %s", ref, strerror(-ret));
	return ret;
}

int ld_image_fetch(struct ld_daemon *d, const char *ref, const char *id,
		   const char *domain, const char *mountpoint,
		   struct ld_image_new **out, struct sk_err *e)
{
	struct be_ref r;
	struct be_image bi;
	struct ld_image_new *n = NULL;
	struct ld_image *im, *old;
	struct fmt_bs bs;
	struct be_source *src;
	int ret, bs_open = 0;

	ret = be_ref_parse(ref, &r, e);
	if (ret)
		return ret;
	/* our reference keeps it while we use it without a lock */
	src = source_get(d, &r, e);
	if (!src)
		return -EINVAL;
	ret = src->ops->resolve(src, r.digest[0] ? r.digest : r.tag, &bi, e);
	if (ret) {
		source_put(d, src);
		return ret;
	}
	n = calloc(1, sizeof(*n));
	im = n ? calloc(1, sizeof(*im)) : NULL;
	if (!im) {
		source_put(d, src);
		free(n);
		be_image_free(&bi);
		return -ENOMEM;
	}
	n->im = im;
	im->src = src;	/* the image's reference now */
	im->users = 1;	/* the registration's */
	if (id && *id) {
		if (!valid_id(id)) {
			sk_err_set(e, "id \"%s\": use 1 to 120 of A-Z a-z 0-9 . _ -", id);
			ret = -EINVAL;
			goto out;
		}
		snprintf(im->id, sizeof(im->id), "%s", id);
	}
	n->gen_id = !im->id[0];
	if (domain && *domain) {
		if (!valid_id(domain)) {
			sk_err_set(e, "domain \"%s\": use 1 to 120 of A-Z a-z 0-9 . _ -", domain);
			ret = -EINVAL;
			goto out;
		}
		snprintf(im->domain, sizeof(im->domain), "%s", domain);
	}
	snprintf(im->ref, sizeof(im->ref), "%s", ref);
	if (mountpoint)
		snprintf(im->mountpoint, sizeof(im->mountpoint), "%s", mountpoint);
	memcpy(im->manifest, bi.manifest_hex, sizeof(im->manifest));
	if (!n->gen_id) {
		/* a taken id fails before the downloads (ld_image_add
		 * decides for good) */
		pthread_mutex_lock(&d->lock);
		ret = find_registered(d, im, false, &old, e);
		pthread_mutex_unlock(&d->lock);
		if (ret)
			goto out;
	}
	ret = load_bootstrap(d, src, &bi, im, &im->bs_buf, e);
	if (ret)
		goto out;
	ret = fmt_bs_open(&bs, im->bs_buf, im->bootstrap_size);
	if (ret) {
		sk_err_set(e, "bootstrap of %s: %s", ref, bs.err.msg);
		goto out;
	}
	bs_open = 1;
	if (bs.nblobs != bi.nblobs) {
		sk_err_set(e, "%s: manifest names %u blobs, bootstrap %u", ref,
			   bi.nblobs, bs.nblobs);
		ret = -EBADMSG;
		goto out;
	}
	im->blobs = calloc(bs.nblobs ? bs.nblobs : 1, sizeof(*im->blobs));
	im->refs = calloc(bs.nblobs ? bs.nblobs : 1, sizeof(*im->refs));
	im->icnt = calloc(1, sizeof(*im->icnt));
	n->prep = calloc(bs.nblobs ? bs.nblobs : 1, sizeof(*n->prep));
	if (!im->blobs || !im->refs || !im->icnt || !n->prep) {
		ret = -ENOMEM;
		goto out;
	}
	n->count = bs.nblobs;
	im->icnt->refs = 1;
	for (unsigned int i = 0; i < bs.nblobs; i++) {
		if (strcmp(bi.blobs[i].hex, bs.blobs[i].hex)) {
			sk_err_set(e, "%s: blob %u: manifest and bootstrap disagree", ref, i);
			ret = -EBADMSG;
			goto out;
		}
		im->refs[i] = bs.blobs[i];
		/* every chunk table now: in cachefiles mode too, where it is
		 * only kept (cache_dir/tables) for the kernel's OPEN to find,
		 * so that OPEN, on the frontend's one thread, never waits on
		 * the network */
		ret = file_prepare(d, &bs.blobs[i], src, &n->prep[i], e);
		if (ret)
			goto out;
	}
	/* the bootstrap's bytes are the manifest's, but the manifest is a
	 * source's word: judge the structure before the kernel parses it */
	ret = check_bootstrap(&bs, n, ref, e);
	if (ret)
		goto out;
	for (unsigned int i = 0; i < bs.nblobs; i++)
		if (!d->fe->ops->owns_cache_files) {
			file_discard(d, n->prep[i]);
			n->prep[i] = NULL;
		}
	*out = n;
	n = NULL;
out:
	image_new_free(d, n);
	if (bs_open)
		fmt_bs_close(&bs);
	be_image_free(&bi);
	return ret;
}

/*
 * Under d->lock: in cachefiles mode the kernel keeps one cache file per
 * blob id in a domain, and reads what it holds without asking, so two
 * images of one domain naming one blob id must describe it with the same
 * chunk table: an image claiming a blob id it does not have would
 * otherwise have its bytes read by the other. skiffd's own cache files
 * (fanotify) are named by the table too and never meet this.
 */
static int domain_conflict(struct ld_daemon *d, const struct ld_image *im,
			   unsigned int count, struct sk_err *e)
{
	if (!im->domain[0] || !d->fe || d->fe->ops->owns_cache_files)
		return 0;
	for (const struct ld_image *o = d->images; o; o = o->next) {
		if (strcmp(o->domain, im->domain))
			continue;
		for (unsigned int i = 0; i < count; i++)
			for (unsigned int k = 0; k < o->nblobs; k++)
				if (!strcmp(im->refs[i].hex, o->refs[k].hex) &&
				    memcmp(im->refs[i].table_digest, o->refs[k].table_digest,
					   SK_SHA256_LEN)) {
					sk_err_set(e, "blob %s: image %s of domain %s names it "
						   "with another chunk table", im->refs[i].hex,
						   o->id, im->domain);
					return -EEXIST;
				}
	}
	return 0;
}

int ld_image_add(struct ld_daemon *d, struct ld_image_new *n,
		 struct ld_image **out, struct sk_err *e)
{
	struct ld_image *im = n->im, *old, *fresh = NULL;
	int ret;

	pthread_mutex_lock(&d->lock);
	/* decided here, whatever the fetch saw: registrations of the same
	 * image or id may have come (or gone) while it waited */
	ret = find_registered(d, im, n->gen_id, &old, e);
	if (ret)
		goto unlock;
	if (old) {
		/* the same image again: registering is idempotent */
		if (im->mountpoint[0])
			snprintf(old->mountpoint, sizeof(old->mountpoint), "%s", im->mountpoint);
		*out = old;
		goto unlock;
	}
	ret = domain_conflict(d, im, n->count, e);
	if (ret)
		goto unlock;
	for (unsigned int i = 0; i < n->count; i++) {
		if (n->prep[i]) {
			ret = file_get(d, &im->refs[i], n->prep[i], &im->blobs[i], e);
			n->prep[i] = NULL;	/* taken over */
			if (ret)
				break;
		}
		im->nblobs++;
	}
	if (ret) {
		/* im->blobs[i] becomes the file to close, or NULL */
		for (unsigned int i = 0; i < im->nblobs; i++)
			if (im->blobs[i])
				im->blobs[i] = file_put(d, im->blobs[i]);
		goto unlock;
	}
	im->next = d->images;
	d->images = im;
	*out = im;
	fresh = im;
	n->im = NULL;
unlock:
	pthread_mutex_unlock(&d->lock);
	if (ret)
		for (unsigned int i = 0; i < im->nblobs; i++)
			file_close(d, im->blobs[i]);
	image_new_free(d, n);
	if (!ret)
		ld_state_save(d);
	if (!ret && fresh)
		auto_prefetch(d, fresh);
	return ret;
}

int ld_image_register(struct ld_daemon *d, const char *ref, const char *id,
		      const char *domain, const char *mountpoint,
		      struct ld_image **out, struct sk_err *e)
{
	struct ld_image_new *n;
	int ret = ld_image_fetch(d, ref, id, domain, mountpoint, &n, e);

	return ret ? ret : ld_image_add(d, n, out, e);
}

int ld_image_unregister(struct ld_daemon *d, const char *id, struct sk_err *e)
{
	struct ld_image **pp, *im = NULL;

	pthread_mutex_lock(&d->lock);
	for (pp = &d->images; *pp; pp = &(*pp)->next)
		if (!strcmp((*pp)->id, id)) {
			im = *pp;
			*pp = im->next;
			break;
		}
	if (!im) {
		pthread_mutex_unlock(&d->lock);
		sk_err_set(e, "no image registered as %s", id);
		return -ENOENT;
	}
	pthread_mutex_unlock(&d->lock);
	/* unlinked, so nobody finds it; prefetch may still be inside it
	 * (and may take d->lock to unmark a complete blob) */
	ld_pf_cancel(d, im);
	pthread_mutex_lock(&d->lock);
	/* im->blobs[i] becomes the file to close, or NULL */
	for (unsigned int i = 0; i < im->nblobs; i++)
		if (im->blobs[i])
			im->blobs[i] = file_put(d, im->blobs[i]);
	if (im->trace)
		atomic_fetch_sub(&d->tracing, 1);
	ld_trace_free(im);
	pthread_mutex_unlock(&d->lock);
	/* outside d->lock: closing waits for read-ahead windows, which a
	 * stalled source holds (file_close) */
	for (unsigned int i = 0; i < im->nblobs; i++)
		file_close(d, im->blobs[i]);
	free(im->blobs);	/* closed files: nobody may look at them */
	im->blobs = NULL;
	/* cachefiles objects of a mount still up hold it until they close */
	ld_image_put(d, im);
	ld_state_save(d);
	return 0;
}

void ld_daemon_free_images(struct ld_daemon *d)
{
	while (d->images) {
		struct ld_image *im = d->images;

		d->images = im->next;
		pthread_mutex_lock(&d->lock);
		for (unsigned int i = 0; i < im->nblobs; i++)
			if (im->blobs[i])
				im->blobs[i] = file_put(d, im->blobs[i]);
		ld_trace_free(im);
		pthread_mutex_unlock(&d->lock);
		for (unsigned int i = 0; i < im->nblobs; i++)
			file_close(d, im->blobs[i]);
		ld_image_put(d, im);
	}
}

int ld_state_save(struct ld_daemon *d)
{
	json_t *arr = json_array();
	char p[PATH_MAX], *text;
	int ret;

	if (!arr)
		return -ENOMEM;
	pthread_mutex_lock(&d->lock);
	for (struct ld_image *im = d->images; im; im = im->next) {
		json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "id", im->id,
				      "ref", im->ref, "domain", im->domain,
				      "mountpoint", im->mountpoint);
		struct be_ref r;
		struct sk_err e;
		char pinned[PATH_MAX + 80];

		/* a network image restarts from the manifest it had (kept in
		 * the manifest cache), even when its tag moved or the
		 * registry is unreachable */
		if (o && be_ref_parse(im->ref, &r, &e) == 0 &&
		    be_ref_pin(&r, im->manifest, pinned, sizeof(pinned)) == 0)
			json_object_set_new(o, "pinned", json_string(pinned));
		json_array_append_new(arr, o);
	}
	pthread_mutex_unlock(&d->lock);
	text = json_dumps(arr, JSON_INDENT(2) | JSON_SORT_KEYS);
	json_decref(arr);
	if (!text)
		return -ENOMEM;
	ret = sk_path_join(p, sizeof(p), d->cfg.work_dir, "images.json");
	if (!ret)
		ret = sk_write_file_atomic(p, text, strlen(text));
	free(text);
	if (ret)
		ld_log(d, LD_LOG_ERROR, "saving %s: %s", p, strerror(-ret));
	return ret;
}

int ld_state_parse(const char *text, size_t len,
		   int (*cb)(void *ctx, const struct ld_state_ent *ent), void *ctx,
		   struct sk_err *e)
{
	json_error_t je;
	json_t *arr = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je), *v;
	size_t i;
	int ret = 0;

	if (!arr) {
		sk_err_set(e, "%s (line %d)", je.text, je.line);
		return -EINVAL;
	}
	if (!json_is_array(arr)) {
		sk_err_set(e, "not a JSON array");
		json_decref(arr);
		return -EINVAL;
	}
	json_array_foreach(arr, i, v) {
		struct ld_state_ent ent = {
			.index = i,
			.id = json_string_value(json_object_get(v, "id")),
			.ref = json_string_value(json_object_get(v, "ref")),
			.domain = json_string_value(json_object_get(v, "domain")),
			.mountpoint = json_string_value(json_object_get(v, "mountpoint")),
			.pinned = json_string_value(json_object_get(v, "pinned")),
		};

		/* what registration copies into fixed fields: a longer
		 * string is a damaged file, never a cut one */
		if (!ent.id || !ent.ref || strlen(ent.id) >= sizeof(((struct ld_image *)0)->id) ||
		    strlen(ent.ref) >= PATH_MAX ||
		    (ent.domain && strlen(ent.domain) >= sizeof(((struct ld_image *)0)->domain)) ||
		    (ent.mountpoint && strlen(ent.mountpoint) >= PATH_MAX) ||
		    (ent.pinned && strlen(ent.pinned) >= PATH_MAX))
			ent.bad = true;
		ret = cb(ctx, &ent);
		if (ret)
			break;
	}
	json_decref(arr);
	return ret;
}

static int restore_one(void *ctx, const struct ld_state_ent *ent)
{
	struct ld_daemon *d = ctx;
	const char *ref = ent->pinned ? ent->pinned : ent->ref;
	struct ld_image *im;
	struct sk_err e = { { 0 } };

	if (ent->bad) {
		ld_log(d, LD_LOG_WARN, "images.json: entry %zu has no id or ref, or too long a field",
		       ent->index);
		return 0;
	}
	if (ld_image_register(d, ref, ent->id, ent->domain, ent->mountpoint, &im, &e)) {
		ld_log(d, LD_LOG_ERROR, "restoring image %s: %s", ent->id, e.msg);
		return 0;
	}
	if (ent->pinned) {
		/* shown as the user named it */
		pthread_mutex_lock(&d->lock);
		snprintf(im->ref, sizeof(im->ref), "%s", ent->ref);
		pthread_mutex_unlock(&d->lock);
		ld_state_save(d);
	}
	ld_log(d, LD_LOG_INFO, "restored image %s (%s)", ent->id, ent->ref);
	return 0;
}

int ld_state_restore(struct ld_daemon *d)
{
	struct sk_err e = { { 0 } };
	char p[PATH_MAX];
	size_t len;
	void *text;
	int ret;

	if (sk_path_join(p, sizeof(p), d->cfg.work_dir, "images.json") ||
	    access(p, F_OK))
		return 0;
	/* a few hundred bytes an image: 64 MiB is far past any node */
	ret = sk_read_file(p, 64u << 20, &text, &len);
	if (ret) {
		ld_log(d, LD_LOG_ERROR, "%s: %s, starting empty", p, strerror(-ret));
		return 0;
	}
	if (ld_state_parse(text, len, restore_one, d, &e))
		ld_log(d, LD_LOG_ERROR, "%s: unreadable (%s), starting empty", p, e.msg);
	free(text);
	return 0;
}
