/* SPDX-License-Identifier: Apache-2.0 */
#include "holder.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "../common/sk.h"
#include "fanrec.h"
#include "holdpriv.h"

void hold_log(const struct holder *h, int level, const char *fmt, ...)
{
	static const char *names[] = { "error", "warn", "info", "debug" };
	va_list ap;

	char prefix[32];

	if (level > h->log_level)
		return;
	snprintf(prefix, sizeof(prefix), "skiffd holder: %s: ", names[level]);
	va_start(ap, fmt);
	sk_vlog_line(prefix, fmt, ap);
	va_end(ap);
}

int hold_send(struct holder *h, const struct ld_hold_msg *m, int fd)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { (void *)m, ld_hold_msg_size(m) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *c;

	if (h->sock < 0)
		return -EPIPE;
	if (fd >= 0) {
		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof(cbuf);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	if (sendmsg(h->sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
		return -errno;
	return 0;
}

static void take_answers(struct holder *h);

static void oom_adj(const char *v)
{
	int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return;
	if (write(fd, v, strlen(v)) < 0) {
		/* without CAP_SYS_RESOURCE: the default stays */
	}
	close(fd);
}

/* The holder never blocks on the socket: a server that waits to send an
 * answer while the holder waits to send it a request would hang both.
 * What must go now (a CLOSE, the objects a new server starts from) waits
 * here for room, taking answers meanwhile (10 s at most). */
int hold_send_sure(struct holder *h, const struct ld_hold_msg *m, int fd)
{
	for (int i = 0; i < 100; i++) {
		struct pollfd p = { h->sock, POLLIN | POLLOUT, 0 };
		int ret = hold_send(h, m, fd);

		if (ret != -EAGAIN)
			return ret;
		poll(&p, 1, 100);
		if (p.revents & POLLIN)
			take_answers(h);
		if (h->sock < 0)
			return -EPIPE;
	}
	return -EAGAIN;
}

static void drop(struct holder *h, size_t i);

/* Sends the unanswered requests the server has not been sent yet, in
 * order, until the socket is full (the poll loop then waits for room). */
static void flush(struct holder *h)
{
	while (h->sock >= 0 && h->sent < h->npending) {
		const struct hold_req *r = &h->pending[h->sent];

		/* an orphan's fd only pins its number here */
		int ret = hold_send(h, &r->m, r->m.type == LD_HOLD_ORPHAN ? -1 : r->fd);

		if (ret == -EAGAIN || ret == -EPIPE)
			break;
		if (ret) {
			/* it can never go (its fd is gone): answered with an
			 * error rather than block every request after it */
			hold_log(h, 0, "cannot pass request %d on: %s", r->m.id, strerror(-ret));
			h->kind->deny(h, &h->pending[h->sent]);
			drop(h, h->sent);
			continue;
		}
		h->pending[h->sent].gen = h->generation;
		h->sent++;
	}
}

static void drop(struct holder *h, size_t i)
{
	if (i < h->sent)
		h->sent--;
	/* a slot that still says used keeps its number taken for good,
	 * across an upgrade's exec too */
	if (hold_jr_drop(h, &h->pending[i]) && h->pending[i].owns_fd) {
		fcntl(h->pending[i].fd, F_SETFD, 0);
		h->pending[i].owns_fd = false;
	}
	if (h->pending[i].owns_fd)
		close(h->pending[i].fd);
	memmove(&h->pending[i], &h->pending[i + 1],
		(h->npending - i - 1) * sizeof(*h->pending));
	h->npending--;
}

/* Appends r to the pending list as it is: 0 or -ENOMEM. */
static int push(struct holder *h, const struct hold_req *r)
{
	int ret = sk_grow(&h->pending, &h->cap, h->npending, sizeof(*h->pending), 64);

	if (ret)
		return ret;
	h->pending[h->npending++] = *r;
	return 0;
}

size_t hold_forget(struct holder *h, bool (*pred)(const struct hold_req *r, const void *arg),
		   const void *arg)
{
	size_t n = 0;

	for (size_t i = 0; i < h->npending;) {
		if (pred(&h->pending[i], arg)) {
			drop(h, i);
			n++;
		} else {
			i++;
		}
	}
	return n;
}


void hold_add(struct holder *h, const struct hold_req *r)
{
	struct hold_req copy = *r;

	copy.slot = -1;
	copy.gen = 0;
	copy.crashes = 0;
	/* cachefiles reuses a msg_id only once its request is done: one we
	 * still keep was answered by a server that died before telling us,
	 * and handing it on would have the next one answer the new request
	 * with the old answer */
	for (size_t i = 0; r->m.type == LD_HOLD_MSG && i < h->npending; i++) {
		if (h->pending[i].m.type != LD_HOLD_MSG || h->pending[i].m.id != r->m.id)
			continue;
		hold_log(h, 3, "cachefiles: msg_id %d reused: the old request was answered",
			 r->m.id);
		h->kind->answered(h, &h->pending[i], 0);	/* an OPEN: its object is */
		drop(h, i);
		break;
	}
	if (h->denying) {
		h->kind->deny(h, &copy);
		if (copy.owns_fd)
			close(copy.fd);
		return;
	}
	if (push(h, &copy)) {
		/* cannot track it: answer with an error rather than let it
		 * hang or read zeros */
		h->kind->deny(h, &copy);
		if (copy.owns_fd)
			close(copy.fd);
		return;
	}
	/* recorded before the server can answer it */
	hold_jr_put(h, &h->pending[h->npending - 1]);
	flush(h);	/* a dead server's successor gets it later */
}

/* Forks a server: returns 0 in the child (with h->sock its end), the
 * holder keeps going. */
static int spawn(struct holder *h)
{
	int sv[2];
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	h->generation++;
	pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return -errno;
	}
	if (pid == 0) {
		h->info->generation = h->generation;
		h->info->handed = (unsigned int)h->npending;
		/* the server keeps the journal: it adopts the group with it
		 * if the holder dies (without systemd) */
		h->info->jfd = h->jfd;
		h->info->fdstore = h->fdstore;
		close(sv[0]);
		if (h->sock >= 0)
			close(h->sock);	/* the holder's end of an old server */
		close(h->sigfd);
		/* the server keeps its copies of the fds it is given; the
		 * holder's copies are not its business */
		for (size_t i = 0; i < h->npending; i++)
			if (h->pending[i].owns_fd)
				close(h->pending[i].fd);
		free(h->pending);
		free(h->jfree);
		h->kind->forget(h);
		free(h->objs);
		/* the holder is the last thing the OOM killer may take */
		oom_adj("0");
		signal(SIGQUIT, SIG_DFL);
		signal(SIGUSR1, SIG_DFL);
		signal(SIGUSR2, SIG_DFL);
		/* the caller's mask: the server takes its signals with
		 * sigwait, so they must stay blocked */
		sigprocmask(SIG_SETMASK, &h->server_mask, NULL);
		h->sock = sv[1];
		return 0;
	}
	close(sv[1]);
	if (h->sock >= 0)
		close(h->sock);
	h->sock = sv[0];
	h->sent = 0;
	h->server = pid;
	h->server_ready = false;
	hold_log(h, 2, "serving process %d started", (int)pid);
	/* what earlier servers set up, then whatever they left unanswered */
	h->kind->replay(h);
	flush(h);
	if (h->npending)
		hold_log(h, 2, "handed %zu unanswered requests to process %d", h->npending,
			 (int)pid);
	return 1;
}

static void deny_pending(struct holder *h)
{
	size_t n = h->npending;

	while (h->npending) {
		h->kind->deny(h, &h->pending[0]);
		drop(h, 0);
	}
	if (n)
		hold_log(h, 1, "answered %zu waiting requests with errors", n);
}

static void take_answers(struct holder *h)
{
	union {
		struct ld_hold_done d;
		struct ld_hold_upgrade u;
	} msg;
	struct ld_hold_done d;
	ssize_t n;

	while ((n = recv(h->sock, &msg, sizeof(msg), MSG_DONTWAIT)) > 0) {
		if ((size_t)n == sizeof(msg.u) && msg.u.flags == LD_HOLD_UPGRADE) {
			memcpy(h->upgrade_to, msg.u.binary, sizeof(h->upgrade_to));
			h->upgrade_to[sizeof(h->upgrade_to) - 1] = '\0';
			hold_log(h, 2, "upgrade to %s asked for: once the server has "
				 "finished, the holder becomes it", h->upgrade_to);
			continue;
		}
		if ((size_t)n != sizeof(d))
			continue;
		d = msg.d;
		if (d.flags & LD_HOLD_READY) {
			h->server_ready = true;
			if (h->notify)
				sd_notifyf(0, "READY=1\nSTATUS=serving (process %d, generation %u)",
					   (int)h->server, h->generation);
			continue;
		}
		for (size_t i = 0; i < h->npending; i++) {
			if (h->pending[i].m.id != d.id)
				continue;
			h->kind->answered(h, &h->pending[i], d.flags);
			drop(h, i);
			break;
		}
	}
	if (n == 0) {
		/* the server closed its end: it is gone or going */
		close(h->sock);
		h->sock = -1;
		h->sent = 0;
	}
}

/* A fault (not a kill: SIGKILL is an operator or the OOM killer). */
static bool crash_signal(int sig)
{
	return sig == SIGSEGV || sig == SIGBUS || sig == SIGILL || sig == SIGFPE ||
	       sig == SIGABRT || sig == SIGSYS || sig == SIGTRAP;
}

/* Servers in a row that may crash holding one request before it is
 * answered with an error: a request that makes every server fault would
 * otherwise be handed to each new one for ever. Kills do not count. */
#define HOLD_POISON 3

/* The server of this generation died holding the requests sent to it. */
static void count_crashes(struct holder *h, bool crash)
{
	size_t denied = 0;

	for (size_t i = 0; i < h->npending;) {
		struct hold_req *r = &h->pending[i];

		if (r->gen != h->generation) {
			i++;
			continue;
		}
		r->crashes = crash ? r->crashes + 1 : 0;
		if (r->crashes < HOLD_POISON) {
			i++;
			continue;
		}
		h->kind->deny(h, r);
		drop(h, i);
		denied++;
	}
	if (denied)
		hold_log(h, 0, "answered %zu requests with errors: %d serving processes in a row "
			 "crashed holding them", denied, HOLD_POISON);
}

/* Backoff of a server that keeps dying: seconds before the next try. */
#define HOLD_BACKOFF_MAX 30

/* The state a holder hands the binary it becomes (an upgrade), in a
 * memfd: this header, the unanswered requests, the open objects. The fds
 * they name stay open across the exec. */
struct hold_state {
	char magic[8];
	uint32_t abi, req_size, obj_size, kind;
	int32_t kfd, jfd;
	uint32_t generation, npending, nobjs, fdstore;
};
#define HOLD_STATE_MAGIC "skhold1"

void ld_holder_abi(char *buf, unsigned long len)
{
	snprintf(buf, len, "%d %zu %zu %zu %s %zu", LD_HOLD_ABI, sizeof(struct hold_req),
		 sizeof(struct hold_obj), sizeof(struct ld_hold_msg), LD_HOLD_JMAGIC,
		 sizeof(struct ld_hold_jslot));
}

static void set_cloexec(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFD);

	if (fl >= 0)
		fcntl(fd, F_SETFD, on ? fl | FD_CLOEXEC : fl & ~FD_CLOEXEC);
}

/* Every fd the holder keeps, close-on-exec or not. */
static void held_fds_cloexec(struct holder *h, bool on)
{
	set_cloexec(h->kfd, on);
	if (h->jfd >= 0)
		set_cloexec(h->jfd, on);
	for (size_t i = 0; i < h->npending; i++)
		if (h->pending[i].owns_fd)
			set_cloexec(h->pending[i].fd, on);
	for (size_t i = 0; i < h->nobjs; i++)
		set_cloexec(h->objs[i].fd, on);
}

/* Becomes h->upgrade_to (no server runs): returns only when that fails,
 * with -errno, everything as it was. */
static int become(struct holder *h)
{
	struct hold_state st = { .abi = LD_HOLD_ABI, .req_size = sizeof(struct hold_req),
				 .obj_size = sizeof(struct hold_obj),
				 .kind = h->kind == &ld_hold_cachefiles ? LD_HOLD_CACHEFILES
									 : LD_HOLD_FANOTIFY,
				 .kfd = h->kfd, .jfd = h->jfd, .generation = h->generation,
				 .npending = (uint32_t)h->npending, .nobjs = (uint32_t)h->nobjs,
				 .fdstore = h->fdstore };
	char num[16];
	int fd, ret;

	memcpy(st.magic, HOLD_STATE_MAGIC, sizeof(st.magic));
	fd = memfd_create("skiffd-holder-state", 0);	/* the new binary reads it */
	if (fd < 0)
		return -errno;
	ret = sk_write_full(fd, &st, sizeof(st));
	if (!ret && h->npending)
		ret = sk_write_full(fd, h->pending, h->npending * sizeof(*h->pending));
	if (!ret && h->nobjs)
		ret = sk_write_full(fd, h->objs, h->nobjs * sizeof(*h->objs));
	if (!ret && lseek(fd, 0, SEEK_SET) < 0)
		ret = -errno;
	if (ret) {
		close(fd);
		return ret;
	}
	snprintf(num, sizeof(num), "%d", fd);
	held_fds_cloexec(h, false);
	setenv("SKIFFD_HOLDER_STATE", num, 1);
	hold_log(h, 2, "becoming %s (%zu unanswered requests, %zu open objects)",
		 h->upgrade_to, h->npending, h->nobjs);
	execv(h->upgrade_to, h->argv);
	ret = -errno;
	unsetenv("SKIFFD_HOLDER_STATE");
	held_fds_cloexec(h, true);
	close(fd);
	return ret;
}

static int hold_loop(struct holder *h, int *sock, int *server_only_fd);

static int hold_setup(struct holder *h, enum ld_hold_kind kind, bool resumed)
{
	sigset_t set;

	h->kind = kind == LD_HOLD_CACHEFILES ? &ld_hold_cachefiles : &ld_hold_fanotify;
	h->notify = getenv("NOTIFY_SOCKET") != NULL;
	/* its death would cost a restart at best: it is small, and the
	 * last process the OOM killer should pick; stray signals whose
	 * default is to end it are ignored (servers get them back) */
	oom_adj("-1000");
	signal(SIGQUIT, SIG_IGN);
	signal(SIGUSR1, SIG_IGN);
	signal(SIGUSR2, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, &h->server_mask);
	/* a holder that became this binary had SIGCHLD blocked already */
	if (resumed)
		sigdelset(&h->server_mask, SIGCHLD);
	h->sigfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (h->sigfd < 0)
		return -errno;
	return 0;
}

/* One fd into systemd's fd store under name, replacing what was stored
 * under it before: > 0 when sent, 0 without NOTIFY_SOCKET, -errno. */
static int store_one(int fd, const char *name)
{
	char msg[96];

	snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=%s", name);
	sd_notify(0, msg);
	snprintf(msg, sizeof(msg), "FDSTORE=1\nFDNAME=%s", name);
	return sd_pid_notify_with_fds(0, 0, msg, &fd, 1);
}

/*
 * Under systemd: the kernel fd (unless it is there already: an adopter's)
 * and the journal go to its fd store, so that a restart after the
 * holder's death gets them back (LISTEN_FDS). A store that is too small
 * (FileDescriptorStoreMax) drops them without a word; systemd 254+ says
 * its size in FDSTORE, and only then does h->fdstore say the fds are
 * safe there (a server whose holder dies may then just exit).
 */
static void store_fds(struct holder *h, bool kernel_fd)
{
	const char *kname = h->kind == &ld_hold_cachefiles ? LD_HOLD_FDNAME_CACHEFILES
							    : LD_HOLD_FDNAME_FANOTIFY;
	const char *room = getenv("FDSTORE");
	int r1 = 1, r2 = 1, need = (kernel_fd ? 1 : 0) + (h->jfd >= 0 ? 1 : 0);

	if (kernel_fd)
		r1 = store_one(h->kfd, kname);
	if (h->jfd >= 0)
		r2 = store_one(h->jfd, LD_HOLD_FDNAME_JOURNAL);
	if (!kernel_fd) {
		/* an adopter's: the kernel fd came from the store, so it is
		 * safe there whatever happens to the journal */
		if (r2 <= 0)
			hold_log(h, 0, "fd store: the new journal: %s; a death of this holder "
				 "fails the reads it had taken", strerror(-r2));
		return;
	}
	if (r1 <= 0 || r2 <= 0) {
		hold_log(h, 0, "NOTIFY_SOCKET is set but the fds could not be sent to the fd store "
			 "(%s): a death of this holder breaks every lazy mount",
			 strerror(-(r1 <= 0 ? r1 : r2)));
		h->fdstore = false;
		return;
	}
	if (!room) {
		/* systemd before 254: sent, but whether kept is not known */
		hold_log(h, 2, "the %s fd%s sent to systemd's fd store (its size is not known: "
			 "FileDescriptorStoreMax must be 2 or more)", kname,
			 h->jfd >= 0 ? " and the journal are" : " is");
		h->fdstore = false;
		return;
	}
	h->fdstore = atoi(room) >= need;
	if (h->fdstore)
		hold_log(h, 2, "the %s fd%s in systemd's fd store", kname,
			 h->jfd >= 0 ? " and the journal are" : " is");
	else
		hold_log(h, 0, "systemd's fd store holds %s fds (FileDescriptorStoreMax): too few "
			 "for the %d skiffd keeps there; a death of this holder breaks every "
			 "lazy mount", room, need);
}

int ld_holder_run(enum ld_hold_kind kind, int kfd, int *sock, int log_level,
		  int *server_only_fd, struct ld_hold_info *info, char **argv)
{
	struct holder h = { .kfd = kfd, .jfd = -1, .sock = -1, .log_level = log_level,
			    .info = info, .argv = argv };
	int ret = hold_setup(&h, kind, false);

	if (ret)
		return ret;
	if (kind == LD_HOLD_FANOTIFY && (ret = hold_jr_new(&h)))
		hold_log(&h, 0, "journal: %s: a death of this holder fails the reads it had "
			 "taken", strerror(-ret));
	if (h.notify)
		store_fds(&h, true);
	return hold_loop(&h, sock, server_only_fd);
}

/* The state a holder handed this binary (become), into h: 0 or -errno. */
static int resume_read(int statefd, struct holder *h, enum ld_hold_kind *kind,
		       bool *rejournal)
{
	struct hold_state st;
	uint64_t at = sizeof(st);
	int ret = sk_pread_full(statefd, &st, sizeof(st), 0);

	if (!ret && (memcmp(st.magic, HOLD_STATE_MAGIC, sizeof(st.magic)) ||
		     st.abi != LD_HOLD_ABI || st.req_size != sizeof(struct hold_req) ||
		     st.obj_size != sizeof(struct hold_obj) || st.npending > (1u << 24) ||
		     st.nobjs > (1u << 24) ||
		     (st.kind != LD_HOLD_FANOTIFY && st.kind != LD_HOLD_CACHEFILES)))
		ret = -EPROTO;
	if (ret)
		return ret;
	*kind = (enum ld_hold_kind)st.kind;
	h->kfd = st.kfd;
	h->generation = st.generation;
	h->fdstore = st.fdstore != 0;
	/* the pending requests name their slots: the free ones are the rest.
	 * A journal this binary cannot read (the ABI check should have
	 * refused the upgrade) is replaced once the requests are in */
	if (st.jfd >= 0 && hold_jr_take(h, st.jfd)) {
		hold_jr_spoil(st.jfd);
		close(st.jfd);
		*rejournal = true;
	}
	h->pending = calloc(st.npending ? st.npending : 1, sizeof(*h->pending));
	h->objs = calloc(st.nobjs ? st.nobjs : 1, sizeof(*h->objs));
	if (!h->pending || !h->objs)
		return -ENOMEM;
	h->cap = h->npending = st.npending;
	h->objcap = h->nobjs = st.nobjs;
	ret = sk_pread_full(statefd, h->pending, h->npending * sizeof(*h->pending), at);
	at += h->npending * sizeof(*h->pending);
	if (!ret)
		ret = sk_pread_full(statefd, h->objs, h->nobjs * sizeof(*h->objs), at);
	return ret;
}

int ld_holder_resume(int statefd, enum ld_hold_kind *kind, int *kfd, int *sock,
		     int log_level, struct ld_hold_info *info, char **argv)
{
	struct holder h = { .kfd = -1, .sock = -1, .jfd = -1, .log_level = log_level,
			    .info = info, .argv = argv, .keep = true };
	bool rejournal = false;
	int none = -1, ret = resume_read(statefd, &h, kind, &rejournal);

	close(statefd);
	*kfd = h.kfd;
	if (ret) {
		/* the caller keeps the kernel fd open (and the pending fds
		 * stay open with it): only the memory goes */
		free(h.pending);
		free(h.objs);
		free(h.jfree);
		return ret;
	}
	held_fds_cloexec(&h, true);
	ret = hold_setup(&h, *kind, true);
	if (ret)
		return ret;
	if (rejournal && hold_jr_new(&h) == 0) {
		for (size_t i = 0; i < h.npending; i++)
			hold_jr_put(&h, &h.pending[i]);
		if (h.notify && h.fdstore)
			store_fds(&h, false);
	}
	hold_log(&h, 2, "took over as the holder (%zu unanswered requests, %zu open objects)",
		 h.npending, h.nobjs);
	return hold_loop(&h, sock, &none);
}

/* A stop (the server refused it while lazy mounts were up): systemd
 * need not keep the fds. */
static void stopping(struct holder *h)
{
	char msg[64];

	if (!h->notify)
		return;
	sd_notify(0, "STOPPING=1");
	if (!h->fdstore)
		return;
	snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=%s",
		 h->kind == &ld_hold_cachefiles ? LD_HOLD_FDNAME_CACHEFILES
						: LD_HOLD_FDNAME_FANOTIFY);
	sd_notify(0, msg);
	if (h->jfd >= 0)
		sd_notify(0, "FDSTOREREMOVE=1\nFDNAME=" LD_HOLD_FDNAME_JOURNAL);
}

