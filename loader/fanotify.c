/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fanotify frontend (Linux 6.14+): EROFS is mounted file-backed on
 * skiffd's own sparse cache files, which carry FAN_PRE_ACCESS marks. Each
 * read of a cache file that misses the page cache raises an event with the
 * byte range; ranges the chunk map says are ready are allowed at once,
 * others are filled on the request pool (written through the event's fd,
 * whose writes raise no events) and then allowed, or denied with EIO.
 * Every event is answered on every path: an unanswered one hangs the
 * reader. A complete cache file loses its mark, so its reads never leave
 * the kernel again.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "evloop.h"
#include "fanrec.h"
#include "holder.h"
#include "request.h"

struct fan_fe {
	struct ld_frontend base;
	struct ld_daemon *d;
	int fan;		/* the fanotify group (the holder's, when held) */
	int hsock;		/* the holder's socket, or -1 */
	atomic_bool held;	/* events come from hsock; false: read fan */
	struct ld_ev ev;	/* the event thread: waits on hsock, else fan */
	pid_t self;		/* events we cause ourselves are allowed */
	/* tests: a read of this cache-file offset makes the server fault
	 * (SKIFF_TEST_POISON_OFFSET), or UINT64_MAX */
	uint64_t poison;
};

/* A read event being served (ld_request): answered through the group,
 * holding the event's fd and a reference on the cache file. */
struct fan_req {
	struct ld_req base;
	struct fan_fe *fe;
	struct ld_blob *b;
	int fd;			/* the event's fd, ours to close */
	int hfd;		/* the fd number the answer names */
	char what[80];
};

int ld_fanotify_probe(const char *cache_dir, struct sk_err *e)
{
	int fan = fanotify_init(FAN_CLASS_PRE_CONTENT | FAN_CLOEXEC,
				O_RDWR | O_LARGEFILE);
	int ret = 0;

	if (fan < 0) {
		ret = -errno;
		sk_err_set(e, "fanotify_init(FAN_CLASS_PRE_CONTENT): %s%s", strerror(errno),
			   errno == EPERM ? " (needs CAP_SYS_ADMIN)" : "");
		return ret;
	}
	if (fanotify_mark(fan, FAN_MARK_ADD, FAN_PRE_ACCESS, AT_FDCWD, cache_dir) < 0) {
		ret = -errno;
		if (errno == EINVAL)
			sk_err_set(e, "the kernel has no fanotify pre-content events (FAN_PRE_ACCESS needs Linux 6.14+)");
		else if (errno == EOPNOTSUPP)
			sk_err_set(e, "%s: this filesystem does not allow pre-content marks; use ext4, xfs or btrfs",
				   cache_dir);
		else
			sk_err_set(e, "fanotify_mark(%s): %s", cache_dir, strerror(errno));
	}
	close(fan);
	return ret;
}

/* Answers an event and lets go of it: closes our fd, and tells the holder
 * (which keeps its own copy until then) that it is done. */
static void respond(struct fan_fe *fe, int fd, int hfd, uint32_t verdict)
{
	struct fanotify_response r = { .fd = hfd, .response = verdict };
	int ret;

	/* a response is a small write: all or nothing */
	while (write(fe->fan, &r, sizeof(r)) < 0 && errno == EINTR)
		;
	if (fd >= 0)
		close(fd);
	if (atomic_load(&fe->held) && (ret = ld_hold_answered(fe->hsock, hfd, 0)))
		ld_log(fe->d, LD_LOG_WARN, "telling the holder: %s", strerror(-ret));
}

static void req_answer(struct ld_req *r, int err)
{
	struct fan_req *q = (struct fan_req *)r;

	respond(q->fe, q->fd, q->hfd, err ? FAN_DENY_ERRNO(EIO) : FAN_ALLOW);
}

static void req_release(struct ld_req *r)
{
	struct fan_req *q = (struct fan_req *)r;

	ld_blob_release(q->fe->d, q->b);	/* dispatch()'s reference */
	free(q);
}

/* Serves a read of blob b (a reference we pass on): fills the range,
 * writing through wfd, then answers hfd; fd (ours, or -1) is closed. */
static void serve(struct fan_fe *fe, struct ld_blob *b, int fd, int hfd, int wfd,
		  bool has_range, uint64_t off, uint64_t len)
{
	struct ld_daemon *d = fe->d;
	struct fan_req *q;

	if (!has_range) {
		off = 0;
		len = b->cache.table.usize;
	}
	if (fe->poison >= off && fe->poison - off < len) {
		ld_log(d, LD_LOG_ERROR, "test: a read of offset %llu: the serving process faults",
		       (unsigned long long)fe->poison);
		abort();
	}
	q = calloc(1, sizeof(*q));
	if (!q) {
		atomic_fetch_add(&d->events_denied, 1);
		respond(fe, fd, hfd, FAN_DENY_ERRNO(EIO));
		ld_blob_release(d, b);
		return;
	}
	q->fe = fe;
	q->b = b;
	q->fd = fd;
	q->hfd = hfd;
	snprintf(q->what, sizeof(q->what), "blob %s", b->cache.hex);
	q->base.blob = b;
	q->base.cache = &b->cache;
	q->base.wfd = wfd;
	q->base.off = off;
	q->base.len = len;
	q->base.answer = req_answer;
	q->base.release = req_release;
	q->base.what = q->what;
	ld_request(d, &q->base);
}

