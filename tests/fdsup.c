/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fdsup: a test supervisor that plays systemd's part for skiffd.service
 * (Type=notify, NotifyAccess=main, FileDescriptorStoreMax, Restart=
 * on-failure, KillMode=control-group), so that the fd store path runs in
 * make check without systemd as PID 1.
 *
 *   fdsup [-m STORE_MAX] [-n] [-t STOP_TIMEOUT_S] [-r MAX_RESTARTS]
 *         [-s SOCKET] -- COMMAND [ARG...]
 *
 * It listens on NOTIFY_SOCKET (a datagram socket it makes at SOCKET,
 * default $TMPDIR/fdsup.PID.sock) and accepts messages from the main
 * process alone (NotifyAccess=main). It keeps the fds sent with
 * FDSTORE=1 under their FDNAME, up to STORE_MAX of them (default 0, as
 * FileDescriptorStoreMax; beyond it they are dropped silently, as systemd
 * does), drops them on FDSTOREREMOVE=1, and tells COMMAND STORE_MAX in
 * FDSTORE (as systemd 254+ does; -n: not, as systemd before). When the main process dies, it sends
 * SIGTERM to the rest of its process group (the unit's cgroup), then
 * SIGKILL after STOP_TIMEOUT_S (default 90), reaps them, and, unless the
 * death was clean (status 0, or SIGHUP, SIGINT, SIGTERM or SIGPIPE, as
 * Restart=on-failure has it), starts COMMAND again after 100 ms with the
 * stored fds from fd 3 on (LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES). A
 * clean death ends fdsup with 0, the stored fds dropped (a stop). SIGTERM
 * and SIGINT are passed on to the main process. Everything it does is
 * logged to stderr as "fdsup: ...", which tests wait for.
 *
 * Where it differs from systemd: a stop asked of it (SIGTERM) goes to the
 * main process alone and has no timeout (skiffd.service refuses manual
 * stops: RefuseManualStop), a process group stands for the cgroup, and
 * two fds stored under one name are both kept.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_STORE 16

static const char usage[] = "usage: fdsup [-m STORE_MAX] [-n] [-t STOP_TIMEOUT_S] "
			    "[-r MAX_RESTARTS] [-s SOCKET] -- COMMAND [ARG...]\n";

struct stored {
	char name[256];
	int fd;
};

struct sup {
	char **cmd;
	char sock_path[108];
	int sock, sigfd;
	pid_t main;
	unsigned int starts, max_restarts, store_max, stop_timeout;
	bool no_fdstore_env;
	struct stored store[MAX_STORE];
	size_t nstore;
};

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* one write(2) a line: skiffd's processes write to the same file */
static void say(const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf + 7, sizeof(buf) - 8, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	memcpy(buf, "fdsup: ", 7);
	n = 7 + (n < (int)sizeof(buf) - 8 ? n : (int)sizeof(buf) - 9);
	buf[n++] = '\n';
	if (write(STDERR_FILENO, buf, (size_t)n) < 0)
		return;
}

/* In the child: the stored fds at 3, 4, ... and the environment that
 * names them; then COMMAND. */
static void child(struct sup *s)
{
	char names[MAX_STORE * 257] = "", num[32];
	int high[MAX_STORE];
	sigset_t none;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	setpgid(0, 0);
	/* first out of the way of 3..n, then down: the numbers may cross */
	for (size_t i = 0; i < s->nstore; i++) {
		high[i] = fcntl(s->store[i].fd, F_DUPFD, 100);
		if (high[i] < 0)
			_exit(127);
	}
	for (size_t i = 0; i < s->nstore; i++) {
		if (dup2(high[i], 3 + (int)i) < 0)
			_exit(127);
		close(high[i]);
		if (i)
			strcat(names, ":");
		strcat(names, s->store[i].name);
	}
	if (s->nstore) {
		snprintf(num, sizeof(num), "%zu", s->nstore);
		setenv("LISTEN_FDS", num, 1);
		snprintf(num, sizeof(num), "%d", (int)getpid());
		setenv("LISTEN_PID", num, 1);
		setenv("LISTEN_FDNAMES", names, 1);
	}
	setenv("NOTIFY_SOCKET", s->sock_path, 1);
	snprintf(num, sizeof(num), "%u", s->store_max);
	if (!s->no_fdstore_env)
		setenv("FDSTORE", num, 1);
	execvp(s->cmd[0], s->cmd);
	say("%s: %s", s->cmd[0], strerror(errno));
	_exit(127);
}

static int start(struct sup *s)
{
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0)
		child(s);
	setpgid(pid, pid);	/* both sides: whichever runs first */
	s->main = pid;
	s->starts++;
	say("started main process %d (start %u, %zu stored fds)", (int)pid, s->starts,
	    s->nstore);
	/* an fd the first start was given for itself (a readiness pipe) is
	 * not for later ones */
	if (s->starts == 1)
		for (int fd = 3; fd < 10; fd++)
			if (fd != s->sock && fd != s->sigfd)
				close(fd);
	return 0;
}

