/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cache limit (cache.max_size). What counts is what gc counts: the
 * bytes allocated under cache_dir's blobs/, tables/ and bootstraps/.
 * Counting walks those directories, so it runs only when fills wrote a
 * 32nd of the limit since the last count, when the disk is full, or every
 * 30 s; a pass over the limit frees down to 90% of it, so that passes are
 * rare:
 *  1. files no registered image uses (ld_gc with a target), the least
 *     recently written first: a blob file's mtime is its last fill or the
 *     moment its last image went;
 *  2. then ready chunks of skiffd's own files of registered images, the
 *     least recently asked for first, and none asked for within
 *     evict_grace seconds.
 *
 * Step 2 never lets a reader see a hole (ld_cache_evict): a chunk's
 * bytes go only from a marked file, so that every read asks first and
 * finds it missing, and only when its last read was let through
 * evict_grace ago, far longer than the kernel takes from asking to
 * copying. The kernel decides when a file is opened whether it will ever
 * raise pre-content events: a mount that opened a blob's file while it
 * was not marked reads past any mark added later (seen on 6.18). So
 * under a limit every blob of skiffd's own is marked from its link on,
 * complete or not (ld_blob_get, ld_blob_filled), and only blobs whose
 * every image was registered so (im->notify_ok; a restored image as
 * images.json says) are punched; one an image restored without it names
 * never is while this process has it (b->no_evict: that mount may
 * outlive its registration). The kernel's cachefiles files are not
 * skiffd's to punch: cachefiles mode culls the objects of unused volumes
 * (below) after step 1.
 *
 * Ages: the thread ticks every evict_grace / 8 seconds, each tick ages
 * every ready chunk of skiffd's own files by one (saturating at
 * LD_AGE_MAX), a read or fill of the chunk resets it to 0; a chunk at
 * least 9 ticks old was last asked for more than evict_grace ago.
 */
#include "evict.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "gc.h"

#define TICKS_PER_GRACE 8u
#define WALK_EVERY 30.0		/* seconds: the count even without fills */

struct ld_evictor {
	struct ld_daemon *d;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;	/* on CLOCK_MONOTONIC */
	bool stop, kicked;
	double tick;		/* seconds between ticks */
	double last_tick, last_walk, last_look;
	uint64_t written;	/* cache-file bytes written at the last count */
	/* a pass left the cache over its limit: the next count is due a
	 * grace later (chunks cool, marked files become candidates),
	 * writes or not */
	double again;
	bool stuck;		/* over the limit with nothing to free: said */
	/* its thread's working directory, once it unshared CLONE_FS (it may
	 * cull, and comes back here after), or -1 */
	int home;
};

/* Ticks a chunk is spared after a read asked for it. */
static unsigned int min_age(void)
{
	return TICKS_PER_GRACE + 1;
}

static bool own_file(const struct ld_blob *b)
{
	return !b->volume[0] && b->own.fd >= 0;
}

/* References on skiffd's own blobs of registered images, under d->lock
 * for moments; the caller releases each. */
static int held_blobs(struct ld_daemon *d, struct ld_blob ***out, size_t *n)
{
	struct ld_blob **v = NULL;
	size_t cap = 0;
	int ret = 0;

	*n = 0;
	pthread_mutex_lock(&d->lock);
	for (struct ld_blob *b = d->blobs; b; b = b->next) {
		if (!own_file(b))
			continue;
		if (sk_grow(&v, &cap, *n, sizeof(*v), 16)) {
			ret = -ENOMEM;
			break;
		}
		ld_blob_hold(b);
		v[(*n)++] = b;
	}
	pthread_mutex_unlock(&d->lock);
	*out = v;
	return ret;
}

static void release_blobs(struct ld_daemon *d, struct ld_blob **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		ld_blob_release(d, v[i]);
	free(v);
}

/* Under d->lock (then each cache's, as the order allows), taking no
 * reference: a tick holds none that an unregistration would leave to it
 * (a blob then closes later, and its next registration meets it still
 * closing). A byte per chunk, so it takes milliseconds for millions. */
void ld_evict_tick(struct ld_daemon *d)
{
	pthread_mutex_lock(&d->lock);
	for (struct ld_blob *b = d->blobs; b; b = b->next)
		if (own_file(b))
			ld_cache_age_tick(&b->cache);
	pthread_mutex_unlock(&d->lock);
}

