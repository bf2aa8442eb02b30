/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Access traces: while an image records one, every read of its blobs that
 * reaches skiffd (a READ, a pre-content event) is noted in arrival order.
 * Stopping turns the ranges into the image's files in the order they
 * were first read, with the chunk indexes read of each: the input of a
 * prefetch list. Reads the kernel serves from its page cache or from a
 * complete cache file never reach skiffd, so record with a cold cache.
 * Blobs shared by two images count for both.
 */
#ifndef SKIFF_LOADER_TRACE_H
#define SKIFF_LOADER_TRACE_H

#include <jansson.h>
#include <stdint.h>

#include "../common/sk.h"

struct ld_daemon;
struct ld_image;

int ld_trace_start(struct ld_daemon *d, struct ld_image *im, struct sk_err *e);
/* Stops recording and returns {"reads": N, "seconds": S, "files":
 * [{"path": P, "chunks": [i, ...]}, ...]} in first-read order. */
int ld_trace_stop(struct ld_daemon *d, struct ld_image *im, json_t **out,
		  struct sk_err *e);
/* A read of [off, off+len) of blob `hex` reached skiffd. */
void ld_trace_note(struct ld_daemon *d, const char *hex, uint64_t off,
		   uint64_t len);
void ld_trace_free(struct ld_image *im);

#endif