static void store_remove(struct sup *s, const char *name)
{
	for (size_t i = 0; i < s->nstore;) {
		if (strcmp(s->store[i].name, name)) {
			i++;
			continue;
		}
		close(s->store[i].fd);
		memmove(&s->store[i], &s->store[i + 1], (s->nstore - i - 1) * sizeof(s->store[0]));
		s->nstore--;
		say("removed %s from the fd store", name);
	}
}

static void drop_fds(int *fds, size_t n)
{
	for (size_t i = 0; i < n; i++)
		close(fds[i]);
}

static void on_notify(struct sup *s)
{
	char buf[4096], cbuf[CMSG_SPACE(sizeof(int) * MAX_STORE) + CMSG_SPACE(sizeof(struct ucred))];
	struct iovec iov = { buf, sizeof(buf) - 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf,
			     .msg_controllen = sizeof(cbuf) };
	int fds[MAX_STORE];
	size_t nfds = 0;
	pid_t sender = 0;
	char name[256] = "stored";
	bool store = false, remove = false;
	ssize_t n = recvmsg(s->sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

	if (n < 0)
		return;
	buf[n] = '\0';
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET)
			continue;
		if (c->cmsg_type == SCM_RIGHTS) {
			size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			for (size_t i = 0; i < k; i++) {
				int fd;

				memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
				if (nfds < MAX_STORE)
					fds[nfds++] = fd;
				else
					close(fd);
			}
		} else if (c->cmsg_type == SCM_CREDENTIALS) {
			struct ucred cr;

			memcpy(&cr, CMSG_DATA(c), sizeof(cr));
			sender = cr.pid;
		}
	}
	/* NotifyAccess=main */
	if (sender != s->main) {
		say("ignored a message from process %d (not the main process %d): %s",
		    (int)sender, (int)s->main, strtok(buf, "\n"));
		drop_fds(fds, nfds);
		return;
	}
	for (char *save = NULL, *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		if (!strcmp(l, "READY=1"))
			say("ready: main process %d (start %u)", (int)s->main, s->starts);
		else if (!strcmp(l, "STOPPING=1"))
			say("stopping: main process %d", (int)s->main);
		else if (!strcmp(l, "FDSTORE=1"))
			store = true;
		else if (!strcmp(l, "FDSTOREREMOVE=1"))
			remove = true;
		else if (!strncmp(l, "FDNAME=", 7))
			snprintf(name, sizeof(name), "%s", l + 7);
		else if (!strncmp(l, "STATUS=", 7))
			say("status: %s", l + 7);
	}
	if (remove)
		store_remove(s, name);
	if (store) {
		for (size_t i = 0; i < nfds; i++) {
			if (s->nstore >= s->store_max || s->nstore == MAX_STORE) {
				say("fd store full (%u): %s dropped", s->store_max, name);
				close(fds[i]);
				continue;
			}
			s->store[s->nstore].fd = fds[i];
			snprintf(s->store[s->nstore].name, sizeof(s->store[0].name), "%s", name);
			s->nstore++;
			say("stored %s in the fd store (%zu fds)", name, s->nstore);
		}
		nfds = 0;
	}
	drop_fds(fds, nfds);
}

/* KillMode=control-group: the rest of the unit goes with its main
 * process, SIGTERM first, SIGKILL after the stop timeout. As a
 * subreaper, fdsup is handed every orphan to reap. */
