/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What skiffd keeps in its cache directory that no registered image uses:
 * skiffd's own cache files of blobs (blobs/), their records of verified
 * chunks (verified/), kept chunk tables (tables/) and bootstraps
 * (bootstraps/). They stay after an image goes, so that the next image
 * with the same blobs fetches nothing; ld_gc() counts them and removes
 * them on request.
 *
 * In use is what a blob or image in memory names (d->blobs, d->closing,
 * d->images), taken under d->lock. The caller holds d->api_lock, so no
 * registration links a blob while its file is being removed. Tables and
 * bootstraps a registration reads or keeps before it takes that lock are
 * guarded by d->registering, which each registration holds for reading
 * until it is linked: gc removes them only when it gets it for writing
 * (never waiting for a registration's network work), and only once they
 * are min_age old. The kernel's cachefiles cache (fscache/) is not
 * looked at here: under a cache limit evict.c has cachefiles cull it.
 */
#include "gc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "daemon.h"

/* names in use, each directory's own */
struct names {
	char **v;
	size_t n, cap;
};

static int names_add(struct names *s, const char *name)
{
	char *c = strdup(name);

	if (!c || sk_grow(&s->v, &s->cap, s->n, sizeof(*s->v), 16)) {
		free(c);
		return -ENOMEM;
	}
	s->v[s->n++] = c;
	return 0;
}

/* after names_sort */
static bool names_has(const struct names *s, const char *name)
{
	return s->n && bsearch(&name, s->v, s->n, sizeof(*s->v), sk_strp_cmp);
}

static void names_sort(struct names *s)
{
	if (s->n)
		qsort(s->v, s->n, sizeof(*s->v), sk_strp_cmp);
}

static void names_free(struct names *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
}

enum { IN_BLOBS, IN_TABLES, IN_BOOTSTRAPS, IN_N };
static const char *const gc_dirs[IN_N] = { "blobs", "tables", "bootstraps" };

static int blob_names(struct names *in, const struct ld_blob *b)
{
	struct fmt_blob_ref ref;
	char name[LD_CACHE_NAME_LEN + 1], td[SK_HEX_LEN + 1];
	int ret;

	memcpy(ref.hex, b->cache.hex, sizeof(ref.hex));
	memcpy(ref.table_digest, b->cache.table.table_digest, SK_SHA256_LEN);
	ld_cache_name(&ref, name);
	sk_hex(ref.table_digest, SK_SHA256_LEN, td);
	ret = names_add(&in[IN_BLOBS], name);
	return ret ? ret : names_add(&in[IN_TABLES], td);
}

/* what the blobs and images in memory name, under d->lock */
static int in_use(struct ld_daemon *d, struct names *in)
{
	int ret = 0;

	pthread_mutex_lock(&d->lock);
	for (const struct ld_blob *b = d->blobs; b && !ret; b = b->next)
		ret = blob_names(in, b);
	for (const struct ld_blob *b = d->closing; b && !ret; b = b->next)
		ret = blob_names(in, b);
	for (const struct ld_image *im = d->images; im && !ret; im = im->next) {
		const char *base = strrchr(im->bootstrap_path, '/');

		ret = names_add(&in[IN_BOOTSTRAPS], base ? base + 1 : im->bootstrap_path);
		for (unsigned int i = 0; i < im->nblobs && !ret; i++) {
			char td[SK_HEX_LEN + 1];

			sk_hex(im->refs[i].table_digest, SK_SHA256_LEN, td);
			ret = names_add(&in[IN_TABLES], td);
		}
	}
	pthread_mutex_unlock(&d->lock);
	for (int k = 0; k < IN_N; k++)
		names_sort(&in[k]);
	return ret;
}

static uint64_t allocated(const struct stat *st)
{
	return (uint64_t)st->st_blocks * 512;
}

/* A file that is not in use: counted, listed (unless count_only) and
 * removed (unless dry_run). A blob's cache file goes with its record of
 * verified chunks (a few bytes per chunk, not counted). */
static int take(struct ld_daemon *d, int dfd, const char *dir, const char *name,
		const struct stat *st, const struct ld_gc_opts *o, struct ld_gc_result *res)
{
	char path[PATH_MAX], rec[PATH_MAX];
	uint64_t bytes = allocated(st);

	if (snprintf(path, sizeof(path), "%s/%s/%s", d->cfg.cache_dir, dir, name) >= (int)sizeof(path))
		return 0;
	if (!o->count_only &&
	    sk_grow(&res->files, &res->cap, res->nfiles, sizeof(*res->files), 16))
		return -ENOMEM;
	if (!o->dry_run) {
		if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT) {
			ld_log(d, LD_LOG_WARN, "gc: %s: %s", path, strerror(errno));
			return 0;
		}
		if (!strcmp(dir, "blobs") &&
		    snprintf(rec, sizeof(rec), "%s/verified/%s", d->cfg.cache_dir, name) < (int)sizeof(rec) &&
		    unlink(rec) < 0 && errno != ENOENT)
			ld_log(d, LD_LOG_WARN, "gc: %s: %s", rec, strerror(errno));
		/* counted as it goes: a later failure loses no count (the
		 * cache limit counts its own) */
		if (!o->target) {
			atomic_fetch_add(&d->gc_files, 1);
			atomic_fetch_add(&d->gc_bytes, bytes);
		}
	}
	res->bytes += bytes;
	res->count++;
	if (!o->count_only) {
		struct ld_gc_file *f = &res->files[res->nfiles++];

		snprintf(f->path, sizeof(f->path), "%s", path);
		f->bytes = bytes;
	}
	return 0;
}