/* Cache-file bytes written ever, of blobs alive and closed. */
static uint64_t written(struct ld_daemon *d)
{
	uint64_t w;

	pthread_mutex_lock(&d->lock);
	w = atomic_load(&d->retired.write_bytes);
	for (struct ld_blob *b = d->blobs; b; b = b->next)
		w += atomic_load(&b->cache.cnt->write_bytes);
	for (struct ld_blob *b = d->closing; b; b = b->next)
		w += atomic_load(&b->cache.cnt->write_bytes);
	pthread_mutex_unlock(&d->lock);
	return w;
}

/* Step 2: punches cold chunks of registered images' files, oldest first,
 * until `need` bytes are gone. */
static int evict_chunks(struct ld_daemon *d, uint64_t need, struct ld_evict_result *r)
{
	uint64_t bytes[LD_AGE_MAX + 1] = { 0 }, sum = 0, budget = need;
	unsigned int cutoff = LD_AGE_MAX, age = min_age();
	struct ld_blob **v;
	bool *on;
	size_t n;
	int ret;

	ret = held_blobs(d, &v, &n);
	on = calloc(n ? n : 1, sizeof(*on));
	if (ret || !on) {
		release_blobs(d, v, n);
		free(on);
		return -ENOMEM;
	}
	/* candidates: marked, and opened marked by every mount of it (an
	 * image restored from a skiffd without a limit taints its blobs
	 * for their life: its mount may outlive its registration) */
	pthread_mutex_lock(&d->lock);
	for (const struct ld_image *im = d->images; im; im = im->next)
		for (unsigned int k = 0; k < im->nblobs && !im->notify_ok; k++)
			if (im->blobs[k])
				im->blobs[k]->no_evict = true;
	for (size_t i = 0; i < n; i++)
		on[i] = v[i]->marked && !v[i]->no_evict && d->fe;
	pthread_mutex_unlock(&d->lock);

	for (size_t i = 0; i < n; i++)
		if (on[i])
			ld_cache_age_bytes(&v[i]->cache, age, bytes);
	/* the oldest age whose bytes, with all older, make `need` */
	for (int a = LD_AGE_MAX; a >= (int)age; a--) {
		cutoff = (unsigned int)a;
		sum += bytes[a];
		if (sum >= need)
			break;
	}
	/* everything older than the cutoff, in every file, then what is
	 * at it while the budget lasts */
	for (int pass = 0; pass < 2 && sum; pass++)
		for (size_t i = 0; i < n; i++) {
			int err;

			if (!on[i] || (pass == 1 && !budget))
				continue;
			err = ld_cache_evict(&v[i]->cache, v[i]->own.fd, age, cutoff, pass == 1,
					     &budget, &r->chunk_bytes, &r->chunks);
			if (err && !ret) {
				ret = err;
				ld_log(d, LD_LOG_WARN, "blob %s: punching a hole to evict: %s",
				       v[i]->cache.hex, strerror(-err));
			}
		}
	release_blobs(d, v, n);
	free(on);
	return ret;
}

/*
 * The kernel's cache (cachefiles mode): cache_dir/fscache/cache holds a
 * directory per volume ("I" and the volume key, "erofs," and an image's
 * fsid or domain), fan-out directories ("@..") and the object files,
 * named "D" and the cookie key: an image's id for its bootstrap, a blob's
 * id. An object no registered image names in its volume is culled, the
 * least recently written first, by the kernel ("cull", in the evictor's
 * own working directory); one the kernel has open is refused (EBUSY) and
 * stays. skiffd's record of its verified chunks goes with it. An object
 * the kernel made while a mount is up is an unnamed file until the mount
 * goes: the blob files the kernel has open are counted by what skiffd
 * wrote to them.
 */
struct fs_obj {
	char *dir;		/* owned */
	char name[NAME_MAX + 1];
	char volume[NAME_MAX + 1];	/* the volume key */
	uint64_t bytes;
	struct timespec mtime;
};

static int fs_obj_cmp(const void *a, const void *b)
{
	return sk_timespec_cmp(&((const struct fs_obj *)a)->mtime,
			       &((const struct fs_obj *)b)->mtime);
}

/* What registered images name in the kernel's cache, and the files the
 * kernel has given skiffd now, taken under d->lock. */
