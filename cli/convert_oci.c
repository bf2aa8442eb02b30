/* SPDX-License-Identifier: Apache-2.0 */
/*
 * OCI image layouts as the source and the target of skiff convert
 * (interfaces in convert.h).
 */
#include "convert.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "../backend/remote.h"

/* "oci:DIR[:TAG]" or "DIR[:TAG]" */
static int split_ref(const char *ref, char *dir, size_t dlen, char *tag,
		     size_t tlen, struct sk_err *e)
{
	if (!strncmp(ref, "oci:", 4))
		ref += 4;
	if (strstr(ref, "://")) {
		sk_err_set(e, "%s: not an image reference convert takes (oci:DIR[:TAG] or docker://HOST[:PORT]/REPO[:TAG])", ref);
		return -EPROTONOSUPPORT;
	}
	if (!*ref || be_ref_split(ref, dir, dlen, tag, tlen)) {
		sk_err_set(e, "%s: bad image reference", ref);
		return -EINVAL;
	}
	return 0;
}

/* ---------------- source ---------------- */

struct oci_src {
	struct cli_conv_src base;
	struct be_store store;
	char tag[256];
};

struct oci_layer {
	int fd;
};

static int src_blob(struct cli_conv_src *cs, const char *hex, size_t max,
		    char **buf, size_t *len, struct sk_err *e)
{
	struct oci_src *s = (struct oci_src *)cs;
	char p[PATH_MAX];
	void *b;
	int ret = be_store_blob_path(&s->store, hex, p, sizeof(p));

	if (!ret)
		ret = sk_read_file(p, max, &b, len);
	if (ret) {
		sk_err_set(e, "%s: %s", p, ret == -EFBIG ? "too large" : strerror(-ret));
		return ret;
	}
	*buf = b;
	return 0;
}

static int src_root(struct cli_conv_src *cs, char **buf, size_t *len,
		    char mt[128], char hex[SK_HEX_LEN + 1], struct sk_err *e)
{
	struct oci_src *s = (struct oci_src *)cs;
	struct be_desc d;
	char p[PATH_MAX];
	void *b;
	int ret;

	hex[0] = '\0';
	ret = sk_path_join(p, sizeof(p), s->store.root, "index.json");
	if (!ret)
		ret = sk_read_file(p, CLI_CONV_JSON_MAX, &b, len);
	if (ret) {
		sk_err_set(e, "%s: %s", p, strerror(-ret));
		return ret;
	}
	if (!s->tag[0]) {
		/* the layout's index itself: the caller picks by platform */
		*buf = b;
		snprintf(mt, 128, "%s", BE_MT_INDEX);
		return 0;
	}
	ret = be_index_pick(b, *len, s->tag, NULL, &d, e);
	free(b);
	if (ret) {
		if (ret == -ENOENT)
			sk_err_set(e, "%s: no image tagged %s", s->store.root, s->tag);
		return ret;
	}
	snprintf(mt, 128, "%s", d.mt);
	memcpy(hex, d.hex, SK_HEX_LEN + 1);
	return src_blob(cs, d.hex, CLI_CONV_JSON_MAX, buf, len, e);
}

static ssize_t layer_read(void *ctx, void *buf, size_t len)
{
	struct oci_layer *l = ctx;
	ssize_t n = read(l->fd, buf, len);

	return n < 0 ? -errno : n;
}

static int src_open_layer(struct cli_conv_src *cs, const char *hex,
			  uint64_t size, struct fmt_tar_src *out, void **handle,
			  struct sk_err *e)
{
	struct oci_src *s = (struct oci_src *)cs;
	struct oci_layer *l = malloc(sizeof(*l));
	char p[PATH_MAX];
	int ret;

