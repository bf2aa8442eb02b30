/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The event thread both frontends run (see evloop.h). It owns nothing of
 * the kernel's: the frontend opens and closes the fd it waits on, reads
 * and answers; this file only waits, wakes it and stops.
 */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "daemon.h"
#include "evloop.h"

int ld_ev_init(struct ld_ev *ev, struct ld_daemon *d, const char *name, int fd,
	       size_t bufsz, int (*handle)(struct ld_ev *ev, void *buf, size_t bufsz),
	       void *arg, struct sk_err *e)
{
	int ret;

	memset(ev, 0, sizeof(*ev));
	ev->d = d;
	ev->name = name;
	ev->fd = fd;
	ev->bufsz = bufsz;
	ev->handle = handle;
	ev->arg = arg;
	ev->stopfd = eventfd(0, EFD_CLOEXEC);
	if (ev->stopfd < 0) {
		ret = -errno;
		sk_err_set(e, "%s frontend: %s", name, strerror(errno));
		return ret;
	}
	return 0;
}

static void *ev_main(void *arg)
{
	struct ld_ev *ev = arg;
	/* aligned_alloc wants a multiple of the alignment */
	char *buf = aligned_alloc(8, SK_ALIGN_UP(ev->bufsz, (size_t)8));

	if (!buf) {
		ld_log(ev->d, LD_LOG_ERROR, "%s: out of memory", ev->name);
		return NULL;
	}
	for (;;) {
		struct pollfd p[2] = { { ev->fd, POLLIN, 0 }, { ev->stopfd, POLLIN, 0 } };

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			ld_log(ev->d, LD_LOG_ERROR, "%s poll: %s", ev->name, strerror(errno));
			break;
		}
		/* a stop wins over requests pending too: a stopped frontend
		 * takes no more */
		if (p[1].revents)
			break;
		if (ev->handle(ev, buf, ev->bufsz) < 0)
			break;
	}
	free(buf);
	return NULL;
}

int ld_ev_start(struct ld_ev *ev)
{
	int ret = -pthread_create(&ev->thread, NULL, ev_main, ev);

	if (!ret)
		ev->running = true;
	return ret;
}

void ld_ev_stop(struct ld_ev *ev)
{
	uint64_t one = 1;

	if (!ev->running)
		return;
	if (write(ev->stopfd, &one, sizeof(one)) < 0)
		ld_log(ev->d, LD_LOG_WARN, "%s stop: %s", ev->name, strerror(errno));
	pthread_join(ev->thread, NULL);
	ev->running = false;
}

void ld_ev_destroy(struct ld_ev *ev)
{
	ld_ev_stop(ev);
	if (ev->stopfd >= 0)
		close(ev->stopfd);
	ev->stopfd = -1;
}

void ld_ev_submit(struct ld_daemon *d, struct sk_job *job)
{
	atomic_fetch_add(&d->ondemand, 1);
	atomic_store(&d->ondemand_last, sk_now_ns());
	sk_pool_submit(d->pool, job);
}

void ld_ev_done(struct ld_daemon *d)
{
	atomic_store(&d->ondemand_last, sk_now_ns());
	atomic_fetch_sub(&d->ondemand, 1);
}
