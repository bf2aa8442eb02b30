/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the fanotify info-record parser
 * (ld_fan_event_range): the input is what read(2) of the group gave, from
 * one event's metadata on. Besides the sanitizers (the parser must stay
 * inside the input, whatever event_len, metadata_len and the records'
 * lengths claim, and end), it checks that bytes past the event never
 * change the answer: an event is parsed the same alone as followed by
 * the next one.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>

#include "../../loader/fanrec.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fanotify_event_metadata m;
	uint64_t off = 0, len = 0, off2 = 0, len2 = 0;
	bool found, again;
	uint8_t *alone;

	if (size > 1 << 16)
		return 0;
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