	if (!l)
		return -ENOMEM;
	be_store_blob_path(&s->store, hex, p, sizeof(p));
	l->fd = open(p, O_RDONLY | O_CLOEXEC);
	if (l->fd < 0) {
		ret = -errno;
		sk_err_set(e, "layer %s: %s", p, strerror(errno));
		free(l);
		return ret;
	}
	posix_fadvise(l->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	(void)size;
	out->read = layer_read;
	out->ctx = l;
	*handle = l;
	return 0;
}

static void src_close_layer(struct cli_conv_src *cs, void *handle)
{
	struct oci_layer *l = handle;

	(void)cs;
	if (l) {
		close(l->fd);
		free(l);
	}
}

static void src_destroy(struct cli_conv_src *cs)
{
	free(cs);
}

static const struct cli_conv_src_ops oci_src_ops = {
	.root = src_root,
	.blob = src_blob,
	.open_layer = src_open_layer,
	.close_layer = src_close_layer,
	.destroy = src_destroy,
};

int cli_conv_oci_src(const char *ref, struct cli_conv_src **out,
		     struct sk_err *e)
{
	struct oci_src *s = calloc(1, sizeof(*s));
	char dir[PATH_MAX];
	int ret;

	*out = NULL;
	if (!s)
		return -ENOMEM;
	ret = split_ref(ref, dir, sizeof(dir), s->tag, sizeof(s->tag), e);
	if (!ret)
		ret = be_store_open(&s->store, dir, 0, e);
	if (ret) {
		free(s);
		return ret;
	}
	s->base.ops = &oci_src_ops;
	snprintf(s->base.desc, sizeof(s->base.desc), "oci:%s%s%s", dir,
		 s->tag[0] ? ":" : "", s->tag);
	*out = &s->base;
	return 0;
}

/* ---------------- target ---------------- */

struct oci_dst {
	struct cli_conv_dst base;
	struct be_store store;
	/* the layout did not exist: discard removes it; made is the
	 * topmost directory created for it ("" when the directory was
	 * there, empty or not a layout) */
	bool fresh;
	char made[PATH_MAX];
	/* blobs this conversion put in place (fresh layouts only) */
	char (*blobs)[SK_HEX_LEN + 1];
	size_t nblobs, capblobs;
};

/* Notes a blob put in a fresh layout, for discard. A failure to note
 * it only means discard leaves it (and so the layout) behind. */
static void note_blob(struct oci_dst *d, const char *hex)
{
	if (!d->fresh)
		return;
	if (d->nblobs == d->capblobs) {
		size_t nc = d->capblobs ? d->capblobs * 2 : 16;
		char (*nb)[SK_HEX_LEN + 1] = realloc(d->blobs, nc * sizeof(*nb));

		if (!nb)
			return;
		d->blobs = nb;
		d->capblobs = nc;
	}
	snprintf(d->blobs[d->nblobs++], SK_HEX_LEN + 1, "%s", hex);
}

struct oci_tmp {
	int fd;
	char path[PATH_MAX];
};

static int dst_blob_begin(struct cli_conv_dst *cd, int *fd, void **handle,
			  struct sk_err *e)
{
	struct oci_dst *d = (struct oci_dst *)cd;
	struct oci_tmp *t = malloc(sizeof(*t));
	int ret;

	if (!t)
		return -ENOMEM;
	ret = be_store_tmp_blob(&d->store, t->path, sizeof(t->path), &t->fd);
	if (ret) {
		sk_err_set(e, "%s: creating a blob: %s", d->store.root, strerror(-ret));
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
	struct oci_dst *d = (struct oci_dst *)cd;
	struct oci_tmp *t = handle;
	int ret = 0;

	(void)size;
	if (close(t->fd) < 0)
		ret = -errno;
	if (!ret)
		ret = be_store_commit_blob(&d->store, t->path, hex);
	if (ret) {
		sk_err_set(e, "%s: writing blob %s: %s", d->store.root, hex, strerror(-ret));
		unlink(t->path);
	} else {
		note_blob(d, hex);
	}
	free(t);
	return ret;
}

static void dst_blob_abort(struct cli_conv_dst *cd, void *handle)
{
	struct oci_tmp *t = handle;

	(void)cd;
	close(t->fd);
	unlink(t->path);
	free(t);
}

static int copy_file(const char *from, int to)
{
	char buf[1 << 16];
	int fd = open(from, O_RDONLY | O_CLOEXEC), ret = 0;
	ssize_t n;

	if (fd < 0)
		return -errno;
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			break;
		}
		if ((ret = sk_write_full(to, buf, (size_t)n)))
			break;
	}
	close(fd);
	return ret;
}

