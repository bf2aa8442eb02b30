/* SPDX-License-Identifier: Apache-2.0 */
/* skiff daemon upgrade: replaces skiffd's binary with mounts up. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char daemon_usage[] =
"usage: skiff daemon upgrade [--binary PATH] [--timeout SECONDS] [--socket PATH]\n"
"\n"
"Replaces the running skiffd with PATH (default: the path skiffd runs\n"
"from, where a package upgrade puts the new binary) while images stay\n"
"mounted and read: the serving process answers what it holds and ends;\n"
"skiffd's holder, which keeps the kernel fds, becomes the new binary\n"
"and starts a server of it, which takes the registered images and the\n"
"reads still unanswered. Readers wait meanwhile; none fails. Waits until\n"
"the new server answers (default 60 s).\n";

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The serving process's pid and generation, 0 when nobody answers. */
static int server_of(const char *sock, json_int_t *pid, json_int_t *gen, char *bin,
		     size_t binlen)
{
	json_t *r;
	const char *b;

	if (cli_api_quiet(sock, "GET", "/v1/state", NULL, &r))
		return -1;
	*pid = json_integer_value(json_object_get(r, "pid"));
	*gen = json_integer_value(json_object_get(r, "generation"));
	b = json_string_value(json_object_get(r, "binary"));
	snprintf(bin, binlen, "%s", b ? b : "");
	json_decref(r);
	return 0;
}

static int upgrade(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "binary", required_argument, NULL, 'b' },
		{ "timeout", required_argument, NULL, 't' },
		{ "socket", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	const char *sock = cli_default_socket(), *binary = NULL;
	char abs[PATH_MAX], bin[PATH_MAX];
	json_int_t pid0, gen0, pid, gen;
	json_t *body, *r;
	double t0, timeout = 60;
	int c;

	while ((c = getopt_long(argc, argv, "b:t:h", opts, NULL)) != -1) {
		switch (c) {
		case 'b': binary = optarg; break;
		case 't': timeout = atof(optarg); break;
		case 's': sock = optarg; break;
		case 'h':
			fputs(daemon_usage, stdout);
			return 0;
		default:
			fputs(daemon_usage, stderr);
			return 2;
		}
	}
	if (argc != optind || timeout <= 0) {
		fputs(daemon_usage, stderr);
		return 2;
	}
	if (binary && !realpath(binary, abs)) {
		cli_err("%s: %s", binary, strerror(errno));
		return 1;
	}
	if (server_of(sock, &pid0, &gen0, bin, sizeof(bin))) {
		cli_err("skiffd does not answer on %s", sock);
		return 1;
	}
	body = binary ? json_pack("{s:s}", "binary", abs) : json_object();
	t0 = now_s();
	if (cli_api(sock, "POST", "/v1/upgrade", body, &r)) {
		json_decref(body);
		return 1;
	}
	json_decref(body);
	snprintf(abs, sizeof(abs), "%s", json_string_value(json_object_get(r, "binary")) ?
		 json_string_value(json_object_get(r, "binary")) : "?");
	printf("skiffd: upgrading to %s\n", abs);
	json_decref(r);
	while (now_s() - t0 < timeout) {
		if (server_of(sock, &pid, &gen, bin, sizeof(bin)) == 0 && pid != pid0 &&
		    gen > gen0) {
			if (strcmp(bin, abs)) {
				cli_err("a new serving process answers, but it runs %s: the "
					"holder could not become %s (see skiffd's log)", bin, abs);
				return 1;
			}
			printf("skiffd upgraded: serving process %lld (generation %lld) answers, "
			       "%.2f s after the request\n", (long long)pid, (long long)gen,
			       now_s() - t0);
			return 0;
		}
		usleep(50 * 1000);
	}
	cli_err("no new serving process answered on %s within %.0f s: see skiffd's log",
		sock, timeout);
	return 1;
}

int cmd_daemon(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "upgrade"))
		return upgrade(argc - 1, argv + 1);
	if (argc >= 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		fputs(daemon_usage, stdout);
		return 0;
	}
	fputs(daemon_usage, stderr);
	return 2;
}
