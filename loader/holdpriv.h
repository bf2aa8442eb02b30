/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Inside the holder (holder.h): the process loop (holder.c) and what each
 * kind of kernel fd needs (holdkinds.c): how its requests are read, how
 * the holder answers one itself, and what state a new server is given
 * before the unanswered requests.
 */
#ifndef SKIFF_LOADER_HOLDPRIV_H
#define SKIFF_LOADER_HOLDPRIV_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "holder.h"

/* An unanswered request. */
struct hold_req {
	struct ld_hold_msg m;
	int fd;			/* goes along with it, or -1 */
	bool owns_fd;		/* ours to close when it is answered */
	uint32_t opcode;	/* cachefiles: of m.data */
	uint32_t object_id;	/* cachefiles */
	int32_t slot;		/* its journal slot, or -1 */
	uint32_t gen;		/* the server it was last sent to, or 0 */
	uint32_t crashes;	/* servers in a row that crashed holding it */
};

/* A cachefiles object the kernel opened: its anon fd stays open here
 * until the kernel CLOSEs it, whatever happens to servers. */
struct hold_obj {
	uint32_t object_id;
	int fd;
	bool answered;		/* copen done: a new server gets it as LD_HOLD_OBJECT */
	struct ld_hold_msg open;	/* the OPEN as read */
};

struct holder;

struct hold_kind {
	/* the kernel fd is readable: take its requests (hold_add each) */
	void (*take)(struct holder *h);
	/* no server can answer r: answer it with an error */
	void (*deny)(struct holder *h, struct hold_req *r);
	/* the server answered r (flags: ld_hold_done's); r is dropped after */
	void (*answered)(struct holder *h, struct hold_req *r, uint32_t flags);
	/* a new server starts: send it the state that must come before the
	 * unanswered requests */
	void (*replay)(struct holder *h);
	/* in a new server, before it runs: close the holder's own fds (the
	 * holder frees its arrays after) */
	void (*forget)(struct holder *h);
	/* the kernel fd still serves something lazily (a stop with no
	 * server must not close it) */
	bool (*lazy)(struct holder *h);
};

struct holder {
	const struct hold_kind *kind;
	int kfd, sock, sigfd;
	sigset_t server_mask;	/* the signal mask servers start with */
	pid_t server;
	bool server_ready;	/* it said LD_HOLD_READY */
	int log_level;
	/* no server runs and none may start before retry_at (a server
	 * that keeps dying): the holder answers requests itself */
	bool denying;
	time_t retry_at;
	unsigned int generation;	/* servers started */
	struct ld_hold_info *info;	/* the caller's, filled in a server */
	struct hold_req *pending;	/* unanswered, in arrival order */
	size_t npending, cap;
	size_t sent;		/* the first `sent` went to the current server */
	struct hold_obj *objs;		/* cachefiles: open objects */
	size_t nobjs, objcap;
	/* the journal (fanotify): -1 for none; slots jslots, the free
	 * ones listed in jfree */
	int jfd;
	uint32_t jslots;
	int32_t jhwm;
	uint32_t *jfree;
	size_t njfree, jfreecap;
	bool notify;			/* NOTIFY_SOCKET: tell systemd */
	bool keep;			/* resumed or adopted: mounts may be up */
	bool fdstore;			/* the fds are in systemd's fd store */
	char **argv;			/* the holder's, for an upgrade */
	char upgrade_to[4096];		/* "": no upgrade asked for */
};

extern const struct hold_kind ld_hold_fanotify, ld_hold_cachefiles;

void hold_log(const struct holder *h, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Sends m (and fd, if >= 0) to the server without waiting: 0 or -errno
 * (-EAGAIN: no room now). */
int hold_send(struct holder *h, const struct ld_hold_msg *m, int fd);
/* The same, waiting for room (taking answers meanwhile), 10 s at most. */
int hold_send_sure(struct holder *h, const struct ld_hold_msg *m, int fd);
/* Keeps r as unanswered and sends it to the server, if one runs; when
 * the holder is denying, or cannot keep it, answers it at once instead. */
void hold_add(struct holder *h, const struct hold_req *r);
/* Forgets, unanswered, every pending request pred(r, arg) names (the
 * kernel dropped them): 0 or more. */
size_t hold_forget(struct holder *h, bool (*pred)(const struct hold_req *r, const void *arg),
		   const void *arg);

/* The journal (holdjournal.c): a new one in h->jfd, 0 or -errno. */
int hold_jr_new(struct holder *h);
/* Takes over the journal jfd (which must be valid: ld_hold_jr_read):
 * rebuilds the list of free slots, 0 or -errno. */
int hold_jr_take(struct holder *h, int jfd);
/* Records r (an event) in a free slot, setting r->slot; r->slot is -1
 * when there is no journal or no room (the event is then lost if the
 * holder dies, and its reader gets EIO from the next holder). */
void hold_jr_put(struct holder *h, struct hold_req *r);
/* r is answered: frees its slot, 0 or -errno (the slot still says used:
 * its fd number must then stay taken, or an adopter could find it twice). */
int hold_jr_drop(struct holder *h, const struct hold_req *r);
/* Makes the journal jfd unreadable as one (its magic overwritten): a
 * journal no longer to be trusted, which another copy of the fd (systemd's
 * store) must not hand to a later adopter. */
void hold_jr_spoil(int jfd);
/* Reads a journal: 0 with *hdr and *slots (hdr->nslots of them, to free)
 * or -errno (-EPROTO: not a journal of this ABI). */
int ld_hold_jr_read(int jfd, struct ld_hold_jhdr *hdr, struct ld_hold_jslot **slots);

#endif
