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
 * If the holder itself dies, another process adopts the kernel fd: a
 * skiffd that systemd restarts with the fds the holder put in its fd
 * store (FDSTORE=1), or the serving process of a fanotify group, which
 * executes skiffd in its own place (unless systemd said its store holds
 * the fds: then it exits and leaves the restart to systemd). An adopting
 * holder of a fanotify group starts from the journal (below); one of
 * /dev/cachefiles writes `restore`, after which the kernel sends every
 * pending request again and reopens the objects whose anon fds closed.
 * (Without systemd, a cachefiles server reads the device itself after
 * `restore`, keeping its objects' fds.)
 *
 * The journal (fanotify only) is a memfd the holder keeps, in the fd
 * store too, with one slot per unanswered event: the fd number its answer
 * names and the file and range it is for. The kernel matches an answer by
 * fd number alone, so an adopter must answer those events before it can
 * take a new event with the same number: it pins every journaled number
 * in its own fd table (a /dev/null there until the event is answered),
 * answers every other number the dead holder could have used with EIO (an
 * event read but not yet journaled, a window of microseconds: its reader
 * gets EIO, never zeros and never a hang), and hands the journaled events
 * to its server as LD_HOLD_ORPHAN: filled through the server's own fd of
 * the cache file, then allowed by number.
 */
#ifndef SKIFF_LOADER_HOLDER_H
#define SKIFF_LOADER_HOLDER_H

#include <stdbool.h>
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
	LD_HOLD_ORPHAN = 4,	/* a fanotify event a dead holder had read: no
				 * fd; dev, ino name the cache file */
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
	uint64_t dev, ino;		/* fanotify: the cache file */
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
#define LD_HOLD_ABI 2

/* What a serving process learns of its start from the holder. */
struct ld_hold_info {
	unsigned int generation;	/* 1 for the first server, then +1 */
	unsigned int handed;		/* unanswered requests handed to it */
	int jfd;			/* the journal (fanotify), or -1 */
	bool fdstore;			/* the kernel fd is in systemd's fd store */
};

/* One slot of the journal (fanotify), after struct ld_hold_jhdr. 64
 * bytes each, header included, so that no slot straddles a page: the
 * kernel copies a write within one page whole, even when the writer is
 * killed (it checks for SIGKILL between pages). */
struct ld_hold_jslot {
	uint32_t used;		/* 0: free */
	int32_t id;		/* the fd number the answer names */
	uint64_t dev, ino, off, len, mask;
	uint32_t has_range, pad[3];
};
struct ld_hold_jhdr {
	char magic[8];		/* LD_HOLD_JMAGIC */
	uint32_t slot_size, nslots;
	int32_t hwm;		/* the highest fd number ever journaled */
	uint32_t pad[11];
};
_Static_assert(sizeof(struct ld_hold_jslot) == 64, "a journal slot is 64 bytes");
_Static_assert(sizeof(struct ld_hold_jhdr) == 64, "the journal header is 64 bytes");
#define LD_HOLD_JMAGIC "skjrnl2"

/* The names of the fds skiffd keeps in systemd's fd store. */
#define LD_HOLD_FDNAME_FANOTIFY "fanotify"
#define LD_HOLD_FDNAME_CACHEFILES "cachefiles"
#define LD_HOLD_FDNAME_JOURNAL "journal"


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

/* A kernel fd a dead holder left, as a new process finds it. */
struct ld_hold_inherit {
	enum ld_hold_kind kind;
	int kfd;		/* the group or device */
	int jfd;		/* the journal (fanotify), or -1 */
	int readyfd;		/* told once the fd is adopted, or -1 */
	bool fdstore;		/* from systemd's fd store */
	bool only_copy;		/* this process may hold the only copy */
};

/*
 * At the start of main: the kernel fd a dead holder left, from systemd
 * (LISTEN_FDS with the names above) or from ld_holder_handoff
 * (SKIFFD_ADOPT). 1 with *in filled; 0 when there is none; -errno when
 * what was passed is unusable: then, if in->only_copy, this process may
 * hold the only copy of a kernel fd and must never exit.
 */
int ld_holder_inherited(struct ld_hold_inherit *in);

/*
 * Adopts it (the pins, the sweep, or `restore`; then in->readyfd is told
 * and closed) and runs the holder as ld_holder_run does; in->kfd may move
 * to another number (numbers the dead holder's events still have are
 * kept free).
 */
int ld_holder_adopt(struct ld_hold_inherit *in, int *sock, int log_level,
		    struct ld_hold_info *info, char **argv);

/*
 * In a server whose holder died: starts this very binary (/proc/self/exe:
 * the path may be gone or hold another version) as the adopting holder
 * of kfd and jfd (-1: none), passed in SKIFFD_ADOPT, and waits until it
 * has adopted them. 0 then (this process may exit: the new holder has its
 * own copies); -errno when it died first (this process still holds the
 * fds: try again).
 */
int ld_holder_handoff(enum ld_hold_kind kind, int kfd, int jfd, char **argv);

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
