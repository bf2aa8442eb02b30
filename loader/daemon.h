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

/*
 * One open cache file of a blob and what skiffd knows it holds: skiffd's
 * own file (fanotify), open as long as its blob, or the kernel's cache
 * file of a cachefiles object, from OPEN to CLOSE (the kernel may give a
 * new, empty file at every OPEN, so what one held says nothing of the
 * next). Its owner frees it only once detached with no user left.
 */
struct ld_blob_file {
	struct ld_cache *cache;	/* chunk state of this file */
	int fd;			/* verified bytes are written through it */
	/* under d->lock: ld_blob_use()s, and whether it was detached
	 * while some were left (the last one then calls release) */
	unsigned int users;
	bool detached;
	void (*release)(struct ld_blob_file *f);
};

/*
 * A blob as skiffd serves it (blob.c): one per cache file, keyed by
 * volume, blob id and chunk table. In fanotify mode skiffd's own file
 * (volume ""), shared by every image naming the blob with that table. In
 * cachefiles mode the kernel's file of the blob in one cachefiles volume
 * (an image's fsid, or a domain its images share): created at
 * registration, it is attached to the kernel's object while the kernel
 * has it open. Reads of both frontends, prefetch, status and /metrics all
 * go through it; its counters outlive every file attached to it.
 */