/* Only our cache files carry marks: one we do not know is one whose image
 * is not registered (yet). Letting the read through would hand out the
 * holes as zeros. */
static void unknown_file(struct fan_fe *fe, int fd, int hfd)
{
	ld_log(fe->d, LD_LOG_ERROR, "event for a cache file no image uses: EIO");
	atomic_fetch_add(&fe->d->events_denied, 1);
	respond(fe, fd, hfd, FAN_DENY_ERRNO(EIO));
}

/* One pre-content event: fd is ours, hfd the number its answer names. */
static void dispatch(struct fan_fe *fe, int fd, int hfd, uint64_t mask,
		     pid_t pid, bool has_range, uint64_t off, uint64_t len)
{
	struct ld_daemon *d = fe->d;
	struct ld_blob *b;
	struct stat st;

	/* skiffd's own prefetch writes: it never reads its cache files
	 * through a watched fd, and holding its write would deadlock it */
	if (!(mask & FAN_PRE_ACCESS) || pid == fe->self) {
		respond(fe, fd, hfd, FAN_ALLOW);
		return;
	}
	atomic_fetch_add(&d->events, 1);
	if (fstat(fd, &st) < 0 || !(b = ld_blob_by_inode(d, st.st_dev, st.st_ino))) {
		unknown_file(fe, fd, hfd);
		return;
	}
	/* written through the event's fd: its writes raise no events */
	serve(fe, b, fd, hfd, fd, has_range, off, len);
}

/* An event a dead holder had read (holder.h): no fd of it is left, only
 * its number. Written through our own fd of the cache file, whose writes
 * raise events of our own, which we allow. */
static void dispatch_orphan(struct fan_fe *fe, const struct ld_hold_msg *m)
{
	struct ld_blob *b;

	if (!(m->mask & FAN_PRE_ACCESS)) {
		respond(fe, -1, m->id, FAN_ALLOW);
		return;
	}

	atomic_fetch_add(&fe->d->events, 1);
	atomic_fetch_add(&fe->d->orphans, 1);
	b = ld_blob_by_inode(fe->d, (dev_t)m->dev, (ino_t)m->ino);
	if (!b) {
		unknown_file(fe, -1, m->id);
		return;
	}
	serve(fe, b, -1, m->id, b->own.fd, m->has_range, m->off, m->len);
}

/* One event of a read of the group (ld_fan_events). */
static void handle_event(void *arg, struct fanotify_event_metadata *m,
			 bool has_range, uint64_t off, uint64_t len)
{
	struct fan_fe *fe = arg;

	if (m->vers != FANOTIFY_METADATA_VERSION) {
		ld_log(fe->d, LD_LOG_ERROR, "fanotify: metadata version %u", m->vers);
		if (m->fd >= 0)
			respond(fe, m->fd, m->fd, FAN_DENY_ERRNO(EIO));
		return;
	}
	if (m->fd < 0)
		return;
	dispatch(fe, m->fd, m->fd, m->mask, m->pid, has_range, off, len);
}

/* Events the holder passes on. Returns -EPIPE when the holder is gone. */
static int take_held(struct fan_fe *fe)
{
	struct ld_hold_msg m;
	int fd, ret;

	while ((ret = ld_hold_recv(fe->hsock, &m, &fd)) > 0) {
		if (m.type == LD_HOLD_ORPHAN) {
			if (fd >= 0)
				close(fd);
			dispatch_orphan(fe, &m);
			continue;
		}
		if (m.type != LD_HOLD_EVENT || fd < 0) {
			if (fd >= 0)
				close(fd);
			/* its fd did not make it (no fd left here): the
			 * reader gets EIO rather than wait for a next server */
			else if (m.type == LD_HOLD_EVENT)
				respond(fe, -1, m.id, FAN_DENY_ERRNO(EIO));
			continue;
		}
		dispatch(fe, fd, m.id, m.mask, m.pid, m.has_range, m.off, m.len);
	}
	return ret;
}

/*
 * The holder died. The group's pending events carry its fd numbers, which
 * this process's own numbers would collide with (the kernel matches an
 * answer by number alone), so it never reads the group itself: when
 * systemd keeps the group (its fd store, of a size it told), it exits and
 * a restarted skiffd adopts the group; otherwise it starts skiffd as the
 * new holder (holder.h), with the journal if there is one, and exits once
 * that one has adopted the group. Until then it keeps its copy, reads
 * nothing and tries again each second: readers of uncached data wait, and
 * never read zeros.
 */