/* No server could be started (fork failed): answer requests with errors
 * and try again after a pause, rather than let them wait for nobody. */
static void spawn_failed(struct holder *h, int err, unsigned int backoff)
{
	hold_log(h, 0, "starting a serving process: %s; trying again in %u s",
		 strerror(-err), backoff);
	deny_pending(h);
	h->denying = true;
	h->retry_at = time(NULL) + backoff;
}

static int hold_loop(struct holder *hp, int *sock, int *server_only_fd)
{
	struct holder h = *hp;
	unsigned int quick_deaths = 0, backoff = 1;
	int ret;

	ret = spawn(&h);
	if (ret == 0 || (ret < 0 && !h.keep)) {
		*sock = h.sock;
		return ret;
	}
	/* a holder that resumed or adopted may have mounts up: it never
	 * gives the fd up, it answers with errors and tries again */
	if (ret < 0)
		spawn_failed(&h, ret, 1);
	if (*server_only_fd >= 0) {
		close(*server_only_fd);
		*server_only_fd = -1;
	}
	for (;;) {
		struct pollfd p[3] = {
			{ h.kfd, POLLIN, 0 },
			{ h.sock, (short)(POLLIN | (h.sent < h.npending ? POLLOUT : 0)), 0 },
			{ h.sigfd, POLLIN, 0 }
		};
		int timeout = -1;

		if (h.denying) {
			time_t now = time(NULL);

			timeout = h.retry_at > now ? (int)(h.retry_at - now) * 1000 : 0;
		}
		if (poll(p, 3, timeout) < 0 && errno != EINTR)
			break;
		if (h.denying && time(NULL) >= h.retry_at) {
			h.denying = false;
			hold_log(&h, 2, "trying a serving process again");
			ret = spawn(&h);
			if (ret == 0) {
				*sock = h.sock;
				return 0;
			}
			if (ret < 0) {
				hold_log(&h, 0, "starting a serving process: %s", strerror(-ret));
				h.denying = true;
				h.retry_at = time(NULL) + backoff;
			}
		}
		if (p[0].revents & POLLIN)
			h.kind->take(&h);
		if (h.sock >= 0 && (p[1].revents & (POLLIN | POLLHUP)))
			take_answers(&h);
		if (h.sock >= 0 && (p[1].revents & POLLOUT))
			flush(&h);
		if (p[2].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(h.sigfd, &si, sizeof(si)) != sizeof(si))
				continue;
			if (si.ssi_signo != SIGCHLD) {
				if (h.server > 0) {
					/* it decides: it refuses while lazy
					 * mounts are up, and exits 0 when it
					 * stops */
					kill(h.server, (int)si.ssi_signo);
				} else if (h.kind->lazy(&h)) {
					/* no server to ask: the kernel fd itself
					 * says whether anything is served lazily */
					hold_log(&h, 0, "signal %d: not stopping: no serving process, "
						 "and %s", (int)si.ssi_signo, h.kind == &ld_hold_cachefiles ?
						 "the kernel has objects open" : "cache files are "
						 "still watched (lazy mounts)");
				} else {
					hold_log(&h, 1, "signal %d: stopping with no serving process "
						 "(nothing is served lazily)", (int)si.ssi_signo);
					deny_pending(&h);
					exit(1);
				}
				continue;
			}
			int st;
			pid_t pid;

			while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
				if (pid != h.server)
					continue;
				h.server = 0;
				if (h.sock >= 0)
					take_answers(&h);	/* what it said last */
				/* ready or not: requests are served from the
				 * moment the images are back, before READY */
				count_crashes(&h, WIFSIGNALED(st) && crash_signal(WTERMSIG(st)));
				if (h.upgrade_to[0]) {
					ret = become(&h);
					hold_log(&h, 0, "upgrade: cannot execute %s: %s; serving on "
						 "with this binary", h.upgrade_to, strerror(-ret));
					h.upgrade_to[0] = '\0';
					ret = spawn(&h);
					if (ret == 0) {
						*sock = h.sock;
						return 0;
					}
					if (ret < 0)
						spawn_failed(&h, ret, backoff);
					continue;
				}
				/* only a stop ends a server with status 0 (main.c),
				 * asked through us or through its own API */
				if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
					hold_log(&h, 2, "serving process stopped: exiting");
					stopping(&h);
					/* the kernel allows what nobody answers
					 * once the fd closes */
					deny_pending(&h);
					exit(0);
				}
				hold_log(&h, 0, "serving process %d died (%s %d): starting another",
				     (int)pid, WIFSIGNALED(st) ? "signal" : "status",
				     WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
				/* a server that cannot start at all must not spin;
				 * but the kernel fd stays open whatever happens
				 * (a closed group lets the kernel read every hole
				 * as zeros, a closed device withdraws the cache).
				 * One that served (it said so) is replaced at once,
				 * however short it lived: a kill is not a failed
				 * start */
				if (!h.server_ready) {
					quick_deaths++;
				} else {
					quick_deaths = 0;
					backoff = 1;
				}
				if (quick_deaths > 5) {
					hold_log(&h, 0, "the serving process keeps dying: reads of what is "
						 "not cached get EIO; trying again in %u s", backoff);
					deny_pending(&h);
					h.denying = true;
					h.retry_at = time(NULL) + backoff;
					backoff = backoff * 2 > HOLD_BACKOFF_MAX ? HOLD_BACKOFF_MAX
										 : backoff * 2;
					continue;
				}
				if (quick_deaths)
					sleep(1);
				ret = spawn(&h);
				if (ret == 0) {
					*sock = h.sock;
					return 0;
				}
				if (ret < 0)
					spawn_failed(&h, ret, backoff);
			}
		}
	}
	exit(1);
}

