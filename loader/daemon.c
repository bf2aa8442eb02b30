/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"
#include "daemon.h"
#include "prefetch.h"
#include "trace.h"

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

	char prefix[32];

	if (level > d->cfg.log_level)
		return;
	snprintf(prefix, sizeof(prefix), "skiffd: %s: ", names[level]);
	va_start(ap, fmt);
	sk_vlog_line(prefix, fmt, ap);
	va_end(ap);
}

struct ld_image *ld_image_find(struct ld_daemon *d, const char *id)
{
	for (struct ld_image *i = d->images; i; i = i->next)
		if (!strcmp(i->id, id))
			return i;
	return NULL;
}

/* What an image owns, once nothing uses it. */
static void image_free(struct ld_daemon *d, struct ld_image *im)
{
	free(im->pinned);
	free(im->state_json);
	free(im->blobs);
	free(im->refs);
	if (im->bs_buf)
		munmap(im->bs_buf, im->bootstrap_size);
	ld_source_put(d, im->src);
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
	image_free(d, im);
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
 * mounts once. The cache files stay shared (ld_blob_get counts the users).
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
	/* owned, per blob: from ld_blob_prepare() */
	struct ld_blob **prep;
	/* holds d->registering for reading: from before the bootstrap and
	 * chunk tables are read or kept in the cache directory until the
	 * image is linked (or dropped), so that gc leaves them alone */
	bool registering;
};

static void image_new_free(struct ld_daemon *d, struct ld_image_new *n)
{
	if (!n)
		return;
	if (n->registering)
		pthread_rwlock_unlock(&d->registering);
	for (unsigned int i = 0; n->prep && i < n->count; i++)
		ld_blob_discard(d, n->prep[i]);
	free(n->prep);
	if (n->im)
		image_free(d, n->im);
	free(n);
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
	struct ld_cache **caches;
	int ret, bs_open = 0;

	ret = be_ref_parse(ref, &r, e);
	if (ret)
		return ret;
	/* our reference keeps it while we use it without a lock */
	src = ld_source_get(d, &r, e);
	if (!src)
		return -EINVAL;
	ret = src->ops->resolve(src, r.digest[0] ? r.digest : r.tag, &bi, e);
	if (ret) {
		ld_source_put(d, src);
		return ret;
	}
	n = calloc(1, sizeof(*n));
	im = n ? calloc(1, sizeof(*im)) : NULL;
	if (!im) {
		ld_source_put(d, src);
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
	pthread_rwlock_rdlock(&d->registering);
	n->registering = true;
	ret = ld_bs_load(d, src, &bi, im, &im->bs_buf, e);
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
	n->prep = calloc(bs.nblobs ? bs.nblobs : 1, sizeof(*n->prep));
	if (!im->blobs || !im->refs || !n->prep) {
		ret = -ENOMEM;
		goto out;
	}
	n->count = bs.nblobs;
	for (unsigned int i = 0; i < bs.nblobs; i++) {
		if (strcmp(bi.blobs[i].hex, bs.blobs[i].hex)) {
			sk_err_set(e, "%s: blob %u: manifest and bootstrap disagree", ref, i);
			ret = -EBADMSG;
			goto out;
		}
		im->refs[i] = bs.blobs[i];
		/* every chunk table now, so that a cachefiles OPEN, on the
		 * frontend's one thread, never waits on the network */
		ret = ld_blob_prepare(d, &bs.blobs[i], src, &n->prep[i], e);
		if (ret)
			goto out;
	}
	/* the bootstrap's bytes are the manifest's, but the manifest is a
	 * source's word: judge the structure before the kernel parses it */
	/* ... and note which chunks begin a file: read-ahead keeps within
	 * one */
	caches = calloc(bs.nblobs ? bs.nblobs : 1, sizeof(*caches));
	if (!caches) {
		sk_err_set(e, "checking the bootstrap of %s: out of memory", ref);
		ret = -ENOMEM;
		goto out;
	}
	for (unsigned int i = 0; i < bs.nblobs; i++)
		caches[i] = &n->prep[i]->cache;
	ret = ld_bs_check(&bs, caches, ref, e);
	free(caches);
	if (ret)
		goto out;
	/* the check read all of it: let those pages go from skiffd's
	 * memory (they are the file's, read again from the page cache
	 * when a cachefiles READ or a trace needs them) */
	madvise(im->bs_buf, im->bootstrap_size, MADV_DONTNEED);
	ld_image_pin(im);
	*out = n;
	n = NULL;
out:
	image_new_free(d, n);
	if (bs_open)
		fmt_bs_close(&bs);
	be_image_free(&bi);
	return ret;
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
		old->state_dirty = true;
		*out = old;
		goto unlock;
	}
	for (unsigned int i = 0; i < n->count; i++) {
		ret = ld_blob_get(d, n->prep[i], ld_blob_volume(d, im), &im->blobs[i], e);
		n->prep[i] = NULL;	/* taken over */
		if (ret)
			break;
		im->nblobs++;
	}
	if (ret) {
		/* im->blobs[i] becomes the blob to close, or NULL */
		for (unsigned int i = 0; i < im->nblobs; i++)
			im->blobs[i] = ld_blob_put(d, im->blobs[i]);
		goto unlock;
	}
	/* under a cache limit its blobs were marked by ld_blob_get and
	 * stay so: the mount that follows opens them marked (evict.c). A
	 * restored image's mount came earlier: images.json says (state.c),
	 * and until then it is not, so no save says so wrongly */
	im->notify_ok = d->cfg.cache_max && !d->restoring;
	im->next = d->images;
	d->images = im;
	*out = im;
	fresh = im;
	n->im = NULL;
unlock:
	pthread_mutex_unlock(&d->lock);
	if (ret)
		for (unsigned int i = 0; i < im->nblobs; i++)
			ld_blob_close(d, im->blobs[i]);
	image_new_free(d, n);
	/* a restore saves nothing: images.json already says it all, and a
	 * restore cut short (a kill, an image that fails) must not drop the
	 * entries it did not reach */
	if (!ret && !d->restoring)
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
	/* im->blobs[i] becomes the blob to close, or NULL */
	for (unsigned int i = 0; i < im->nblobs; i++)
		im->blobs[i] = ld_blob_put(d, im->blobs[i]);
	if (im->trace)
		atomic_fetch_sub(&d->tracing, 1);
	ld_trace_free(im);
	pthread_mutex_unlock(&d->lock);
	/* outside d->lock: closing waits for read-ahead windows, which a
	 * stalled source holds (ld_blob_close) */
	for (unsigned int i = 0; i < im->nblobs; i++)
		ld_blob_close(d, im->blobs[i]);
	free(im->blobs);	/* closed blobs: nobody may look at them */
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
			im->blobs[i] = ld_blob_put(d, im->blobs[i]);
		ld_trace_free(im);
		pthread_mutex_unlock(&d->lock);
		for (unsigned int i = 0; i < im->nblobs; i++)
			ld_blob_close(d, im->blobs[i]);
		ld_image_put(d, im);
	}
}


