/* SPDX-License-Identifier: Apache-2.0 */
#include "fanrec.h"

#include <string.h>
#include <sys/fanotify.h>

#include "../common/sk.h"

bool ld_fan_event_range(const void *ev, size_t avail, uint64_t *off,
			uint64_t *len)
{
	const char *p = ev;
	struct fanotify_event_metadata m;
	size_t pos, end;
	bool found = false;

	if (avail < FAN_EVENT_METADATA_LEN)
		return false;
	memcpy(&m, p, sizeof(m));
	end = SK_MIN((size_t)m.event_len, avail);
	pos = m.metadata_len;
	if (pos < FAN_EVENT_METADATA_LEN)
		return false;	/* records would overlap the metadata */
	while (pos + sizeof(struct fanotify_event_info_header) <= end) {
		struct fanotify_event_info_header h;

		memcpy(&h, p + pos, sizeof(h));
		if (h.len < sizeof(h) || h.len > end - pos)
			break;
		if (h.info_type == FAN_EVENT_INFO_TYPE_RANGE &&
		    h.len >= sizeof(struct ld_fan_range_info)) {
			struct ld_fan_range_info r;

			memcpy(&r, p + pos, sizeof(r));
			*off = r.offset;
			*len = r.count;
			found = true;
		}
		pos += h.len;
	}
	return found;
}

void ld_fan_events(void *buf, size_t n, ld_fan_event_fn *fn, void *arg)
{
	size_t left = n;

	/* FAN_EVENT_NEXT counts `left` down: at each m it is the bytes
	 * from m on, where m's records lie (buf + n - m is not, past the
	 * first event: that lost the range of every later one) */
	for (struct fanotify_event_metadata *m = buf;
	     FAN_EVENT_OK(m, left); m = FAN_EVENT_NEXT(m, left)) {
		uint64_t off = 0, len = 0;
		bool has_range = ld_fan_event_range(m, left, &off, &len);

		fn(arg, m, has_range, off, len);
		/* the kernel's lengths keep events 8-byte aligned; one that
		 * does not would misalign the next metadata */
		if (m->event_len % 8)
			break;
	}
}
