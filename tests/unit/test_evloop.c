/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The frontends' event thread (loader/evloop.c) on pipes instead of the
 * kernel's fds: the handler runs on what arrives, with its scratch
 * buffer; it can move the thread to another fd and end it; stopping
 * joins a thread blocked in poll; a failing eventfd is reported; and
 * request jobs count in d->ondemand while they run.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "../../loader/daemon.h"
#include "../../loader/evloop.h"
#include "tap.h"

/* What the handler saw, shared with the test's thread. */
struct seen {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	char data[256];
	size_t len;
	unsigned int calls;
	size_t bufsz;
	bool aligned;
	int next_fd;		/* "switch" moves the thread here */
};

static int on_ready(struct ld_ev *ev, void *buf, size_t bufsz)
{
	struct seen *s = ev->arg;
	ssize_t n;
	int ret = 0;

	pthread_mutex_lock(&s->lock);
	s->calls++;
	pthread_mutex_unlock(&s->lock);
	n = read(ev->fd, buf, bufsz);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	pthread_mutex_lock(&s->lock);
	s->bufsz = bufsz;
	s->aligned = (uintptr_t)buf % 8 == 0;
	if ((size_t)n <= sizeof(s->data) - s->len) {
		memcpy(s->data + s->len, buf, (size_t)n);
		s->len += (size_t)n;
	}
	if (n == 6 && !memcmp(buf, "switch", 6))
		ev->fd = s->next_fd;
	if (n == 4 && !memcmp(buf, "quit", 4))
		ret = -EIO;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return ret;
}

/* Waits until the handler has collected want (10 s guard against a hang,
 * not a timing assertion). */
static bool wait_for(struct seen *s, const char *want)
{
	struct timespec until;
	bool got;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 10;
	pthread_mutex_lock(&s->lock);
	while (!(s->len == strlen(want) && !memcmp(s->data, want, s->len)) &&
	       pthread_cond_timedwait(&s->cond, &s->lock, &until) != ETIMEDOUT)
		;
	got = s->len == strlen(want) && !memcmp(s->data, want, s->len);
	pthread_mutex_unlock(&s->lock);
	if (!got)
		diag("handler has \"%.*s\", want \"%s\"", (int)s->len, s->data, want);
	return got;
}

static void put(int fd, const char *str)
{
	if (sk_write_full(fd, str, strlen(str)))
		bail_out("writing a pipe");
}

static void test_loop(struct ld_daemon *d)
{
	struct seen s = { .lock = PTHREAD_MUTEX_INITIALIZER,
			  .cond = PTHREAD_COND_INITIALIZER };
	struct sk_err e = { { 0 } };
	struct ld_ev ev;
	int a[2], b[2];
	char rest[16];

	if (pipe2(a, O_CLOEXEC | O_NONBLOCK) || pipe2(b, O_CLOEXEC | O_NONBLOCK))
		bail_out("pipe2");
	s.next_fd = b[0];
	is_int(ld_ev_init(&ev, d, "test", a[0], 100, on_ready, &s, &e), 0, "init");
	ok(ev.stopfd >= 0, "... makes a stop eventfd (%d)", ev.stopfd);
	is_int(fcntl(ev.stopfd, F_GETFD), FD_CLOEXEC, "... close-on-exec");
	ok(!ev.running, "... starts no thread");
	ld_ev_stop(&ev);
	ok(!ev.running, "stopping a thread never started does nothing");

	is_int(ld_ev_start(&ev), 0, "start");
	ok(ev.running, "... the thread runs");
	put(a[1], "hello");
	ok(wait_for(&s, "hello"), "the handler gets what arrives on fd");
	is_int((int)s.bufsz, 100, "... with a scratch buffer of bufsz bytes");
	ok(s.aligned, "... 8-aligned");

	put(a[1], "switch");
	ok(wait_for(&s, "helloswitch"), "the handler moves the thread to another fd");
	put(b[1], "bee");
	ok(wait_for(&s, "helloswitchbee"), "... which the thread then waits on");
	put(a[1], "left");
	put(b[1], "quit");
	ok(wait_for(&s, "helloswitchbeequit"), "a handler returning -errno is called");
	ld_ev_stop(&ev);
	ok(!ev.running, "... and stopping after the thread ended joins it");
	is_int((int)read(a[0], rest, sizeof(rest)), 4, "the old fd was no longer read");
	pthread_mutex_lock(&s.lock);
	is_int((int)s.calls, 4, "one call per wake-up, none after the end");
	pthread_mutex_unlock(&s.lock);
	ld_ev_destroy(&ev);
	is_int(ev.stopfd, -1, "destroy closes the stop eventfd");

	/* stop while the thread sleeps in poll: nothing arrives */
	s.len = 0;
	s.calls = 0;
	is_int(ld_ev_init(&ev, d, "test", a[0], 8, on_ready, &s, &e), 0, "a second loop");
	is_int(ld_ev_start(&ev), 0, "... starts");
	ld_ev_destroy(&ev);
	ok(!ev.running, "destroy stops a thread waiting in poll");
	is_int(ev.stopfd, -1, "... and closes its stop eventfd");
	is_int((int)s.calls, 0, "... without calling the handler");
	ok(fcntl(a[0], F_GETFD) >= 0, "... and leaves the frontend's fd open");

	close(a[0]);
	close(a[1]);
	close(b[0]);
	close(b[1]);
}

