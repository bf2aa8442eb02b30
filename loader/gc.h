/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cache files no registered image uses (see gc.c): counted, and
 * removed on request (POST /v1/gc, skiff gc).
 */
#ifndef SKIFF_LOADER_GC_H
#define SKIFF_LOADER_GC_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/sk.h"

struct ld_daemon;

struct ld_gc_opts {
	bool dry_run;		/* count, remove nothing */
	bool count_only;	/* no list of files (status, /metrics) */
	/* seconds since a file was last written below which it is spared:
	 * a registration writes its chunk tables and bootstrap before it
	 * links them */
	double min_age;
	/* 0: every unused file; else the least recently written first,
	 * until this many bytes are removed (the cache's limit) */
	uint64_t target;
};

struct ld_gc_file {
	char path[PATH_MAX];
	uint64_t bytes;		/* allocated on disk */
};

struct ld_gc_result {
	struct ld_gc_file *files;	/* owned: removed (or, dry, would be) */
	size_t nfiles, cap;
	size_t count;		/* files removed (or, dry, that would be) */
	uint64_t bytes;		/* of those */
	/* unused, spared: by min_age, or (busy) a registration under way */
	uint64_t young_bytes;
	bool busy;
	uint64_t total_bytes;	/* every file looked at, in use or not */
};

/* Under d->api_lock, unless dry_run. On failure nothing is left to free
 * (what was removed before the failure is counted and logged). */
int ld_gc(struct ld_daemon *d, const struct ld_gc_opts *o, struct ld_gc_result *res,
	  struct sk_err *e);
void ld_gc_result_free(struct ld_gc_result *res);

#endif
