/* SPDX-License-Identifier: Apache-2.0 */
#include "request.h"
#include "evict.h"

#include <errno.h>
#include <string.h>

#include "cache.h"
#include "daemon.h"
#include "evloop.h"
#include "trace.h"

/* Answers r, and (once no longer counted as in flight, for a fill)
 * releases it: the release may end the frontend's interest in it. */
static void finish(struct ld_req *r, int err, struct ld_hist *h, bool in_flight)
{
	struct ld_daemon *d = r->d;

	if (err)
		atomic_fetch_add(&d->events_denied, 1);
	r->answer(r, err);
	if (in_flight)
		ld_ev_done(d);
	ld_hist_observe(h, sk_now() - r->t0);
	/* a blob made complete (by this fill, read-ahead or prefetch)
	 * stops being watched */
	if (r->blob)
		ld_blob_filled(d, r->blob);
	r->release(r);
}

/* Under ep->lock: the episode is over, said with its count. */
static void full_end(struct ld_daemon *d, struct ld_episode *ep, double now)
{
	atomic_store(&ep->on, false);
	ld_log(d, LD_LOG_WARN, "cache disk has room again: %llu reads failed for lack of it in %.1f s",
	       (unsigned long long)(atomic_load(&ep->failed) - ep->at_start), now - ep->since);
}

/* A fill that failed for lack of room on the cache disk (ENOSPC, EDQUOT;
 * ENOBUFS: cachefiles below its bstop limit): the first of an episode is
 * logged with its reason, the rest only counted. */
static void full_hit(struct ld_daemon *d, const struct ld_req *r, const char *why)
{
	struct ld_episode *ep = &d->cache_full;
	double now = sk_now();

	pthread_mutex_lock(&ep->lock);
	/* quiet for long: room came back, and what was read since was
	 * filled by read-ahead or prefetch, or cached */
	if (atomic_load(&ep->on) && now - ep->last > LD_EPISODE_QUIET)
		full_end(d, ep, ep->last);
	if (!atomic_load(&ep->on)) {
		atomic_store(&ep->on, true);
		ep->since = now;
		ep->at_start = atomic_load(&ep->failed);
		atomic_fetch_add(&ep->started, 1);
		ld_log(d, LD_LOG_ERROR,
		       "cache disk full: read [%llu, +%llu) of %s: %s (reads failing for lack of room are counted, not logged, until a fill writes again)",
		       (unsigned long long)r->off, (unsigned long long)r->len, r->what, why);
	}
	ep->last = now;
	atomic_fetch_add(&ep->failed, 1);
	pthread_mutex_unlock(&ep->lock);
	/* under a cache limit, room may be made now */
	ld_evict_kick(d);
}

/* A fill that started at t0 wrote: an episode that began before it is
 * over (one that wrote nothing, or began earlier, proves no room). */
static void full_over(struct ld_daemon *d, double t0)
{
	struct ld_episode *ep = &d->cache_full;

	if (!atomic_load(&ep->on))
		return;
	pthread_mutex_lock(&ep->lock);
	if (atomic_load(&ep->on) && t0 >= ep->since)
		full_end(d, ep, sk_now());
	pthread_mutex_unlock(&ep->lock);
}

static bool no_room(int err)
{
	return err == -ENOSPC || err == -EDQUOT || err == -ENOBUFS;
}

static void fill_job(struct sk_job *job)
{
	struct ld_req *r = (struct ld_req *)job;
	struct ld_daemon *d = r->d;
	struct sk_err e = { { 0 } };
	uint64_t wrote = 0;
	int ret = r->fill ? r->fill(r, &e)
			  : ld_cache_fill_flags(r->cache, r->wfd, r->off, r->len, 0, &wrote, &e);
	const char *why = e.msg[0] ? e.msg : strerror(-ret);

	if (no_room(ret))
		full_hit(d, r, why);
	else if (ret)
		ld_log(d, LD_LOG_ERROR, "read [%llu, +%llu) of %s: %s",
		       (unsigned long long)r->off, (unsigned long long)r->len, r->what, why);
	/* a frontend's own fill (a cachefiles bootstrap) writes what it
	 * reads; a cache fill wrote if it fetched */
	else if (r->fill || wrote)
		full_over(d, r->t0);
	finish(r, ret ? -EIO : 0, &d->lat_fetched, true);
}

void ld_request(struct ld_daemon *d, struct ld_req *r)
{
	r->d = d;
	r->t0 = sk_now();
	if (r->cache) {
		ld_trace_note(d, r->cache->hex, r->off, r->len);
		if (ld_cache_range_ready(r->cache, r->off, r->len)) {
			atomic_fetch_add(&d->events_fast, 1);
			finish(r, 0, &d->lat_cached, false);
			return;
		}
	}
	r->job.fn = fill_job;
	r->job.detached = true;	/* fill_job releases r */
	ld_ev_submit(d, &r->job);
}