struct fs_use {
	char **names;		/* "volume key/D<cookie>", sorted */
	size_t n, cap;
	char **vols;		/* volume keys in use, sorted */
	size_t nv, capv;
	char **open;		/* "volume key/D<blob>" the kernel has open, sorted */
	size_t no, capo;
	uint64_t open_bytes;	/* their verified bytes */
};

static int add_str(char ***v, size_t *n, size_t *cap, const char *fmt, const char *a,
		   const char *b)
{
	char *str = NULL;

	if (asprintf(&str, fmt, a, b) < 0)
		return -ENOMEM;
	if (sk_grow(v, cap, *n, sizeof(**v), 16)) {
		free(str);
		return -ENOMEM;
	}
	(*v)[(*n)++] = str;
	return 0;
}

static bool has_str(char *const *v, size_t n, const char *s)
{
	return n && bsearch(&s, v, n, sizeof(*v), sk_strp_cmp);
}

static void fs_use_free(struct fs_use *u)
{
	for (size_t i = 0; i < u->n; i++)
		free(u->names[i]);
	for (size_t i = 0; i < u->nv; i++)
		free(u->vols[i]);
	for (size_t i = 0; i < u->no; i++)
		free(u->open[i]);
	free(u->names);
	free(u->vols);
	free(u->open);
}

static int fs_use_get(struct ld_daemon *d, struct fs_use *u)
{
	int ret = 0;

	memset(u, 0, sizeof(*u));
	pthread_mutex_lock(&d->lock);
	for (const struct ld_image *im = d->images; im && !ret; im = im->next) {
		const char *vol = ld_blob_volume(d, im);

		ret = add_str(&u->vols, &u->nv, &u->capv, "erofs,%s%s", vol, "");
		if (!ret)
			ret = add_str(&u->names, &u->n, &u->cap, "erofs,%s/D%s", vol, im->id);
		for (unsigned int i = 0; i < im->nblobs && !ret; i++)
			ret = add_str(&u->names, &u->n, &u->cap, "erofs,%s/D%s", vol, im->refs[i].hex);
	}
	/* what the kernel has open is counted by what skiffd wrote to it:
	 * its fd is the kernel's anonymous one, and its file may have no
	 * name yet */
	for (struct ld_blob *b = d->blobs; b && !ret; b = b->next) {
		uint64_t bytes, chunks;

		if (!b->volume[0] || !ld_blob_ready(b, &bytes, &chunks))
			continue;
		ret = add_str(&u->open, &u->no, &u->capo, "erofs,%s/D%s", b->volume, b->cache.hex);
		u->open_bytes += bytes;
	}
	pthread_mutex_unlock(&d->lock);
	if (u->no)
		qsort(u->open, u->no, sizeof(*u->open), sk_strp_cmp);
	if (u->n)
		qsort(u->names, u->n, sizeof(*u->names), sk_strp_cmp);
	if (u->nv)
		qsort(u->vols, u->nv, sizeof(*u->vols), sk_strp_cmp);
	return ret;
}

static bool is_open(const struct fs_use *u, const char *key, const char *name)
{
	char *full = NULL;
	bool open;

	if (name[0] != 'D' || asprintf(&full, "%s/%s", key, name) < 0)
		return false;
	open = has_str(u->open, u->no, full);
	free(full);
	return open;
}

/* Whether object `name` of volume `key` may be culled: nobody registered
 * names it (a name not of the "D<cookie>" form: nobody uses its volume). */
static bool unused_obj(const struct fs_use *u, const char *key, const char *name)
{
	char *full = NULL;
	bool used;

	if (name[0] != 'D')
		return !has_str(u->vols, u->nv, key);
	if (asprintf(&full, "%s/%s", key, name) < 0)
		return false;
	used = has_str(u->names, u->n, full);
	free(full);
	return !used;
}

/* Adds the kernel's cache files' bytes to *total (those skiffd has open
 * counted through their fds) and, with v, lists those nobody registered
 * names. */
static int fscache_walk(struct ld_daemon *d, uint64_t *total, struct fs_obj **v, size_t *n,
			struct sk_err *e)
{
	char base[PATH_MAX];
	size_t cap = 0;
	struct fs_use u;
	struct dirent *de;
	DIR *top;
	int ret;