/* ---- adopting the kernel fd of a dead holder */

/* fd moved above `top` (a number the adopter must keep free); the old
 * number is closed. The same fd when it cannot be moved. */
static int move_above(int fd, int top)
{
	int n = fcntl(fd, F_DUPFD_CLOEXEC, top + 1);

	if (n < 0)
		return fd;
	close(fd);
	return n;
}

/* The journal's bound on fd numbers: far above what a holder has open. */
#define JR_MAX_FD (1 << 24)
/* The most events one read of the group gives a holder (16 KiB of
 * metadata), with room to spare: numbers an unrecorded event may have. */
#define JR_READ_SPAN 1024

/*
 * How far a sweep goes: every number the dead holder could have given an
 * event, which is below its fd limit (the same unit, the same limit as
 * ours), and past the highest number journaled in any case.
 */
static int sweep_bound(int top, uint32_t nslots)
{
	struct rlimit rl;
	uint64_t b = (uint64_t)top + nslots + JR_READ_SPAN;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    rl.rlim_cur > b)
		b = rl.rlim_cur;
	if (b < 65536)
		b = 65536;
	return b > JR_MAX_FD ? JR_MAX_FD : (int)b;
}

/* Answers every number below bound a dead holder could have given an
 * event it had not recorded, except the journaled ones (mark[n] set; mark
 * NULL: none), with EIO: those readers would otherwise wait until killed.
 * Returns how many existed (a number without an event gets ENOENT). */
