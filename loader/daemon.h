/* SPDX-License-Identifier: Apache-2.0 */
/*
 * skiffd's state: configuration, registered images, the cache files they
 * share, the request pool and the frontend. One struct owns it all; the
 * frontends and the control API get it passed in.
 */
#ifndef SKIFF_LOADER_DAEMON_H
#define SKIFF_LOADER_DAEMON_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#include "../backend/remote.h"
#include "../backend/source.h"
#include "../backend/store.h"
#include "../format/bootstrap.h"
#include "cache.h"
#include "frontend.h"
#include "config.h"

/* A blob's cache file owned by skiffd (fanotify mode), shared by every
 * image that names the blob. */
struct ld_blob_file {
	char path[PATH_MAX];
	int fd;			/* O_RDWR, never read through (would raise events) */
	dev_t dev;
	ino_t ino;
	struct ld_cache cache;
	struct be_source *src;	/* a reference on a source of d->sources */
	unsigned int refs;	/* images using it */
	bool marked;		/* has a FAN_PRE_ACCESS mark */
	struct ld_blob_file *next;
};

/* Counters of an image's cachefiles objects; outlives the image while
 * objects still count into it. */
struct ld_img_counters {
	struct ld_counters c;
	_Atomic unsigned int refs;
};

struct ld_image {
	char id[128];		/* fsid: name under which it is registered */
	char domain[128];	/* cachefiles domain_id sharing blobs, or "" */
	char ref[PATH_MAX];	/* IMAGE as given: DIR[:TAG], URL[#TAG], docker://... */
	char mountpoint[PATH_MAX];
	char manifest[SK_HEX_LEN + 1];
	char bootstrap_path[PATH_MAX];
	uint64_t bootstrap_size;
	/* owned: the verified bootstrap, mapped read-only from its copy at
	 * bootstrap_path (bootstrap_size bytes) */
	void *bs_buf;
	unsigned int nblobs;
	struct fmt_blob_ref *refs;	/* owned, device-table order */
	struct be_source *src;		/* a reference on a source of d->sources */
	/* fanotify mode only: the shared cache files, device-table order */
	struct ld_blob_file **blobs;
	struct ld_img_counters *icnt;	/* cachefiles mode counters */
	struct ld_trace *trace;		/* owned: reads being recorded, or NULL */
	/* the registration + each cachefiles object naming the image: the
	 * kernel keeps a mount's objects open after an unregistration, and
	 * they read bs_buf, refs, domain (ld_image_hold/ld_image_put) */
	_Atomic unsigned int users;
	struct ld_image *next;
};

/* A source in d->sources (under d->src_lock). */
struct ld_source_ent {
	char dir[PATH_MAX];	/* the reference's location (be_ref.loc) */
	struct be_source *src;	/* owned */
	unsigned int refs;	/* images, cache files, registrations under way */
	struct ld_source_ent *next;
};

/* Latency histogram: cumulative buckets are computed when printed. */
#define LD_HIST_BUCKETS 15
extern const double ld_hist_bounds[LD_HIST_BUCKETS - 1];	/* seconds */
struct ld_hist {
	_Atomic uint64_t b[LD_HIST_BUCKETS];	/* last one: +Inf */
	_Atomic uint64_t count;
	_Atomic uint64_t sum_ns;
};
void ld_hist_observe(struct ld_hist *h, double seconds);

struct ld_frontend;
struct ctl_server;
struct ld_prefetcher;
struct ld_trace;

struct ld_daemon {
	struct ld_config cfg;
	/* images, blob files, sources. The fanotify frontend takes it on
	 * every event, status and /metrics on every call: registration
	 * never holds it across network I/O (ld_image_fetch) */
	pthread_mutex_t lock;
	/* serialises the control API's image calls (registering, unregister,
	 * prefetch, trace), so one never frees an image another still uses.
	 * Reads, status and /metrics never take it; a registration takes it
	 * only after its network work (ld_image_add), so it too is never
	 * held while a source answers slowly. */
	pthread_mutex_t api_lock;
	struct ld_image *images;
	struct ld_blob_file *files;
	/* unused cache files being closed outside d->lock (waiting for their
	 * read-ahead windows): listed so that /metrics still counts them
	 * until their counters move to `retired` */
	struct ld_blob_file *closing;
	/* the sources images read from, counted (source_get/source_put in
	 * daemon.c). Its own lock, taken after d->lock when both are: a
	 * source is let go of with and without d->lock held */
	pthread_mutex_t src_lock;
	struct ld_source_ent *sources;
	struct sk_pool *pool;		/* request workers */
	struct sk_pool *ra_pool;	/* background read-ahead windows */
	struct ld_rings *rings;		/* cache-file writes, one per worker */
	struct ld_bufs *bufs;		/* fetch buffers kept for reuse */
	int hold_group, hold_sock;	/* from the holder, or -1 */
	struct ld_frontend *fe;
	struct ctl_server *http;
	struct ld_prefetcher *pf;
	/* on-demand reads being served now: prefetch waits while any is */
	_Atomic unsigned int ondemand;
	_Atomic uint64_t ondemand_last;	/* sk_now_ns() of the last start or end */
	_Atomic unsigned int tracing;	/* images recording a trace */
	double start_time;
	_Atomic uint64_t events, events_fast, events_denied, opens, closes;
	struct ld_counters retired;	/* of cache files closed */
	/* event received to answered: already filled, and fetched first */
	struct ld_hist lat_cached, lat_fetched;
};