	if (v) {
		*v = NULL;
		*n = 0;
	}
	if (snprintf(base, sizeof(base), "%s/fscache/cache", d->cfg.cache_dir) >= (int)sizeof(base))
		return -ENAMETOOLONG;
	ret = fs_use_get(d, &u);
	if (ret) {
		fs_use_free(&u);
		sk_err_set(e, "cachefiles cache: %s", strerror(-ret));
		return ret;
	}
	*total += u.open_bytes;
	top = opendir(base);
	if (!top) {
		ret = errno == ENOENT ? 0 : -errno;
		if (ret)
			sk_err_set(e, "%s: %s", base, strerror(-ret));
		fs_use_free(&u);
		return ret;
	}
	while (!ret && (de = readdir(top))) {
		char vdir[PATH_MAX];
		struct dirent *fe;
		DIR *vol;

		/* erofs's volumes only: another fscache user's are not ours */
		if (strncmp(de->d_name, "Ierofs,", 7) ||
		    snprintf(vdir, sizeof(vdir), "%s/%s", base, de->d_name) >= (int)sizeof(vdir))
			continue;
		vol = opendir(vdir);
		while (vol && !ret && (fe = readdir(vol))) {
			char fdir[PATH_MAX];
			struct dirent *oe;
			DIR *fan;

			if (fe->d_name[0] != '@' ||
			    snprintf(fdir, sizeof(fdir), "%s/%s", vdir, fe->d_name) >= (int)sizeof(fdir))
				continue;
			fan = opendir(fdir);
			while (fan && !ret && (oe = readdir(fan))) {
				struct stat st;

				if (oe->d_name[0] == '.' ||
				    fstatat(dirfd(fan), oe->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
				    !S_ISREG(st.st_mode) || is_open(&u, de->d_name + 1, oe->d_name))
					continue;
				*total += (uint64_t)st.st_blocks * 512;
				if (!v || !unused_obj(&u, de->d_name + 1, oe->d_name))
					continue;
				if (sk_grow(v, &cap, *n, sizeof(**v), 32) ||
				    !((*v)[*n].dir = strdup(fdir))) {
					ret = -ENOMEM;
					sk_err_set(e, "cachefiles cache: %s", strerror(ENOMEM));
					break;
				}
				snprintf((*v)[*n].name, sizeof((*v)[*n].name), "%s", oe->d_name);
				snprintf((*v)[*n].volume, sizeof((*v)[*n].volume), "%s", de->d_name + 1);
				(*v)[*n].bytes = (uint64_t)st.st_blocks * 512;
				(*v)[(*n)++].mtime = st.st_mtim;
			}
			if (fan)
				closedir(fan);
		}
		if (vol)
			closedir(vol);
	}
	closedir(top);
	fs_use_free(&u);
	return ret;
}

/* The record of a blob object's verified chunks (verified/<volume
 * key>/<blob>, ld_cache_record_path): it goes with the object. */
static void drop_record(struct ld_daemon *d, const struct fs_obj *o)
{
	char rec[PATH_MAX];
	size_t k = 1;

	while (k <= SK_HEX_LEN && ((o->name[k] >= '0' && o->name[k] <= '9') ||
				   (o->name[k] >= 'a' && o->name[k] <= 'f')))
		k++;
	if (o->name[0] != 'D' || k != SK_HEX_LEN + 1 || o->name[k])
		return;		/* a bootstrap: no record */
	if (snprintf(rec, sizeof(rec), "%s/verified/%s/%s", d->cfg.cache_dir, o->volume,
		     o->name + 1) < (int)sizeof(rec))
		unlink(rec);
}

/* Step 1 in cachefiles mode: culls unused objects until `need` bytes
 * are gone. */
static int cull_unused(struct ld_daemon *d, int home, uint64_t need,
		       struct ld_evict_result *r, struct sk_err *e)
{
	struct fs_obj *v = NULL;
	uint64_t total = 0, got = 0;
	size_t n = 0;
	int ret = fscache_walk(d, &total, &v, &n, e);

