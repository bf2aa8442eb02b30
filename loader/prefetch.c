/* SPDX-License-Identifier: Apache-2.0 */
#include "prefetch.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../format/bootstrap.h"
#include "daemon.h"

/* One fill of a prefetch: small enough that an on-demand read arriving
 * behind it waits little, large enough to make few backend requests. */
#define PF_UNIT_MAX (1u << 20)

struct pf_unit {
	uint32_t blob;
	/* counted (done_bytes, or failed): a redo after a park counts a
	 * unit once, and a failure it then gets past is uncounted */
	bool done, failed;
	uint64_t off, len;
};

struct pf_task {
	struct ld_image *im;		/* borrowed: cancelled before it goes */
	struct pf_unit *units;		/* owned */
	size_t n, next;
	unsigned int busy;		/* threads inside a unit of it */
	_Atomic bool cancel;		/* read outside the lock */
	unsigned int failed;		/* units that failed */
	double pace;			/* sk_now() before which none starts */
	struct ld_pf_status st;
	struct pf_task *next_task;
};

struct ld_prefetcher {
	struct ld_daemon *d;
	pthread_mutex_t lock;		/* tasks and their fields */
	pthread_cond_t work;		/* a task is runnable, or stop */
	pthread_cond_t idle;		/* a thread left a unit */
	struct pf_task *tasks;
	_Atomic bool stop;
	/* ld_pf_kick()s so far: a unit that found its blob with no file
	 * parks its task only when no kick came since it looked */
	uint64_t kicks;
	unsigned int nthreads;
	pthread_t threads[];
};

const char *ld_pf_state_name(enum ld_pf_state s)
{
	static const char *const names[] = {
		"none", "queued", "running", "waiting", "done", "failed", "cancelled",
	};

	return (unsigned int)s < sizeof(names) / sizeof(names[0]) ? names[s] : "?";
}

