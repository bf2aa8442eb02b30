/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Local source: blobs of an OCI image layout, read with pread(2). Open
 * blob files are kept (one fd per blob, opened on first use) so that a
 * stream of small chunk reads costs one syscall each.
 */
#include "source.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "store.h"

struct local_fd {
	char hex[SK_HEX_LEN + 1];
	int fd;
};

struct local_source {
	struct be_source base;
	struct be_store store;
	pthread_mutex_t lock;
	struct local_fd *fds;
	size_t nfds, cap;
	unsigned int delay_ms;	/* tests: SKIFF_TEST_FETCH_DELAY_MS */
	/* tests: SKIFF_TEST_FETCH_DELAY_WHILE, the delay only while this
	 * file exists (a test lifts it without restarting anything) */
	const char *delay_while;	/* the environment's */
	/* tests: SKIFF_TEST_FETCH_BPS, one link of that many bytes/s that
	 * every read of this source shares, one read at a time */
	uint64_t link_bps;
	pthread_mutex_t link;
	/* under index_lock: the layout's index.json as last parsed, and
	 * its bytes. A store of a thousand images is parsed once, not at
	 * every registration; a file is read each time (a fraction of the
	 * parse) and compared, since no stat says for sure that a file
	 * replaced by rename is another (inode numbers come back, mtimes
	 * are coarse) */
	pthread_mutex_t index_lock;
	json_t *index;
	void *index_raw;
	size_t index_len;
};

static int local_fd(struct local_source *l, const char *hex, int *fd)
{
	char p[PATH_MAX];
	int ret = 0;

	pthread_mutex_lock(&l->lock);
	for (size_t i = 0; i < l->nfds; i++) {
		if (!strcmp(l->fds[i].hex, hex)) {
			*fd = l->fds[i].fd;
			goto out;
		}
	}
	if (strlen(hex) != SK_HEX_LEN) {
		ret = -EINVAL;
		goto out;
	}
	ret = be_store_blob_path(&l->store, hex, p, sizeof(p));
	if (ret)
		goto out;
	if (l->nfds == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 8;
		struct local_fd *n = realloc(l->fds, ncap * sizeof(*n));

		if (!n) {
			ret = -ENOMEM;
			goto out;
		}
		l->fds = n;
		l->cap = ncap;
	}
	*fd = open(p, O_RDONLY | O_CLOEXEC);
	if (*fd < 0) {
		ret = -errno;
		goto out;
	}
	memcpy(l->fds[l->nfds].hex, hex, SK_HEX_LEN + 1);
	l->fds[l->nfds++].fd = *fd;
out:
	pthread_mutex_unlock(&l->lock);
	return ret;
}

static int local_read(struct be_source *s, const char *hex, uint64_t off,
		      void *buf, size_t len, struct sk_err *e)
{
	struct local_source *l = (struct local_source *)s;
	int fd, ret = local_fd(l, hex, &fd);

	if (ret) {
		sk_err_set(e, "%s: blob %s: %s", s->desc, hex, strerror(-ret));
		return ret;
	}
	if (l->delay_ms && (!l->delay_while || access(l->delay_while, F_OK) == 0))
		usleep(l->delay_ms * 1000u);
	if (l->link_bps) {
		pthread_mutex_lock(&l->link);
		usleep((useconds_t)((double)len * 1e6 / (double)l->link_bps));
		pthread_mutex_unlock(&l->link);
	}
	ret = sk_pread_full(fd, buf, len, off);
	if (ret == -ENODATA) {
		sk_err_set(e, "%s: blob %s: shorter than %llu bytes", s->desc, hex,
			   (unsigned long long)(off + len));
		return -EIO;
	}
	if (ret)
		sk_err_set(e, "%s: blob %s: reading %zu bytes at %llu: %s", s->desc,
			   hex, len, (unsigned long long)off, strerror(-ret));
	return ret;
}

static void local_destroy(struct be_source *s)
{
	struct local_source *l = (struct local_source *)s;

	for (size_t i = 0; i < l->nfds; i++)
		close(l->fds[i].fd);
	free(l->fds);
	json_decref(l->index);
	free(l->index_raw);
	pthread_mutex_destroy(&l->index_lock);
	pthread_mutex_destroy(&l->lock);
	pthread_mutex_destroy(&l->link);
	free(l);
}

static int local_resolve(struct be_source *s, const char *tag,
			 struct be_image *img, struct sk_err *e)
{
	struct local_source *l = (struct local_source *)s;
	char p[PATH_MAX];
	void *raw = NULL;
	size_t len = 0;
	int ret;

	if (snprintf(p, sizeof(p), "%s/index.json", l->store.root) >= (int)sizeof(p) ||
	    sk_read_file(p, 16u << 20, &raw, &len))	/* store.c's bound */
		return be_store_resolve(&l->store, tag, img, e);
	/* its own lock: every chunk read takes l->lock */
	pthread_mutex_lock(&l->index_lock);
	if (!l->index || len != l->index_len || memcmp(raw, l->index_raw, len)) {
		json_error_t je;
		json_t *j = json_loadb(raw, len, JSON_REJECT_DUPLICATES, &je);

		if (!j) {
			pthread_mutex_unlock(&l->index_lock);
			free(raw);
			/* says what is wrong with it, as ever */
			return be_store_resolve(&l->store, tag, img, e);
		}
		json_decref(l->index);
		free(l->index_raw);
		l->index = j;
		l->index_raw = raw;
		l->index_len = len;
		raw = NULL;
	}
	ret = be_store_resolve_in(&l->store, l->index, tag, img, e);
	pthread_mutex_unlock(&l->index_lock);
	free(raw);
	return ret;
}

static const struct be_source_ops local_ops = {
	.read = local_read,
	.destroy = local_destroy,
	.resolve = local_resolve,
};

int be_local_source_new(const char *layout_dir, struct be_source **out,
			struct sk_err *e)
{
	struct local_source *l = calloc(1, sizeof(*l));
	int ret;

	if (!l)
		return -ENOMEM;
	ret = be_store_open(&l->store, layout_dir, 0, e);
	if (ret) {
		free(l);
		return ret;
	}
	pthread_mutex_init(&l->lock, NULL);
	pthread_mutex_init(&l->index_lock, NULL);
	/* a slow store on demand, so tests can catch reads in flight */
	if (getenv("SKIFF_TEST_FETCH_DELAY_MS"))
		l->delay_ms = (unsigned int)strtoul(getenv("SKIFF_TEST_FETCH_DELAY_MS"),
						    NULL, 10);
	l->delay_while = getenv("SKIFF_TEST_FETCH_DELAY_WHILE");
	pthread_mutex_init(&l->link, NULL);
	if (getenv("SKIFF_TEST_FETCH_BPS"))
		l->link_bps = strtoull(getenv("SKIFF_TEST_FETCH_BPS"), NULL, 10);
	l->base.ops = &local_ops;
	snprintf(l->base.desc, sizeof(l->base.desc), "local:%s", layout_dir);
	*out = &l->base;
	return 0;
}
