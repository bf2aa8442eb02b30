/* SPDX-License-Identifier: Apache-2.0 */
/*
 * OCI registries (docker://) as the source and the target of skiff
 * convert (interfaces in convert.h), over the registry client of
 * backend/remote.h.
 *
 * Source: a layer is read in sequential ranges of CONV_RANGE bytes, one
 * fetched ahead while the previous one is decoded, so a layer of any size
 * costs two ranges of memory and no disk; the conversion checks its
 * digest and size as it reads.
 *
 * Target: the builder writes a data blob through a file descriptor and
 * the blob is final only when committed after the last layer, so data
 * blobs are staged in unlinked temporary files (nothing to clean up,
 * whatever happens) and pushed at commit; the bootstrap, config and
 * manifest are pushed from memory. Blobs the registry has are skipped
 * (HEAD).
 */
#include "convert.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../backend/remote.h"
#include "registry.h"

/* one ranged GET: large enough that the request's round trip is small
 * beside its transfer, small enough to hold in memory */
#define CONV_RANGE (8u << 20)

static int parse_docker(const char *s, struct be_ref *ref, struct sk_err *e)
{
	int ret = be_ref_parse(s, ref, e);

	if (!ret && ref->kind != BE_REF_DOCKER)
		ret = -EINVAL;
	if (ret && !e->msg[0])
		sk_err_set(e, "%s: not a docker://HOST[:PORT]/REPO[:TAG] reference", s);
	return ret;
}

/* ---------------- source ---------------- */

struct reg_src {
	struct cli_conv_src base;
	struct cli_reg_opts ro;		/* borrowed by r: do not move */
	struct be_ref ref;
	struct be_reg *r;
};

/*
 * A layer being read: a fetcher thread reads range after range into two
 * buffers in turn while the conversion consumes the other, so the
 * network and the decoding overlap (a range's round trip is not paid in
 * series). full[i] passes buffer i from fetcher to reader and back.
 */
struct reg_layer {
	struct reg_src *s;
	char hex[SK_HEX_LEN + 1];
	uint64_t size;			/* the manifest's */
	uint64_t consumed;		/* bytes handed to the reader */
	uint8_t *buf[2];		/* CONV_RANGE bytes each */
	size_t len[2];
	int ret[2];			/* the fetch's result */
	bool full[2];
	unsigned int cur;		/* the buffer being read */
	size_t pos;			/* read up to here in buf[cur] */
	bool stop, started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thr;
};

static void *fetch_main(void *arg)
{
	struct reg_layer *l = arg;
	uint64_t off = 0;

	for (unsigned int i = 0; off < l->size; i ^= 1) {
		size_t want = (size_t)SK_MIN((uint64_t)CONV_RANGE, l->size - off);
		bool stop;
		int ret;

		pthread_mutex_lock(&l->lock);
		while (l->full[i] && !l->stop)
			pthread_cond_wait(&l->cond, &l->lock);
		stop = l->stop;
		pthread_mutex_unlock(&l->lock);
		if (stop)
			break;
		/* only this thread writes err, and the reader looks at it
		 * only after it saw ret[i] under the lock */
		ret = be_reg_blob_read(l->s->r, l->hex, off, l->buf[i], want,
				       &l->s->base.err);
		pthread_mutex_lock(&l->lock);
		l->len[i] = want;
		l->ret[i] = ret;
		l->full[i] = true;
		pthread_cond_broadcast(&l->cond);
		pthread_mutex_unlock(&l->lock);
		if (ret)
			break;
		off += want;
	}
	return NULL;
}

static int src_root(struct cli_conv_src *cs, char **buf, size_t *len,
		    char mt[128], char hex[SK_HEX_LEN + 1], struct sk_err *e)
{
	struct reg_src *s = (struct reg_src *)cs;
	const char *want = s->ref.digest[0] ? s->ref.digest :
			   s->ref.tag[0] ? s->ref.tag : "latest";

	/* digest-checked against the reference's digest, or the one the
	 * registry names */
	return be_reg_get_manifest(s->r, want, buf, len, mt, hex, e);
}

static int src_manifest(struct cli_conv_src *cs, const char *hex, char **buf,
			size_t *len, struct sk_err *e)
{
	struct reg_src *s = (struct reg_src *)cs;
	char ref[8 + SK_HEX_LEN + 1], mt[128], got[SK_HEX_LEN + 1];

	snprintf(ref, sizeof(ref), "sha256:%s", hex);
	return be_reg_get_manifest(s->r, ref, buf, len, mt, got, e);
}

static int src_blob(struct cli_conv_src *cs, const char *hex, size_t max,
		    char **buf, size_t *len, struct sk_err *e)
{
	struct reg_src *s = (struct reg_src *)cs;

	return be_reg_blob_get(s->r, hex, max, buf, len, e);
}