	if (!ret && n)
		qsort(v, n, sizeof(*v), fs_obj_cmp);
	for (size_t i = 0; !ret && i < n && got < need; i++) {
		int dfd = open(v[i].dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), err;

		if (dfd < 0)
			continue;
		err = d->fe->ops->cull(d->fe, dfd, v[i].name);
		close(dfd);
		/* back where relative paths mean what they meant (a
		 * cache_dir given as one) */
		if (fchdir(home) < 0) {
			ret = -errno;
			sk_err_set(e, "cache limit: back to the working directory: %s", strerror(errno));
		}
		if (err) {
			if (err != -EBUSY && err != -ENOENT && err != -ESTALE)
				ld_log(d, LD_LOG_WARN, "cachefiles: cull %s/%s: %s", v[i].dir, v[i].name,
				       strerror(-err));
			continue;
		}
		drop_record(d, &v[i]);
		got += v[i].bytes;
		r->files++;
		r->file_bytes += v[i].bytes;
	}
	for (size_t i = 0; i < n; i++)
		free(v[i].dir);
	free(v);
	return ret;
}

/* A pass; v (NULL: none) says once when the cache is stuck over its
 * limit, and is the evictor's thread, the one that may cull (it has a
 * working directory of its own). */
static int pass(struct ld_daemon *d, struct ld_evictor *v, struct ld_evict_result *r,
		struct sk_err *e)
{
	struct ld_gc_opts count = { .dry_run = true, .count_only = true };
	uint64_t max = d->cfg.cache_max, low = max - max / 10, need;
	struct ld_gc_result res;
	int ret;

	memset(r, 0, sizeof(*r));
	if (!max)
		return 0;
	ret = ld_gc(d, &count, &res, e);
	if (ret)
		return ret;
	ld_gc_result_free(&res);
	r->used = res.total_bytes;
	if (d->fe && d->fe->ops->cull && (ret = fscache_walk(d, &r->used, NULL, NULL, e)))
		return ret;
	atomic_store(&d->cache_used, r->used);
	if (r->used <= max) {
		if (v)
			v->stuck = false;
		return 0;
	}
	need = r->used - low;