static unsigned int sweep(struct holder *h, const unsigned char *mark, int bound)
{
	unsigned int lost = 0;

	for (int n = 0; n < bound; n++) {
		struct fanotify_response r = { n, FAN_DENY_ERRNO(EIO) };

		if (mark && mark[n])
			continue;
		if (write(h->kfd, &r, sizeof(r)) == (ssize_t)sizeof(r))
			lost++;
	}
	return lost;
}

/* Answers event number n with EIO at once: 0 or -errno. */
static int deny_number(struct holder *h, int n)
{
	struct fanotify_response r = { n, FAN_DENY_ERRNO(EIO) };

	return write(h->kfd, &r, sizeof(r)) == (ssize_t)sizeof(r) ? 0 : -errno;
}

/*
 * Keeps number id taken in this process until its orphan is answered:
 * true with *pin the fd to close then (-1: a number taken for good, by
 * stdin..stderr or our own kernel fd or journal), false when it cannot be
 * (the orphan must then be answered at once, before any event is read).
 */
static bool pin_number(struct holder *h, int id, int jfd, int null, int *pin)
{
	*pin = -1;
	if (id == h->kfd || id == jfd || (id <= 2 && fcntl(id, F_GETFD) >= 0))
		return true;
	if (null < 0 || dup3(null, id, O_CLOEXEC) != id)
		return false;
	*pin = id;
	return true;
}

