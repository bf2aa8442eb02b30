/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Blobs as skiffd serves them (struct ld_blob), for both frontends:
 * prepared without a lock (the chunk table read and verified), linked and
 * counted under d->lock, closed outside it once unused. A blob's bytes go
 * to the file attached to it: skiffd's own cache file (fanotify), or the
 * kernel's while it has the blob open (cachefiles).
 */
#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void ld_blob_hold(struct ld_blob *b)
{
	b->refs++;
}

struct ld_blob *ld_blob_by_inode(struct ld_daemon *d, dev_t dev, ino_t ino)
{
	struct ld_blob *found = NULL;

	pthread_mutex_lock(&d->lock);
	for (struct ld_blob *b = d->blobs; b; b = b->next)
		if (b->own.fd >= 0 && b->dev == dev && b->ino == ino) {
			found = b;
			b->refs++;	/* an unmount meanwhile must not free it */
			break;
		}
	pthread_mutex_unlock(&d->lock);
	return found;
}

const char *ld_blob_volume(const struct ld_daemon *d, const struct ld_image *im)
{
	return d->fe && d->fe->ops->volume ? d->fe->ops->volume(im) : "";
}

static void blob_unlist(struct ld_blob **head, struct ld_blob *b)
{
	for (struct ld_blob **pp = head; *pp; pp = &(*pp)->next)
		if (*pp == b) {
			*pp = b->next;
			return;
		}
}

/*
 * Drops a reference on b (an image's, a read's being served, a kernel
 * object's), under d->lock. The last one takes the blob out of use there:
 * unwatches it first (no new event names it; one already queued finds no
 * blob by its inode and is denied), then moves it from d->blobs to
 * d->closing, and returns it: the caller must hand it to ld_blob_close()
 * once it has let go of d->lock. NULL while others use it.
 */
struct ld_blob *ld_blob_put(struct ld_daemon *d, struct ld_blob *b)
{
	if (--b->refs)
		return NULL;
	if (b->marked && d->fe)
		d->fe->ops->unwatch(d->fe, b);
	blob_unlist(&d->blobs, b);
	b->next = d->closing;
	d->closing = b;
	return b;
}

/*
 * Finishes what ld_blob_put() started; called without d->lock (NULL:
 * no-op). Closing waits for the blob's read-ahead windows, each a backend
 * fetch that a stalled source may hold until the transport gives up:
 * under d->lock, which every fanotify event, status and /metrics take,
 * that would stall every other image's reads. The windows still count
 * into b's counters meanwhile, and /metrics sums d->closing, so the blob
 * is counted all along; its counters move to d->retired in the same
 * d->lock section that unlists it, so no sample sees them twice or not
 * at all. A kernel object holds a reference, so nothing is attached.
 */
/* What b holds besides its cache, once that is closed. */
static void blob_free(struct ld_daemon *d, struct ld_blob *b)
{
	if (b->own.fd >= 0) {
		/* its last use, for a cache limit's least recently used
		 * order of unused files (gc.c) */
		if (d->cfg.cache_max)
			futimens(b->own.fd, NULL);
		close(b->own.fd);
	}
	ld_source_put(d, b->src);
	free(b);
}

void ld_blob_close(struct ld_daemon *d, struct ld_blob *b)
{
	if (!b)
		return;
	ld_cache_close(&b->cache);	/* waits for read-ahead windows */
	pthread_mutex_lock(&d->lock);
	blob_unlist(&d->closing, b);
	ld_counters_add(&d->retired, b->cache.cnt);
	pthread_mutex_unlock(&d->lock);
	blob_free(d, b);
}

static void blob_close_later(struct ld_daemon *d, void *b)
{
	ld_blob_close(d, b);
}

