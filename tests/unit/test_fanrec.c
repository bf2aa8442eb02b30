/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fanotify info-record parser (loader/fanrec.c) on event buffers made
 * by hand: no range record, one, records that run past the event or the
 * buffer, a zero-length record (which must end the walk, not loop), two
 * records, a short metadata_len. Each event is parsed from a heap copy of
 * exactly the bytes given, so under ASan a read past them is a finding.
 * Then the walk over one read(2)'s events (ld_fan_events): every event
 * of a batch keeps its own range, not only the first.
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

/* What ld_fan_events handed over, event by event. */
struct seen {
	int n;
	int fd[8];
	bool has_range[8];
	uint64_t off[8], len[8];
};

static void see(void *arg, struct fanotify_event_metadata *m, bool has_range,
		uint64_t off, uint64_t len)
{
	struct seen *s = arg;

	if (s->n < 8) {
		s->fd[s->n] = m->fd;
		s->has_range[s->n] = has_range;
		s->off[s->n] = off;
		s->len[s->n] = len;
	}
	s->n++;
}

/* Appends event e (fd set to fd) to a read buffer of *n bytes. */
static void put(uint8_t *buf, size_t cap, size_t *n, struct ev *e, int fd)
{
	struct fanotify_event_metadata m;

	memcpy(&m, e->b, sizeof(m));
	m.fd = fd;
	memcpy(e->b, &m, sizeof(m));
	if (*n + e->n > cap)
		bail_out("read buffer too small");
	memcpy(buf + *n, e->b, e->n);
	*n += e->n;
}

/* Several events in one read, as the kernel hands a batch of readers'
 * misses: each must come with its own range. One whose range got lost
 * would be served as a read of the whole file, and every reader of that
 * file would wait for all of it to be fetched. */
static void test_walk(void)
{
	uint8_t buf[1024] __attribute__((aligned(8)));
	struct seen s = { 0 };
	struct ev e;
	size_t n = 0;

	/* two readers' misses in one read, as skiffd met them */
	for (int k = 0; k < 2; k++) {
		ev_init(&e);
		ev_rec(&e, FAN_EVENT_INFO_TYPE_RANGE, 24, 24, 8388608 + (uint64_t)k * 65536,
		       65536);
		ev_len(&e, 0);
		put(buf, sizeof(buf), &n, &e, 10 + k);
	}
	ld_fan_events(buf, n, see, &s);
	is_int(s.n, 2, "a read of two events: two events");
	ok(s.has_range[0] && s.off[0] == 8388608 && s.len[0] == 65536,
	   "the first: its range");
	ok(s.has_range[1] && s.off[1] == 8388608 + 65536 && s.len[1] == 65536,
	   "the second: its range too (not a read of the whole file)");

	memset(&s, 0, sizeof(s));
	n = 0;
	for (int k = 0; k < 4; k++) {
		ev_init(&e);
		/* the third has no range record: it must stay without one */
		if (k != 2)
			ev_rec(&e, FAN_EVENT_INFO_TYPE_RANGE, 24, 24,
			       (uint64_t)k << 16, 65536 + (uint64_t)k * 4096);
		ev_len(&e, 0);
		put(buf, sizeof(buf), &n, &e, 10 + k);
	}
	/* a torn event at the end (a short read) is no event */
	ev_init(&e);
	ev_rec(&e, FAN_EVENT_INFO_TYPE_RANGE, 24, 24, 1, 2);
	ev_len(&e, 0);
	put(buf, sizeof(buf), &n, &e, 99);
	ld_fan_events(buf, n - 8, see, &s);
	is_int(s.n, 4, "a read of four events and a torn one: four events");
	for (int k = 0; k < 4 && k < s.n; k++) {
		is_int(s.fd[k], 10 + k, "event %d: its fd, in order", k);
		if (k == 2) {
			ok(!s.has_range[k], "event %d: no range record, no range", k);
			continue;
		}
		ok(s.has_range[k], "event %d: its range found", k);
		is_int(s.off[k], (uint64_t)k << 16, "event %d: its offset", k);
		is_int(s.len[k], 65536 + (uint64_t)k * 4096, "event %d: its count", k);
	}
	s.n = 0;
	ld_fan_events(buf, 0, see, &s);
	is_int(s.n, 0, "an empty read: no event");
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
	test_walk();
	return done_testing();
}
