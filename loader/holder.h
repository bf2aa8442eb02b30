/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The holder: a minimal process that owns skiffd's fanotify group so that
 * the group outlives the serving process. If the group closed, the kernel
 * would let every pending and later read of the sparse cache files through
 * and EROFS would read holes as zeros: silent corruption. The holder reads
 * the events itself and passes each (with its fd, SCM_RIGHTS) to the
 * server over a socket, keeping its own copy until the server reports the
 * event answered. When the server dies, the holder starts a new one and
 * hands it every event still unanswered; the new server answers them on
 * the inherited group fd (responses are matched by the holder's fd
 * number, which the holder keeps open, so it cannot be reused meanwhile).
 *
 * A server that keeps dying is tried again with a growing backoff; until
 * one runs, the holder answers events itself with EIO, never allowing
 * them (the holes would read as zeros) and never closing the group.
 *
 * What remains: if the holder itself dies, the group dies with it. Under
 * systemd, FDSTORE=1 would keep the group fd across that too.
 */
#ifndef SKIFF_LOADER_HOLDER_H
#define SKIFF_LOADER_HOLDER_H

#include <stdint.h>

/* One event, holder -> server; the event fd travels as SCM_RIGHTS. */
struct ld_hold_event {
	int32_t hfd;		/* the holder's fd number: the response id */
	uint32_t has_range;
	uint64_t mask;
	uint64_t off, len;
	int32_t pid;		/* who caused it */
	uint32_t pad;
};

/* One answer, server -> holder: hfd may be closed now. */
struct ld_hold_done {
	int32_t hfd;
};

/* What a serving process learns of its start from the holder. */
struct ld_hold_info {
	unsigned int generation;	/* 1 for the first server, then +1 */
	unsigned int handed;		/* unanswered events handed to it */
};

/*
 * Runs the holder on `group`. Returns only in a freshly forked server
 * process, with *sock its end of the event socket and *info (0); the
 * holder itself exits from inside when the server has stopped for good.
 * *server_only_fd (if >= 0) is for the first server alone (a readiness
 * pipe): the holder closes it and sets it to -1, so that later servers,
 * forked from the holder, do not write to whatever reuses the number.
 */
int ld_holder_run(int group, int *sock, int log_level, int *server_only_fd,
		  struct ld_hold_info *info);

#endif