/* Per number below top + 1: 0 not journaled, 1 once, 2 more than once. */
static unsigned char *count_numbers(const struct ld_hold_jslot *slots, uint32_t n, int bound)
{
	unsigned char *seen = calloc((size_t)bound, 1);

	for (uint32_t i = 0; seen && i < n; i++)
		if (slots[i].used && slots[i].id >= 0 && seen[slots[i].id] < 2)
			seen[slots[i].id]++;
	return seen;
}

/*
 * A fanotify group adopted with its journal (*jfd, which may move to
 * another number): the journaled events become orphans, each pinning its
 * number here until it is answered; every other number the dead holder
 * may have used is answered with EIO, and so is a number journaled twice
 * (a slot whose freeing failed: which range is the live one is not known)
 * or one that cannot be pinned. On failure the orphans taken so far are
 * answered with EIO too, and nothing is left pending.
 */
static int adopt_journal(struct holder *h, int *jfd)
{
	struct ld_hold_jhdr hdr;
	struct ld_hold_jslot *slots;
	unsigned char *seen;
	unsigned int lost, orphans = 0, denied = 0;
	int top, null, bound, ret;

	ret = ld_hold_jr_read(*jfd, &hdr, &slots);
	if (ret)
		return ret;
	top = hdr.hwm < 2 ? 2 : hdr.hwm;
	for (uint32_t i = 0; i < hdr.nslots; i++)
		if (slots[i].used && slots[i].id > top)
			top = slots[i].id;
	if (top >= JR_MAX_FD - JR_READ_SPAN) {
		free(slots);
		return -EPROTO;
	}
	bound = sweep_bound(top, hdr.nslots);
	seen = count_numbers(slots, hdr.nslots, bound);
	if (!seen) {
		free(slots);
		return -ENOMEM;
	}
	/* nothing of ours may sit on a number an event still has */
	if (h->kfd <= top)
		h->kfd = move_above(h->kfd, top);
	if (*jfd <= top)
		*jfd = move_above(*jfd, top);
	null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null >= 0 && null <= top)
		null = move_above(null, top);
	ret = hold_jr_take(h, *jfd);
	for (uint32_t i = 0; !ret && i < hdr.nslots; i++) {
		const struct ld_hold_jslot *sl = &slots[i];
		struct hold_req r = { .fd = -1, .slot = (int32_t)i };

		if (!sl->used)
			continue;
		r.m = (struct ld_hold_msg){ .type = LD_HOLD_ORPHAN, .id = sl->id,
					    .mask = sl->mask, .off = sl->off, .len = sl->len,
					    .has_range = sl->has_range, .dev = sl->dev,
					    .ino = sl->ino };
		if (sl->id < 0 || seen[sl->id] != 1 ||
		    !pin_number(h, sl->id, *jfd, null, &r.fd)) {
			/* answered now, once per number */
			if (sl->id >= 0 && seen[sl->id] && !deny_number(h, sl->id))
				denied++;
			if (sl->id >= 0)
				seen[sl->id] = 0;
			hold_jr_drop(h, &r);
			continue;
		}
		r.owns_fd = r.fd >= 0;
		if (push(h, &r)) {
			if (r.owns_fd)
				close(r.fd);
			ret = -ENOMEM;
			break;
		}
		orphans++;
	}
	if (null >= 0)
		close(null);
	free(slots);
	if (ret) {
		deny_pending(h);	/* by number; each pin closed after */
		free(seen);
		return ret;
	}
	/* the orphans' numbers are marked (1); every other one is swept */
	for (size_t i = 0; i < h->npending; i++)
		seen[h->pending[i].m.id] = 1;
	lost = sweep(h, seen, bound);
	hold_log(h, lost || denied ? 0 : 2, "adopted %u unanswered events from the journal%s",
		 orphans, lost || denied ? "" : "; none was lost");
	if (lost || denied)
		hold_log(h, 0, "%u events the dead holder had read but not recorded, and %u it "
			 "recorded that cannot be served, were answered with EIO", lost, denied);
	free(seen);
	return 0;
}

