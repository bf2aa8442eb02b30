/* SPDX-License-Identifier: Apache-2.0 */
#include "holder.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../common/sk.h"
#include "fanrec.h"

struct holder {
	int group, sock, sigfd;
	sigset_t server_mask;	/* the signal mask servers start with */
	pid_t server;
	int log_level;
	/* no server runs and none may start before retry_at (a server
	 * that keeps dying): the holder answers events itself, with EIO */
	bool denying;
	time_t retry_at;
	unsigned int generation;	/* servers started */
	struct ld_hold_info *info;	/* the caller's, filled in a server */
	struct ld_hold_event *pending;	/* unanswered, in arrival order */
	size_t npending, cap;
};

static void hlog(const struct holder *h, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void hlog(const struct holder *h, int level, const char *fmt, ...)
{
	static const char *names[] = { "error", "warn", "info", "debug" };
	va_list ap;

	if (level > h->log_level)
		return;
	fprintf(stderr, "skiffd holder: %s: ", names[level]);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static int send_event(int sock, const struct ld_hold_event *ev)
{
	char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
	struct iovec iov = { (void *)ev, sizeof(*ev) };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
			    .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);

	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &ev->hfd, sizeof(int));
	if (sendmsg(sock, &m, MSG_NOSIGNAL) < 0)
		return -errno;
	return 0;
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
		close(sv[0]);
		if (h->sock >= 0)
			close(h->sock);	/* the holder's end of an old server */
		close(h->sigfd);
		/* the server keeps its copies of the event fds it is given;
		 * the holder's copies are not its business */
		for (size_t i = 0; i < h->npending; i++)
			close(h->pending[i].hfd);
		free(h->pending);
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
	h->server = pid;
	hlog(h, 2, "serving process %d started", (int)pid);
	/* whatever the last server left unanswered goes to this one */
	for (size_t i = 0; i < h->npending; i++)
		send_event(h->sock, &h->pending[i]);
	if (h->npending)
		hlog(h, 2, "handed %zu unanswered events to process %d", h->npending,
		     (int)pid);
	return 1;
}

/* Answers an event the holder cannot hand to any server: EIO for its
 * reader. Never allowed: the kernel would read the holes as zeros. */
static void deny(struct holder *h, int fd)
{
	struct fanotify_response r = { fd, FAN_DENY_ERRNO(EIO) };

	if (write(h->group, &r, sizeof(r)) < 0)
		hlog(h, 0, "deny: %s", strerror(errno));
	close(fd);
}

static void deny_pending(struct holder *h)
{
	for (size_t i = 0; i < h->npending; i++)
		deny(h, h->pending[i].hfd);
	if (h->npending)
		hlog(h, 1, "answered %zu waiting reads with EIO", h->npending);
	h->npending = 0;
}

static void take_events(struct holder *h)
{
	char buf[16384] __attribute__((aligned(8)));
	ssize_t n = read(h->group, buf, sizeof(buf));

	if (n <= 0)
		return;
	for (struct fanotify_event_metadata *m = (void *)buf;
	     FAN_EVENT_OK(m, n); m = FAN_EVENT_NEXT(m, n)) {
		struct ld_hold_event ev = { .hfd = m->fd, .mask = m->mask,
					     .pid = m->pid };

		if (m->fd < 0)
			continue;
		if (h->denying) {
			deny(h, m->fd);
			continue;
		}
		ev.has_range = ld_fan_event_range(m, (size_t)n, &ev.off, &ev.len);
		if (h->npending == h->cap) {
			size_t ncap = h->cap ? h->cap * 2 : 64;
			struct ld_hold_event *np = realloc(h->pending, ncap * sizeof(*np));

			if (!np) {
				/* cannot track it: answer with an error rather
				 * than let it hang or read zeros */
				deny(h, m->fd);
				continue;
			}
			h->pending = np;
			h->cap = ncap;
		}
		h->pending[h->npending++] = ev;
		if (h->sock >= 0)
			send_event(h->sock, &ev);	/* a dead server gets it later */
	}
}

static void take_answers(struct holder *h)
{
	struct ld_hold_done d;
	ssize_t n;

	while ((n = recv(h->sock, &d, sizeof(d), MSG_DONTWAIT)) == sizeof(d)) {
		for (size_t i = 0; i < h->npending; i++) {
			if (h->pending[i].hfd != d.hfd)
				continue;
			close(d.hfd);
			memmove(&h->pending[i], &h->pending[i + 1],
				(h->npending - i - 1) * sizeof(*h->pending));
			h->npending--;
			break;
		}
	}
	if (n == 0) {
		/* the server closed its end: it is gone or going */
		close(h->sock);
		h->sock = -1;
	}
}

/* Backoff of a server that keeps dying: seconds before the next try. */
#define HOLD_BACKOFF_MAX 30

int ld_holder_run(int group, int *sock, int log_level, int *server_only_fd,
		  struct ld_hold_info *info)
{
	struct holder h = { .group = group, .sock = -1, .log_level = log_level,
			    .info = info };
	sigset_t set;
	unsigned int quick_deaths = 0, backoff = 1;
	time_t started;
	int ret;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, &h.server_mask);
	h.sigfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (h.sigfd < 0)
		return -errno;
	started = time(NULL);
	ret = spawn(&h);
	if (ret <= 0) {
		*sock = h.sock;
		return ret;
	}
	if (*server_only_fd >= 0) {
		close(*server_only_fd);
		*server_only_fd = -1;
	}
	for (;;) {
		struct pollfd p[3] = {
			{ h.group, POLLIN, 0 }, { h.sock, POLLIN, 0 }, { h.sigfd, POLLIN, 0 }
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
			hlog(&h, 2, "trying a serving process again");
			started = time(NULL);
			ret = spawn(&h);
			if (ret == 0) {
				*sock = h.sock;
				return 0;
			}
			if (ret < 0) {
				hlog(&h, 0, "starting a serving process: %s", strerror(-ret));
				h.denying = true;
				h.retry_at = time(NULL) + backoff;
			}
		}
		if (p[0].revents & POLLIN)
			take_events(&h);
		if (h.sock >= 0 && (p[1].revents & (POLLIN | POLLHUP)))
			take_answers(&h);
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
				} else {
					hlog(&h, 0, "stopping with no serving process: reads of "
					     "mounted images that are not cached now read zeros");
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
				/* only a stop ends a server with status 0 (main.c),
				 * asked through us or through its own API */
				if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
					hlog(&h, 2, "serving process stopped: exiting");
					exit(0);
				}
				hlog(&h, 0, "serving process %d died (%s %d): starting another",
				     (int)pid, WIFSIGNALED(st) ? "signal" : "status",
				     WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
				/* a server that cannot start at all must not spin;
				 * but the group stays open whatever happens: closed,
				 * it lets the kernel read every hole as zeros */
				if (time(NULL) - started < 2) {
					quick_deaths++;
				} else {
					quick_deaths = 0;
					backoff = 1;
				}
				if (quick_deaths > 5) {
					hlog(&h, 0, "the serving process keeps dying: reads of what is "
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
				started = time(NULL);
				ret = spawn(&h);
				if (ret == 0) {
					*sock = h.sock;
					return 0;
				}
				if (ret < 0)
					hlog(&h, 0, "starting a serving process: %s", strerror(-ret));
			}
		}
	}
	exit(1);
}
