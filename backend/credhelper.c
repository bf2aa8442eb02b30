/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Docker credential helpers: "docker-credential-NAME get" is run from
 * PATH without a shell, with the registry's server address on its
 * standard input, and answers {"ServerURL", "Username", "Secret"} on its
 * standard output, or exits non-zero saying "credentials not found".
 *
 * The helper is someone else's program: it may hang, print without end,
 * print garbage or leave children behind. So it runs in a process group
 * of its own that is killed whole after the timeout, its output is
 * bounded, and its answer is JSON checked field by field. It inherits
 * our environment (helpers find their stores through HOME, PATH, cloud
 * SDK variables) but none of our descriptors (all are close-on-exec) and
 * no signal we ignore or block.
 */
#include "remote.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define ERR_KEEP 512		/* bytes of the helper's stderr kept for messages */
/* what a helper that has no credentials says (the helpers' own message
 * goes on: "... in native keychain") */
#define NOT_FOUND "credentials not found"

int be_cred_helper_parse(const void *buf, size_t len, char *user, size_t ulen,
			 char *secret, size_t slen, struct sk_err *e)
{
	json_error_t je;
	json_t *j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	json_t *ju = json_object_get(j, "Username"), *js = json_object_get(j, "Secret");
	const char *u = json_string_value(ju), *s = json_string_value(js);
	int ret = -EINVAL;

	if (!json_is_object(j)) {
		if (j)
			sk_err_set(e, "its answer is JSON but not an object");
		else
			sk_err_set(e, "its answer is not JSON (%s)", je.text);
		goto out;
	}
	if (!u || !s) {
		sk_err_set(e, "its answer lacks \"Username\" or \"Secret\" strings");
		goto out;
	}
	if (!*u && !*s) {
		ret = -ENOENT;	/* an empty answer: nothing stored */
		goto out;
	}
	if (!strcmp(u, "<token>")) {
		sk_err_set(e, "it gave an identity token (a registry's OAuth2 refresh token), which skiff does not use: store a user name and password or access token for this registry instead");
		ret = -ENOTSUP;
		goto out;
	}
	/* basic auth joins them with a colon; a user name cannot hold one
	 * and neither may carry line breaks into a header */
	if (!*u || strchr(u, ':') || strpbrk(u, "\r\n") || strpbrk(s, "\r\n")) {
		sk_err_set(e, "its answer has an unusable user name or secret (empty, ':' in the user name, or line breaks)");
		goto out;
	}
	if (strlen(u) >= ulen || strlen(s) >= slen) {
		sk_err_set(e, "its user name or secret is too long (at most %zu and %zu bytes)",
			   ulen - 1, slen - 1);
		goto out;
	}
	strcpy(user, u);
	strcpy(secret, s);
	ret = 0;
out:
	json_decref(j);
	return ret;
}

/* The first line of what the helper said, printable and bounded, for a
 * message. */
static void first_line(const char *s, size_t len, char *out, size_t outlen)
{
	size_t i = 0, o = 0;

	while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	for (; i < len && s[i] != '\n' && s[i] != '\r' && o + 1 < outlen; i++)
		out[o++] = (unsigned char)s[i] < ' ' || s[i] == 0x7f ? '?' : s[i];
	out[o] = '\0';
}

/* Starts the helper with in, out and err as its fds 0, 1 and 2. */
static int spawn_helper(const char *prog, int in, int out, int err, pid_t *pid)
{
	char *argv[] = { (char *)prog, (char *)"get", NULL };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, dfl;
	static const int reset[] = { SIGPIPE, SIGCHLD, SIGINT, SIGQUIT, SIGHUP, SIGTERM,
				     SIGUSR1, SIGUSR2, SIGALRM, SIGTSTP, SIGTTIN, SIGTTOU };
	int ret;

	sigemptyset(&none);
	sigemptyset(&dfl);
	for (size_t i = 0; i < sizeof(reset) / sizeof(reset[0]); i++)
		sigaddset(&dfl, reset[i]);
	if ((ret = posix_spawn_file_actions_init(&fa)))
		return -ret;
	if ((ret = posix_spawnattr_init(&at))) {
		posix_spawn_file_actions_destroy(&fa);
		return -ret;
	}
	ret = posix_spawn_file_actions_adddup2(&fa, in, 0);
	if (!ret)
		ret = posix_spawn_file_actions_adddup2(&fa, out, 1);
	if (!ret)
		ret = posix_spawn_file_actions_adddup2(&fa, err, 2);
	/* skiffd blocks signals in its threads and ignores SIGPIPE: the
	 * helper gets neither; a group of its own lets a hung helper be
	 * killed with whatever it started */
	if (!ret)
		ret = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
						    POSIX_SPAWN_SETPGROUP);
	if (!ret)
		ret = posix_spawnattr_setsigmask(&at, &none);
	if (!ret)
		ret = posix_spawnattr_setsigdefault(&at, &dfl);
	if (!ret)
		ret = posix_spawnattr_setpgroup(&at, 0);
	if (!ret)
		ret = posix_spawnp(pid, prog, &fa, &at, argv, environ);
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	return -ret;
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

static int ms_left(double deadline)
{
	double left = deadline - sk_now();

	return left <= 0 ? 0 : (int)(left * 1000.0) + 1;
}

/* What one run of a helper gave: its output and how it ended. */
struct run {
	char *out;		/* stdout, NUL-terminated, at most the bound */
	size_t out_len;
	char err[ERR_KEEP];	/* the start of stderr */
	size_t err_len;
	int status;		/* from waitpid */
	bool timed_out, overflow;
};

/*
 * Feeds the helper server and collects what it says until it has
 * closed its output and exited, or until the deadline or the output
 * bound, after which its whole group is killed. 0, or -errno of a
 * failure of ours.
 */