/* The journal the store may still hold is not to be trusted: spoil it in
 * place (the store holds the same memory file), and take it out. */
static void journal_distrust(struct holder *h, int jfd)
{
	if (jfd >= 0)
		hold_jr_spoil(jfd);
	if (h->notify && h->fdstore)
		sd_notify(0, "FDSTOREREMOVE=1\nFDNAME=" LD_HOLD_FDNAME_JOURNAL);
}

int ld_holder_adopt(struct ld_hold_inherit *in, int *sock, int log_level,
		    struct ld_hold_info *info, char **argv)
{
	struct holder h = { .kfd = in->kfd, .jfd = -1, .sock = -1, .log_level = log_level,
			    .info = info, .argv = argv, .fdstore = in->fdstore, .keep = true };
	int none = -1, ret = 0, jfd = in->jfd;

	h.kind = in->kind == LD_HOLD_CACHEFILES ? &ld_hold_cachefiles : &ld_hold_fanotify;
	h.notify = getenv("NOTIFY_SOCKET") != NULL;
	if (in->kind == LD_HOLD_CACHEFILES) {
		if (jfd >= 0)
			close(jfd);	/* cachefiles keeps no journal */
		/* the kernel sends every unanswered request again, and
		 * reopens the objects whose anon fds closed with the holder */
		if (write(h.kfd, "restore", 7) < 0)
			hold_log(&h, 0, "cachefiles: restore: %s: requests the dead holder had "
				 "read wait until their readers are killed", strerror(errno));
	} else {
		/* before anything else here opens an fd: the pins first */
		if (jfd >= 0)
			ret = adopt_journal(&h, &jfd);
		if (jfd < 0 || ret) {
			hold_log(&h, 0, "journal: %s: every event the dead holder had read is "
				 "answered with EIO", jfd < 0 ? "none" : strerror(-ret));
			journal_distrust(&h, jfd);
			if (jfd >= 0)
				close(jfd);
			h.jfd = -1;
			/* no number is known: deny every one a holder could
			 * have used */
			sweep(&h, NULL, sweep_bound(0, 0));
			ret = hold_jr_new(&h);
			if (ret)
				hold_log(&h, 0, "journal: %s", strerror(-ret));
			else if (h.fdstore && h.notify)
				store_fds(&h, false);	/* the group is there */
		}
	}
	/* the server that started us may let go of its copies now */
	if (in->readyfd >= 0) {
		if (write(in->readyfd, "A", 1) < 0)
			hold_log(&h, 1, "telling the old server: %s", strerror(errno));
		close(in->readyfd);
		in->readyfd = -1;
	}
	ret = hold_setup(&h, in->kind, false);
	if (ret)
		return ret;
	hold_log(&h, 2, "adopted the %s fd of a dead holder%s", h.kind == &ld_hold_cachefiles ?
		 "cachefiles" : "fanotify", in->fdstore ? " from systemd's fd store" : "");
	in->kfd = h.kfd;
	return hold_loop(&h, sock, &none);
}