void ld_blob_release(struct ld_daemon *d, struct ld_blob *b)
{
	struct ld_blob *last;

	pthread_mutex_lock(&d->lock);
	last = ld_blob_put(d, b);
	pthread_mutex_unlock(&d->lock);
	/* the image went while the read was served. Closing waits for
	 * read-ahead windows: never on the caller, which may be the
	 * frontend's event thread */
	if (last)
		ld_run_later(d, blob_close_later, last);
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
 * The network half of a blob, done holding no lock: a blob linked nowhere
 * yet, with its chunk table read and verified (from cache_dir/tables when
 * kept there, else from the source, then kept). ld_blob_get() links it,
 * or drops it when the blob is linked already.
 */
int ld_blob_prepare(struct ld_daemon *d, const struct fmt_blob_ref *ref,
		    struct be_source *src, struct ld_blob **out, struct sk_err *e)
{
	char rel[16 + LD_CACHE_NAME_LEN], tpath[PATH_MAX];
	struct ld_blob *b = calloc(1, sizeof(*b));
	int ret = 0;

	if (!b)
		return -ENOMEM;
	b->own.fd = -1;
	b->src = ld_source_hold(d, src);
	memcpy(rel, "blobs/", 6);
	ld_cache_name(ref, rel + 6);
	ret = sk_path_join(b->path, sizeof(b->path), d->cfg.cache_dir, rel);
	if (ret)
		sk_err_set(e, "%s: path too long", d->cfg.cache_dir);
	if (!ret)
		ret = ld_cache_open_kept(&b->cache, ref, src, d->cfg.merge_limit,
					 ld_table_path(d, ref, tpath, sizeof(tpath)), e);
	if (ret) {
		ld_source_put(d, b->src);
		free(b);
		return ret;
	}
	b->cache.rings = d->rings;
	b->cache.bufs = d->bufs;
	b->cache.pool = d->pool;
	b->cache.readahead = d->cfg.readahead;
	b->cache.bg_pool = d->ra_pool;
	b->cache.ahead = d->cfg.ahead;
	*out = b;
	return 0;
}

/* Drops a prepared blob that was never linked (NULL: nothing). */
void ld_blob_discard(struct ld_daemon *d, struct ld_blob *b)
{
	if (!b)
		return;
	ld_cache_close(&b->cache);
	blob_free(d, b);
}

/* Whether a and b name one blob id in one volume. */
static bool same_id(const struct ld_blob *a, const struct ld_blob *b)
{
	return !strcmp(a->volume, b->volume) && !strcmp(a->cache.hex, b->cache.hex);
}

/* ... and cache it as one table describes it (cache.h: a blob id alone
 * names no content). */
static bool same_blob(const struct ld_blob *a, const struct ld_blob *b)
{
	return same_id(a, b) && !memcmp(a->cache.table.table_digest,
					b->cache.table.table_digest, SK_SHA256_LEN);
}

/* Opens skiffd's own sparse cache file of prep and finds what it holds. */
static int open_own(struct ld_daemon *d, struct ld_blob *b, struct sk_err *e)
{
	struct stat st;
	int ret;

	b->own.fd = open(b->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (b->own.fd < 0 || fstat(b->own.fd, &st) < 0)
		goto fail;
	/* new, or not ours: start from an empty sparse file */
	if ((uint64_t)st.st_size != b->cache.table.usize &&
	    (ftruncate(b->own.fd, 0) < 0 ||
	     ftruncate(b->own.fd, (off_t)b->cache.table.usize) < 0))
		goto fail;
	b->dev = st.st_dev;
	b->ino = st.st_ino;
	/* own.fd is opened before the file is marked: its writes raise no
	 * events (and dispatch() lets skiffd's own through anyway) */
	b->cache.bg_fd = b->own.fd;
	b->cache.sees_reads = true;	/* fanotify: every read raises an event */
	/* a restart trusts only chunks recorded as verified (cache.h) */
	ret = ld_cache_record_open(&b->cache, d->cfg.cache_dir, NULL, e);
	if (ret)
		return ret;
	ld_cache_scan(&b->cache, b->own.fd);
	b->own.cache = &b->cache;
	b->file = &b->own;
	return 0;
fail:
	ret = -errno;
	sk_err_set(e, "%s: %s", b->path, strerror(-ret));
	return ret;
}

/*
 * Takes a reference on the linked blob that prep (from ld_blob_prepare())
 * is in `volume` (ld_blob_volume()), dropping prep, or else links prep:
 * skiffd's own file opened and watched. Local work only, under d->lock;
 * takes prep over in every case.
 */
int ld_blob_get(struct ld_daemon *d, struct ld_blob *prep, const char *volume,
		struct ld_blob **out, struct sk_err *e)
{
	struct ld_blob *b;
	int ret;

	if (strlen(volume) >= sizeof(prep->volume)) {
		sk_err_set(e, "volume %s: too long", volume);
		ld_blob_discard(d, prep);
		return -ENAMETOOLONG;
	}
	snprintf(prep->volume, sizeof(prep->volume), "%s", volume);
	if (volume[0])
		prep->path[0] = '\0';	/* the kernel's file, not ours */

	for (b = d->blobs; b; b = b->next) {
		if (!same_id(b, prep))
			continue;
		if (same_blob(b, prep)) {
			/* this image's files may begin elsewhere in it */
			ret = ld_cache_merge_starts(&b->cache, &prep->cache);
			if (ret) {
				sk_err_set(e, "blob %s: %s", b->cache.hex, strerror(-ret));
				ld_blob_discard(d, prep);
				return ret;
			}
			/* under a cache limit it has been marked since it
			 * was linked */
			b->refs++;
			*out = b;
			ld_blob_discard(d, prep);
			return 0;
		}
		/*
		 * In cachefiles mode the kernel keeps one cache file per blob
		 * id in a volume, and reads what it holds without asking, so
		 * two images of one domain naming one blob id must describe
		 * it with the same chunk table: an image claiming a blob id it
		 * does not have would otherwise have its bytes read by the
		 * other. skiffd's own files (volume "") are named by the table
		 * too and never meet this.
		 */
		if (prep->volume[0]) {
			sk_err_set(e, "blob %s: volume %s already has it with another "
				   "chunk table", prep->cache.hex, prep->volume);
			ld_blob_discard(d, prep);
			return -EEXIST;
		}
	}
	for (b = prep->volume[0] ? NULL : d->closing; b; b = b->next)
		if (same_blob(b, prep)) {
			/* its windows may still write skiffd's own file: a
			 * second blob of it would scan half-written chunks.
			 * The API's api_lock spans a whole unregistration, so
			 * this is a guard, not a path (a cachefiles blob writes
			 * nothing of its own: its files are the kernel's) */
			sk_err_set(e, "blob %s is still being closed: try again", prep->cache.hex);
			ld_blob_discard(d, prep);
			return -EBUSY;
		}
	b = prep;
	if (!b->volume[0] && (ret = open_own(d, b, e)))
		goto fail;
	b->refs = 1;
	/* under a cache limit a complete file is marked too, for good: the
	 * kernel decides when the mount opens it whether it ever raises
	 * pre-content events, and the evictor may punch it later */
	if (b->file && d->fe && (d->cfg.cache_max || !ld_cache_complete(b->file->cache))) {
		ret = d->fe->ops->watch(d->fe, b);
		if (ret) {
			sk_err_set(e, "%s: cannot watch: %s", b->path, strerror(-ret));
			goto fail;
		}
	}
	b->next = d->blobs;
	d->blobs = b;
	*out = b;
	return 0;
fail:
	ld_blob_discard(d, b);
	return ret;
}

void ld_blob_attach(struct ld_daemon *d, struct ld_blob *b, struct ld_blob_file *f)
{
	pthread_mutex_lock(&d->lock);
	b->file = f;
	pthread_mutex_unlock(&d->lock);
}

bool ld_blob_detach(struct ld_daemon *d, struct ld_blob *b, struct ld_blob_file *f)
{
	bool unused;

	pthread_mutex_lock(&d->lock);
	if (b->file == f)
		b->file = NULL;
	/* a prefetch fill may hold it for as long as a stalled source
	 * does: waiting here would hold the caller (a request worker) */
	unused = f->users == 0;
	f->detached = !unused;
	pthread_mutex_unlock(&d->lock);
	return unused;
}

struct ld_blob_file *ld_blob_use(struct ld_daemon *d, struct ld_blob *b)
{
	struct ld_blob_file *f;

	pthread_mutex_lock(&d->lock);
	f = b->file;
	if (f)
		f->users++;
	pthread_mutex_unlock(&d->lock);
	return f;
}

void ld_blob_unuse(struct ld_daemon *d, struct ld_blob_file *f)
{
	bool last;

	pthread_mutex_lock(&d->lock);
	last = --f->users == 0 && f->detached;
	pthread_mutex_unlock(&d->lock);
	if (last)
		f->release(f);
}

void ld_blob_filled(struct ld_daemon *d, struct ld_blob *b)
{
	/* under a cache limit marks stay: a chunk may be punched out of a
	 * complete file, and its next read must ask (evict.c) */
	if (d->cfg.cache_max || !b->marked || !ld_cache_complete(&b->cache))
		return;
	pthread_mutex_lock(&d->lock);
	if (b->marked && d->fe) {
		d->fe->ops->unwatch(d->fe, b);
		if (!b->marked)
			ld_log(d, LD_LOG_INFO, "blob %s complete: mark removed", b->cache.hex);
	}
	pthread_mutex_unlock(&d->lock);
}

int ld_blob_prefetch(struct ld_daemon *d, struct ld_blob *b, uint64_t off,
		     uint64_t len, uint64_t *fetched, struct sk_err *e)
{
	struct ld_blob_file *f = ld_blob_use(d, b);
	int ret;

	/* cachefiles: the kernel has not opened the blob yet, and there is
	 * nowhere to write; the prefetcher parks until a frontend kicks it */
	if (!f)
		return -EAGAIN;
	/* skiffd's own fd: its writes raise no event when it was opened
	 * before the mark; when it was not (a server restarted under the
	 * holder), dispatch() lets our own writes through */
	ret = ld_cache_fill_flags(f->cache, f->fd, off, len, LD_FILL_PREFETCH, fetched, e);
	ld_blob_filled(d, b);
	ld_blob_unuse(d, f);	/* may free f */
	return ret;
}

bool ld_blob_ready(struct ld_blob *b, uint64_t *bytes, uint64_t *chunks)
{
	/* under d->lock, which a detach takes before the file goes */
	struct ld_blob_file *f = b->file;

	if (!f)
		return false;
	*bytes = ld_cache_ready_bytes(f->cache);
	pthread_mutex_lock(&f->cache->lock);
	*chunks = f->cache->ready;
	pthread_mutex_unlock(&f->cache->lock);
	return true;
}
