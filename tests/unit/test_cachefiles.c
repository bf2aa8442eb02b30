/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cachefiles frontend's message handling (loader/cachefiles.c) without
 * a kernel: messages are handed to it as its event thread hands what it
 * reads from /dev/cachefiles, and a pipe stands in for the device, so the
 * test reads back every command skiffd writes. Every OPEN is answered
 * (copen), malformed ones included, and the fd it carries is closed on
 * every path; an OPEN never reads the network for a chunk table; the
 * kernel's file of a blob is attached to the daemon's blob from OPEN to
 * CLOSE, so prefetch and status reach it only then.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/cachefiles.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../backend/source.h"
#include "../../backend/store.h"
#include "../../format/bootstrap.h"
#include "../../format/builder.h"
#include "../../loader/cachefiles.h"
#include "../../loader/daemon.h"
#include "tap.h"
#include "storeimg.h"

static char g_tmp[PATH_MAX];
static int g_reply = -1;	/* the read end of the pipe skiffd answers on */

/* What skiffd wrote to the device since the last call ("" for nothing). */
static const char *reply(void)
{
	static char buf[512];
	ssize_t n = read(g_reply, buf, sizeof(buf) - 1);

	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

static int open_fd(void)
{
	int fd = open("/dev/null", O_RDONLY);

	if (fd < 0)
		bail_out("open /dev/null");
	return fd;
}

static bool attached(struct ld_daemon *d, struct ld_blob *b)
{
	bool yes;

	pthread_mutex_lock(&d->lock);
	yes = b->file != NULL;
	pthread_mutex_unlock(&d->lock);
	return yes;
}

static bool fd_closed(int fd)
{
	return fcntl(fd, F_GETFD) < 0 && errno == EBADF;
}

/* An OPEN message: header, payload, volume key (with its NUL), cookie key
 * (without), `cut` bytes short of that; len names `len_delta` bytes more
 * than what is there. Returns its size. */
static size_t make_open(uint8_t *buf, uint32_t msg_id, uint32_t object_id, int fd,
			const char *vkey, const char *ckey, uint32_t vsize, uint32_t csize,
			size_t cut, int len_delta)
{
	struct cachefiles_msg m = { .msg_id = msg_id, .opcode = CACHEFILES_OP_OPEN,
				    .object_id = object_id };
	struct cachefiles_open op = { .volume_key_size = vsize, .cookie_key_size = csize,
				      .fd = (uint32_t)fd };
	size_t n = sizeof(m) + sizeof(op);

	memcpy(buf + sizeof(m), &op, sizeof(op));
	memcpy(buf + n, vkey, strlen(vkey) + 1);
	n += strlen(vkey) + 1;
	memcpy(buf + n, ckey, strlen(ckey));
	n += strlen(ckey);
	n -= cut;
	m.len = (uint32_t)((int)n + len_delta);
	memcpy(buf, &m, sizeof(m));
	return n;
}

static size_t make_msg(uint8_t *buf, uint32_t msg_id, uint32_t opcode,
		       uint32_t object_id, const void *payload, size_t plen)
{
	struct cachefiles_msg m = { .msg_id = msg_id, .opcode = opcode,
				    .len = (uint32_t)(sizeof(m) + plen),
				    .object_id = object_id };

	memcpy(buf, &m, sizeof(m));
	if (plen)
		memcpy(buf + sizeof(m), payload, plen);
	return sizeof(m) + plen;
}

/* A source that counts its reads and fails them: a chunk table read from
 * it is a network read the OPEN must not make. */
struct counting {
	struct be_source base;
	int reads;
};

static int counting_read(struct be_source *s, const char *hex, uint64_t off,
			 void *buf, size_t len, struct sk_err *e)
{
	(void)e;	/* be_source_read says where and why */
	((struct counting *)s)->reads++;
	return -EIO;
}

static void counting_destroy(struct be_source *s)
{
}

/* A one-file image built into a store; its bootstrap's blob ref and the
 * stored blob's chunk table bytes. */
static void make_blob(struct fmt_blob_ref *ref, void **table, void **bs_buf,
		      uint64_t *bs_size)
{
	struct fmt_build_opts o = { .chunk_bits = 16, .level = 1, .threads = 1,
				    .compress = SKIFF_COMP_ZSTD };
	struct fmt_build_result res;
	struct fmt_bs bs;
	char src[PATH_MAX], layout[PATH_MAX], tmp[PATH_MAX], blob[PATH_MAX];
	int fd;

	fmtpath(src, "%s/src", g_tmp);
	fmtpath(layout, "%s/layout", g_tmp);
	fmtpath(tmp, "%s/src/f", g_tmp);
	if (mkdir(src, 0755))
		bail_out("mkdir");
	fd = open(tmp, O_WRONLY | O_CREAT, 0644);
	if (fd < 0)
		bail_out("creating %s", tmp);
	for (int i = 0; i < 300000; i += 7)
		if (write(fd, "abcdefg", 7) != 7)
			bail_out("write");
	close(fd);
	storeimg_build(src, &o, layout, &res, blob);
	if (fmt_bs_open(&bs, res.bootstrap, res.bootstrap_size) || bs.nblobs != 1)
		bail_out("bootstrap");
	*ref = bs.blobs[0];
	fmt_bs_close(&bs);
	/* as registration gives an image its bootstrap: a mapping, which
	 * ld_image_put() unmaps */
	*bs_buf = mmap(NULL, res.bootstrap_size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (*bs_buf == MAP_FAILED)
		bail_out("mmap");
	memcpy(*bs_buf, res.bootstrap, res.bootstrap_size);
	*bs_size = res.bootstrap_size;
	free(res.bootstrap);
	*table = malloc(ref->table_size);
	fd = open(blob, O_RDONLY);
	if (fd < 0 || !*table || sk_pread_full(fd, *table, ref->table_size, ref->table_off))
		bail_out("reading the chunk table");
	close(fd);
}

int main(void)
{
	static const struct be_source_ops cops = { .read = counting_read,
						   .destroy = counting_destroy };
	struct counting net = { .base = { .ops = &cops, .desc = "counting" } };
	struct ld_daemon *d = calloc(1, sizeof(*d));
	struct ld_frontend *fe;
	struct ld_image *im = calloc(1, sizeof(*im));
	struct ld_blob *b = NULL, *prep, *last, *other;
	struct fmt_blob_ref ref;
	struct sk_err e = { { 0 } };
	uint64_t bytes, chunks, fetched;
	struct ld_blob_file *user;
	const char *t = getenv("TMPDIR");
	char cmd[PATH_MAX], tpath[PATH_MAX], want[64], anon[PATH_MAX];
	uint8_t buf[1024];
	void *table;
	size_t n;
	int p[2], fd;

	fmtpath(g_tmp, "%s/skiff-test-cf.XXXXXX", t ? t : "/tmp");
	if (!mkdtemp(g_tmp) || !d || !im)
		bail_out("setup");
	ld_config_defaults(&d->cfg);
	d->cfg.log_level = LD_LOG_ERROR;
	fmtpath(d->cfg.cache_dir, "%s/cache", g_tmp);
	fmtpath(cmd, "%s/tables", d->cfg.cache_dir);
	if (sk_mkdir_p(cmd, 0700) || (mkdir(cmd, 0700) < 0 && errno != EEXIST))
		bail_out("mkdir %s", cmd);
	pthread_mutex_init(&d->lock, NULL);
	pthread_mutex_init(&d->api_lock, NULL);
	if (sk_pool_create(&d->pool, 2))
		bail_out("pool");
	if (pipe2(p, O_CLOEXEC | O_NONBLOCK))
		bail_out("pipe");
	g_reply = p[0];
	if (ld_cachefiles_fake(d, p[1], &fe))
		bail_out("ld_cachefiles_fake");

	/* 1. malformed OPENs: each answered with -EINVAL, its fd closed */
	fd = open_fd();
	n = make_open(buf, 7, 1, fd, "erofs,img1", "img1", 11, 4,
		      sizeof(struct cachefiles_open) - offsetof(struct cachefiles_open, flags) + 15, 0);
	ld_cachefiles_handle(fe, buf, n);
	is_str(reply(), "copen 7,-22", "an OPEN cut inside its payload gets copen -EINVAL");
	ok(fd_closed(fd), "... and the fd it carries is closed");

	n = make_open(buf, 8, 1, 99, "erofs,img1", "img1", 11, 4, 0, 0);
	ld_cachefiles_handle(fe, buf, sizeof(struct cachefiles_msg));
	is_str(reply(), "copen 8,-22", "an OPEN of a header alone gets copen -EINVAL");

	fd = open_fd();
	n = make_open(buf, 9, 1, fd, "erofs,img1", "img1", 11, 4, 0, 40);
	ld_cachefiles_handle(fe, buf, n);
	is_str(reply(), "copen 9,-22", "an OPEN whose len names more than came gets -EINVAL");
	ok(fd_closed(fd), "... its fd closed");

	fd = open_fd();
	n = make_open(buf, 10, 1, fd, "erofs,img1", "img1", 11, 200, 0, 0);
	ld_cachefiles_handle(fe, buf, n);
	is_str(reply(), "copen 10,-22", "an OPEN with a cookie key past the message gets -EINVAL");
	ok(fd_closed(fd), "... its fd closed");

	fd = open_fd();
	n = make_open(buf, 11, 1, fd, "erofs,img1", "img1", 0xffffffffu, 0xfffffff0u, 0, 0);
	ld_cachefiles_handle(fe, buf, n);
	is_str(reply(), "copen 11,-22", "key sizes that overflow get -EINVAL");
	ok(fd_closed(fd), "... its fd closed");

	fd = open_fd();
	n = make_open(buf, 12, 1, fd, "erofs,nobody", "nobody", 13, 6, 0, 0);
	ld_cachefiles_handle(fe, buf, n);
	is_str(reply(), "copen 12,-2", "an OPEN of no registered image gets -ENOENT");
	ok(fd_closed(fd), "... its fd closed");

	ld_cachefiles_handle(fe, buf, 10);
	is_str(reply(), "", "a message shorter than a header names nothing to answer");

	/* 2. a READ of an object never opened: nothing to answer it on */
	{
		struct cachefiles_read rd = { .off = 0, .len = 4096 };

		n = make_msg(buf, 13, CACHEFILES_OP_READ, 77, &rd, sizeof(rd));
		ld_cachefiles_handle(fe, buf, n);
		is_str(reply(), "", "a READ for an unknown object writes nothing to the device");
		is_int((long long)atomic_load(&d->events_denied), 1, "... and counts as denied");
	}

	/* 3. a registered blob: its table read at registration (kept, so
	 *    from disk), in the image's volume, attached from OPEN on */
	make_blob(&ref, &table, &im->bs_buf, &im->bootstrap_size);
	if (!ld_table_path(d, &ref, tpath, sizeof(tpath)) ||
	    sk_write_file_atomic(tpath, table, ref.table_size))
		bail_out("keeping the table");
	snprintf(im->id, sizeof(im->id), "img1");
	im->refs = calloc(1, sizeof(*im->refs));
	im->blobs = calloc(1, sizeof(*im->blobs));
	if (!im->refs || !im->blobs)
		bail_out("calloc");
	im->refs[0] = ref;
	im->src = &net.base;
	im->users = 1;
	d->fe = fe;
	is_str(ld_blob_volume(d, im), "img1", "a blob of an image in no domain is in the image's volume");
	if (ld_blob_prepare(d, &ref, &net.base, &prep, &e))
		bail_out("ld_blob_prepare: %s", e.msg);
	pthread_mutex_lock(&d->lock);
	is_int(ld_blob_get(d, prep, ld_blob_volume(d, im), &b, &e), 0, "the blob is linked");
	pthread_mutex_unlock(&d->lock);
	if (!b)
		bail_out("no blob: %s", e.msg);
	im->blobs[0] = b;
	im->nblobs = 1;
	d->images = im;
	is_str(b->path, "", "... with no cache file of skiffd's own");
	ok(b->file == NULL, "... and no file attached before the kernel's OPEN");
	is_int(ld_blob_prefetch(d, b, 0, 4096, &fetched, &e), -EAGAIN,
	       "prefetch before the OPEN waits for it (-EAGAIN)");
	ok(!ld_blob_ready(b, &bytes, &chunks), "status knows no ready bytes before the OPEN");

	/* another image of the same volume naming the blob id with another
	 * chunk table would read this one's bytes: refused */
	if (ld_blob_prepare(d, &ref, &net.base, &prep, &e))
		bail_out("ld_blob_prepare: %s", e.msg);
	prep->cache.table.table_digest[0] ^= 1;
	pthread_mutex_lock(&d->lock);
	is_int(ld_blob_get(d, prep, "img1", &other, &e), -EEXIST,
	       "one blob id with another table in one volume is refused");
	ok(strstr(e.msg, "another chunk table") != NULL, "... saying why: %s", e.msg);
	pthread_mutex_unlock(&d->lock);
	/* in another volume (another fsid) it is another blob */
	if (ld_blob_prepare(d, &ref, &net.base, &prep, &e))
		bail_out("ld_blob_prepare: %s", e.msg);
	pthread_mutex_lock(&d->lock);
	is_int(ld_blob_get(d, prep, "img2", &other, &e), 0, "the same blob in another volume is linked");
	ok(other != b, "... as a blob of its own");
	ok(b->refs == 1, "... leaving the first one's references alone");
	last = ld_blob_put(d, other);
	pthread_mutex_unlock(&d->lock);
	ok(last == other, "... and its last reference closes it");
	ld_blob_close(d, last);

	fmtpath(anon, "%s/anon", g_tmp);
	fd = open(anon, O_RDWR | O_CREAT, 0600);
	n = make_open(buf, 15, 3, fd, "erofs,img1", ref.hex, 11, SK_HEX_LEN, 0, 0);
	ld_cachefiles_handle(fe, buf, n);
	snprintf(want, sizeof(want), "copen 15,%llu", (unsigned long long)ref.usize);
	is_str(reply(), want, "the OPEN of the blob answers its size");
	is_int(net.reads, 0, "... without the source, at registration or OPEN");
	ok(!fd_closed(fd), "... and keeps the fd");
	/* attached on the pool, once the kernel's file is there */
	for (int i = 0; i < 2000 && !attached(d, b); i++)
		usleep(1000);
	ok(attached(d, b), "the kernel's file is attached to the daemon's blob");
	ok(ld_blob_ready(b, &bytes, &chunks), "status reads what it holds");
	is_int((long long)b->refs, 2, "the object holds a reference on the blob");
	{
		struct cachefiles_read rd = { .off = 0, .len = 4096 };

		n = make_msg(buf, 16, CACHEFILES_OP_READ, 3, &rd, sizeof(rd) - 4);
		ld_cachefiles_handle(fe, buf, n);
		is_str(reply(), "", "a short READ of a known object is completed on its fd, "
		       "not on the device");
		is_int((long long)atomic_load(&d->events_denied), 2, "... and counts as denied");
	}
	/* a prefetch writing through the file when the CLOSE comes: the
	 * object is freed by it when it is done, nobody waits for it */
	user = ld_blob_use(d, b);
	ok(user != NULL, "a prefetch takes the attached file");
	n = make_msg(buf, 17, CACHEFILES_OP_CLOSE, 3, NULL, 0);
	ld_cachefiles_handle(fe, buf, n);
	is_int((long long)atomic_load(&d->closes), 1, "a CLOSE is taken");

	/* the CLOSE frees the object on the pool: let it run (it must not
	 * wait for the prefetch: this would never return) */
	sk_pool_destroy(d->pool);
	d->pool = NULL;
	ok(b->file == NULL, "the CLOSE detached the kernel's file from the blob");
	ok(!fd_closed(fd), "... and left the object to its last user");
	if (user)
		ld_blob_unuse(d, user);
	ok(fd_closed(fd), "the prefetch letting go freed it, closing its fd");
	is_int((long long)b->refs, 1, "... letting go of its reference");
	is_int(ld_blob_prefetch(d, b, 0, 4096, &fetched, &e), -EAGAIN,
	       "prefetch after the CLOSE waits for the next OPEN");
	d->images = NULL;
	pthread_mutex_lock(&d->lock);
	last = ld_blob_put(d, b);
	pthread_mutex_unlock(&d->lock);
	ok(last == b, "the image's reference was the last");
	ld_blob_close(d, last);
	im->blobs[0] = NULL;
	ld_image_put(d, im);
	fe->ops->destroy(fe);
	close(p[0]);
	free(table);
	free(d);
	fmtpath(cmd, "rm -rf '%s'", g_tmp);
	if (system(cmd))
		diag("could not remove %s", g_tmp);
	return done_testing();
}
