/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The registered images persisted in work_dir/images.json, so that a
 * restart (or the holder's new serving process) registers them again.
 */
#include "daemon.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void ld_image_pin(struct ld_image *im)
{
	char pinned[PATH_MAX + 80];
	struct be_ref r;
	struct sk_err e;

	free(im->pinned);
	im->pinned = NULL;
	/* a network image restarts from the manifest it had (kept in the
	 * manifest cache), even when its tag moved or the registry is
	 * unreachable */
	if (be_ref_parse(im->ref, &r, &e) == 0 &&
	    be_ref_pin(&r, im->manifest, pinned, sizeof(pinned)) == 0)
		im->pinned = strdup(pinned);
}

/* Under d->lock: im's entry of images.json, made again if it changed. */
static const char *state_entry(struct ld_image *im)
{
	json_t *o;

	if (im->state_json && !im->state_dirty)
		return im->state_json;
	o = json_pack("{s:s, s:s, s:s, s:s}", "id", im->id, "ref", im->ref,
		      "domain", im->domain, "mountpoint", im->mountpoint);
	if (o && im->notify_ok)
		json_object_set_new(o, "notify", json_true());
	if (o && im->pinned)
		json_object_set_new(o, "pinned", json_string(im->pinned));
	free(im->state_json);
	im->state_json = o ? json_dumps(o, 0) : NULL;
	json_decref(o);
	im->state_dirty = im->state_json == NULL;
	return im->state_json;
}

/* Room for `more` bytes after len in *text. */
static int room(char **text, size_t *cap, size_t len, size_t more)
{
	size_t ncap = *cap ? *cap : 4096;
	char *n;

	while (ncap < len + more)
		ncap *= 2;
	if (ncap == *cap)
		return 0;
	n = realloc(*text, ncap);
	if (!n)
		return -ENOMEM;
	*text = n;
	*cap = ncap;
	return 0;
}

int ld_state_save(struct ld_daemon *d)
{
	char p[PATH_MAX], *text = NULL;
	size_t len = 0, cap = 0;
	int ret = 0;

	/* one line: rewritten at every registration, from each image's
	 * entry as made when it changed */
	pthread_mutex_lock(&d->lock);
	for (struct ld_image *im = d->images; im && !ret; im = im->next) {
		const char *ent = state_entry(im);
		size_t n = ent ? strlen(ent) : 0;

		if (!ent || room(&text, &cap, len, n + 3)) {
			ret = -ENOMEM;
			break;
		}
		text[len] = len ? ',' : '[';
		len++;
		memcpy(text + len, ent, n);
		len += n;
	}
	pthread_mutex_unlock(&d->lock);
	if (!ret)
		ret = room(&text, &cap, len, 3);
	if (ret) {
		free(text);
		return ret;
	}
	if (!len)
		text[len++] = '[';
	text[len++] = ']';
	text[len] = '\0';
	ret = sk_path_join(p, sizeof(p), d->cfg.work_dir, "images.json");
	if (!ret)
		ret = sk_write_file_atomic(p, text, len);
	free(text);
	if (ret)
		ld_log(d, LD_LOG_ERROR, "saving %s: %s", p, strerror(-ret));
	return ret;
}

int ld_state_parse(const char *text, size_t len,
		   int (*cb)(void *ctx, const struct ld_state_ent *ent), void *ctx,
		   struct sk_err *e)
{
	json_error_t je;
	json_t *arr = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je), *v;
	size_t i;
	int ret = 0;

	if (!arr) {
		sk_err_set(e, "%s (line %d)", je.text, je.line);
		return -EINVAL;
	}
	if (!json_is_array(arr)) {
		sk_err_set(e, "not a JSON array");
		json_decref(arr);
		return -EINVAL;
	}
	json_array_foreach(arr, i, v) {
		struct ld_state_ent ent = {
			.index = i,
			.id = json_string_value(json_object_get(v, "id")),
			.ref = json_string_value(json_object_get(v, "ref")),
			.domain = json_string_value(json_object_get(v, "domain")),
			.mountpoint = json_string_value(json_object_get(v, "mountpoint")),
			.pinned = json_string_value(json_object_get(v, "pinned")),
			.notify_ok = json_is_true(json_object_get(v, "notify")),
		};

		/* what registration copies into fixed fields: a longer
		 * string is a damaged file, never a cut one */
		if (!ent.id || !ent.ref || strlen(ent.id) >= sizeof(((struct ld_image *)0)->id) ||
		    strlen(ent.ref) >= PATH_MAX ||
		    (ent.domain && strlen(ent.domain) >= sizeof(((struct ld_image *)0)->domain)) ||
		    (ent.mountpoint && strlen(ent.mountpoint) >= PATH_MAX) ||
		    (ent.pinned && strlen(ent.pinned) >= PATH_MAX))
			ent.bad = true;
		ret = cb(ctx, &ent);
		if (ret)
			break;
	}
	json_decref(arr);
	return ret;
}

static int restore_one(void *ctx, const struct ld_state_ent *ent)
{
	struct ld_daemon *d = ctx;
	const char *ref = ent->pinned ? ent->pinned : ent->ref;
	struct ld_image *im;
	struct sk_err e = { { 0 } };

	if (ent->bad) {
		ld_log(d, LD_LOG_WARN, "images.json: entry %zu has no id or ref, or too long a field",
		       ent->index);
		return 0;
	}
	if (ld_image_register(d, ref, ent->id, ent->domain, ent->mountpoint, &im, &e)) {
		ld_log(d, LD_LOG_ERROR, "restoring image %s: %s", ent->id, e.msg);
		return 0;
	}
	/* its mount is as old as its first registration: it opened its
	 * blobs marked only if that registration says so */
	pthread_mutex_lock(&d->lock);
	im->notify_ok = ent->notify_ok;
	im->state_dirty = true;
	for (unsigned int i = 0; i < im->nblobs && !im->notify_ok; i++)
		if (im->blobs[i])
			im->blobs[i]->no_evict = true;
	if (ent->pinned) {	/* shown as the user named it */
		snprintf(im->ref, sizeof(im->ref), "%s", ent->ref);
		ld_image_pin(im);
	}
	pthread_mutex_unlock(&d->lock);
	ld_log(d, LD_LOG_INFO, "restored image %s (%s)", ent->id, ent->ref);
	return 0;
}

int ld_state_restore(struct ld_daemon *d)
{
	struct sk_err e = { { 0 } };
	char p[PATH_MAX];
	size_t len;
	void *text;
	int ret;

	if (sk_path_join(p, sizeof(p), d->cfg.work_dir, "images.json") ||
	    access(p, F_OK))
		return 0;
	/* a few hundred bytes an image: 64 MiB is far past any node */
	ret = sk_read_file(p, 64u << 20, &text, &len);
	if (ret) {
		ld_log(d, LD_LOG_ERROR, "%s: %s, starting empty", p, strerror(-ret));
		return 0;
	}
	d->restoring = true;	/* before the API serves: nobody else registers */
	ret = ld_state_parse(text, len, restore_one, d, &e);
	d->restoring = false;
	if (ret)
		ld_log(d, LD_LOG_ERROR, "%s: unreadable (%s), starting empty", p, e.msg);
	free(text);
	return 0;
}
