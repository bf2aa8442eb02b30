/* SPDX-License-Identifier: Apache-2.0 */
/*
 * skiffd's own cache files (fanotify mode), one per blob and chunk table,
 * shared by every image naming them: prepared without a lock (the chunk
 * table read and verified), linked under d->lock, counted, and closed
 * outside it once unused.
 */
#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
 * ld_file_close() once it has let go of d->lock. NULL while others use it.
 */
struct ld_blob_file *ld_file_put(struct ld_daemon *d, struct ld_blob_file *f)
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
 * Finishes what ld_file_put() started; called without d->lock (NULL: no-op).
 * Closing waits for the blob's read-ahead windows, each a backend fetch
 * that a stalled source may hold until the transport gives up: under
 * d->lock, which every fanotify event, status and /metrics take, that
 * would stall every other image's reads. The windows still count into
 * f's counters meanwhile, and /metrics sums d->closing, so the file is
 * counted all along; its counters move to d->retired in the same d->lock
 * section that unlists it, so no sample sees them twice or not at all.
 */
void ld_file_close(struct ld_daemon *d, struct ld_blob_file *f)
{
	if (!f)
		return;
	ld_cache_close(&f->cache);	/* waits for read-ahead windows */
	pthread_mutex_lock(&d->lock);
	file_unlist(&d->closing, f);
	ld_counters_add(&d->retired, f->cache.cnt);
	pthread_mutex_unlock(&d->lock);
	close(f->fd);
	ld_source_put(d, f->src);
	free(f);
}

static void file_close_later(struct ld_daemon *d, void *f)
{
	ld_file_close(d, f);
}

void ld_file_release(struct ld_daemon *d, struct ld_blob_file *f)
{
	struct ld_blob_file *last;

	pthread_mutex_lock(&d->lock);
	last = ld_file_put(d, f);
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
 * ld_file_get() links it, or drops it when the blob is linked already.
 */
int ld_file_prepare(struct ld_daemon *d, const struct fmt_blob_ref *ref,
		    struct be_source *src, struct ld_blob_file **out, struct sk_err *e)
{
	char rel[16 + LD_CACHE_NAME_LEN], tpath[PATH_MAX];
	struct ld_blob_file *f = calloc(1, sizeof(*f));
	int ret;

	if (!f)
		return -ENOMEM;
	f->fd = -1;
	f->src = ld_source_hold(d, src);
	memcpy(rel, "blobs/", 6);
	ld_cache_name(ref, rel + 6);
	ret = sk_path_join(f->path, sizeof(f->path), d->cfg.cache_dir, rel);
	if (ret)
		sk_err_set(e, "%s: path too long", d->cfg.cache_dir);
	else
		ret = ld_cache_open_kept(&f->cache, ref, src, d->cfg.merge_limit,
					 ld_table_path(d, ref, tpath, sizeof(tpath)), e);
	if (ret) {
		ld_source_put(d, f->src);
		free(f);
		return ret;
	}
	*out = f;
	return 0;
}

/* Drops a prepared file that was never linked (NULL: nothing). */
void ld_file_discard(struct ld_daemon *d, struct ld_blob_file *f)
{
	if (!f)
		return;
	ld_cache_close(&f->cache);
	ld_source_put(d, f->src);
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
 * or else links `prep` (from ld_file_prepare()): opens the sparse file,
 * finds what it holds, watches it. Local work only, under d->lock; takes
 * `prep` over in every case.
 */
int ld_file_get(struct ld_daemon *d, const struct fmt_blob_ref *ref,
		struct ld_blob_file *prep, struct ld_blob_file **out, struct sk_err *e)
{
	struct ld_blob_file *f;
	struct stat st;
	int ret;

	for (f = d->files; f; f = f->next)
		if (same_cache(f, ref)) {
			f->refs++;
			*out = f;
			ld_file_discard(d, prep);
			return 0;
		}
	for (f = d->closing; f; f = f->next)
		if (same_cache(f, ref)) {
			/* its windows may still write the file: a second cache
			 * of it would scan half-written chunks. The API's
			 * api_lock spans a whole unregistration, so this is a
			 * guard, not a path */
			sk_err_set(e, "blob %s is still being closed: try again", ref->hex);
			ld_file_discard(d, prep);
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
	ld_file_discard(d, f);
	return ret;
}