void ld_log(const struct ld_daemon *d, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Registers IMAGE under id (generated from the manifest when empty):
 * ld_image_fetch(), then ld_image_add(). */
int ld_image_register(struct ld_daemon *d, const char *ref, const char *id,
		      const char *domain, const char *mountpoint,
		      struct ld_image **out, struct sk_err *e);
/*
 * Registration in two steps, so that no lock is held while a source
 * answers slowly. ld_image_fetch() does all the network work (manifest,
 * bootstrap, every chunk table) holding no lock but d->lock for moments;
 * ld_image_add() then registers the result under d->lock doing local
 * work only, and decides there whether the id is free or the same image
 * is registered already: of two fetches of one image, the second gets the
 * first's registration. ld_image_add() always frees n; on success *out is
 * the image, which the caller may use only while no unregistration can
 * run (the API's api_lock).
 */
struct ld_image_new;
int ld_image_fetch(struct ld_daemon *d, const char *ref, const char *id,
		   const char *domain, const char *mountpoint,
		   struct ld_image_new **out, struct sk_err *e);
int ld_image_add(struct ld_daemon *d, struct ld_image_new *n,
		 struct ld_image **out, struct sk_err *e);
int ld_image_unregister(struct ld_daemon *d, const char *id,
			struct sk_err *e);
struct ld_image *ld_image_find(struct ld_daemon *d, const char *id);
void ld_img_counters_put(struct ld_daemon *d, struct ld_img_counters *ic);
/* A reference on a registered image (take it under d->lock, where the
 * image is found); the last put frees it, unregistered by then. */
void ld_image_hold(struct ld_image *im);
void ld_image_put(struct ld_daemon *d, struct ld_image *im);
/* Writes the registered images to work_dir/images.json. */
int ld_state_save(struct ld_daemon *d);
/* At exit, once the frontend (d->fe NULL) and the pools are gone: frees
 * every image, its cache files and their sources. images.json is left as
 * it is, so the next start registers them again. */
void ld_daemon_free_images(struct ld_daemon *d);
int ld_state_restore(struct ld_daemon *d);
/* One entry of images.json, as ld_state_parse() found it: strings point
 * into the parsed document; `bad` when id or ref is missing or a field
 * is longer than registration can hold. */
struct ld_state_ent {
	size_t index;
	const char *id, *ref, *domain, *mountpoint, *pinned;
	bool bad;
};
/* Parses images.json (untrusted: a damaged disk, an older skiffd, a
 * hand edit), calling cb for each entry; cb's non-zero stops it. */
int ld_state_parse(const char *text, size_t len,
		   int (*cb)(void *ctx, const struct ld_state_ent *ent), void *ctx,
		   struct sk_err *e);
/* Where a blob's verified chunk table is kept, under its own digest
 * (cache_dir/tables/<table digest>), so that restoring images needs no
 * network for it; NULL if too long. */
const char *ld_table_path(const struct ld_daemon *d, const struct fmt_blob_ref *ref,
			  char *out, size_t outlen);
/* Looks a cache file up by the identity of an fd the kernel handed us,
 * taking a reference the caller gives back with ld_file_release() once
 * done with the file: an unmount meanwhile must not free it. */
struct ld_blob_file *ld_file_by_inode(struct ld_daemon *d, dev_t dev, ino_t ino);
void ld_file_release(struct ld_daemon *d, struct ld_blob_file *f);
/* Runs fn(d, arg) on the request pool, detached: for work that may wait
 * on a backend (closing a cache waits for its read-ahead windows) and
 * must not on the caller's thread, a frontend's event thread. Inline when
 * there is no pool or no memory. Main drains the pool after the frontend
 * stops, so the work runs before skiffd exits. */
void ld_run_later(struct ld_daemon *d, void (*fn)(struct ld_daemon *d, void *arg),
		  void *arg);

/*
 * Inside the loader: the pieces registration is made of.
 * source.c: sources, counted (d->src_lock, taken after d->lock).
 */
struct be_source *ld_source_get(struct ld_daemon *d, const struct be_ref *r,
				struct sk_err *e);
struct be_source *ld_source_hold(struct ld_daemon *d, struct be_source *src);
void ld_source_put(struct ld_daemon *d, struct be_source *src);
/*
 * blobfile.c: skiffd's own cache files. ld_file_prepare() (no lock: reads
 * and verifies the chunk table) gives a file linked nowhere;
 * ld_file_get() (under d->lock) links it or takes the one linked already
 * and drops it; ld_file_discard() drops one never linked. ld_file_put()
 * (under d->lock) drops a reference and returns the file to hand to
 * ld_file_close() (without d->lock) when it was the last, else NULL.
 */
int ld_file_prepare(struct ld_daemon *d, const struct fmt_blob_ref *ref,
		    struct be_source *src, struct ld_blob_file **out, struct sk_err *e);
int ld_file_get(struct ld_daemon *d, const struct fmt_blob_ref *ref,
		struct ld_blob_file *prep, struct ld_blob_file **out, struct sk_err *e);
void ld_file_discard(struct ld_daemon *d, struct ld_blob_file *f);
struct ld_blob_file *ld_file_put(struct ld_daemon *d, struct ld_blob_file *f);
void ld_file_close(struct ld_daemon *d, struct ld_blob_file *f);
/*
 * bsload.c: ld_bs_load() gives the image's bootstrap, verified against
 * the manifest, as a read-only mapping (*map, im->bootstrap_size bytes,
 * the caller's to munmap; nothing to free on failure); ld_bs_check() runs
 * the structural check of skiff check with the blobs' verified tables.
 */
int ld_bs_load(struct ld_daemon *d, struct be_source *src, const struct be_image *bi,
	       struct ld_image *im, void **map, struct sk_err *e);
int ld_bs_check(struct fmt_bs *bs, struct ld_blob_file **prep, const char *ref,
		struct sk_err *e);

int ld_api_start(struct ld_daemon *d, struct sk_err *e);
void ld_api_stop(struct ld_daemon *d);

#endif
