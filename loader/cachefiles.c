/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cachefiles frontend (Linux 5.19+, CONFIG_CACHEFILES_ONDEMAND): EROFS is
 * mounted with fsid=<image id>; the kernel asks through /dev/cachefiles to
 * OPEN the bootstrap (cookie = fsid) and each blob (cookie = blob id), to
 * READ page-aligned ranges that its cache files lack, and CLOSEs objects
 * at umount. OPEN gets the exact object size in copen; READ is filled
 * through the object's anon fd (bootstrap from memory, blobs through the
 * loader core) and always completed with CACHEFILES_IOC_READ_COMPLETE,
 * also on errors (then without data: the reader gets EIO). Protocol notes:
 * ../shared/docs/cachefiles-ondemand.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/cachefiles.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "cachefiles.h"
#include "daemon.h"
#include "evloop.h"
#include "holder.h"
#include "prefetch.h"
#include "request.h"

enum { CF_BOOTSTRAP, CF_BLOB };

struct cf_fe;

struct cf_object {
	uint32_t object_id;
	int fd;			/* the anon fd, ours */
	int kind;
	unsigned int refs;	/* the object list + each running job */
	/* the bootstrap's image, a reference (ld_image_hold): the API may
	 * unregister the image while it is mounted, and the kernel keeps its
	 * objects open until umount; their READs still read im */
	struct ld_image *im;
	/* a blob's: a reference on the daemon's blob, and what the kernel's
	 * file of it holds, attached to the blob from OPEN to CLOSE */
	struct ld_blob *blob;
	struct ld_cache cache;
	struct ld_blob_file file;
	struct cf_fe *fe;
	struct cf_object *next;
};

struct cf_fe {
	struct ld_frontend base;
	struct ld_daemon *d;
	int dev;		/* /dev/cachefiles, bound (the holder's, when held) */
	int hsock;		/* the holder's socket, or -1 */
	atomic_bool held;	/* requests come from hsock; false: read dev */
	struct ld_ev ev;	/* the event thread: waits on hsock, else dev */
	pthread_mutex_t lock;	/* objects */
	struct cf_object *objects;
};

/* A READ being served (ld_request): completed on its object's anon fd,
 * holding a reference on the object. */
struct cf_req {
	struct ld_req base;
	struct cf_fe *fe;
	struct cf_object *obj;
	uint32_t msg_id;
	char what[160];
};

