/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The sources images read from, counted: a registration under way, each
 * image and each cache file hold a reference on the one they read
 * through; the last put destroys it with its transport's threads.
 */
#include "daemon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * The source of reference r's location with a reference taken for the
 * caller (ld_source_put() gives it back): the daemon's one for that location,
 * or a new one. Every image and every cache file holds one on the source
 * it reads from; the last put closes the source and its transport's
 * threads, so failed registrations and unmounted images leave nothing.
 */
struct be_source *ld_source_get(struct ld_daemon *d, const struct be_ref *r,
				struct sk_err *e)
{
	struct ld_source_ent *s;
	struct be_source *src = NULL;

	pthread_mutex_lock(&d->src_lock);
	for (s = d->sources; s; s = s->next)
		if (!strcmp(s->dir, r->loc)) {
			s->refs++;
			src = s->src;
			goto out;
		}
	/* network sources keep the manifests they fetch here */
	if (!d->cfg.backend.manifest_dir[0] &&
	    sk_path_join(d->cfg.backend.manifest_dir, sizeof(d->cfg.backend.manifest_dir),
			 d->cfg.work_dir, "manifests"))
		d->cfg.backend.manifest_dir[0] = '\0';
	if (!d->cfg.backend.auth_file[0] &&
	    sk_path_join(d->cfg.backend.auth_file, sizeof(d->cfg.backend.auth_file),
			 d->cfg.work_dir, LD_AUTH_FILE))
		d->cfg.backend.auth_file[0] = '\0';
	s = calloc(1, sizeof(*s));
	if (!s) {
		sk_err_set(e, "out of memory");
		goto out;
	}
	snprintf(s->dir, sizeof(s->dir), "%s", r->loc);
	if (be_source_open(r, &d->cfg.backend, &s->src, e)) {
		free(s);
		goto out;
	}
	s->refs = 1;
	s->next = d->sources;
	d->sources = s;
	src = s->src;
out:
	pthread_mutex_unlock(&d->src_lock);
	return src;
}

/* Another reference on src, which the caller holds one on already. */
struct be_source *ld_source_hold(struct ld_daemon *d, struct be_source *src)
{
	pthread_mutex_lock(&d->src_lock);
	for (struct ld_source_ent *s = d->sources; s; s = s->next)
		if (s->src == src)
			s->refs++;
	pthread_mutex_unlock(&d->src_lock);
	return src;
}

void ld_source_put(struct ld_daemon *d, struct be_source *src)
{
	struct ld_source_ent **pp, *s = NULL;

	if (!src)
		return;
	pthread_mutex_lock(&d->src_lock);
	for (pp = &d->sources; *pp; pp = &(*pp)->next)
		if ((*pp)->src == src) {
			if (--(*pp)->refs == 0) {
				s = *pp;
				*pp = s->next;
			}
			break;
		}
	pthread_mutex_unlock(&d->src_lock);
	/* no reference left, so no read is inside it */
	if (s) {
		be_source_destroy(s->src);
		free(s);
	}
}