struct ld_blob {
	char volume[128];	/* "": skiffd's own cache file */
	char path[PATH_MAX];	/* skiffd's own cache file, or "" */
	/* the verified chunk table, the counters and, for skiffd's own
	 * file, its chunk state (own.cache points here) */
	struct ld_cache cache;
	struct ld_blob_file own;	/* skiffd's own file; fd -1 if none */
	dev_t dev;
	ino_t ino;
	struct be_source *src;	/* a reference on a source of d->sources */
	/* under d->lock: */
	unsigned int refs;	/* images, reads being served, kernel objects */
	struct ld_blob_file *file;	/* attached now, or NULL */
	bool marked;		/* has a FAN_PRE_ACCESS mark */
	/* an image restored from a skiffd without a cache limit names it:
	 * its mount may have opened the file unmarked, and may outlive its
	 * registration, so nothing of it is ever punched (evict.c) */
	bool no_evict;
	struct ld_blob *next;
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
	struct ld_blob **blobs;		/* references, device-table order */
	struct ld_trace *trace;		/* owned: reads being recorded, or NULL */
	/* the registration + each cachefiles bootstrap object of it: the
	 * kernel keeps a mount's objects open after an unregistration, and
	 * they read bs_buf and id (ld_image_hold/ld_image_put) */
	_Atomic unsigned int users;
	/* its mount opened its blobs' files while they were marked: the
	 * kernel decides at open whether a file ever raises pre-content
	 * events, so only then may their chunks be evicted (evict.c).
	 * Registered under a cache limit, or restored so (images.json) */
	bool notify_ok;
	/* owned: ref pinned to manifest (ld_image_pin), what images.json
	 * restores a network image from; NULL for other images */
	char *pinned;
	/* owned, under d->lock: its entry of images.json as last written,
	 * made again when `state_dirty` (a save of a thousand images joins
	 * these instead of building a thousand objects) */
	char *state_json;
	bool state_dirty;
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
/* in work_dir: registry credentials handed over the control API */
#define LD_AUTH_FILE "auth.json"
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

/*
 * A condition that fails many requests at once (the cache disk full):
 * said once when it starts, counted while it lasts, its end said with the
 * count, so that a full disk under 64 readers costs two log lines, not
 * one per read. It ends when a fill that started after it wrote, or, said
 * at the next failure, after LD_EPISODE_QUIET seconds without one (room
 * came back and read-ahead or prefetch filled the rest). The lock is
 * taken only on failures and ends; `on` is read without it. A zeroed
 * struct is a valid one (glibc's mutex initializer is zeros; the tests
 * calloc their daemons).
 */
#define LD_EPISODE_QUIET 60.0
struct ld_episode {
	pthread_mutex_t lock;
	_Atomic bool on;
	double since, last;		/* sk_now() of its start, its last failure */
	uint64_t at_start;		/* `failed` when it started */
	_Atomic uint64_t failed;	/* requests failed in episodes, ever */
	_Atomic uint64_t started;	/* episodes, ever */
};

struct ld_daemon {
	struct ld_config cfg;
	/* images, blobs, sources. The fanotify frontend takes it on
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
	struct ld_blob *blobs;
	/* unused blobs being closed outside d->lock (waiting for their
	 * read-ahead windows): listed so that /metrics still counts them
	 * until their counters move to `retired` */
	struct ld_blob *closing;
	/* the sources images read from, counted (source_get/source_put in
	 * daemon.c). Its own lock, taken after d->lock when both are: a
	 * source is let go of with and without d->lock held */
	pthread_mutex_t src_lock;
	struct ld_source_ent *sources;
	struct sk_pool *pool;		/* request workers */
	struct sk_pool *ra_pool;	/* background read-ahead windows */
	struct ld_rings *rings;		/* cache-file writes, one per worker */
	struct ld_bufs *bufs;		/* fetch buffers kept for reuse */
	int hold_fd, hold_sock;	/* from the holder, or -1 */
	/* the holder's journal (fanotify), or -1; whether the kernel fd is
	 * in systemd's fd store (a holder death: exit, systemd restarts) */
	int hold_jfd;
	bool hold_fdstore;
	char **argv;		/* skiffd's, to adopt the group as a holder */
	/* this serving process: its number among those the holder started
	 * (0: no holder), and the unanswered events it was handed */
	unsigned int generation, handed;
	/* a stop asked for with --force (POST /v1/stop): lazy mounts or not */
	_Atomic bool force_stop;
	/* POST /v1/upgrade: this server ends for the holder to become a new
	 * binary; not a stop, so lazy mounts do not refuse it */
	_Atomic bool upgrading;
	/* an upgrade request is being checked or carried out: one at a time */
	_Atomic bool upgrade_busy;
	char binary[PATH_MAX];	/* what skiffd runs from, for an upgrade */
	struct ld_frontend *fe;
	struct ctl_server *http;
	struct ld_prefetcher *pf;
	/* on-demand reads being served now: prefetch waits while any is */
	_Atomic unsigned int ondemand;
	_Atomic uint64_t ondemand_last;	/* sk_now_ns() of the last start or end */
	_Atomic unsigned int tracing;	/* images recording a trace */
	double start_time;
	_Atomic uint64_t events, events_fast, events_denied, opens, closes;
	/* events a dead holder had read, handed over from its journal */
	_Atomic uint64_t orphans;
	struct ld_counters retired;	/* of blobs closed */
	/* event received to answered: already filled, and fetched first */
	struct ld_hist lat_cached, lat_fetched;
	/* fills failing for lack of room on the cache disk (ENOSPC, EDQUOT) */
	struct ld_episode cache_full;
	/* what ld_gc removed, ever */
	_Atomic uint64_t gc_files, gc_bytes;
	/* held for reading by each registration from before it reads or
	 * keeps its bootstrap and chunk tables until it is linked; gc takes
	 * it for writing (trylock) to remove tables and bootstraps */
	pthread_rwlock_t registering;
	/* cache.max_size's evictor (evict.c), NULL without a limit */
	struct ld_evictor *evictor;
	/* what it did, ever: passes that removed something, unused files
	 * removed, chunks of registered images punched */
	_Atomic uint64_t evict_passes, evict_files, evict_file_bytes;
	_Atomic uint64_t evict_chunks, evict_chunk_bytes;
	_Atomic uint64_t cache_used;	/* bytes the evictor last counted */
	/* ld_state_restore is registering images mounted earlier */
	bool restoring;
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
/* Sets im->pinned from im->ref and im->manifest, once per registration
 * (a save of images.json then parses no reference: with a thousand images
 * it runs at every registration). */
void ld_image_pin(struct ld_image *im);
/* One entry of images.json, as ld_state_parse() found it: strings point
 * into the parsed document; `bad` when id or ref is missing or a field
 * is longer than registration can hold. */
struct ld_state_ent {
	size_t index;
	const char *id, *ref, *domain, *mountpoint, *pinned;
	bool notify_ok;
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
 * blob.c: blobs (struct ld_blob). ld_blob_prepare() (no lock: reads and
 * verifies the chunk table) gives a blob linked nowhere; ld_blob_get()
 * (under d->lock) links it or takes the one linked already and drops it;
 * ld_blob_discard() drops one never linked. ld_blob_put() (under d->lock)
 * drops a reference and returns the blob to hand to ld_blob_close()
 * (without d->lock) when it was the last, else NULL; ld_blob_release()
 * does both from anywhere, closing on the pool.
 */
int ld_blob_prepare(struct ld_daemon *d, const struct fmt_blob_ref *ref,
		    struct be_source *src, struct ld_blob **out, struct sk_err *e);
int ld_blob_get(struct ld_daemon *d, struct ld_blob *prep, const char *volume,
		struct ld_blob **out, struct sk_err *e);
void ld_blob_discard(struct ld_daemon *d, struct ld_blob *b);
struct ld_blob *ld_blob_put(struct ld_daemon *d, struct ld_blob *b);
void ld_blob_close(struct ld_daemon *d, struct ld_blob *b);
void ld_blob_release(struct ld_daemon *d, struct ld_blob *b);
/* Takes a reference (under d->lock). */
void ld_blob_hold(struct ld_blob *b);
/* skiffd's own blob whose file has this identity (an fd the kernel
 * handed us), with a reference to ld_blob_release(): an unregistration
 * meanwhile must not free it. */
struct ld_blob *ld_blob_by_inode(struct ld_daemon *d, dev_t dev, ino_t ino);
/* The volume an image's blobs are in, by the frontend's ops->volume. */
const char *ld_blob_volume(const struct ld_daemon *d, const struct ld_image *im);
/*
 * Attaching: f becomes the file b's bytes are written to, for prefetch
 * and status, until ld_blob_detach(). Attaching while another file is
 * attached replaces it there. Detaching never waits: it returns true
 * when nobody uses f (its owner may free it now), else false, and the
 * last ld_blob_unuse() calls f->release (on that user's thread).
 */
void ld_blob_attach(struct ld_daemon *d, struct ld_blob *b, struct ld_blob_file *f);
bool ld_blob_detach(struct ld_daemon *d, struct ld_blob *b, struct ld_blob_file *f);
/* The attached file, with a use to give back (ld_blob_unuse), or NULL
 * when the kernel has none open (cachefiles, before OPEN). */
struct ld_blob_file *ld_blob_use(struct ld_daemon *d, struct ld_blob *b);
void ld_blob_unuse(struct ld_daemon *d, struct ld_blob_file *f);
/* Fills [off, off+len) of the attached file for prefetch; *fetched gets
 * the stored bytes fetched. -EAGAIN while no file is attached. */
int ld_blob_prefetch(struct ld_daemon *d, struct ld_blob *b, uint64_t off,
		     uint64_t len, uint64_t *fetched, struct sk_err *e);
/* After a fill: a complete blob stops being watched (the frontend's
 * unwatch), so its reads never leave the kernel again. */
void ld_blob_filled(struct ld_daemon *d, struct ld_blob *b);
/* Verified bytes and chunks of the attached file, under d->lock; false
 * when none is attached. */
bool ld_blob_ready(struct ld_blob *b, uint64_t *bytes, uint64_t *chunks);
/*
 * bsload.c: ld_bs_load() gives the image's bootstrap, verified against
 * the manifest, as a read-only mapping (*map, im->bootstrap_size bytes,
 * the caller's to munmap; nothing to free on failure); ld_bs_check() runs
 * the structural check of skiff check with the caches' verified tables
 * (device-table order) and, in the same walk, notes in each cache where
 * the image's files begin (ld_cache_file_start): what read-ahead keeps
 * within.
 */
int ld_bs_load(struct ld_daemon *d, struct be_source *src, const struct be_image *bi,
	       struct ld_image *im, void **map, struct sk_err *e);
int ld_bs_check(struct fmt_bs *bs, struct ld_cache *const *caches, const char *ref,
		struct sk_err *e);

/*
 * Whether a stop must be refused (unless forced): in fanotify mode, the
 * images mounted now whose reads may still reach skiffd (a blob not
 * complete, watched), since the group closed under them lets the kernel
 * read the holes as zeros. Their count (-ENOMEM when it cannot tell, which
 * refuses too), and in why "N lazy mounts are up, ...: MOUNTPOINT (ID),
 * ...; unmount them first" (cut to len); 0 and "" when a stop is safe.
 */
int ld_stop_refused(struct ld_daemon *d, char *why, size_t len);

int ld_api_start(struct ld_daemon *d, struct sk_err *e);
void ld_api_stop(struct ld_daemon *d);

/* upgrade.c: 0 when the holder may become `binary` (it runs here and
 * speaks this holder's ABI); -errno with a message otherwise. */
int ld_upgrade_check(const char *binary, struct sk_err *e);

#endif
