/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Live upgrade (POST /v1/upgrade, skiff daemon upgrade): the checks a
 * binary passes before the holder may become it. The holder hands its
 * state to the binary as raw records (holder.c), so the binary must run
 * here and speak the same holder ABI; one that does not would take over
 * the kernel fds and misread what it was given.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon.h"
#include "holder.h"

/* Runs `binary --holder-abi` (10 s at most): its output in out. */
static int run_abi(const char *binary, char *out, size_t outlen, struct sk_err *e)
{
	int p[2], st = 0;
	size_t got = 0;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return -errno;
	}
	if (pid == 0) {
		char *argv[] = { (char *)binary, "--holder-abi", NULL };

		dup2(p[1], 1);
		execv(binary, argv);
		_exit(127);
	}
	close(p[1]);
	for (;;) {
		struct pollfd pf = { p[0], POLLIN, 0 };
		ssize_t n;

		if (poll(&pf, 1, 10000) <= 0) {
			kill(pid, SIGKILL);
			break;
		}
		n = read(p[0], out + got, outlen - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
		if (got == outlen - 1)
			break;
	}
	close(p[0]);
	out[got] = '\0';
	if (got && out[got - 1] == '\n')
		out[got - 1] = '\0';
	waitpid(pid, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		sk_err_set(e, "%s --holder-abi failed (%s %d): not a skiffd that can take over",
			   binary, WIFSIGNALED(st) ? "signal" : "status",
			   WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
		return -ENOEXEC;
	}
	return 0;
}

int ld_upgrade_check(const char *binary, struct sk_err *e)
{
	char theirs[128], ours[128];
	struct stat st;
	int ret;

	if (binary[0] != '/') {
		sk_err_set(e, "binary %s: an absolute path, please", binary);
		return -EINVAL;
	}
	if (stat(binary, &st) < 0 || !S_ISREG(st.st_mode) || access(binary, X_OK) < 0) {
		sk_err_set(e, "binary %s: %s", binary,
			   errno ? strerror(errno) : "not a regular file");
		return -ENOENT;
	}
	ret = run_abi(binary, theirs, sizeof(theirs), e);
	if (ret)
		return ret;
	ld_holder_abi(ours, sizeof(ours));
	if (strcmp(theirs, ours)) {
		sk_err_set(e, "%s speaks holder ABI \"%s\", this skiffd \"%s\": it cannot take "
			   "over with mounts up; unmount, stop skiffd and start the new one",
			   binary, theirs, ours);
		return -EPROTO;
	}
	return 0;
}