/* environ without NOTIFY_SOCKET (systemd hears the main process alone)
 * or an old SKIFFD_ADOPT, with `adopt` added; NULL without memory */
static char **adopt_env(char *adopt)
{
	extern char **environ;
	size_t n = 0, k = 0;
	char **env;

	while (environ[n])
		n++;
	env = calloc(n + 2, sizeof(*env));
	if (!env)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "NOTIFY_SOCKET=", 14) &&
		    strncmp(environ[i], "SKIFFD_ADOPT=", 13))
			env[k++] = environ[i];
	env[k++] = adopt;
	return env;
}

int ld_holder_handoff(enum ld_hold_kind kind, int kfd, int jfd, char **argv)
{
	char adopt[96], c;
	char **env;
	int p[2], ret = 0;
	pid_t pid;
	ssize_t n = 0;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	snprintf(adopt, sizeof(adopt), "SKIFFD_ADOPT=%s:%d:%d:%d", kind == LD_HOLD_CACHEFILES ?
		 LD_HOLD_FDNAME_CACHEFILES : LD_HOLD_FDNAME_FANOTIFY, kfd, jfd, p[1]);
	/* everything the child needs is made here: between fork and exec
	 * a child of a threaded process may call only async-signal-safe
	 * functions */
	env = adopt_env(adopt);
	if (!env) {
		close(p[0]);
		close(p[1]);
		return -ENOMEM;
	}
	pid = fork();
	if (pid == 0) {
		fcntl(kfd, F_SETFD, 0);
		if (jfd >= 0)
			fcntl(jfd, F_SETFD, 0);
		fcntl(p[1], F_SETFD, 0);
		execve("/proc/self/exe", argv, env);
		_exit(127);
	}
	if (pid < 0)
		ret = -errno;
	free(env);
	close(p[1]);
	/* until the child says it adopted them, it may die holding the
	 * only other copies: ours stay open meanwhile */
	while (!ret && (n = read(p[0], &c, 1)) < 0 && errno == EINTR)
		;
	if (!ret && n != 1) {
		ret = -ECHILD;
		waitpid(pid, NULL, WNOHANG);
	}
	close(p[0]);
	return ret;
}

