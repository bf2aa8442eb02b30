/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the fanotify info-record parser
 * (ld_fan_event_range): the input is what read(2) of the group gave, from
 * one event's metadata on. Besides the sanitizers (the parser must stay
 * inside the input, whatever event_len, metadata_len and the records'
 * lengths claim, and end), it checks that bytes past the event never
 * change the answer: an event is parsed the same alone as followed by
 * the next one. Then the walk over a whole read (ld_fan_events): every
 * event it hands on lies inside the buffer and gets the range it has
 * when parsed by itself.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>

#include "../../loader/fanrec.h"
#include "fuzz.h"

struct walk {
	const uint8_t *buf;
	size_t n;
	unsigned int events;
};

static void one(void *arg, struct fanotify_event_metadata *m, bool has_range, uint64_t off,
		uint64_t len)
{
	struct walk *w = arg;
	size_t at = (size_t)((const uint8_t *)m - w->buf);
	uint64_t o = 0, l = 0;
	bool again;

	CHECK(at % 8 == 0 && at + sizeof(*m) <= w->n && m->event_len <= w->n - at);
	again = ld_fan_event_range(m, w->n - at, &o, &l);
	CHECK(again == has_range && (!has_range || (o == off && l == len)));
	w->events++;
}

static void walk(const uint8_t *data, size_t size)
{
	uint64_t *buf = malloc(size + 8);	/* 8-byte aligned, as read(2)'s */
	struct walk w = { (const uint8_t *)buf, size, 0 };

	if (!buf)
		return;
	memcpy(buf, data, size);
	ld_fan_events(buf, size, one, &w);
	CHECK(w.events <= size / FAN_EVENT_METADATA_LEN);
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fanotify_event_metadata m;
	uint64_t off = 0, len = 0, off2 = 0, len2 = 0;
	bool found, again;
	uint8_t *alone;

	if (size > 1 << 16)
		return 0;
	walk(data, size);
	found = ld_fan_event_range(data, size, &off, &len);
	if (size < sizeof(m)) {
		CHECK(!found);
		return 0;
	}
	memcpy(&m, data, sizeof(m));
	if (m.event_len >= size)
		return 0;
	/* the event alone, in a buffer of exactly its bytes */
	alone = malloc(m.event_len ? m.event_len : 1);
	if (!alone)
		return 0;
	memcpy(alone, data, m.event_len);
	again = ld_fan_event_range(alone, m.event_len, &off2, &len2);
	free(alone);
	CHECK(again == found);
	CHECK(!found || (off2 == off && len2 == len));
	return 0;
}