static void kill_group(struct sup *s)
{
	struct timespec ts = { 0, 20 * 1000 * 1000 };
	unsigned int ticks = s->stop_timeout * 50;
	int sig = SIGTERM;

	if (kill(-s->main, SIGTERM) < 0 && errno == ESRCH)
		return;
	for (unsigned int i = 0;; i++) {
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		if (kill(-s->main, 0) < 0 && errno == ESRCH) {
			say("process group %d gone after %s", (int)s->main,
			    sig == SIGTERM ? "SIGTERM" : "SIGKILL");
			return;
		}
		if (sig == SIGTERM && i >= ticks) {
			say("process group %d still there after %u s: SIGKILL", (int)s->main,
			    s->stop_timeout);
			sig = SIGKILL;
			kill(-s->main, SIGKILL);
		}
		if (sig == SIGKILL && i >= ticks + 500) {
			say("process group %d does not go away", (int)s->main);
			return;
		}
		nanosleep(&ts, NULL);
	}
}

/* Restart=on-failure: these ends are a stop, not a failure */
static bool clean_end(int st)
{
	if (WIFEXITED(st))
		return WEXITSTATUS(st) == 0;
	return WTERMSIG(st) == SIGHUP || WTERMSIG(st) == SIGINT || WTERMSIG(st) == SIGTERM ||
	       WTERMSIG(st) == SIGPIPE;
}

int main(int argc, char **argv)
{
	struct sup s = { .sock = -1, .max_restarts = 1000, .stop_timeout = 90 };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	sigset_t set;
	int one = 1, o;

	snprintf(s.sock_path, sizeof(s.sock_path), "%s/fdsup.%d.sock",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
	while ((o = getopt(argc, argv, "+m:nt:r:s:")) != -1) {
		if (o == 'n') {
			s.no_fdstore_env = true;
		} else if (o == 'r') {
			s.max_restarts = (unsigned int)strtoul(optarg, NULL, 10);
		} else if (o == 'm') {
			s.store_max = (unsigned int)strtoul(optarg, NULL, 10);
		} else if (o == 't') {
			s.stop_timeout = (unsigned int)strtoul(optarg, NULL, 10);
		} else if (o == 's' && strlen(optarg) < sizeof(s.sock_path)) {
			snprintf(s.sock_path, sizeof(s.sock_path), "%s", optarg);
		} else {
			fputs(usage, stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		fputs(usage, stderr);
		return 2;
	}
	s.cmd = argv + optind;
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", s.sock_path);
	unlink(s.sock_path);
	s.sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s.sock < 0 || bind(s.sock, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    setsockopt(s.sock, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0) {
		say("notify socket %s: %s", s.sock_path, strerror(errno));
		return 1;
	}
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	s.sigfd = signalfd(-1, &set, SFD_CLOEXEC);
	if (s.sigfd < 0 || start(&s)) {
		say("cannot start: %s", strerror(errno));
		return 1;
	}
	for (;;) {
		struct pollfd p[2] = { { s.sock, POLLIN, 0 }, { s.sigfd, POLLIN, 0 } };
		struct signalfd_siginfo si;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		/* what the process said before it died counts */
		if (p[0].revents & POLLIN)
			on_notify(&s);
		if (!(p[1].revents & POLLIN) || read(s.sigfd, &si, sizeof(si)) != sizeof(si))
			continue;
		if (si.ssi_signo != SIGCHLD) {
			say("signal %d: passed on to main process %d", (int)si.ssi_signo, (int)s.main);
			kill(s.main, (int)si.ssi_signo);
			continue;
		}
		for (;;) {
			int st;
			pid_t pid = waitpid(-1, &st, WNOHANG);

			if (pid <= 0)
				break;
			if (pid != s.main)
				continue;
			/* messages still queued were sent while it lived */
			while (poll(p, 1, 0) == 1 && (p[0].revents & POLLIN))
				on_notify(&s);
			if (clean_end(st)) {
				say("main process %d ended (%s %d): stopped", (int)pid,
				    WIFSIGNALED(st) ? "signal" : "status",
				    WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
				kill_group(&s);
				unlink(s.sock_path);
				return 0;
			}
			say("main process %d died (%s %d): restarting with %zu stored fds", (int)pid,
			    WIFSIGNALED(st) ? "signal" : "status",
			    WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), s.nstore);
			kill_group(&s);
			if (s.starts > s.max_restarts) {
				say("too many restarts: giving up");
				unlink(s.sock_path);
				return 1;
			}
			/* RestartSec=100ms */
			usleep(100 * 1000);
			if (start(&s)) {
				say("cannot restart: %s", strerror(errno));
				unlink(s.sock_path);
				return 1;
			}
		}
	}
	unlink(s.sock_path);
	return 1;
}
