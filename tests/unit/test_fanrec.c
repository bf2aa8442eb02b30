/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fanotify info-record parser (loader/fanrec.c) on event buffers made
 * by hand: no range record, one, records that run past the event or the
 * buffer, a zero-length record (which must end the walk, not loop), two
 * records, a short metadata_len. Each event is parsed from a heap copy of
 * exactly the bytes given, so under ASan a read past them is a finding.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>

#include "../../loader/fanrec.h"
#include "tap.h"

/* An event being built: metadata, then records appended one by one. */
struct ev {
	uint8_t b[256];
	size_t n;
};

static void ev_init(struct ev *e)
{
	struct fanotify_event_metadata m = {
		.vers = FANOTIFY_METADATA_VERSION,
		.metadata_len = FAN_EVENT_METADATA_LEN,
		.fd = 3,
		.pid = 1,
	};

	memset(e, 0, sizeof(*e));
	memcpy(e->b, &m, sizeof(m));
	e->n = sizeof(m);
}

/* A record of `size` bytes whose header claims `claim`; a range record
 * (type FAN_EVENT_INFO_TYPE_RANGE, size >= 24) carries off and count. */
static void ev_rec(struct ev *e, uint8_t type, size_t size, uint16_t claim,
		   uint64_t off, uint64_t count)
{
	struct ld_fan_range_info r = { .info_type = type, .len = claim,
				       .offset = off, .count = count };

	if (e->n + size > sizeof(e->b))
		bail_out("event buffer too small");
	memcpy(e->b + e->n, &r, size < sizeof(r) ? size : sizeof(r));
	e->n += size;
}

/* Sets event_len (0: the bytes built so far). */
static void ev_len(struct ev *e, uint32_t event_len)
{
	struct fanotify_event_metadata m;

	memcpy(&m, e->b, sizeof(m));
	m.event_len = event_len ? event_len : (uint32_t)e->n;
	memcpy(e->b, &m, sizeof(m));
}

/* Parses the first avail bytes of e from a heap copy of exactly those. */
static bool parse(const struct ev *e, size_t avail, uint64_t *off,
		  uint64_t *len)
{
	uint8_t *copy = malloc(avail ? avail : 1);
	bool r;

	if (!copy)
		bail_out("out of memory");
	memcpy(copy, e->b, avail);
	r = ld_fan_event_range(copy, avail, off, len);
	free(copy);
	return r;
}

