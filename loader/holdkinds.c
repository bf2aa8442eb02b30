/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the holder (holder.h) does for each kind of kernel fd. Everything
 * read here comes from the kernel and is bounds-checked anyway: the
 * holder must never crash, since its death takes the fd along.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/cachefiles.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/sk.h"
#include "fanrec.h"
#include "holdpriv.h"

/* ---- fanotify: one event per request, answered on the group by fd */

static void fan_hold(void *arg, struct fanotify_event_metadata *m,
		     bool has_range, uint64_t off, uint64_t len)
{
	struct hold_req r = { .fd = m->fd, .owns_fd = true };
	struct stat st;

	if (m->fd < 0)
		return;
	if (m->vers != FANOTIFY_METADATA_VERSION) {
		/* a layout we do not know: never allowed */
		struct fanotify_response resp = { m->fd, FAN_DENY_ERRNO(EIO) };

		hold_log(arg, 0, "fanotify: metadata version %u", m->vers);
		if (write(((struct holder *)arg)->kfd, &resp, sizeof(resp)) < 0)
			hold_log(arg, 0, "deny: %s", strerror(errno));
		close(m->fd);
		return;
	}
	/* the journal names the file: an adopter has no fd of it */
	if (fstat(m->fd, &st) == 0) {
		r.m.dev = st.st_dev;
		r.m.ino = st.st_ino;
	}
	r.m.type = LD_HOLD_EVENT;
	r.m.id = m->fd;
	r.m.mask = m->mask;
	r.m.pid = m->pid;
	r.m.has_range = has_range;
	r.m.off = off;
	r.m.len = len;
	hold_add(arg, &r);
}

static void fan_take(struct holder *h)
{
	char buf[16384] __attribute__((aligned(8)));
	ssize_t n = read(h->kfd, buf, sizeof(buf));

	if (n > 0)
		ld_fan_events(buf, (size_t)n, fan_hold, h);
}

/* Never allowed: the kernel would read the holes as zeros. By number: an
 * orphan's fd is only a pin of it. */
static void fan_deny(struct holder *h, struct hold_req *r)
{
	struct fanotify_response resp = { r->m.id, FAN_DENY_ERRNO(EIO) };

	if (write(h->kfd, &resp, sizeof(resp)) < 0)
		hold_log(h, 0, "deny: %s", strerror(errno));
}

static void fan_answered(struct holder *h, struct hold_req *r, uint32_t flags)
{
	(void)h, (void)r, (void)flags;
}

static void fan_replay(struct holder *h)
{
	(void)h;
}

static void fan_forget(struct holder *h)
{
	(void)h;
}

/* A mark on the group is a cache file not complete yet (a complete or
 * unused one loses its mark): the kernel lists each in the fd's fdinfo.
 * When that cannot be read, the answer is yes. */
static bool fan_lazy(struct holder *h)
{
	char path[64], line[256];
	bool marked = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", h->kfd);
	f = fopen(path, "re");
	if (!f)
		return true;
	while (!marked && fgets(line, sizeof(line), f))
		marked = !strncmp(line, "fanotify ino:", 13);
	fclose(f);
	return marked;
}

const struct hold_kind ld_hold_fanotify = {
	fan_take, fan_deny, fan_answered, fan_replay, fan_forget, fan_lazy,
};

/* ---- cachefiles: OPEN / READ / CLOSE messages answered by msg_id; the
 * anon fd of each open object stays here until its CLOSE */

static struct hold_obj *obj_find(struct holder *h, uint32_t id)
{
	for (size_t i = 0; i < h->nobjs; i++)
		if (h->objs[i].object_id == id)
			return &h->objs[i];
	return NULL;
}

static void obj_drop(struct holder *h, struct hold_obj *o)
{
	size_t i = (size_t)(o - h->objs);

	close(o->fd);
	memmove(o, o + 1, (h->nobjs - i - 1) * sizeof(*o));
	h->nobjs--;
}

static void cf_cmd(struct holder *h, const char *cmd)
{
	if (write(h->kfd, cmd, strlen(cmd)) < 0)
		hold_log(h, 0, "cachefiles: %s: %s", cmd, strerror(errno));
}

/* An OPEN: the object is kept (with its fd) from now on; false when it
 * cannot be, and then it has been failed. */
