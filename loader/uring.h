/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Cache-file writes through io_uring: a fixed set of rings that request
 * threads borrow, so all chunks of one fetch go to the kernel in one
 * submission. The set is owned by the daemon and handed to each cache.
 */
#ifndef SKIFF_LOADER_URING_H
#define SKIFF_LOADER_URING_H

#include <stddef.h>
#include <stdint.h>

struct ld_rings;

struct ld_write {
	const void *buf;
	size_t len;
	uint64_t off;
};

int ld_rings_new(struct ld_rings **out, unsigned int nrings, unsigned int depth);
void ld_rings_free(struct ld_rings *r);
/* Writes every piece fully to fd: one submission, short writes and EINTR
 * resubmitted, ENOBUFS (cachefiles right after copen) retried briefly.
 * Without rings (r NULL, or all lost) it falls back to pwrite(2).
 * 0 or the first -errno. */
int ld_rings_write(struct ld_rings *r, int fd, const struct ld_write *w,
		   unsigned int n);

#endif