int main(void)
{
	struct ev e;
	uint64_t off, len;

	/* no record at all */
	ev_init(&e);
	ev_len(&e, 0);
	off = len = 7;
	ok(!parse(&e, e.n, &off, &len), "metadata alone: no range");
	is_int(off, 7, "... its offset output untouched");
	is_int(len, 7, "... its count output untouched");

	/* a record of another type only */
	ev_init(&e);
	ev_rec(&e, 1, 12, 12, 0, 0);
	ev_len(&e, 0);
	ok(!parse(&e, e.n, &off, &len), "a record of another type: no range");

	/* one range record */
	ev_init(&e);
	ev_rec(&e, FAN_EVENT_INFO_TYPE_RANGE, 24, 24, 4096, 8192);
	ev_len(&e, 0);
	ok(parse(&e, e.n, &off, &len), "one range record: found");
	is_int(off, 4096, "... its offset");
	is_int(len, 8192, "... its count");

	/* a range record longer than its struct (the kernel may grow it) */
	ev_init(&e);
	ev_rec(&e, FAN_EVENT_INFO_TYPE_RANGE, 32, 32, 1, 2);
	ev_len(&e, 0);
	ok(parse(&e, e.n, &off, &len), "a 32-byte range record: found");
	is_int(off, 1, "... its offset");

	/* a range record too short to hold a range */
	ev_init(&e);
	ev_rec(&e, FAN_EVENT_INFO_TYPE_RANGE, 16, 16, 1, 2);
	ev_len(&e, 0);
	ok(!parse(&e, e.n, &off, &len), "a 16-byte range record is no range");

	/* a record whose len runs past the event */
	ev_init(&e);
	ev_rec(&e, FAN_EVENT_INFO_TYPE_RANGE, 24, 48, 1, 2);
	ev_len(&e, 0);
	ok(!parse(&e, e.n, &off, &len), "a record running past event_len: no range");

	/* an event_len that ends inside the record, the buffer holding it all
	 * (the bytes after event_len are the next event's) */
	ev_init(&e);
	ev_rec(&e, FAN_EVENT_INFO_TYPE_RANGE, 24, 24, 1, 2);
	ev_len(&e, (uint32_t)e.n - 1);
	ok(!parse(&e, e.n, &off, &len), "a record past a short event_len: no range");

	/* an event_len past the buffer: the buffer bounds the walk */
	ev_init(&e);
	ev_rec(&e, FAN_EVENT_INFO_TYPE_RANGE, 24, 24, 1, 2);
	ev_len(&e, (uint32_t)e.n + 64);
	ok(parse(&e, e.n, &off, &len), "event_len past the buffer: the whole record still found");
	ok(!parse(&e, e.n - 1, &off, &len), "... and not when the buffer ends inside it");

	/* a zero-length record: the walk must end, not loop */
	ev_init(&e);
	ev_rec(&e, 1, 8, 0, 0, 0);
	ev_rec(&e, FAN_EVENT_INFO_TYPE_RANGE, 24, 24, 1, 2);
	ev_len(&e, 0);
	ok(!parse(&e, e.n, &off, &len), "a zero-length record ends the walk");

	/* a record shorter than its header claims to be */
	ev_init(&e);
	ev_rec(&e, 1, 8, 3, 0, 0);
	ev_rec(&e, FAN_EVENT_INFO_TYPE_RANGE, 24, 24, 1, 2);
	ev_len(&e, 0);
	ok(!parse(&e, e.n, &off, &len), "a 3-byte record ends the walk");

	/* a zero-length record after a range keeps the range */
	ev_init(&e);
	ev_rec(&e, FAN_EVENT_INFO_TYPE_RANGE, 24, 24, 5, 6);
	ev_rec(&e, 1, 8, 0, 0, 0);
	ev_len(&e, 0);
	ok(parse(&e, e.n, &off, &len), "a range, then a zero-length record: found");
	is_int(off, 5, "... its offset");

	/* two records: another type, then the range */
	ev_init(&e);
	ev_rec(&e, 1, 12, 12, 0, 0);
	ev_rec(&e, FAN_EVENT_INFO_TYPE_RANGE, 24, 24, 65536, 4096);
	ev_len(&e, 0);
	ok(parse(&e, e.n, &off, &len), "a record, then a range: found");
	is_int(off, 65536, "... its offset");
	is_int(len, 4096, "... its count");

	/* two range records: the last one counts */
	ev_init(&e);
	ev_rec(&e, FAN_EVENT_INFO_TYPE_RANGE, 24, 24, 1, 2);
	ev_rec(&e, FAN_EVENT_INFO_TYPE_RANGE, 24, 24, 3, 4);
	ev_len(&e, 0);
	ok(parse(&e, e.n, &off, &len), "two ranges: found");
	is_int(off, 3, "... the last one's offset");

	/* metadata_len below the metadata: records would overlap it */
	ev_init(&e);
	ev_rec(&e, FAN_EVENT_INFO_TYPE_RANGE, 24, 24, 1, 2);
	ev_len(&e, 0);
	e.b[offsetof(struct fanotify_event_metadata, metadata_len)] = 0;
	ok(!parse(&e, e.n, &off, &len), "metadata_len 0: no range");

	/* metadata_len past the event */
	ev_init(&e);
	ev_rec(&e, FAN_EVENT_INFO_TYPE_RANGE, 24, 24, 1, 2);
	ev_len(&e, 0);
	e.b[offsetof(struct fanotify_event_metadata, metadata_len)] = 200;
	ok(!parse(&e, e.n, &off, &len), "metadata_len past the event: no range");

	/* fewer bytes than the metadata */
	ev_init(&e);
	ev_len(&e, 0);
	ok(!parse(&e, FAN_EVENT_METADATA_LEN - 1, &off, &len),
	   "a buffer shorter than the metadata: no range");
	ok(!parse(&e, 0, &off, &len), "an empty buffer: no range");
	return done_testing();
}