/* Each line's mount point in /proc/self/mountinfo (its 5th field, with
 * the kernel's octal escapes of space, tab, newline and '\\' undone), to
 * fn until it returns true. */
static void each_mount(bool (*fn)(const char *mp, void *arg), void *arg)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;

	if (!f)
		return;
	while (getline(&line, &cap, f) > 0) {
		char *p = line, mp[PATH_MAX];
		size_t n = 0;

		for (int field = 0; field < 4 && p; field++)
			p = strchr(p, ' ') ? strchr(p, ' ') + 1 : NULL;
		if (!p)
			continue;
		for (; *p && *p != ' ' && *p != '\n' && n < sizeof(mp) - 1; p++) {
			if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' &&
			    p[2] <= '7' && p[3] >= '0' && p[3] <= '7') {
				mp[n++] = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
				p += 3;
			} else {
				mp[n++] = *p;
			}
		}
		mp[n] = '\0';
		if (fn(mp, arg))
			break;
	}
	free(line);
	fclose(f);
}

/* Registered images with a blob still watched: their mount points. */
struct lazy_set {
	unsigned int n;
	char (*mp)[PATH_MAX];
	char (*id)[128];
	bool *mounted;
};

static bool mark_mounted(const char *mp, void *arg)
{
	struct lazy_set *l = arg;

	for (unsigned int i = 0; i < l->n; i++)
		l->mounted[i] |= !strcmp(l->mp[i], mp);
	return false;
}

int ld_stop_refused(struct ld_daemon *d, char *why, size_t len)
{
	struct lazy_set l = { 0 };
	unsigned int cap = 0;
	size_t at = 0;
	int count = 0;

	why[0] = '\0';
	/* only a fanotify group lets the kernel read holes as zeros */
	if (!d->fe || d->fe->ops != &ld_fanotify_ops)
		return 0;
	pthread_mutex_lock(&d->lock);
	for (struct ld_image *im = d->images; im; im = im->next)
		cap++;
	l.mp = calloc(cap ? cap : 1, sizeof(*l.mp));
	l.id = calloc(cap ? cap : 1, sizeof(*l.id));
	l.mounted = calloc(cap ? cap : 1, sizeof(*l.mounted));
	for (struct ld_image *im = d->images; l.mounted && l.id && l.mp && im; im = im->next) {
		bool lazy = false;

		/* under a cache limit complete files keep their marks: a
		 * complete one reads right without them */
		for (unsigned int i = 0; i < im->nblobs && !lazy; i++)
			lazy = im->blobs[i] && im->blobs[i]->marked &&
			       !ld_cache_complete(&im->blobs[i]->cache);
		if (!lazy || !im->mountpoint[0])
			continue;
		memcpy(l.mp[l.n], im->mountpoint, sizeof(l.mp[l.n]));
		memcpy(l.id[l.n], im->id, sizeof(l.id[l.n]));
		l.n++;
	}
	pthread_mutex_unlock(&d->lock);
	if (!l.mounted || !l.id || !l.mp) {
		/* cannot tell: refusing is the side that never reads zeros */
		snprintf(why, len, "skiffd cannot tell which mounts are lazy (out of memory)");
		count = -ENOMEM;
		goto out;
	}
	/* outside d->lock, which every fanotify event takes: a node's
	 * mount table can be long */
	if (l.n)
		each_mount(mark_mounted, &l);
	for (unsigned int i = 0; i < l.n; i++)
		if (l.mounted[i])
			count++;
	if (!count)
		goto out;
	at = (size_t)snprintf(why, len, "%d lazy mount%s up, whose uncached reads would "
			      "return zeros without skiffd: ", count,
			      count == 1 ? " is" : "s are");
	for (unsigned int i = 0, k = 0; i < l.n && at < len; i++) {
		if (!l.mounted[i])
			continue;
		at += (size_t)snprintf(why + at, len - at, "%s%s (%s)", k++ ? ", " : "",
				       l.mp[i], l.id[i]);
	}
	if (at < len)
		snprintf(why + at, len - at, "; unmount %s first", count == 1 ? "it" : "them");
out:
	free(l.mp);
	free(l.id);
	free(l.mounted);
	return count;
}