static void holder_gone(struct fan_fe *fe)
{
	struct ld_daemon *d = fe->d;
	int ret;

	if (d->hold_fdstore) {
		ld_log(d, LD_LOG_ERROR, "the holder is gone: exiting; systemd restarts skiffd "
		       "with the group from its fd store");
		_exit(1);
	}
	ld_log(d, LD_LOG_ERROR, "the holder is gone: a new holder takes the group over");
	for (;;) {
		ret = ld_holder_handoff(LD_HOLD_FANOTIFY, fe->fan, d->hold_jfd, d->argv);
		if (!ret) {
			/* it has the group, pinned and swept; what runs here
			 * is its business now (journaled: it serves it) */
			ld_log(d, LD_LOG_INFO, "the new holder took the group over: exiting");
			_exit(0);
		}
		ld_log(d, LD_LOG_ERROR, "starting a new holder: %s; trying again in 1 s (reads "
		       "of uncached data wait)", strerror(-ret));
		sleep(1);
	}
}

/* The group (or the holder's socket) is readable: take what is there. */
static int on_events(struct ld_ev *ev, void *buf, size_t bufsz)
{
	struct fan_fe *fe = ev->arg;
	ssize_t n;

	if (atomic_load(&fe->held)) {
		if (take_held(fe) == -EPIPE)
			holder_gone(fe);
		return 0;
	}
	n = read(fe->fan, buf, bufsz);
	if (n < 0) {
		int err = errno;

		if (err == EINTR || err == EAGAIN)
			return 0;
		ld_log(fe->d, LD_LOG_ERROR, "fanotify read: %s", strerror(err));
		return -err;
	}
	ld_fan_events(buf, (size_t)n, handle_event, fe);
	return 0;
}

static int fan_start(struct ld_daemon *d, struct ld_frontend **out,
		     struct sk_err *e)
{
	struct fan_fe *fe = calloc(1, sizeof(*fe));
	int ret;

	if (!fe)
		return -ENOMEM;
	fe->base.ops = &ld_fanotify_ops;
	fe->d = d;
	fe->self = getpid();
	fe->poison = getenv("SKIFF_TEST_POISON_OFFSET") ?
		strtoull(getenv("SKIFF_TEST_POISON_OFFSET"), NULL, 10) : UINT64_MAX;
	fe->hsock = d->hold_sock;
	atomic_init(&fe->held, fe->hsock >= 0);
	fe->fan = d->hold_fd >= 0 ? d->hold_fd :
		fanotify_init(FAN_CLASS_PRE_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK,
			      O_RDWR | O_LARGEFILE);
	if (fe->fan < 0) {
		ret = -errno;
		sk_err_set(e, "fanotify_init: %s", strerror(errno));
		free(fe);
		return ret;
	}
	ret = ld_ev_init(&fe->ev, d, "fanotify", fe->hsock >= 0 ? fe->hsock : fe->fan,
			 64 * 1024, on_events, fe, e);
	if (ret) {
		close(fe->fan);
		free(fe);
		return ret;
	}
	*out = &fe->base;
	return 0;
}

/* Events are taken only once the registered images are back, so that a
 * restarted server never meets a cache file it does not know yet. */
static int fan_serve(struct ld_frontend *base)
{
	struct fan_fe *fe = (struct fan_fe *)base;

	return ld_ev_start(&fe->ev);
}

static int fan_watch(struct ld_frontend *base, struct ld_blob *b)
{
	struct fan_fe *fe = (struct fan_fe *)base;

	if (b->marked)
		return 0;
	if (fanotify_mark(fe->fan, FAN_MARK_ADD, FAN_PRE_ACCESS, b->own.fd, NULL) < 0)
		return -errno;
	b->marked = true;
	return 0;
}

static void fan_unwatch(struct ld_frontend *base, struct ld_blob *b)
{
	struct fan_fe *fe = (struct fan_fe *)base;

	if (b->marked &&
	    fanotify_mark(fe->fan, FAN_MARK_REMOVE, FAN_PRE_ACCESS, b->own.fd, NULL) < 0)
		ld_log(fe->d, LD_LOG_WARN, "blob %s: removing its mark: %s", b->cache.hex,
		       strerror(errno));
	b->marked = false;
}

static void fan_stop(struct ld_frontend *base)
{
	struct fan_fe *fe = (struct fan_fe *)base;

	ld_ev_stop(&fe->ev);
}

static void fan_destroy(struct ld_frontend *base)
{
	struct fan_fe *fe = (struct fan_fe *)base;

	ld_ev_destroy(&fe->ev);
	close(fe->fan);
	if (fe->hsock >= 0)
		close(fe->hsock);
	free(fe);
}

const struct ld_frontend_ops ld_fanotify_ops = {
	.name = "fanotify",
	.start = fan_start,
	.serve = fan_serve,
	.watch = fan_watch,
	.unwatch = fan_unwatch,
	.stop = fan_stop,
	.destroy = fan_destroy,
};