static bool cf_open(struct holder *h, struct hold_req *r, const struct cachefiles_msg *m,
		    size_t n)
{
	struct cachefiles_open op;
	char cmd[64];

	if (n < sizeof(*m) + sizeof(op))
		return true;	/* no fd: the server fails it (malformed) */
	memcpy(&op, m->data, sizeof(op));
	r->fd = (int)op.fd;
	fcntl(r->fd, F_SETFD, FD_CLOEXEC);
	if (sk_grow(&h->objs, &h->objcap, h->nobjs, sizeof(*h->objs), 32)) {
		snprintf(cmd, sizeof(cmd), "copen %u,%d", m->msg_id, -ENOMEM);
		cf_cmd(h, cmd);
		close(r->fd);
		return false;
	}
	h->objs[h->nobjs++] = (struct hold_obj){ .object_id = m->object_id,
						 .fd = r->fd, .open = r->m };
	return true;
}

/* A request of the object arg names: the kernel drops them all with it
 * (an OPEN still kept names an fd closed with the object). */
static bool of_object(const struct hold_req *r, const void *arg)
{
	return (r->opcode == CACHEFILES_OP_READ || r->opcode == CACHEFILES_OP_OPEN) &&
	       r->object_id == *(const uint32_t *)arg;
}

static void cf_take(struct holder *h)
{
	for (;;) {
		struct hold_req r = { .fd = -1 };
		struct cachefiles_msg hdr;
		ssize_t n = read(h->kfd, r.m.data, sizeof(r.m.data));
		struct hold_obj *o;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;		/* 0: nothing pending */
		r.m.type = LD_HOLD_MSG;
		r.m.dlen = (uint32_t)n;
		if ((size_t)n < sizeof(hdr)) {
			hold_log(h, 0, "cachefiles: a message of %zd bytes", n);
			continue;
		}
		memcpy(&hdr, r.m.data, sizeof(hdr));
		r.m.id = (int32_t)hdr.msg_id;
		r.opcode = hdr.opcode;
		r.object_id = hdr.object_id;
		switch (hdr.opcode) {
		case CACHEFILES_OP_OPEN:
			if (cf_open(h, &r, (const void *)r.m.data, (size_t)n))
				hold_add(h, &r);
			break;
		case CACHEFILES_OP_CLOSE:
			/* answered by being read; the server lets go of its
			 * copy when it gets it (a later server never does).
			 * The kernel cancelled the object's requests with it:
			 * their ids are free for new ones */
			o = obj_find(h, hdr.object_id);
			if (o)
				obj_drop(h, o);
			hold_forget(h, of_object, &hdr.object_id);
			if (hold_send_sure(h, &r.m, -1) == -EAGAIN)
				hold_log(h, 1, "cachefiles: the server takes no CLOSE of object %u",
					 hdr.object_id);
			break;
		default:
			hold_add(h, &r);
		}
	}
}

static void cf_deny(struct holder *h, struct hold_req *r)
{
	struct hold_obj *o = obj_find(h, r->object_id);
	char cmd[64];

	if (r->opcode == CACHEFILES_OP_OPEN) {
		snprintf(cmd, sizeof(cmd), "copen %d,%d", r->m.id, -EIO);
		cf_cmd(h, cmd);
		if (o)
			obj_drop(h, o);
	} else if (o && ioctl(o->fd, CACHEFILES_IOC_READ_COMPLETE, r->m.id) < 0) {
		/* completed without data: the reader gets EIO */
		hold_log(h, 0, "cachefiles: READ_COMPLETE %d: %s", r->m.id, strerror(errno));
	}
}

static void cf_answered(struct holder *h, struct hold_req *r, uint32_t flags)
{
	struct hold_obj *o = obj_find(h, r->object_id);

	if (r->opcode == CACHEFILES_OP_OPEN) {
		if (!o)
			return;
		if (flags & LD_HOLD_FAILED)
			obj_drop(h, o);		/* the kernel has no object */
		else
			o->answered = true;
	} else if (flags & LD_HOLD_FAILED) {
		cf_deny(h, r);
	}
}

static void cf_replay(struct holder *h)
{
	for (size_t i = 0; i < h->nobjs; i++) {
		struct ld_hold_msg m;

		if (!h->objs[i].answered)
			continue;	/* its OPEN is among the pending */
		m = h->objs[i].open;
		m.type = LD_HOLD_OBJECT;
		if (hold_send_sure(h, &m, h->objs[i].fd))
			hold_log(h, 0, "cachefiles: cannot hand object %u to the server: its "
				 "reads get EIO", h->objs[i].object_id);
	}
}

static void cf_forget(struct holder *h)
{
	for (size_t i = 0; i < h->nobjs; i++)
		close(h->objs[i].fd);
}

/* An open object is a blob a mount reads through the cache. */
static bool cf_lazy(struct holder *h)
{
	return h->nobjs > 0;
}

const struct hold_kind ld_hold_cachefiles = {
	cf_take, cf_deny, cf_answered, cf_replay, cf_forget, cf_lazy,
};
