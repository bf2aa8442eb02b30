/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The event thread of a frontend: one thread that waits on the kernel's fd
 * (the fanotify group or the holder's socket, /dev/cachefiles) and on an
 * eventfd that stops it, and hands the frontend each wake-up. Requests the
 * frontend cannot answer at once go to the request pool through
 * ld_ev_submit() and end with ld_ev_done(), which keep d->ondemand (what
 * prefetch yields to). Parsing and answering stay in the frontend.
 */
#ifndef SKIFF_LOADER_EVLOOP_H
#define SKIFF_LOADER_EVLOOP_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "../common/sk.h"

struct ld_daemon;

struct ld_ev {
	struct ld_daemon *d;	/* for log lines */
	const char *name;	/* "fanotify", "cachefiles": starts log lines */
	int fd;			/* borrowed: what the thread waits on */
	size_t bufsz;		/* of the scratch buffer handle() gets */
	/*
	 * Called on the event thread when fd is readable. buf (bufsz bytes,
	 * 8-aligned, owned by the thread) is scratch to read messages into.
	 * Returns 0 to go on waiting, or -errno to end the thread (having
	 * logged why). It may set ev->fd to wait on another fd from then on.
	 */
	int (*handle)(struct ld_ev *ev, void *buf, size_t bufsz);
	void *arg;		/* the frontend's, for handle() */
	int stopfd;		/* owned eventfd: a write ends the thread */
	pthread_t thread;
	bool running;
};

/* Fills ev and makes its stop eventfd; no thread yet. -errno with a
 * message "NAME frontend: ..." */
int ld_ev_init(struct ld_ev *ev, struct ld_daemon *d, const char *name, int fd,
	       size_t bufsz, int (*handle)(struct ld_ev *ev, void *buf, size_t bufsz),
	       void *arg, struct sk_err *e);
/* Starts the thread: 0 or -errno. */
int ld_ev_start(struct ld_ev *ev);
/* Ends the thread and joins it; nothing when it does not run. Requests on
 * the pool are not waited for: they answer through the frontend's fds,
 * which the frontend closes only after this. */
void ld_ev_stop(struct ld_ev *ev);
/* ld_ev_stop(), then closes the stop eventfd (not ev->fd). */
void ld_ev_destroy(struct ld_ev *ev);

/* Runs a detached request job on the request pool, counted in d->ondemand
 * until the job calls ld_ev_done(d). */
void ld_ev_submit(struct ld_daemon *d, struct sk_job *job);
void ld_ev_done(struct ld_daemon *d);

#endif