static ssize_t layer_read(void *ctx, void *buf, size_t len)
{
	struct reg_layer *l = ctx;
	unsigned int c = l->cur;
	size_t n;
	int ret;

	if (l->consumed >= l->size)
		return 0;
	pthread_mutex_lock(&l->lock);
	while (!l->full[c])
		pthread_cond_wait(&l->cond, &l->lock);
	ret = l->ret[c];
	pthread_mutex_unlock(&l->lock);
	if (ret)
		return ret;
	n = SK_MIN(len, l->len[c] - l->pos);
	memcpy(buf, l->buf[c] + l->pos, n);
	l->pos += n;
	l->consumed += n;
	if (l->pos == l->len[c]) {
		/* hand the buffer back for the range after the next */
		pthread_mutex_lock(&l->lock);
		l->full[c] = false;
		pthread_cond_broadcast(&l->cond);
		pthread_mutex_unlock(&l->lock);
		l->cur = c ^ 1;
		l->pos = 0;
	}
	return (ssize_t)n;
}

static void layer_free(struct reg_layer *l)
{
	if (l->started) {
		pthread_mutex_lock(&l->lock);
		l->stop = true;
		pthread_cond_broadcast(&l->cond);
		pthread_mutex_unlock(&l->lock);
		/* a range being fetched ends within the transport's bounds */
		pthread_join(l->thr, NULL);
	}
	pthread_cond_destroy(&l->cond);
	pthread_mutex_destroy(&l->lock);
	free(l->buf[0]);
	free(l->buf[1]);
	free(l);
}

static int src_open_layer(struct cli_conv_src *cs, const char *hex,
			  uint64_t size, struct fmt_tar_src *out, void **handle,
			  struct sk_err *e)
{
	struct reg_layer *l = calloc(1, sizeof(*l));
	int ret;

	if (!l)
		return -ENOMEM;
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->cond, NULL);
	l->s = (struct reg_src *)cs;
	snprintf(l->hex, sizeof(l->hex), "%s", hex);
	/* the manifest's size bounds the reads; a blob that is really
	 * longer or shorter fails the conversion's digest and size check */
	l->size = size;
	l->s->base.err.msg[0] = '\0';
	if (size) {
		l->buf[0] = malloc(CONV_RANGE);
		l->buf[1] = malloc(CONV_RANGE);
		if (!l->buf[0] || !l->buf[1]) {
			layer_free(l);
			sk_err_set(e, "out of memory");
			return -ENOMEM;
		}
		ret = -pthread_create(&l->thr, NULL, fetch_main, l);
		if (ret) {
			layer_free(l);
			sk_err_set(e, "starting a fetcher thread: %s", strerror(-ret));
			return ret;
		}
		l->started = true;
	}
	out->read = layer_read;
	out->ctx = l;
	*handle = l;
	return 0;
}

static void src_close_layer(struct cli_conv_src *cs, void *handle)
{
	(void)cs;
	if (handle)
		layer_free(handle);
}

static void src_destroy(struct cli_conv_src *cs)
{
	struct reg_src *s = (struct reg_src *)cs;

	be_reg_close(s->r);
	free(s);
}

static const struct cli_conv_src_ops reg_src_ops = {
	.root = src_root,
	.blob = src_blob,
	.manifest = src_manifest,
	.open_layer = src_open_layer,
	.close_layer = src_close_layer,
	.destroy = src_destroy,
};

int cli_conv_reg_src(const char *ref, const struct cli_reg_opts *ro,
		     struct cli_conv_src **out, struct sk_err *e)
{
	struct reg_src *s = calloc(1, sizeof(*s));
	int ret;

	*out = NULL;
	if (!s)
		return -ENOMEM;
	s->ro = *ro;
	ret = parse_docker(ref, &s->ref, e);
	if (!ret)
		ret = cli_reg_open(&s->ro, &s->ref, false, &s->r, e);
	if (ret) {
		free(s);
		return ret;
	}
	s->base.ops = &reg_src_ops;
	snprintf(s->base.desc, sizeof(s->base.desc), "docker://%s%s%s", s->ref.loc,
		 s->ref.digest[0] ? "@" : s->ref.tag[0] ? ":" : "",
		 s->ref.digest[0] ? s->ref.digest : s->ref.tag);
	*out = &s->base;
	return 0;
}

/* ---------------- target ---------------- */

struct reg_dst {
	struct cli_conv_dst base;
	struct cli_reg_opts ro;		/* borrowed by r: do not move */
	struct be_ref ref;
	struct be_reg *r;
	char tmpdir[PATH_MAX];
	bool progress;
	struct cli_push_stats ps;
};

struct reg_tmp {
	int fd;
};

/* A file with no name: it goes when closed, also when we crash. */
static int tmp_file(const char *dir, int *fd)
{
	char p[PATH_MAX];

	*fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (*fd >= 0)
		return 0;
	if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
		return -errno;
	/* a filesystem without O_TMPFILE: a named file, unlinked at once */
	if (snprintf(p, sizeof(p), "%s/skiff-convert.XXXXXX", dir) >= (int)sizeof(p))
		return -ENAMETOOLONG;
	*fd = mkostemp(p, O_CLOEXEC);
	if (*fd < 0)
		return -errno;
	unlink(p);
	return 0;
}

static int dst_blob_begin(struct cli_conv_dst *cd, int *fd, void **handle,
			  struct sk_err *e)
{
	struct reg_dst *d = (struct reg_dst *)cd;
	struct reg_tmp *t = malloc(sizeof(*t));
	int ret;