/* kfd is what its name says: a fanotify group, or /dev/cachefiles. */
static bool kfd_is(int fd, enum ld_hold_kind kind)
{
	char p[64], link[64];
	ssize_t n;

	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	n = readlink(p, link, sizeof(link) - 1);
	if (n <= 0)
		return false;
	link[n] = '\0';
	return !strcmp(link, kind == LD_HOLD_CACHEFILES ? "/dev/cachefiles"
							: "anon_inode:[fanotify]");
}

/* LISTEN_FDS: the fds systemd kept, by name. 1, 0 (none of ours) or
 * -errno. */
static int from_systemd(struct ld_hold_inherit *in, int n, char **names)
{
	for (int i = 0; i < n; i++) {
		int fd = SD_LISTEN_FDS_START + i;
		const char *name = names ? names[i] : "";

		if (in->kfd < 0 && !strcmp(name, LD_HOLD_FDNAME_FANOTIFY)) {
			in->kfd = fd;
			in->kind = LD_HOLD_FANOTIFY;
		} else if (in->kfd < 0 && !strcmp(name, LD_HOLD_FDNAME_CACHEFILES)) {
			in->kfd = fd;
			in->kind = LD_HOLD_CACHEFILES;
		} else if (in->jfd < 0 && !strcmp(name, LD_HOLD_FDNAME_JOURNAL)) {
			in->jfd = fd;
		} else {
			close(fd);	/* not ours, or a second copy */
		}
	}
	if (in->kfd < 0) {
		/* a journal alone: nothing to adopt. Spoiled in place (the
		 * store keeps the same file) so that no later adopter pairs
		 * it with a new group; a fresh start replaces it */
		if (in->jfd >= 0) {
			hold_jr_spoil(in->jfd);
			close(in->jfd);
		}
		in->jfd = -1;
		return 0;
	}
	in->fdstore = true;
	return 1;
}

int ld_holder_inherited(struct ld_hold_inherit *in)
{
	const char *adopt = getenv("SKIFFD_ADOPT");
	char **names = NULL;
	int n, ret;

	*in = (struct ld_hold_inherit){ .kfd = -1, .jfd = -1, .readyfd = -1 };
	n = sd_listen_fds_with_names(1, &names);
	if (n > 0) {
		unsetenv("SKIFFD_ADOPT");	/* not for our children */
		ret = from_systemd(in, n, names);
		if (names)
			for (int i = 0; i < n; i++)
				free(names[i]);
		free(names);
		if (ret <= 0)
			return ret;
	} else if (adopt) {
		char kname[16];

		/* from our own serving process: nobody else may hold it */
		in->only_copy = true;
		ret = sscanf(adopt, "%15[a-z]:%d:%d:%d", kname, &in->kfd, &in->jfd, &in->readyfd);
		unsetenv("SKIFFD_ADOPT");
		if (ret < 3)
			return -EINVAL;
		in->kind = !strcmp(kname, LD_HOLD_FDNAME_CACHEFILES) ? LD_HOLD_CACHEFILES
								      : LD_HOLD_FANOTIFY;
		if (in->jfd >= 0 && fcntl(in->jfd, F_GETFD) < 0)
			in->jfd = -1;
		if (in->readyfd >= 0 && fcntl(in->readyfd, F_GETFD) < 0)
			in->readyfd = -1;
	} else {
		return n < 0 ? n : 0;
	}
	if (in->kfd < 0 || !kfd_is(in->kfd, in->kind)) {
		if (in->jfd >= 0)
			close(in->jfd);
		in->jfd = -1;
		return -EBADF;
	}
	set_cloexec(in->kfd, true);
	if (in->jfd >= 0)
		set_cloexec(in->jfd, true);
	if (in->readyfd >= 0)
		set_cloexec(in->readyfd, true);
	return 1;
}

int ld_hold_recv(int sock, struct ld_hold_msg *m, int *fd)
{
	for (;;) {
		char cbuf[CMSG_SPACE(sizeof(int))];
		struct iovec iov = { m, sizeof(*m) };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1,
				     .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
		struct cmsghdr *c;
		ssize_t n = recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

		*fd = -1;
		if (n < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -errno;
		if (n == 0)
			return -EPIPE;
		c = CMSG_FIRSTHDR(&mh);
		if (c && c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(fd, CMSG_DATA(c), sizeof(int));
		/* the holder is trusted, but the size decides what is read */
		if ((size_t)n >= offsetof(struct ld_hold_msg, data) &&
		    m->dlen <= LD_HOLD_DATA_MAX && (size_t)n == ld_hold_msg_size(m))
			return 1;
		if (*fd >= 0)
			close(*fd);
	}
}

int ld_hold_ask_upgrade(int sock, const char *binary)
{
	struct ld_hold_upgrade u = { -1, LD_HOLD_UPGRADE, { 0 } };

	if (strlen(binary) >= sizeof(u.binary))
		return -ENAMETOOLONG;
	strcpy(u.binary, binary);
	if (send(sock, &u, sizeof(u), MSG_NOSIGNAL) < 0)
		return -errno;
	return 0;
}

int ld_hold_answered(int sock, int32_t id, uint32_t flags)
{
	struct ld_hold_done d = { id, flags };

	if (send(sock, &d, sizeof(d), MSG_NOSIGNAL) < 0)
		return -errno;
	return 0;
}
