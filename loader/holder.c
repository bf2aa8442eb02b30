/* SPDX-License-Identifier: Apache-2.0 */
#include "holder.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../common/sk.h"
#include "holdpriv.h"

void hold_log(const struct holder *h, int level, const char *fmt, ...)
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
	if (sendmsg(h->sock, &mh, MSG_NOSIGNAL) < 0)
		return -errno;
	return 0;
}

static void drop(struct holder *h, size_t i)
{
	if (h->pending[i].owns_fd)
		close(h->pending[i].fd);
	memmove(&h->pending[i], &h->pending[i + 1],
		(h->npending - i - 1) * sizeof(*h->pending));
	h->npending--;
}

void hold_add(struct holder *h, const struct hold_req *r)
{
	struct hold_req copy = *r;

	if (h->denying) {
		h->kind->deny(h, &copy);
		if (copy.owns_fd)
			close(copy.fd);
		return;
	}
	if (h->npending == h->cap) {
		size_t ncap = h->cap ? h->cap * 2 : 64;
		struct hold_req *np = realloc(h->pending, ncap * sizeof(*np));

		if (!np) {
			/* cannot track it: answer with an error rather than
			 * let it hang or read zeros */
			h->kind->deny(h, &copy);
			if (copy.owns_fd)
				close(copy.fd);
			return;
		}
		h->pending = np;
		h->cap = ncap;
	}
	h->pending[h->npending++] = copy;
	hold_send(h, &copy.m, copy.fd);	/* a dead server gets it later */
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
		/* the server keeps its copies of the fds it is given; the
		 * holder's copies are not its business */
		for (size_t i = 0; i < h->npending; i++)
			if (h->pending[i].owns_fd)
				close(h->pending[i].fd);
		free(h->pending);
		h->kind->forget(h);
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
	h->server_ready = false;
	hold_log(h, 2, "serving process %d started", (int)pid);
	/* what earlier servers set up, then whatever they left unanswered */
	h->kind->replay(h);
	for (size_t i = 0; i < h->npending; i++)
		hold_send(h, &h->pending[i].m, h->pending[i].fd);
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
	struct ld_hold_done d;
	ssize_t n;

	while ((n = recv(h->sock, &d, sizeof(d), MSG_DONTWAIT)) == sizeof(d)) {
		if (d.flags & LD_HOLD_READY) {
			h->server_ready = true;
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
	}
}

/* Backoff of a server that keeps dying: seconds before the next try. */
#define HOLD_BACKOFF_MAX 30

int ld_holder_run(enum ld_hold_kind kind, int kfd, int *sock, int log_level,
		  int *server_only_fd, struct ld_hold_info *info)
{
	struct holder h = { .kfd = kfd, .sock = -1, .log_level = log_level,
			    .info = info };
	sigset_t set;
	unsigned int quick_deaths = 0, backoff = 1;
	int ret;

	h.kind = kind == LD_HOLD_CACHEFILES ? &ld_hold_cachefiles : &ld_hold_fanotify;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, &h.server_mask);
	h.sigfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (h.sigfd < 0)
		return -errno;
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
			{ h.kfd, POLLIN, 0 }, { h.sock, POLLIN, 0 }, { h.sigfd, POLLIN, 0 }
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
					hold_log(&h, 0, "stopping with no serving process: mounted "
						 "images lose what is not cached");
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
					hold_log(&h, 2, "serving process stopped: exiting");
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
				if (h.sock >= 0)
					take_answers(&h);	/* its READY may wait there */
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
					hold_log(&h, 0, "starting a serving process: %s", strerror(-ret));
			}
		}
	}
	exit(1);
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

int ld_hold_answered(int sock, int32_t id, uint32_t flags)
{
	struct ld_hold_done d = { id, flags };

	if (send(sock, &d, sizeof(d), MSG_NOSIGNAL) < 0)
		return -errno;
	return 0;
}