	if (!t)
		return -ENOMEM;
	ret = tmp_file(d->tmpdir, &t->fd);
	if (ret) {
		sk_err_set(e, "%s: a temporary file for a blob: %s", d->tmpdir,
			   strerror(-ret));
		free(t);
		return ret;
	}
	*fd = t->fd;
	*handle = t;
	return 0;
}

static int dst_blob_commit(struct cli_conv_dst *cd, void *handle,
			   const char *hex, uint64_t size, struct sk_err *e)
{
	struct reg_dst *d = (struct reg_dst *)cd;
	struct reg_tmp *t = handle;
	int ret = cli_push_fd(d->r, hex, size, t->fd, "a staged blob", NULL,
			      (size_t)d->ro.upload_chunk, d->progress, &d->ps, e);

	close(t->fd);
	free(t);
	return ret;
}

static void dst_blob_abort(struct cli_conv_dst *cd, void *handle)
{
	struct reg_tmp *t = handle;

	(void)cd;
	close(t->fd);
	free(t);
}

/* A chunk dictionary's blob, from its local layout. */
static int dst_have_blob(struct cli_conv_dst *cd, const char *hex,
			 uint64_t size, const char *local_path,
			 struct sk_err *e)
{
	struct reg_dst *d = (struct reg_dst *)cd;

	return cli_push_file(d->r, hex, size, local_path, NULL,
			     (size_t)d->ro.upload_chunk, d->progress, &d->ps, e);
}

static int dst_put(struct cli_conv_dst *cd, const void *buf, size_t len,
		   char hex[SK_HEX_LEN + 1], struct sk_err *e)
{
	struct reg_dst *d = (struct reg_dst *)cd;
	uint8_t dg[SK_SHA256_LEN];

	sk_sha256(buf, len, dg);
	sk_hex(dg, sizeof(dg), hex);
	return cli_push_mem(d->r, hex, buf, len, NULL, (size_t)d->ro.upload_chunk,
			    d->progress, &d->ps, e);
}

/* The config and manifest an OCI layout target would write (the same
 * bytes, so the same manifest digest), pushed; the manifest last, so
 * the tag names an image whose blobs are all there. */
static int dst_add_image(struct cli_conv_dst *cd, const struct be_image *img,
			 const char *config_json, const char *annotations,
			 struct sk_err *e)
{
	struct reg_dst *d = (struct reg_dst *)cd;
	struct be_image_json ij;
	char sum[160];
	int ret = be_image_json(img, config_json, annotations, &ij, e);

	if (ret)
		return ret;
	ret = cli_push_mem(d->r, ij.config_hex, ij.config, ij.config_len, NULL,
			   (size_t)d->ro.upload_chunk, d->progress, &d->ps, e);
	if (!ret)
		ret = be_reg_manifest_put(d->r, cd->tag, BE_MT_MANIFEST, ij.manifest,
					  ij.manifest_len, e);
	if (!ret) {
		cli_push_summary(&d->ps, sum, sizeof(sum));
		snprintf(cd->note, sizeof(cd->note), "manifest sha256:%s pushed; %s",
			 ij.manifest_hex, sum);
	}
	be_image_json_free(&ij);
	return ret;
}

static void dst_destroy(struct cli_conv_dst *cd)
{
	struct reg_dst *d = (struct reg_dst *)cd;

	be_reg_close(d->r);
	free(d);
}

static const struct cli_conv_dst_ops reg_dst_ops = {
	.blob_begin = dst_blob_begin,
	.blob_commit = dst_blob_commit,
	.blob_abort = dst_blob_abort,
	.have_blob = dst_have_blob,
	.put = dst_put,
	.add_image = dst_add_image,
	.destroy = dst_destroy,
};

int cli_conv_reg_dst(const char *ref, const char *tag,
		     const struct cli_reg_opts *ro, bool progress,
		     struct cli_conv_dst **out, struct sk_err *e)
{
	struct reg_dst *d = calloc(1, sizeof(*d));
	const char *tmp = getenv("TMPDIR");
	int ret;

	*out = NULL;
	if (!d)
		return -ENOMEM;
	d->ro = *ro;
	d->progress = progress;
	snprintf(d->tmpdir, sizeof(d->tmpdir), "%s", tmp && *tmp ? tmp : "/var/tmp");
	ret = parse_docker(ref, &d->ref, e);
	if (!ret && d->ref.digest[0]) {
		sk_err_set(e, "%s: convert to a tag, not a digest", ref);
		ret = -EINVAL;
	}
	if (!ret)
		ret = cli_reg_open(&d->ro, &d->ref, true, &d->r, e);
	if (ret) {
		free(d);
		return ret;
	}
	snprintf(d->base.tag, sizeof(d->base.tag), "%s",
		 tag ? tag : d->ref.tag[0] ? d->ref.tag : "latest");
	d->base.ops = &reg_dst_ops;
	snprintf(d->base.desc, sizeof(d->base.desc), "docker://%s:%s", d->ref.loc,
		 d->base.tag);
	*out = &d->base;
	return 0;
}