/* an unused file, found by the walk */
struct cand {
	int k;			/* its directory, gc_dirs[k] */
	char name[NAME_MAX + 1];
	struct stat st;
};

static int cand_cmp(const void *a, const void *b)
{
	return sk_timespec_cmp(&((const struct cand *)a)->st.st_mtim,
			       &((const struct cand *)b)->st.st_mtim);
}

/* The unused files of directory k, into *c (count_only without a
 * target: only counted, into res). */
static int walk(struct ld_daemon *d, int k, const struct names *in, bool guarded,
		const struct ld_gc_opts *o, time_t now, struct cand **c, size_t *nc,
		size_t *cap, struct ld_gc_result *res, struct sk_err *e)
{
	char dir[PATH_MAX];
	struct dirent *de;
	int ret = 0, dfd;
	DIR *dh;

	if (snprintf(dir, sizeof(dir), "%s/%s", d->cfg.cache_dir, gc_dirs[k]) >= (int)sizeof(dir))
		return 0;
	dh = opendir(dir);
	if (!dh) {
		if (errno == ENOENT)
			return 0;
		sk_err_set(e, "gc: %s: %s", dir, strerror(errno));
		return -errno;
	}
	dfd = dirfd(dh);
	while (!ret && (de = readdir(dh))) {
		struct stat st;

		if (de->d_name[0] == '.' ||
		    fstatat(dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		res->total_bytes += allocated(&st);
		if (names_has(&in[k], de->d_name))
			continue;
		/* a registration writes its tables and bootstrap before it
		 * links them under the API's lock: those of one under way
		 * are left this time */
		if ((double)(now - st.st_mtime) < o->min_age ||
		    (k != IN_BLOBS && !o->dry_run && !guarded)) {
			res->young_bytes += allocated(&st);
			continue;
		}
		if (o->dry_run && o->count_only && !o->target) {
			res->bytes += allocated(&st);
			res->count++;
			continue;
		}
		if (sk_grow(c, cap, *nc, sizeof(**c), 64)) {
			ret = -ENOMEM;
			break;
		}
		(*c)[*nc].k = k;
		snprintf((*c)[*nc].name, sizeof((*c)[*nc].name), "%s", de->d_name);
		(*c)[(*nc)++].st = st;
	}
	closedir(dh);
	return ret;
}

int ld_gc(struct ld_daemon *d, const struct ld_gc_opts *o, struct ld_gc_result *res,
	  struct sk_err *e)
{
	struct names in[IN_N] = { { 0 } };
	struct cand *c = NULL;
	size_t nc = 0, cap = 0;
	time_t now = time(NULL);
	bool guarded = false;
	int ret;

	memset(res, 0, sizeof(*res));
	ret = in_use(d, in);
	if (ret) {
		sk_err_set(e, "gc: %s", strerror(-ret));
		goto out;
	}
	/* a registration under way may be reading or keeping tables and
	 * bootstraps no image names yet: they are left this time, and
	 * never waited for */
	if (!o->dry_run) {
		guarded = pthread_rwlock_trywrlock(&d->registering) == 0;
		res->busy = !guarded;
	}
	for (int k = 0; k < IN_N && !ret; k++)
		ret = walk(d, k, in, guarded, o, now, &c, &nc, &cap, res, e);
	/* the least recently written first: a blob file is written by its
	 * fills, and touched when its last image goes */
	if (!ret && o->target && nc)
		qsort(c, nc, sizeof(*c), cand_cmp);
	for (size_t i = 0; i < nc && !ret; i++) {
		char dir[PATH_MAX];
		int dfd;

		if (o->target && res->bytes >= o->target)
			break;
		if (snprintf(dir, sizeof(dir), "%s/%s", d->cfg.cache_dir, gc_dirs[c[i].k]) >= (int)sizeof(dir))
			continue;
		dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd < 0)
			continue;
		ret = take(d, dfd, gc_dirs[c[i].k], c[i].name, &c[i].st, o, res);
		close(dfd);
	}
	if (guarded)
		pthread_rwlock_unlock(&d->registering);
	if (ret && !e->msg[0])
		sk_err_set(e, "gc: %s", strerror(-ret));
	if (!o->dry_run && res->count && !o->target)	/* the limit says its own */
		ld_log(d, LD_LOG_INFO, "gc: removed %zu files, %llu bytes no image uses%s",
		       res->count, (unsigned long long)res->bytes, ret ? " (then failed)" : "");
out:
	free(c);
	for (int k = 0; k < IN_N; k++)
		names_free(&in[k]);
	if (ret)
		ld_gc_result_free(res);
	return ret;
}

void ld_gc_result_free(struct ld_gc_result *res)
{
	free(res->files);
	res->files = NULL;
	res->nfiles = res->cap = 0;
}
