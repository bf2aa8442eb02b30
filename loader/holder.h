/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The holder: a minimal process that owns skiffd's kernel fd (the fanotify
 * group, or the bound /dev/cachefiles) so that it outlives the serving
 * process. Closed, either fd breaks every lazy mount: a fanotify group
 * lets the kernel read the holes of the sparse cache files as zeros (silent
 * corruption); a cachefiles device withdraws the cache (EIO until
 * remounted), and an anon fd closed on 6.1 fails its object's reads.
 *
 * The holder reads the kernel's requests itself and passes each (with its
 * fd, SCM_RIGHTS) to the server over a socket, keeping its own copy until
 * the server reports it answered. For cachefiles it also keeps every open
 * object's anon fd until the kernel CLOSEs it. When the server dies, the
 * holder starts a new one, hands it the open objects (LD_HOLD_OBJECT: set
 * up again, not answered again) and then every request still unanswered;
 * the new server answers them on the inherited fds. Requests are matched
 * by the holder's fd number (fanotify: it keeps the fd open, so the number
 * is not reused meanwhile) or by the kernel's msg_id (cachefiles).
 *
 * A server that keeps dying is tried again with a growing backoff; until
 * one runs, the holder answers requests itself with errors (fanotify: EIO,
 * never allowing them; cachefiles: an OPEN fails, a READ is completed
 * without data), and never closes the kernel fd.
 *
 * If the holder itself dies, the server reads the kernel fd directly from
 * then on (cachefiles on 6.12: after `restore`, which re-sends what the
 * holder had read). Under systemd, FDSTORE=1 would keep the fds across
 * that too.
 */
#ifndef SKIFF_LOADER_HOLDER_H
#define SKIFF_LOADER_HOLDER_H

#include <stdint.h>

enum ld_hold_kind { LD_HOLD_FANOTIFY = 1, LD_HOLD_CACHEFILES = 2 };

/* What one holder -> server message carries. */
enum {
	LD_HOLD_EVENT = 1,	/* a fanotify event; its fd travels along */
	LD_HOLD_MSG = 2,	/* a cachefiles message as read; an OPEN's anon
				 * fd travels along (the fd field in data is
				 * the holder's number: the receiver uses its own) */
	LD_HOLD_OBJECT = 3,	/* an OPEN an earlier server answered: set the
				 * object up again, do not copen it again */
};

/* CACHEFILES_MSG_MAX_SIZE */
#define LD_HOLD_DATA_MAX 1024

/* One message, holder -> server; only its first ld_hold_msg_size() bytes
 * travel. */
struct ld_hold_msg {
	uint32_t type;
	int32_t id;		/* the answer's id: the holder's fd number
				 * (fanotify) or the msg_id (cachefiles) */
	uint64_t mask, off, len;	/* fanotify */
	uint32_t has_range;
	int32_t pid;		/* who caused it (fanotify) */
	uint32_t dlen;		/* of data (cachefiles) */
	uint32_t pad;
	uint8_t data[LD_HOLD_DATA_MAX];
};

static inline unsigned long ld_hold_msg_size(const struct ld_hold_msg *m)
{
	return (unsigned long)__builtin_offsetof(struct ld_hold_msg, data) + m->dlen;
}

/* One answer, server -> holder. */
struct ld_hold_done {
	int32_t id;
	uint32_t flags;
};
/* cachefiles: the OPEN failed (forget its object), or the READ could not
 * be answered (the holder completes it without data: the reader gets EIO) */
#define LD_HOLD_FAILED 1u
/* the server is up and serving (id unused): a death from now on is not a
 * failed start, and the next server starts without a pause */
#define LD_HOLD_READY 2u

/* The server asks the holder to become `binary` (an upgrade): once this
 * server has exited, the holder executes the binary in its own place,
 * keeping its fds and handing it its state, and the new holder starts
 * servers of the new binary. */
#define LD_HOLD_UPGRADE 4u
struct ld_hold_upgrade {
	int32_t id;		/* -1 */
	uint32_t flags;		/* LD_HOLD_UPGRADE */
	char binary[4096];
};

/* The layout of what a holder hands the binary it becomes: a binary of
 * another ABI cannot take over (skiffd --holder-abi prints it). */
#define LD_HOLD_ABI 1

/* What a serving process learns of its start from the holder. */
struct ld_hold_info {
	unsigned int generation;	/* 1 for the first server, then +1 */
	unsigned int handed;		/* unanswered requests handed to it */
};

/*
 * Runs the holder on `kfd` (a fanotify group, or /dev/cachefiles bound).
 * Returns only in a freshly forked server process, with *sock its end of
 * the socket and *info (0); the holder itself exits from inside when the
 * server has stopped for good. *server_only_fd (if >= 0) is for the first
 * server alone (a readiness pipe): the holder closes it and sets it to -1,
 * so that later servers, forked from the holder, do not write to whatever
 * reuses the number.
 */
int ld_holder_run(enum ld_hold_kind kind, int kfd, int *sock, int log_level,
		  int *server_only_fd, struct ld_hold_info *info, char **argv);

/*
 * In a binary a holder has become (SKIFFD_HOLDER_STATE names the fd of
 * its state): takes that state over and runs the holder as above, with
 * *kind and *kfd set from it. -errno when the state cannot be read (the
 * caller must then keep *kfd open and fail loudly: there is no other
 * holder any more).
 */
int ld_holder_resume(int statefd, enum ld_hold_kind *kind, int *kfd, int *sock,
		     int log_level, struct ld_hold_info *info, char **argv);

/* The ABI string `skiffd --holder-abi` prints. */
void ld_holder_abi(char *buf, unsigned long len);

/*
 * Server side. ld_hold_recv takes one message without waiting: 1 (with
 * *fd the fd that came with it, or -1), 0 when none is there, -EPIPE when
 * the holder is gone, -errno. A message of the wrong size is dropped (its
 * fd closed) and the next one taken.
 */
int ld_hold_recv(int sock, struct ld_hold_msg *m, int *fd);
/* Tells the holder that request `id` is answered: 0 or -errno (-EPIPE
 * when the holder is gone, which only loses the holder's bookkeeping). */
int ld_hold_answered(int sock, int32_t id, uint32_t flags);
/* Asks the holder to become `binary` once this server exits: 0 or -errno. */
int ld_hold_ask_upgrade(int sock, const char *binary);

#endif