	{
		struct ld_gc_opts o = { .count_only = true, .target = need };

		pthread_mutex_lock(&d->api_lock);
		ret = ld_gc(d, &o, &res, e);
		pthread_mutex_unlock(&d->api_lock);
		if (ret)
			return ret;
		r->files = res.count;
		r->file_bytes = res.bytes;
		ld_gc_result_free(&res);
		/* then the kernel's files no image uses */
		if (v && v->home >= 0 && d->fe && d->fe->ops->cull && r->file_bytes < need) {
			pthread_mutex_lock(&d->api_lock);
			ret = cull_unused(d, v->home, need - r->file_bytes, r, e);
			pthread_mutex_unlock(&d->api_lock);
		}
		atomic_fetch_add(&d->evict_files, r->files);
		atomic_fetch_add(&d->evict_file_bytes, r->file_bytes);
		if (ret)
			return ret;
	}
	if (r->file_bytes < need) {
		ret = evict_chunks(d, need - r->file_bytes, r);
		atomic_fetch_add(&d->evict_chunks, r->chunks);
		atomic_fetch_add(&d->evict_chunk_bytes, r->chunk_bytes);
	}
	if (r->files || r->chunks) {
		atomic_fetch_add(&d->evict_passes, 1);
		ld_log(d, LD_LOG_INFO,
		       "cache over its limit (%llu of %llu bytes): removed %llu unused files (%llu bytes), evicted %llu chunks (%llu bytes)",
		       (unsigned long long)r->used, (unsigned long long)max,
		       (unsigned long long)r->files, (unsigned long long)r->file_bytes,
		       (unsigned long long)r->chunks, (unsigned long long)r->chunk_bytes);
	}
	if (r->file_bytes + r->chunk_bytes < need)
		r->short_bytes = need - r->file_bytes - r->chunk_bytes;
	if (v) {
		if (r->short_bytes && !v->stuck)
			ld_log(d, LD_LOG_WARN,
			       "cache over its limit (%llu of %llu bytes) with %llu bytes nothing may free: read within the last %u s, in flight, or the kernel's (cachefiles)",
			       (unsigned long long)r->used, (unsigned long long)max,
			       (unsigned long long)r->short_bytes, d->cfg.evict_grace);
		v->stuck = r->short_bytes != 0;
	}
	return ret;
}

int ld_evict_pass(struct ld_daemon *d, struct ld_evict_result *r, struct sk_err *e)
{
	return pass(d, NULL, r, e);
}

static void *evict_main(void *arg)
{
	struct ld_evictor *v = arg;
	struct ld_daemon *d = v->d;
	uint64_t slack = SK_MAX(d->cfg.cache_max / 32, 1u << 20);

	/* a working directory of its own: cachefiles culls in it */
	if (unshare(CLONE_FS) < 0 || (v->home = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		ld_log(d, LD_LOG_WARN, "cache limit: a working directory of its own: %s: the kernel's cache files are not culled",
		       strerror(errno));
	pthread_mutex_lock(&v->lock);
	while (!v->stop) {
		double now = sk_now();
		/* the next tick, a look at what fills wrote (each second),
		 * the count every WALK_EVERY, a pass due again */
		double next = SK_MIN(v->last_tick + v->tick, v->last_look + 1.0);
		bool kicked;

		next = SK_MIN(next, v->last_walk + WALK_EVERY);
		if (v->again)
			next = SK_MIN(next, v->again);

		if (!v->kicked && next > now) {
			struct timespec ts;
			double at;

			clock_gettime(CLOCK_MONOTONIC, &ts);
			at = (double)ts.tv_sec + ts.tv_nsec / 1e9 + (next - now);
			ts.tv_sec = (time_t)at;
			ts.tv_nsec = (long)((at - (double)ts.tv_sec) * 1e9);
			pthread_cond_timedwait(&v->cond, &v->lock, &ts);
			continue;
		}
		kicked = v->kicked;
		v->kicked = false;
		pthread_mutex_unlock(&v->lock);

		now = sk_now();
		if (now >= v->last_tick + v->tick) {
			ld_evict_tick(d);
			v->last_tick = now;
		}
		v->last_look = now;
		uint64_t w = written(d);

		if (kicked || w - v->written >= slack || now - v->last_walk >= WALK_EVERY ||
		    (v->again && now >= v->again)) {
			struct ld_evict_result r;
			struct sk_err e = { { 0 } };

			v->written = w;
			v->last_walk = now;
			if (pass(d, v, &r, &e))
				ld_log(d, LD_LOG_WARN, "cache limit: %s", e.msg[0] ? e.msg : "failed");
			v->again = r.short_bytes ? now + d->cfg.evict_grace + v->tick : 0;
		}
		pthread_mutex_lock(&v->lock);
	}
	pthread_mutex_unlock(&v->lock);
	return NULL;
}

int ld_evict_start(struct ld_daemon *d, struct sk_err *e)
{
	struct ld_evictor *v;
	pthread_condattr_t ca;
	int ret;

	if (!d->cfg.cache_max)
		return 0;
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->d = d;
	v->home = -1;
	v->tick = (double)d->cfg.evict_grace / TICKS_PER_GRACE;
	v->last_tick = v->last_walk = v->last_look = sk_now();
	v->written = written(d);
	v->kicked = true;	/* count at once: a lower limit than last time */
	pthread_mutex_init(&v->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&v->cond, &ca);
	pthread_condattr_destroy(&ca);
	/* published once it runs: a kick (a request thread) finds it
	 * whole or not at all; its passes meanwhile see no d->evictor */
	ret = -pthread_create(&v->thread, NULL, evict_main, v);
	if (!ret)
		d->evictor = v;
	if (ret) {
		pthread_cond_destroy(&v->cond);
		pthread_mutex_destroy(&v->lock);
		free(v);
		sk_err_set(e, "cache limit: starting its thread: %s", strerror(-ret));
	}
	return ret;
}

void ld_evict_stop(struct ld_daemon *d)
{
	struct ld_evictor *v = d->evictor;

	if (!v || v->stop)
		return;
	pthread_mutex_lock(&v->lock);
	v->stop = true;
	pthread_cond_signal(&v->cond);
	pthread_mutex_unlock(&v->lock);
	pthread_join(v->thread, NULL);
	if (v->home >= 0)
		close(v->home);
	v->home = -1;
}

void ld_evict_free(struct ld_daemon *d)
{
	struct ld_evictor *v = d->evictor;

	if (!v)
		return;
	ld_evict_stop(d);
	d->evictor = NULL;
	pthread_cond_destroy(&v->cond);
	pthread_mutex_destroy(&v->lock);
	free(v);
}

void ld_evict_kick(struct ld_daemon *d)
{
	struct ld_evictor *v = d->evictor;

	if (!v)
		return;
	pthread_mutex_lock(&v->lock);
	v->kicked = true;
	pthread_cond_signal(&v->cond);
	pthread_mutex_unlock(&v->lock);
}
