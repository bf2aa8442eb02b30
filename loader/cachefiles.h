/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cachefiles frontend's message handling without a kernel, for tests:
 * a frontend that answers on any fd (what it writes there is what
 * /dev/cachefiles would get), and messages handed to it as the event
 * thread hands what it reads from the device.
 */
#ifndef SKIFF_LOADER_CACHEFILES_H
#define SKIFF_LOADER_CACHEFILES_H

#include <stddef.h>

struct ld_daemon;
struct ld_frontend;

/* A frontend answering on `dev` (borrowed until destroy, which closes
 * it); no thread: messages come through ld_cachefiles_handle(). Freed
 * with (*out)->ops->destroy(*out). */
int ld_cachefiles_fake(struct ld_daemon *d, int dev, struct ld_frontend **out);
/* One message of `len` bytes, as read(2) from the device gave it. */
void ld_cachefiles_handle(struct ld_frontend *fe, const void *msg, size_t len);

#endif
