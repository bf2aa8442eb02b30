/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The info records of one fanotify event: the byte range a FAN_PRE_ACCESS
 * event asks for. The holder and the fanotify frontend both read events
 * from the group; this is the one parser of what follows their metadata.
 * Every length in an event comes from the kernel and is checked anyway.
 */
#ifndef SKIFF_LOADER_FANREC_H
#define SKIFF_LOADER_FANREC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/fanotify.h>

/* Debian bookworm's headers predate pre-content events. */
#ifndef FAN_EVENT_INFO_TYPE_RANGE
#define FAN_EVENT_INFO_TYPE_RANGE 6
#endif
#ifndef FAN_PRE_ACCESS
#define FAN_PRE_ACCESS 0x00100000
#endif
#ifndef FAN_DENY_ERRNO
#define FAN_DENY_ERRNO(err) (FAN_DENY | ((((uint32_t)(err)) & 0xff) << 24))
#endif

/* The kernel's range record (struct fanotify_event_info_range). */
struct ld_fan_range_info {
	uint8_t info_type;	/* FAN_EVENT_INFO_TYPE_RANGE */
	uint8_t pad0;
	uint16_t len;		/* of the whole record */
	uint32_t pad;
	uint64_t offset;
	uint64_t count;
};
_Static_assert(sizeof(struct ld_fan_range_info) == 24, "the kernel's layout");

/*
 * Looks for a range record among the info records of the event at ev,
 * where avail bytes of the read buffer start (the rest of what read(2)
 * gave). The records lie between the event's metadata_len and its
 * event_len, both bounded by avail; a record shorter than its own header
 * or running past the event ends the walk (so a zero-length one cannot
 * loop), as does an event shorter than its metadata. Returns true and
 * sets *off and *len when a whole range record came before that (the
 * last one, if several did); false otherwise. ev need not be aligned.
 */
bool ld_fan_event_range(const void *ev, size_t avail, uint64_t *off,
			uint64_t *len);

/*
 * The events one read(2) of the group put in buf (n bytes, 8-byte
 * aligned): calls fn for each whole one, in order, with the range its
 * records give (has_range false, off and len 0, when none); an event
 * whose length is no multiple of 8 is the last one. The one
 * walk the holder and the frontend share: an event whose range went
 * missing is served as a read of the whole file.
 */
typedef void ld_fan_event_fn(void *arg, struct fanotify_event_metadata *m,
			     bool has_range, uint64_t off, uint64_t len);
void ld_fan_events(void *buf, size_t n, ld_fan_event_fn *fn, void *arg);

#endif