/* No fd left to allocate: init fails with the frontend's name. */
static void test_init_fails(struct ld_daemon *d)
{
	struct sk_err e = { { 0 } };
	struct rlimit old, lim;
	struct ld_ev ev;
	int lowest = dup(1);
	int ret;

	if (lowest < 0 || getrlimit(RLIMIT_NOFILE, &old))
		bail_out("dup/getrlimit");
	close(lowest);
	lim = old;
	lim.rlim_cur = (rlim_t)lowest;
	if (setrlimit(RLIMIT_NOFILE, &lim))
		bail_out("setrlimit");
	ret = ld_ev_init(&ev, d, "test", 0, 8, on_ready, NULL, &e);
	setrlimit(RLIMIT_NOFILE, &old);
	is_int(ret, -EMFILE, "init without a free fd: -EMFILE");
	ok(!strcmp(e.msg, "test frontend: Too many open files"), "... says so: %s", e.msg);
}

struct req {
	struct sk_job job;
	struct ld_daemon *d;
	unsigned int ondemand;	/* seen while running */
	uint64_t last;		/* ondemand_last seen while running */
	int done_fd;
};

static void req_fn(struct sk_job *job)
{
	struct req *r = (struct req *)job;

	r->ondemand = atomic_load(&r->d->ondemand);
	r->last = atomic_load(&r->d->ondemand_last);
	ld_ev_done(r->d);
	put(r->done_fd, "x");
}

static void test_submit(struct ld_daemon *d)
{
	struct req r = { .job = { .fn = req_fn, .detached = true }, .d = d };
	uint64_t before = sk_now_ns();
	int p[2];
	char c;

	if (pipe2(p, O_CLOEXEC))
		bail_out("pipe2");
	r.done_fd = p[1];
	ld_ev_submit(d, &r.job);
	is_int((int)read(p[0], &c, 1), 1, "a submitted request runs on the pool");
	is_int((int)r.ondemand, 1, "... counted in ondemand while it runs");
	ok(r.last >= before, "... ondemand_last set when it started");
	is_int((int)atomic_load(&d->ondemand), 0, "ld_ev_done uncounts it");
	ok(atomic_load(&d->ondemand_last) >= r.last, "... and sets ondemand_last again");
	close(p[0]);
	close(p[1]);
}

int main(void)
{
	struct ld_daemon *d = calloc(1, sizeof(*d));

	if (!d || sk_pool_create(&d->pool, 1))
		bail_out("daemon");
	d->cfg.log_level = LD_LOG_ERROR;
	test_loop(d);
	test_init_fails(d);
	test_submit(d);
	sk_pool_destroy(d->pool);
	free(d);
	return done_testing();
}