static int dev_cmd(int dev, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int dev_cmd(int dev, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return -ENAMETOOLONG;
	/* one command per write(2) */
	if (write(dev, buf, (size_t)n) != n)
		return -errno;
	return 0;
}

int ld_cachefiles_bind(const char *cache_dir, struct sk_err *e)
{
	char dir[PATH_MAX];
	int dev, ret;

	dev = open("/dev/cachefiles", O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (dev < 0) {
		ret = -errno;
		sk_err_set(e, errno == ENOENT ? "no /dev/cachefiles: the kernel lacks CONFIG_CACHEFILES"
			   : errno == EBUSY ? "/dev/cachefiles is held by another daemon"
			   : "/dev/cachefiles: %s", strerror(errno));
		return ret;
	}
	ret = sk_path_join(dir, sizeof(dir), cache_dir, "fscache");
	if (!ret)
		ret = sk_mkdir_p(dir, 0700);
	if (!ret && (ret = dev_cmd(dev, "dir %s", dir)))
		sk_err_set(e, "cachefiles dir %s: %s%s", dir, strerror(-ret),
			   ret == -EOPNOTSUPP ? " (use ext4 or xfs, not tmpfs)" : "");
	if (!ret && (ret = dev_cmd(dev, "tag skiff")))
		sk_err_set(e, "cachefiles tag: %s", strerror(-ret));
	if (!ret && (ret = dev_cmd(dev, "bind ondemand")))
		sk_err_set(e, ret == -EINVAL ?
			   "the kernel refuses \"bind ondemand\": it lacks CONFIG_CACHEFILES_ONDEMAND" :
			   "cachefiles bind: %s", strerror(-ret));
	if (ret) {
		close(dev);
		return ret;
	}
	return dev;
}

/* Frees o, detached from its blob with no user left. */
static void obj_finish(struct ld_daemon *d, struct cf_object *o)
{
	struct ld_blob *last = NULL;

	if (o->blob) {
		ld_cache_close(&o->cache);	/* waits for read-ahead windows */
		pthread_mutex_lock(&d->lock);
		last = ld_blob_put(d, o->blob);
		pthread_mutex_unlock(&d->lock);
		ld_blob_close(d, last);
	}
	ld_image_put(d, o->im);
	close(o->fd);
	free(o);
}

/* The last prefetch using a detached object's file let go of it. */
static void file_released(struct ld_blob_file *f)
{
	struct cf_object *o = (struct cf_object *)((char *)f - offsetof(struct cf_object, file));

	obj_finish(o->fe->d, o);
}

static void obj_free(struct ld_daemon *d, void *arg)
{
	struct cf_object *o = arg;

	/* a prefetch writing through the file finishes the free itself */
	if (o->blob && !ld_blob_detach(d, o->blob, &o->file))
		return;
	obj_finish(d, o);
}

/*
 * Drops a reference on o; the last one frees it. With `async` a blob
 * object is freed on a pool thread: freeing it waits for its read-ahead
 * windows (backend fetches a stalled source may hold until the transport
 * gives up) and for prefetch using it, and on the event thread no other
 * request of any mount would be read meanwhile.
 */
static void obj_put_how(struct cf_fe *fe, struct cf_object *o, bool async)
{
	bool last;

	pthread_mutex_lock(&fe->lock);
	last = --o->refs == 0;
	pthread_mutex_unlock(&fe->lock);
	if (!last)
		return;
	/* a bootstrap object too: its image may be unregistered, and the
	 * last reference then lets go of a source, joining its threads */
	if (async)
		ld_run_later(fe->d, obj_free, o);
	else
		obj_free(fe->d, o);
}

static void obj_put(struct cf_fe *fe, struct cf_object *o)
{
	obj_put_how(fe, o, true);
}

static struct cf_object *obj_get(struct cf_fe *fe, uint32_t id)
{
	struct cf_object *o;

	pthread_mutex_lock(&fe->lock);
	for (o = fe->objects; o; o = o->next)
		if (o->object_id == id) {
			o->refs++;
			break;
		}
	pthread_mutex_unlock(&fe->lock);
	return o;
}

/*
 * Finds what an OPEN asks for. The volume key is "erofs,<domain_id>" for
 * mounts in a domain, else "erofs,<fsid>"; the cookie key is the fsid for
 * the bootstrap, else a blob id, which in a domain any of its images may
 * provide (the kernel opens a shared blob once per domain).
 */
static struct ld_image *find_image(struct ld_daemon *d, const char *vkey,
				   const char *ckey, size_t clen, int *kind,
				   unsigned int *blob)
{
	const char *vol = vkey + 6;

	if (strncmp(vkey, "erofs,", 6))
		return NULL;
	for (struct ld_image *im = d->images; im; im = im->next) {
		bool in_volume = im->domain[0] ? !strcmp(vol, im->domain)
					       : !strcmp(vol, im->id);

		if (!in_volume)
			continue;
		if (strlen(im->id) == clen && !memcmp(im->id, ckey, clen)) {
			*kind = CF_BOOTSTRAP;
			return im;
		}
		for (unsigned int i = 0; i < im->nblobs; i++)
			if (clen == SK_HEX_LEN && !memcmp(im->refs[i].hex, ckey, clen)) {
				*kind = CF_BLOB;
				*blob = i;
				return im;
			}
	}
	return NULL;
}

/*
 * An object's anon fd has no file behind it (every call gives ENOBUFS)
 * until the kernel opened its cache file, which it does right after our
 * copen. Waits for that, 2 s at most: the bootstrap's pre-fill runs on
 * the event thread. 0, or -ENOBUFS.
 */
static int wait_kernel_file(int fd)
{
	for (int tries = 0; tries < 2000; tries++) {
		if (lseek(fd, 0, SEEK_CUR) >= 0 || errno != ENOBUFS)
			return 0;
		usleep(1000);
	}
	return -ENOBUFS;
}

/* The bootstrap from memory: page-aligned, zero-padded past its end. */
static int fill_bootstrap(struct cf_object *o, uint64_t off, uint64_t len)
{
	uint64_t size = SK_ALIGN_UP(o->im->bootstrap_size, (uint64_t)EROFS_BLKSIZ);
	uint8_t *buf;
	int ret;

	if (off >= size || off % EROFS_BLKSIZ)
		return -EINVAL;
	len = SK_MIN(len, size - off);
	if (posix_memalign((void **)&buf, EROFS_BLKSIZ, SK_ALIGN_UP(len, (uint64_t)EROFS_BLKSIZ)))
		return -ENOMEM;
	memset(buf, 0, SK_ALIGN_UP(len, (uint64_t)EROFS_BLKSIZ));
	if (off < o->im->bootstrap_size)
		memcpy(buf, (uint8_t *)o->im->bs_buf + off,
		       SK_MIN(len, o->im->bootstrap_size - off));
	ret = wait_kernel_file(o->fd);
	if (!ret)
		ret = sk_pwrite_full(o->fd, buf, SK_ALIGN_UP(len, (uint64_t)EROFS_BLKSIZ), off);
	free(buf);
	return ret;
}

/* Answers an OPEN: its size, or -errno to fail it. */
/* Tells the holder (if any) that msg_id is answered. */
static void answered(struct cf_fe *fe, uint32_t msg_id, uint32_t flags)
{
	int ret;

	if (atomic_load(&fe->held) &&
	    (ret = ld_hold_answered(fe->hsock, (int32_t)msg_id, flags)))
		ld_log(fe->d, LD_LOG_WARN, "cachefiles: telling the holder: %s", strerror(-ret));
}

static void copen(struct cf_fe *fe, uint32_t msg_id, long long size)
{
	int ret = dev_cmd(fe->dev, "copen %u,%lld", msg_id, size);

	if (ret)
		ld_log(fe->d, LD_LOG_ERROR, "cachefiles: copen %u: %s", msg_id, strerror(-ret));
	answered(fe, msg_id, size < 0 ? LD_HOLD_FAILED : 0);
}

/*
 * After copen: what the kernel's cache file already holds, once it has
 * one (wait_kernel_file). Recorded chunks
 * become ready; chunks it holds that were never recorded as verified are
 * read by the kernel without asking us (it sends READs for holes only),
 * so they are fetched and written over at once (ld_cache_repair).
 */
static void scan_later(struct ld_daemon *d, void *arg)
{
	struct cf_object *o = arg;
	struct cf_fe *fe = o->fe;
	struct sk_err e = { { 0 } };
	int stale = wait_kernel_file(o->fd), ret;

	/* writable now: prefetch and status may use it (a prefetch that
	 * got there before would fail on ENOBUFS) */
	ld_blob_attach(d, o->blob, &o->file);
	/* a prefetch may be waiting for this cache file to exist */
	ld_pf_kick(d);
	if (!stale)
		stale = ld_cache_scan(&o->cache, o->fd);
	if (stale < 0) {
		ld_log(d, LD_LOG_WARN, "cachefiles: what blob %s holds: %s", o->cache.hex,
		       strerror(-stale));
	} else if (stale > 0) {
		ld_log(d, LD_LOG_WARN, "cachefiles: blob %s: %d chunks in the kernel's "
		       "cache file were never recorded as verified: fetching them again",
		       o->cache.hex, stale);
		ret = ld_cache_repair(&o->cache, o->fd, &e);
		if (ret)
			ld_log(d, LD_LOG_ERROR, "cachefiles: blob %s: rewriting unrecorded chunks: %s",
			       o->cache.hex, e.msg);
	}
	obj_put(fe, o);
}

/* An OPEN, or (replay) one an earlier serving process answered, whose
 * object is set up again without a copen. */
static void handle_open(struct cf_fe *fe, const struct cachefiles_msg *m, size_t n,
			bool replay)
{
	struct ld_daemon *d = fe->d;
	struct cachefiles_open op;
	char vkey[256], ckey[256];
	struct cf_object *o = NULL;
	struct sk_err e = { { 0 } };
	struct ld_image *im;
	unsigned int blob = 0;
	int kind = 0, ret = -ENOENT;
	long long size = 0;

	if (!replay)
		atomic_fetch_add(&d->opens, 1);
	if (m->len != n || n < sizeof(*m) + sizeof(op)) {
		/* the kernel waits for an answer to every OPEN, and the fd
		 * it carries (when the bytes reach it) is ours to close */
		ld_log(d, LD_LOG_ERROR, "cachefiles: malformed OPEN %u (%zu bytes)", m->msg_id, n);
		if (n >= sizeof(*m) + offsetof(struct cachefiles_open, fd) + sizeof(op.fd)) {
			memcpy(&op.fd, m->data + offsetof(struct cachefiles_open, fd),
			       sizeof(op.fd));
			close((int)op.fd);
		}
		if (!replay)
			copen(fe, m->msg_id, -EINVAL);
		return;
	}
	memcpy(&op, m->data, sizeof(op));
	/* the fd is ours now whatever happens: close-on-exec first */
	fcntl((int)op.fd, F_SETFD, FD_CLOEXEC);
	if (op.volume_key_size == 0 || op.volume_key_size >= sizeof(vkey) ||
	    op.cookie_key_size >= sizeof(ckey) ||
	    sizeof(*m) + sizeof(op) + (uint64_t)op.volume_key_size + op.cookie_key_size > n) {
		ld_log(d, LD_LOG_ERROR, "cachefiles: malformed OPEN");
		ret = -EINVAL;
		goto reply;
	}
	memcpy(vkey, m->data + sizeof(op), op.volume_key_size);
	vkey[op.volume_key_size - 1] = '\0';	/* the size counts its NUL */
	memcpy(ckey, m->data + sizeof(op) + op.volume_key_size, op.cookie_key_size);
	ckey[op.cookie_key_size] = '\0';

	pthread_mutex_lock(&d->lock);
	im = find_image(d, vkey, ckey, op.cookie_key_size, &kind, &blob);
	if (!im) {
		pthread_mutex_unlock(&d->lock);
		ld_log(d, LD_LOG_ERROR, "cachefiles: OPEN of %s/%s: no such image registered",
		       vkey, ckey);
		goto reply;
	}
	o = calloc(1, sizeof(*o));
	if (!o) {
		pthread_mutex_unlock(&d->lock);
		ret = -ENOMEM;
		goto reply;
	}
	o->object_id = m->object_id;
	o->fd = (int)op.fd;
	o->kind = kind;
	o->fe = fe;
	o->refs = 1;
	if (kind == CF_BOOTSTRAP) {
		ld_image_hold(im);
		o->im = im;
		size = (long long)im->bootstrap_size;
		ret = 0;
	} else {
		/* taken under d->lock: an unregistration meanwhile must not
		 * free the blob */
		o->blob = im->blobs[blob];
		ld_blob_hold(o->blob);
		size = (long long)o->blob->cache.table.usize;
	}
	pthread_mutex_unlock(&d->lock);
	if (kind == CF_BLOB) {
		/* the kernel's file starts from what the kernel kept of it,
		 * which scan_later() finds: its own state from nothing. The
		 * blob's table is verified and in memory: no wait here, on
		 * the one event thread */
		ret = ld_cache_clone(&o->cache, &o->blob->cache);
		if (ret)
			ld_log(d, LD_LOG_ERROR, "cachefiles: OPEN of blob %s: %s",
			       o->blob->cache.hex, strerror(-ret));
		else if (ld_cache_record_open(&o->cache, d->cfg.cache_dir, o->blob->volume, &e))
			ld_log(d, LD_LOG_WARN, "cachefiles: blob %s: no record of verified "
			       "chunks, what it fetches is fetched again after a restart: %s",
			       o->cache.hex, e.msg);
		o->cache.bg_fd = o->fd;
		o->file.cache = &o->cache;
		o->file.fd = o->fd;
		o->file.release = file_released;
	}
reply:
	if (!replay)
		copen(fe, m->msg_id, ret ? (long long)ret : size);
	else if (ret)
		ld_log(d, LD_LOG_ERROR, "cachefiles: object %u (%s) cannot be served again: "
		       "its reads get EIO", m->object_id, ckey);
	if (ret) {
		if (o && o->blob)
			ld_blob_release(d, o->blob);
		free(o);
		close((int)op.fd);
		return;
	}
	pthread_mutex_lock(&fe->lock);
	o->next = fe->objects;
	fe->objects = o;
	if (kind == CF_BLOB)
		o->refs++;	/* scan_later's */
	pthread_mutex_unlock(&fe->lock);
	ld_log(d, LD_LOG_DEBUG, "cachefiles: %s %s/%s as object %u, %lld bytes",
	       replay ? "taking over" : "OPEN", vkey, ckey, o->object_id, size);
	/* the bootstrap is in memory and EROFS reads most of it at once:
	 * fill its cache file now rather than page by page on READs */
	if (kind == CF_BOOTSTRAP && size > 0 && !replay &&
	    (ret = fill_bootstrap(o, 0, (uint64_t)size)))
		ld_log(d, LD_LOG_WARN, "cachefiles: pre-filling bootstrap of %s: %s",
		       o->im->id, strerror(-ret));
	if (kind == CF_BLOB)
		ld_run_later(d, scan_later, o);
}

static void complete(struct cf_fe *fe, struct cf_object *o, uint32_t msg_id)
{
	if (ioctl(o->fd, CACHEFILES_IOC_READ_COMPLETE, msg_id) < 0)
		ld_log(fe->d, LD_LOG_WARN, "cachefiles: READ_COMPLETE %u: %s", msg_id,
		       strerror(errno));
	answered(fe, msg_id, 0);
}

/* The bootstrap's READs: from memory, not through the loader core. */
static int req_fill_bootstrap(struct ld_req *r, struct sk_err *e)
{
	struct cf_req *q = (struct cf_req *)r;

	(void)e;
	return fill_bootstrap(q->obj, r->off, r->len);
}

/* Completed on every path: an uncompleted READ hangs the reader, and one
 * completed without its data gives it EIO. */
static void req_answer(struct ld_req *r, int err)
{
	struct cf_req *q = (struct cf_req *)r;

	(void)err;
	complete(q->fe, q->obj, q->msg_id);
}

static void req_release(struct ld_req *r)
{
	struct cf_req *q = (struct cf_req *)r;

	obj_put(q->fe, q->obj);
	free(q);
}

static void handle_read(struct cf_fe *fe, const struct cachefiles_msg *m, size_t n)
{
	struct cachefiles_read rd;
	struct cf_object *o = obj_get(fe, m->object_id);
	struct cf_req *q;

	atomic_fetch_add(&fe->d->events, 1);
	if (!o) {
		/* a READ is answered on its object's anon fd, and we have
		 * none: the kernel sends READs only for objects it opened
		 * through us, and reopens one whose fd went */
		atomic_fetch_add(&fe->d->events_denied, 1);
		ld_log(fe->d, LD_LOG_ERROR, "cachefiles: READ %u for unknown object %u",
		       m->msg_id, m->object_id);
		/* the holder has its fd: it completes it without data */
		answered(fe, m->msg_id, LD_HOLD_FAILED);
		return;
	}
	if (m->len != n || n < sizeof(*m) + sizeof(rd)) {
		/* completed without data: the reader gets EIO */
		atomic_fetch_add(&fe->d->events_denied, 1);
		ld_log(fe->d, LD_LOG_ERROR, "cachefiles: malformed READ %u (%zu bytes)",
		       m->msg_id, n);
		complete(fe, o, m->msg_id);
		obj_put(fe, o);
		return;
	}
	memcpy(&rd, m->data, sizeof(rd));
	q = calloc(1, sizeof(*q));
	if (!q) {
		atomic_fetch_add(&fe->d->events_denied, 1);
		complete(fe, o, m->msg_id);
		obj_put(fe, o);
		return;
	}
	q->fe = fe;
	q->obj = o;
	q->msg_id = m->msg_id;
	if (o->kind == CF_BLOB) {
		q->base.blob = o->blob;
		q->base.cache = &o->cache;
		q->base.wfd = o->fd;
		snprintf(q->what, sizeof(q->what), "blob %s", o->cache.hex);
	} else {
		q->base.fill = req_fill_bootstrap;
		snprintf(q->what, sizeof(q->what), "the bootstrap of %s", o->im->id);
	}
	q->base.off = rd.off;
	q->base.len = rd.len;
	q->base.answer = req_answer;
	q->base.release = req_release;
	q->base.what = q->what;
	ld_request(fe->d, &q->base);
}

static void handle_close(struct cf_fe *fe, const struct cachefiles_msg *m)
{
	struct cf_object **pp, *o = NULL;

	pthread_mutex_lock(&fe->lock);
	for (pp = &fe->objects; *pp; pp = &(*pp)->next)
		if ((*pp)->object_id == m->object_id) {
			o = *pp;
			*pp = o->next;
			break;
		}
	pthread_mutex_unlock(&fe->lock);
	atomic_fetch_add(&fe->d->closes, 1);
	if (o)
		obj_put_how(fe, o, true);	/* on the event thread */
}

/*
 * One message from the device, n bytes. Every OPEN gets its copen and its
 * fd closed on every path, every READ of an object we know is completed,
 * malformed ones included; a message too short for a header names nothing
 * to answer.
 */
static void handle_msg(struct cf_fe *fe, const void *buf, size_t n)
{
	struct cachefiles_msg m;

	if (n < sizeof(m)) {
		ld_log(fe->d, LD_LOG_ERROR, "cachefiles: a message of %zu bytes", n);
		return;
	}
	memcpy(&m, buf, sizeof(m));
	switch (m.opcode) {
	case CACHEFILES_OP_OPEN:
		handle_open(fe, buf, n, false);
		break;
	case CACHEFILES_OP_READ:
		handle_read(fe, buf, n);
		break;
	case CACHEFILES_OP_CLOSE:
		/* no payload: the object id in the header is all it needs */
		handle_close(fe, buf);
		break;
	default:
		ld_log(fe->d, LD_LOG_WARN, "cachefiles: opcode %u", m.opcode);
	}
}

/* Requests the holder passes on; an OPEN's (or an object's) anon fd comes
 * along, and replaces the holder's number in the message. Returns -EPIPE
 * when the holder is gone. */
static int take_held(struct cf_fe *fe)
{
	const size_t fdat = sizeof(struct cachefiles_msg) + offsetof(struct cachefiles_open, fd);
	struct ld_hold_msg m;
	struct cachefiles_msg hdr;
	uint32_t fd32;
	int fd, ret;

	while ((ret = ld_hold_recv(fe->hsock, &m, &fd)) > 0) {
		if ((m.type != LD_HOLD_MSG && m.type != LD_HOLD_OBJECT) || m.dlen < sizeof(hdr)) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		memcpy(&hdr, m.data, sizeof(hdr));
		if (fd >= 0) {
			if (hdr.opcode != CACHEFILES_OP_OPEN || m.dlen < fdat + sizeof(fd32)) {
				close(fd);
				fd = -1;
			} else {
				fd32 = (uint32_t)fd;
				memcpy(m.data + fdat, &fd32, sizeof(fd32));
			}
		}
		if (m.type == LD_HOLD_OBJECT) {
			if (fd >= 0)
				handle_open(fe, (const void *)m.data, m.dlen, true);
		} else if (hdr.opcode == CACHEFILES_OP_OPEN && fd < 0) {
			/* the fd did not make it: nothing to serve it with */
			copen(fe, hdr.msg_id, -EIO);
		} else {
			handle_msg(fe, m.data, m.dlen);
		}
	}
	return ret;
}

/* The holder died: read the device ourselves (without systemd). What it
 * had read and not passed on is sent again after `restore` (Linux 6.12,
 * and Debian's 6.1); a kernel without it keeps those requests waiting
 * until their readers are killed. */
static void holder_gone(struct cf_fe *fe)
{
	int ret;

	/* systemd restarts skiffd with the device from its fd store; the
	 * new holder writes `restore` */
	if (fe->d->hold_fdstore) {
		ld_log(fe->d, LD_LOG_ERROR, "the holder is gone: exiting; systemd restarts "
		       "skiffd with the device from its fd store");
		_exit(1);
	}
	atomic_store(&fe->held, false);
	fe->ev.fd = fe->dev;
	ret = dev_cmd(fe->dev, "restore");
	if (!ret)
		ld_log(fe->d, LD_LOG_ERROR, "the holder is gone: reading requests directly; "
		       "the kernel sends what was pending again (restore)");
	else
		ld_log(fe->d, LD_LOG_ERROR, "the holder is gone: reading requests directly; "
		       "restore: %s: requests it had read and not passed on are lost "
		       "(their readers wait until killed)", strerror(-ret));
}

/* The device (or the holder's socket) is readable: take every pending
 * request. */
static int on_requests(struct ld_ev *ev, void *buf, size_t bufsz)
{
	struct cf_fe *fe = ev->arg;

	if (atomic_load(&fe->held)) {
		if (take_held(fe) == -EPIPE)
			holder_gone(fe);
		return 0;
	}
	/* read() hands out one message, 0 when none is pending */
	for (;;) {
		ssize_t n = read(fe->dev, buf, bufsz);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		handle_msg(fe, buf, (size_t)n);
	}
	return 0;
}

static int cf_start(struct ld_daemon *d, struct ld_frontend **out, struct sk_err *e)
{
	struct cf_fe *fe = calloc(1, sizeof(*fe));
	int ret;

	if (!fe)
		return -ENOMEM;
	fe->base.ops = &ld_cachefiles_ops;
	fe->d = d;
	pthread_mutex_init(&fe->lock, NULL);
	fe->hsock = d->hold_sock;
	atomic_init(&fe->held, fe->hsock >= 0);
	fe->dev = d->hold_fd >= 0 ? d->hold_fd : ld_cachefiles_bind(d->cfg.cache_dir, e);
	if (fe->dev < 0) {
		ret = fe->dev;
		free(fe);
		return ret;
	}
	ret = ld_ev_init(&fe->ev, d, "cachefiles", fe->hsock >= 0 ? fe->hsock : fe->dev,
			 CACHEFILES_MSG_MAX_SIZE, on_requests, fe, e);
	if (ret) {
		close(fe->dev);
		free(fe);
		return ret;
	}
	*out = &fe->base;
	return 0;
}

int ld_cachefiles_fake(struct ld_daemon *d, int dev, struct ld_frontend **out)
{
	struct cf_fe *fe = calloc(1, sizeof(*fe));
	struct sk_err e;
	int ret;

	if (!fe)
		return -ENOMEM;
	fe->base.ops = &ld_cachefiles_ops;
	fe->d = d;
	fe->dev = dev;
	fe->hsock = -1;
	pthread_mutex_init(&fe->lock, NULL);
	ret = ld_ev_init(&fe->ev, d, "cachefiles", dev, CACHEFILES_MSG_MAX_SIZE,
			 on_requests, fe, &e);
	if (ret) {
		free(fe);
		return ret;
	}
	*out = &fe->base;
	return 0;
}

void ld_cachefiles_handle(struct ld_frontend *base, const void *msg, size_t len)
{
	handle_msg((struct cf_fe *)base, msg, len);
}

/* Requests are taken once registered images are back: an OPEN for an
 * image not restored yet would fail the mount. */
static int cf_serve(struct ld_frontend *base)
{
	struct cf_fe *fe = (struct cf_fe *)base;

	return ld_ev_start(&fe->ev);
}

/* The kernel's volume of a mount, less its "erofs," prefix: the domain,
 * whose images share its blobs, else the fsid. */
static const char *cf_volume(const struct ld_image *im)
{
	return im->domain[0] ? im->domain : im->id;
}

static int cf_cull(struct ld_frontend *base, int dirfd, const char *name)
{
	struct cf_fe *fe = (struct cf_fe *)base;
	int ret;

	if (strchr(name, '/'))
		return -EINVAL;
	if (fchdir(dirfd) < 0)
		return -errno;
	ret = dev_cmd(fe->dev, "cull %s", name);
	return ret;
}

static void cf_stop(struct ld_frontend *base)
{
	struct cf_fe *fe = (struct cf_fe *)base;

	ld_ev_stop(&fe->ev);
}

static void cf_destroy(struct ld_frontend *base)
{
	struct cf_fe *fe = (struct cf_fe *)base;

	cf_stop(base);
	while (fe->objects) {
		struct cf_object *o = fe->objects;

		fe->objects = o->next;
		obj_put_how(fe, o, false);
	}
	ld_ev_destroy(&fe->ev);
	/* closing the device withdraws the cache: live mounts lose it
	 * (unless the holder keeps it) */
	close(fe->dev);
	if (fe->hsock >= 0)
		close(fe->hsock);
	free(fe);
}

const struct ld_frontend_ops ld_cachefiles_ops = {
	.name = "cachefiles",
	.start = cf_start,
	.serve = cf_serve,
	.stop = cf_stop,
	.destroy = cf_destroy,
	.volume = cf_volume,
	.cull = cf_cull,
};