/* A dictionary blob: hard-linked into the target layout when it is not
 * there already (the same layout: nothing to do), copied across
 * filesystems. */
static int dst_have_blob(struct cli_conv_dst *cd, const char *hex,
			 uint64_t size, const char *local_path,
			 struct sk_err *e)
{
	struct oci_dst *d = (struct oci_dst *)cd;
	char p[PATH_MAX], tmp[PATH_MAX];
	struct stat st;
	int fd, ret;

	be_store_blob_path(&d->store, hex, p, sizeof(p));
	if (stat(p, &st) == 0 && (uint64_t)st.st_size == size)
		return 0;
	if (link(local_path, p) == 0) {
		note_blob(d, hex);
		return 0;
	}
	if (errno != EXDEV && errno != EPERM && errno != EEXIST) {
		ret = -errno;
		sk_err_set(e, "%s: linking %s: %s", d->store.root, local_path, strerror(errno));
		return ret;
	}
	ret = be_store_tmp_blob(&d->store, tmp, sizeof(tmp), &fd);
	if (ret) {
		sk_err_set(e, "%s: %s", d->store.root, strerror(-ret));
		return ret;
	}
	ret = copy_file(local_path, fd);
	if (close(fd) < 0 && !ret)
		ret = -errno;
	if (!ret)
		ret = be_store_commit_blob(&d->store, tmp, hex);
	if (ret) {
		unlink(tmp);
		sk_err_set(e, "%s: copying %s: %s", d->store.root, local_path, strerror(-ret));
	} else {
		note_blob(d, hex);
	}
	return ret;
}

static int dst_put(struct cli_conv_dst *cd, const void *buf, size_t len,
		   char hex[SK_HEX_LEN + 1], struct sk_err *e)
{
	struct oci_dst *d = (struct oci_dst *)cd;
	int ret = be_store_put(&d->store, buf, len, hex);

	if (ret)
		sk_err_set(e, "%s: writing a blob: %s", d->store.root, strerror(-ret));
	else
		note_blob(d, hex);
	return ret;
}

static int dst_add_image(struct cli_conv_dst *cd, const struct be_image *img,
			 const char *config_json, const char *annotations,
			 struct sk_err *e)
{
	struct oci_dst *d = (struct oci_dst *)cd;
	struct be_image i = *img;

	snprintf(i.tag, sizeof(i.tag), "%s", cd->tag);
	return be_store_add_image_config(&d->store, &i, config_json, annotations, e);
}

/* Drops p's trailing slashes and, with up, its last component: false
 * when nothing (or only "/") is left. */
static bool trim_parent(char *p, bool up)
{
	size_t n = strlen(p);

	while (n > 1 && p[n - 1] == '/')
		p[--n] = '\0';
	if (up) {
		while (n > 0 && p[n - 1] != '/')
			p[--n] = '\0';
		while (n > 1 && p[n - 1] == '/')
			p[--n] = '\0';
	}
	return n > 0 && strcmp(p, "/");
}

/* Whether the layout's index.json still lists no image: nothing else
 * has been added to the layout since it was made. */
static bool index_empty(const struct oci_dst *d)
{
	char p[PATH_MAX];
	void *buf;
	size_t len;
	json_t *j, *m;
	bool empty;

	if (sk_path_join(p, sizeof(p), d->store.root, "index.json") ||
	    sk_read_file(p, CLI_CONV_JSON_MAX, &buf, &len))
		return false;
	j = json_loadb(buf, len, 0, NULL);
	free(buf);
	m = json_object_get(j, "manifests");
	empty = json_is_array(m) && json_array_size(m) == 0;
	json_decref(j);
	return empty;
}