static int collect(pid_t pid, int in, int out, int err, const char *server,
		   double deadline, struct run *r)
{
	struct pollfd p[2] = { { out, POLLIN, 0 }, { err, POLLIN, 0 } };
	size_t n = strlen(server);
	pid_t w;

	/* a socket, so that a helper that exits unread cannot SIGPIPE us;
	 * the address is far smaller than the socket buffer. A helper that
	 * does not read it is its business: its answer will tell. */
	(void)!send(in, server, n, MSG_NOSIGNAL | MSG_DONTWAIT);
	shutdown(in, SHUT_WR);
	while (p[0].fd >= 0 || p[1].fd >= 0) {
		int t = ms_left(deadline), k;

		if (!t) {
			r->timed_out = true;
			break;
		}
		k = poll(p, 2, t);
		if (k < 0 && errno != EINTR)
			return -errno;
		for (int i = 0; k > 0 && i < 2; i++) {
			char tmp[4096];
			ssize_t got;

			if (p[i].fd < 0 || !p[i].revents)
				continue;
			got = read(p[i].fd, tmp, sizeof(tmp));
			if (got < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (got <= 0) {
				p[i].fd = -1;	/* EOF (poll skips negative fds) */
				continue;
			}
			if (i == 1) {
				size_t c = SK_MIN((size_t)got, sizeof(r->err) - 1 - r->err_len);

				memcpy(r->err + r->err_len, tmp, c);
				r->err_len += c;
				continue;
			}
			if (r->out_len + (size_t)got > BE_CRED_HELPER_OUT_MAX) {
				r->overflow = true;
				break;
			}
			memcpy(r->out + r->out_len, tmp, (size_t)got);
			r->out_len += (size_t)got;
		}
		if (r->overflow)
			break;
	}
	r->out[r->out_len] = '\0';
	r->err[r->err_len] = '\0';
	/* output closed: the helper should be exiting */
	while (!r->timed_out && !r->overflow) {
		w = waitpid(pid, &r->status, WNOHANG);
		if (w == pid)
			return 0;
		if (w < 0 && errno != EINTR)
			return -errno;
		if (!ms_left(deadline))
			r->timed_out = true;
		else
			nanosleep(&(struct timespec){ 0, 2 * 1000 * 1000 }, NULL);
	}
	kill(-pid, SIGKILL);
	while (waitpid(pid, &r->status, 0) < 0 && errno == EINTR)
		;
	return 0;
}

int be_cred_helper_get(const char *name, const char *server,
		       unsigned int timeout_ms, char *user, size_t ulen,
		       char *secret, size_t slen, struct sk_err *e)
{
	char prog[256], said[200];
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 };
	struct run r = { 0 };
	pid_t pid;
	int ret;

	if (snprintf(prog, sizeof(prog), "docker-credential-%s", name) >= (int)sizeof(prog)) {
		sk_err_set(e, "credential helper name \"%.100s\" too long", name);
		return -ENAMETOOLONG;
	}
	r.out = malloc(BE_CRED_HELPER_OUT_MAX + 1);
	if (!r.out)
		return -ENOMEM;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) ||
	    pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) {
		ret = -errno;
		sk_err_set(e, "%s: pipes: %s", prog, strerror(-ret));
		goto out;
	}
	ret = spawn_helper(prog, in[1], out[1], err[1], &pid);
	close_fd(&in[1]);
	close_fd(&out[1]);
	close_fd(&err[1]);
	if (ret) {
		sk_err_set(e, "%s (the credential helper the Docker config names): %s", prog,
			   ret == -ENOENT ? "not found in PATH" : strerror(-ret));
		if (ret == -ENOENT)
			ret = -ENOEXEC;	/* not "no credentials" */
		goto out;
	}
	ret = collect(pid, in[0], out[0], err[0], server,
		      sk_now() + (double)timeout_ms / 1000.0, &r);
	if (ret) {
		sk_err_set(e, "%s: %s", prog, strerror(-ret));
		goto out;
	}
	if (r.timed_out) {
		sk_err_set(e, "%s get %s: no answer within %u ms (killed)", prog, server, timeout_ms);
		ret = -ETIMEDOUT;
		goto out;
	}
	if (r.overflow) {
		sk_err_set(e, "%s get %s: more than %u bytes of output (killed)", prog, server,
			   BE_CRED_HELPER_OUT_MAX);
		ret = -EMSGSIZE;
		goto out;
	}
	if (!WIFEXITED(r.status) || WEXITSTATUS(r.status)) {
		first_line(r.out, r.out_len, said, sizeof(said));
		if (!strncmp(said, NOT_FOUND, strlen(NOT_FOUND))) {
			ret = -ENOENT;
			goto out;
		}
		if (!said[0])
			first_line(r.err, r.err_len, said, sizeof(said));
		sk_err_set(e, "%s get %s: %s %d%s%s", prog, server,
			   WIFEXITED(r.status) ? "exit status" : "killed by signal",
			   WIFEXITED(r.status) ? WEXITSTATUS(r.status) : WTERMSIG(r.status),
			   said[0] ? ": " : "", said);
		ret = -EIO;
		goto out;
	}
	ret = be_cred_helper_parse(r.out, r.out_len, user, ulen, secret, slen, e);
	if (ret && ret != -ENOENT) {
		sk_err_prefix(e, "%s get %s", prog, server);
		if (ret != -ENOTSUP)
			ret = -EPROTO;
	}
out:
	close_fd(&in[0]);
	close_fd(&in[1]);
	close_fd(&out[0]);
	close_fd(&out[1]);
	close_fd(&err[0]);
	close_fd(&err[1]);
	free(r.out);
	return ret;
}
