/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Prefetch: fetching what an image will need before anybody reads it,
 * behind on-demand reads. A task is one image's list of cache-file ranges
 * (the bootstrap's prefetch list, or every blob for a whole-image
 * pre-warm). Its own few threads run the tasks; before each range they
 * let on-demand reads go first (while any is being served, prefetch
 * waits), and pace themselves to a bandwidth limit. Fills go through the
 * loader core, so chunks ready or in flight are never fetched twice, and
 * ld_blob_prefetch() writes where the kernel will read.
 */
#ifndef SKIFF_LOADER_PREFETCH_H
#define SKIFF_LOADER_PREFETCH_H

#include <stdbool.h>
#include <stdint.h>

#include "../common/sk.h"

struct ld_daemon;
struct ld_image;

enum ld_pf_state {
	LD_PF_NONE,	/* never asked */
	LD_PF_QUEUED,	/* waiting for a thread */
	LD_PF_RUNNING,
	LD_PF_WAITING,	/* cachefiles: a blob the kernel has not opened yet */
	LD_PF_DONE,
	LD_PF_FAILED,
	LD_PF_CANCELLED,
};

struct ld_pf_status {
	enum ld_pf_state state;
	bool all;			/* whole image, not the list */
	uint64_t total_bytes, done_bytes;	/* cache-file bytes */
	uint64_t fetched_bytes;		/* stored bytes prefetch fetched */
	uint64_t bandwidth;		/* bytes/s, 0: no limit */
	uint32_t list_entries;		/* files in the image's list */
	double started, finished;	/* sk_now() */
	char error[sizeof(((struct sk_err *)0)->msg)];
};

const char *ld_pf_state_name(enum ld_pf_state s);

int ld_pf_start(struct ld_daemon *d, struct sk_err *e);
void ld_pf_stop(struct ld_daemon *d);
/*
 * Queues a prefetch of im: its prefetch list, or every blob when all.
 * A running task of the image is replaced. bandwidth 0 takes the
 * configured limit. -ENODATA when the image has no list and !all.
 */
int ld_pf_image(struct ld_daemon *d, struct ld_image *im, bool all,
		uint64_t bandwidth, struct sk_err *e);
/* Stops im's task and waits until no thread uses the image. */
void ld_pf_cancel(struct ld_daemon *d, struct ld_image *im);
/* A blob became fillable (the kernel opened it): waiting tasks retry. */
void ld_pf_kick(struct ld_daemon *d);
/* 0 and *st when im has or had a task. */
int ld_pf_status(struct ld_daemon *d, const struct ld_image *im,
		 struct ld_pf_status *st);

#endif