static void rm_in(const struct oci_dst *d, const char *rel, bool dir)
{
	char p[PATH_MAX];

	if (!sk_path_join(p, sizeof(p), d->store.root, rel))
		(void)(dir ? rmdir(p) : unlink(p));
}

/*
 * A failed conversion into a layout it made: the blobs it put there, the
 * layout's files, and the directories made for it go. Only rmdir(2)
 * removes directories, so whatever someone else put there meanwhile
 * stays (and with it the directories holding it); a layout that lists
 * an image by now is someone else's too and is left whole.
 */
static void dst_discard(struct cli_conv_dst *cd)
{
	struct oci_dst *d = (struct oci_dst *)cd;
	char p[PATH_MAX];

	if (!d->fresh || !index_empty(d))
		return;
	for (size_t i = 0; i < d->nblobs; i++) {
		be_store_blob_path(&d->store, d->blobs[i], p, sizeof(p));
		unlink(p);
	}
	rm_in(d, "oci-layout", false);
	rm_in(d, "index.json", false);
	rm_in(d, "blobs/sha256", true);
	rm_in(d, "blobs", true);
	if (!d->made[0])
		return;
	/* the layout's directory, then its parents up to the first one made */
	snprintf(p, sizeof(p), "%s", d->store.root);
	while (trim_parent(p, false)) {
		bool top = !strcmp(p, d->made);

		if (rmdir(p) < 0 || top)
			break;
		trim_parent(p, true);
	}
}

static void dst_destroy(struct cli_conv_dst *cd)
{
	free(((struct oci_dst *)cd)->blobs);
	free(cd);
}

static const struct cli_conv_dst_ops oci_dst_ops = {
	.blob_begin = dst_blob_begin,
	.blob_commit = dst_blob_commit,
	.blob_abort = dst_blob_abort,
	.have_blob = dst_have_blob,
	.put = dst_put,
	.add_image = dst_add_image,
	.discard = dst_discard,
	.destroy = dst_destroy,
};

/* Before the layout is opened: whether it exists, and which directory
 * opening it will make first (the topmost missing one of dir's path). */
static void find_made(struct oci_dst *d, const char *dir)
{
	char p[PATH_MAX], oci[PATH_MAX];
	struct stat st;

	d->fresh = !(sk_path_join(oci, sizeof(oci), dir, "oci-layout") == 0 &&
		     stat(oci, &st) == 0);
	d->made[0] = '\0';
	if (!d->fresh || strlen(dir) >= sizeof(p))
		return;
	snprintf(p, sizeof(p), "%s", dir);
	while (trim_parent(p, false) && stat(p, &st) < 0 && errno == ENOENT) {
		snprintf(d->made, sizeof(d->made), "%s", p);
		if (!trim_parent(p, true))
			break;
	}
}

int cli_conv_oci_dst(const char *ref, const char *tag,
		     struct cli_conv_dst **out, struct sk_err *e)
{
	struct oci_dst *d = calloc(1, sizeof(*d));
	char dir[PATH_MAX];
	int ret;

	*out = NULL;
	if (!d)
		return -ENOMEM;
	ret = split_ref(ref, dir, sizeof(dir), d->base.tag, sizeof(d->base.tag), e);
	if (!ret && tag)
		snprintf(d->base.tag, sizeof(d->base.tag), "%s", tag);
	if (!ret)
		find_made(d, dir);
	if (!ret)
		ret = be_store_open(&d->store, dir, 1, e);
	if (ret) {
		free(d);
		return ret;
	}
	d->base.ops = &oci_dst_ops;
	snprintf(d->base.desc, sizeof(d->base.desc), "oci:%s%s%s", dir,
		 d->base.tag[0] ? ":" : "", d->base.tag);
	*out = &d->base;
	return 0;
}
