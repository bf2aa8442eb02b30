/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for skiffd's images.json parser (ld_state_parse): the
 * file a restart registers images from, which a damaged disk, an older
 * skiffd or a hand edit may have changed. Besides the sanitizers it
 * checks what registration relies on: an entry not marked bad has an id
 * and a ref, and every field fits the image's fixed-size copy of it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../loader/daemon.h"
#include "fuzz.h"

static int entry(void *ctx, const struct ld_state_ent *ent)
{
	size_t *n = ctx;
	struct ld_image *im;

	CHECK(ent->index == (*n)++);
	if (ent->bad)
		return 0;
	CHECK(ent->id && ent->ref);
	CHECK(strlen(ent->id) < sizeof(im->id));
	CHECK(strlen(ent->ref) < sizeof(im->ref));
	CHECK(!ent->domain || strlen(ent->domain) < sizeof(im->domain));
	CHECK(!ent->mountpoint || strlen(ent->mountpoint) < sizeof(im->mountpoint));
	CHECK(!ent->pinned || strlen(ent->pinned) < PATH_MAX);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sk_err e = { { 0 } };
	size_t n = 0;
	int ret;

	if (size > 1 << 20)
		return 0;
	ret = ld_state_parse((const char *)data, size, entry, &n, &e);
	CHECK(ret == 0 || ret == -EINVAL);
	CHECK(memchr(e.msg, '\0', sizeof(e.msg)));
	return 0;
}