static void sleep_s(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static bool runnable(const struct pf_task *t)
{
	return !t->cancel && t->next < t->n &&
	       (t->st.state == LD_PF_QUEUED || t->st.state == LD_PF_RUNNING);
}

static void finish_if_done(struct ld_prefetcher *p, struct pf_task *t)
{
	if (t->next < t->n || t->busy || t->st.state == LD_PF_WAITING ||
	    t->st.state >= LD_PF_DONE)
		return;
	t->st.state = t->cancel ? LD_PF_CANCELLED :
		      t->failed ? LD_PF_FAILED : LD_PF_DONE;
	t->st.finished = sk_now();
	ld_log(p->d, LD_LOG_INFO, "prefetch of %s %s: %llu bytes in %.2f s%s",
	       t->im->id, ld_pf_state_name(t->st.state),
	       (unsigned long long)t->st.done_bytes,
	       t->st.finished - t->st.started,
	       t->failed ? ", some ranges failed" : "");
}

/*
 * On-demand reads go first. A read being served means a reader waits;
 * and a program reading files one after another leaves only short gaps
 * between its reads, which a prefetch range must not fill: so prefetch
 * starts nothing while a read is served or one ended less than
 * PF_QUIET_NS ago. Polling keeps the frontends' hot path to two atomic
 * operations; a millisecond is far below a fetch.
 */
#define PF_QUIET_NS (20 * 1000 * 1000ull)

static void yield_to_reads(struct ld_prefetcher *p, struct pf_task *t)
{
	struct ld_daemon *d = p->d;

	while (!t->cancel && !p->stop &&
	       (atomic_load(&d->ondemand) > 0 ||
		sk_now_ns() - atomic_load(&d->ondemand_last) < PF_QUIET_NS))
		sleep_s(0.001);
}

static void run_unit(struct ld_prefetcher *p, struct pf_task *t, size_t idx)
{
	struct pf_unit u = t->units[idx];
	struct ld_daemon *d = p->d;
	struct sk_err e = { { 0 } };
	uint64_t fetched = 0, kicks = p->kicks;
	double start;
	int ret;

	pthread_mutex_unlock(&p->lock);
	yield_to_reads(p, t);
	/* pace to the bandwidth limit: start no unit before t->pace */
	for (;;) {
		double now = sk_now(), wait;

		pthread_mutex_lock(&p->lock);
		wait = t->pace - now;
		pthread_mutex_unlock(&p->lock);
		if (wait <= 0 || t->cancel || p->stop)
			break;
		sleep_s(wait < 0.05 ? wait : 0.05);
	}
	start = sk_now();
	ret = (t->cancel || p->stop) ? -ECANCELED :
	      u.blob >= t->im->nblobs ? -EINVAL :
	      ld_blob_prefetch(d, t->im->blobs[u.blob], u.off, u.len, &fetched, &e);
	pthread_mutex_lock(&p->lock);
	t->busy--;
	if (ret == -EAGAIN) {
		/* the kernel has not opened that blob yet: park the task
		 * until a frontend kicks us, and redo from this unit (units
		 * after it that finished meanwhile are skipped). A kick that
		 * came while this unit ran found the task running: then the
		 * blob may have its file now, so the task stays runnable */
		if (idx < t->next)
			t->next = idx;
		if (t->st.state == LD_PF_RUNNING && p->kicks == kicks)
			t->st.state = LD_PF_WAITING;
	} else if (ret && ret != -ECANCELED) {
		if (!t->units[idx].failed && !t->failed++)
			snprintf(t->st.error, sizeof(t->st.error), "%s",
				 e.msg[0] ? e.msg : strerror(-ret));
		t->units[idx].failed = true;
	} else if (!ret) {
		if (!t->units[idx].done)
			t->st.done_bytes += u.len;
		if (t->units[idx].failed && !--t->failed)
			t->st.error[0] = '\0';
		t->units[idx].done = true;
		t->units[idx].failed = false;
		t->st.fetched_bytes += fetched;
		if (t->st.bandwidth && fetched) {
			double from = t->pace > start ? t->pace : start;

			t->pace = from + (double)fetched / (double)t->st.bandwidth;
		}
	}
	finish_if_done(p, t);
	pthread_cond_broadcast(&p->idle);
}

static void *worker(void *arg)
{
	struct ld_prefetcher *p = arg;

	pthread_mutex_lock(&p->lock);
	while (!p->stop) {
		struct pf_task *t;

		for (t = p->tasks; t && !runnable(t); t = t->next_task)
			;
		if (!t) {
			pthread_cond_wait(&p->work, &p->lock);
			continue;
		}
		/* redone from a parked unit: skip what finished after it */
		while (t->next < t->n && t->units[t->next].done)
			t->next++;
		if (t->next == t->n) {
			finish_if_done(p, t);
			continue;
		}
		t->st.state = LD_PF_RUNNING;
		t->busy++;
		run_unit(p, t, t->next++);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int ld_pf_start(struct ld_daemon *d, struct sk_err *e)
{
	unsigned int n = d->cfg.prefetch_threads ? d->cfg.prefetch_threads : 1;
	struct ld_prefetcher *p = calloc(1, sizeof(*p) + n * sizeof(pthread_t));

	if (!p)
		return -ENOMEM;
	p->d = d;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->idle, NULL);
	for (unsigned int i = 0; i < n; i++) {
		int err = pthread_create(&p->threads[i], NULL, worker, p);

		if (err) {
			sk_err_set(e, "starting prefetch threads: %s", strerror(err));
			p->nthreads = i;
			d->pf = p;
			ld_pf_stop(d);
			return -err;
		}
		p->nthreads++;
	}
	d->pf = p;
	return 0;
}

static void task_free(struct pf_task *t)
{
	free(t->units);
	free(t);
}

void ld_pf_stop(struct ld_daemon *d)
{
	struct ld_prefetcher *p = d->pf;

	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	for (unsigned int i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	while (p->tasks) {
		struct pf_task *t = p->tasks;

		p->tasks = t->next_task;
		task_free(t);
	}
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->idle);
	free(p);
	d->pf = NULL;
}

static int add_unit(struct pf_task *t, size_t *cap, uint32_t blob,
		    uint64_t off, uint64_t len)
{
	struct pf_unit *last = t->n ? &t->units[t->n - 1] : NULL;

	t->st.total_bytes += len;
	if (last && last->blob == blob && last->off + last->len == off &&
	    last->len + len <= PF_UNIT_MAX) {
		last->len += len;
		return 0;
	}
	if (t->n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		struct pf_unit *nu = realloc(t->units, ncap * sizeof(*nu));

		if (!nu)
			return -ENOMEM;
		t->units = nu;
		*cap = ncap;
	}
	t->units[t->n++] = (struct pf_unit){ .blob = blob, .off = off, .len = len };
	return 0;
}

struct list_ctx {
	struct pf_task *t;
	size_t *cap;
	int err;		/* add_unit's, apart from the bootstrap's */
};

static int add_chunk(void *ctx, const struct fmt_chunk_range *r)
{
	struct list_ctx *l = ctx;

	l->err = add_unit(l->t, l->cap, r->blob,
			  (uint64_t)r->blkaddr * EROFS_BLKSIZ,
			  SK_ALIGN_UP(r->len, (uint64_t)EROFS_BLKSIZ));
	return l->err;
}

/* Every chunk of every listed file, in list order. */
static int units_from_list(struct pf_task *t, const struct ld_image *im,
			   struct sk_err *e)
{
	struct fmt_bs bs;
	size_t cap = 0;
	struct list_ctx l = { .t = t, .cap = &cap };
	int ret;

	ret = fmt_bs_open(&bs, im->bs_buf, im->bootstrap_size);
	if (ret) {
		sk_err_set(e, "bootstrap of %s: %s", im->id, bs.err.msg);
		return ret;
	}
	t->st.list_entries = fmt_bs_prefetch_count(&bs);
	for (uint32_t k = 0; !ret && k < t->st.list_entries; k++) {
		struct fmt_inode ino;
		uint64_t nid;

		ret = fmt_bs_prefetch_nid(&bs, k, &nid);
		if (!ret)
			ret = fmt_bs_inode(&bs, nid, &ino);
		if (ret) {
			sk_err_set(e, "prefetch list of %s, entry %u: %s", im->id, k,
				   bs.err.msg[0] ? bs.err.msg : strerror(-ret));
			break;
		}
		if (!S_ISREG(ino.mode))
			continue;	/* a list may name anything; only data counts */
		ret = fmt_bs_chunks(&bs, &ino, add_chunk, &l);
		if (ret && !l.err)
			sk_err_set(e, "prefetch list of %s: %s", im->id,
				   bs.err.msg[0] ? bs.err.msg : strerror(-ret));
	}
	fmt_bs_close(&bs);
	return ret;
}

static int units_all(struct pf_task *t, const struct ld_image *im)
{
	size_t cap = 0;

	for (unsigned int b = 0; b < im->nblobs; b++)
		for (uint64_t off = 0; off < im->refs[b].usize; off += PF_UNIT_MAX) {
			int ret = add_unit(t, &cap, b, off,
					   SK_MIN((uint64_t)PF_UNIT_MAX, im->refs[b].usize - off));

			if (ret)
				return ret;
		}
	return 0;
}

static struct pf_task *find_task(struct ld_prefetcher *p, const struct ld_image *im)
{
	struct pf_task *t;

	for (t = p->tasks; t; t = t->next_task)
		if (t->im == im)
			return t;
	return NULL;
}

/* Unlinks and frees im's task once no thread is inside it. */
static void drop_task(struct ld_prefetcher *p, const struct ld_image *im)
{
	struct pf_task *t = find_task(p, im), **pp;

	if (!t)
		return;
	t->cancel = true;
	while (t->busy)
		pthread_cond_wait(&p->idle, &p->lock);
	if (t->st.state < LD_PF_DONE)
		ld_log(p->d, LD_LOG_INFO, "prefetch of %s cancelled after %llu of %llu bytes",
		       t->im->id, (unsigned long long)t->st.done_bytes,
		       (unsigned long long)t->st.total_bytes);
	for (pp = &p->tasks; *pp; pp = &(*pp)->next_task)
		if (*pp == t) {
			*pp = t->next_task;
			break;
		}
	task_free(t);
}

int ld_pf_image(struct ld_daemon *d, struct ld_image *im, bool all,
		uint64_t bandwidth, struct sk_err *e)
{
	struct ld_prefetcher *p = d->pf;
	struct pf_task *t;
	int ret;

	if (!p) {
		sk_err_set(e, "skiffd runs no prefetcher");
		return -EOPNOTSUPP;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	t->im = im;
	t->st.all = all;
	t->st.bandwidth = bandwidth ? bandwidth : d->cfg.prefetch_bandwidth;
	ret = all ? units_all(t, im) : units_from_list(t, im, e);
	if (!ret && !all && t->st.list_entries == 0) {
		sk_err_set(e, "image %s has no prefetch list (use --all for the whole image)",
			   im->id);
		ret = -ENODATA;
	}
	if (ret) {
		task_free(t);
		return ret;
	}
	t->st.state = LD_PF_QUEUED;
	t->st.started = sk_now();
	pthread_mutex_lock(&p->lock);
	drop_task(p, im);
	t->next_task = p->tasks;
	p->tasks = t;
	finish_if_done(p, t);	/* an empty list is done at once */
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	ld_log(d, LD_LOG_INFO, "prefetch of %s queued: %s, %llu bytes in %zu ranges",
	       im->id, all ? "whole image" : "prefetch list",
	       (unsigned long long)t->st.total_bytes, t->n);
	return 0;
}

void ld_pf_cancel(struct ld_daemon *d, struct ld_image *im)
{
	struct ld_prefetcher *p = d->pf;

	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	drop_task(p, im);
	pthread_mutex_unlock(&p->lock);
}

void ld_pf_kick(struct ld_daemon *d)
{
	struct ld_prefetcher *p = d->pf;
	bool any = false;

	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->kicks++;
	for (struct pf_task *t = p->tasks; t; t = t->next_task)
		if (t->st.state == LD_PF_WAITING && !t->cancel) {
			t->st.state = LD_PF_QUEUED;
			any = true;
		}
	if (any)
		pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
}

int ld_pf_status(struct ld_daemon *d, const struct ld_image *im,
		 struct ld_pf_status *st)
{
	struct ld_prefetcher *p = d->pf;
	struct pf_task *t;

	if (!p)
		return -ENOENT;
	pthread_mutex_lock(&p->lock);
	t = find_task(p, im);
	if (t)
		*st = t->st;
	pthread_mutex_unlock(&p->lock);
	return t ? 0 : -ENOENT;
}
