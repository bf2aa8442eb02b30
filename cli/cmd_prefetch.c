/* SPDX-License-Identifier: Apache-2.0 */
/*
 * skiff prefetch: pre-warm an image through skiffd, with progress.
 * skiff trace: record which files a mounted image reads, as a prefetch
 * list for the next build.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../common/sk.h"
#include "cli.h"

static const char prefetch_usage[] =
"usage: skiff prefetch [options] IMAGE|MNT\n"
"\n"
"Fetches an image's prefetch list (or, with --all, every blob) into the\n"
"cache through skiffd, behind on-demand reads. MNT names a mounted image;\n"
"an IMAGE (DIR[:TAG], URL, docker://...) not registered yet is registered\n"
"first, so a node can pre-warm an image before it mounts it. With the\n"
"cachefiles frontend the cache files exist only once the kernel opens\n"
"them: the prefetch then waits until the image is mounted.\n"
"\n"
"  -a, --all               every blob, not just the prefetch list\n"
"  -b, --bandwidth SIZE    bytes per second, e.g. 10M (default: skiffd's\n"
"                          prefetch.bandwidth)\n"
"      --id ID             register IMAGE under this id\n"
"      --no-wait           return once queued\n"
"      --json              print a JSON summary when done\n"
"      --socket PATH       skiffd's control socket\n"
"  -h, --help              this help\n";

static const char trace_usage[] =
"usage: skiff trace start [--socket PATH] MNT\n"
"       skiff trace stop [--socket PATH] [-o FILE] MNT\n"
"\n"
"Records which files of the image mounted at MNT are read, and in what\n"
"order. `stop` writes the trace (to FILE, default stdout): one path per\n"
"line in first-read order, then a tab and the chunk indexes read; it is a\n"
"prefetch list for `skiff build --prefetch-list`. Only reads that reach\n"
"skiffd are seen: record with a cold cache.\n";

/* An id for IMAGE|MNT: the image mounted there, or IMAGE registered. */
static int resolve(const char *sock, const char *arg, const char *want_id,
		   char *id, size_t idlen)
{
	char real[PATH_MAX], ref[PATH_MAX + 300];
	struct stat st;
	json_t *body, *r;
	int ret;

	if (stat(arg, &st) == 0 && S_ISDIR(st.st_mode) && realpath(arg, real)) {
		ret = cli_find_by_mount(sock, real, id, idlen);
		if (ret != -ENOENT)
			return ret;
	}
	ret = cli_absolute_ref(arg, ref, sizeof(ref));
	if (ret) {
		cli_err("%s: %s", arg, strerror(-ret));
		return ret;
	}
	body = json_pack("{s:s}", "ref", ref);
	if (want_id)
		json_object_set_new(body, "id", json_string(want_id));
	ret = cli_api(sock, "POST", "/v1/images", body, &r);
	json_decref(body);
	if (ret)
		return ret;
	snprintf(id, idlen, "%s", json_string_value(json_object_get(r, "id")) ?: "");
	json_decref(r);
	return id[0] ? 0 : -EPROTO;
}

static json_t *image_of(json_t *list, const char *id)
{
	size_t i;
	json_t *im;

	json_array_foreach(json_object_get(list, "images"), i, im)
		if (!strcmp(json_string_value(json_object_get(im, "id")) ?: "", id))
			return im;
	return NULL;
}

static void progress_line(json_t *pf, bool final)
{
	uint64_t total = (uint64_t)json_integer_value(json_object_get(pf, "total_bytes"));
	uint64_t done = (uint64_t)json_integer_value(json_object_get(pf, "done_bytes"));
	double secs = json_real_value(json_object_get(pf, "seconds"));
	const char *state = json_string_value(json_object_get(pf, "state")) ?: "?";
	double rate = secs > 0 ? (double)done / secs : 0;
	char a[32], b[32], r[32], eta[32] = "";

	sk_human_size(done, a, sizeof(a));
	sk_human_size(total, b, sizeof(b));
	sk_human_size((uint64_t)rate, r, sizeof(r));
	if (!final && rate > 0 && total > done)
		snprintf(eta, sizeof(eta), "  ETA %.0f s", (double)(total - done) / rate);
	fprintf(stderr, "\rprefetch: %s of %s (%3.0f%%)  %s/s%s  %s\033[K%s", a, b,
		total ? 100.0 * (double)done / (double)total : 100.0, r, eta, state,
		final ? "\n" : "");
}

int cmd_prefetch(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "all", no_argument, NULL, 'a' },
		{ "bandwidth", required_argument, NULL, 'b' },
		{ "id", required_argument, NULL, 'i' },
		{ "no-wait", no_argument, NULL, 'W' },
		{ "json", no_argument, NULL, 'J' },
		{ "socket", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	const char *sock = cli_default_socket(), *want_id = NULL, *state = "?";
	bool all = false, wait = true, json = false, tty = isatty(2);
	bool said_waiting = false;
	uint64_t bw = 0;
	char id[200], path[300];
	json_t *body, *r, *pf = NULL;
	int c, ret;

	while ((c = getopt_long(argc, argv, "ab:h", opts, NULL)) != -1) {
		switch (c) {
		case 'a': all = true; break;
		case 'b':
			if (sk_parse_size(optarg, &bw)) {
				cli_err("--bandwidth %s: bytes per second, e.g. 10M", optarg);
				return 2;
			}
			break;
		case 'i': want_id = optarg; break;
		case 'W': wait = false; break;
		case 'J': json = true; break;
		case 's': sock = optarg; break;
		case 'h': fputs(prefetch_usage, stdout); return 0;
		default: fputs(prefetch_usage, stderr); return 2;
		}
	}
	if (argc - optind != 1) {
		fputs(prefetch_usage, stderr);
		return 2;
	}
	if (resolve(sock, argv[optind], want_id, id, sizeof(id)))
		return 1;
	body = json_pack("{s:b}", "all", all);
	if (bw)
		json_object_set_new(body, "bandwidth", json_integer((json_int_t)bw));
	snprintf(path, sizeof(path), "/v1/images/%s/prefetch", id);
	ret = cli_api(sock, "POST", path, body, &r);
	json_decref(body);
	if (ret)
		return 1;
	json_decref(r);
	if (!wait) {
		printf("prefetch of %s queued\n", id);
		return 0;
	}
	for (;;) {
		struct timespec ts = { 0, 200 * 1000 * 1000 };
		json_t *im;

		if (cli_api(sock, "GET", "/v1/images", NULL, &r))
			return 1;
		im = image_of(r, id);
		json_decref(pf);
		pf = im ? json_incref(json_object_get(im, "prefetch")) : NULL;
		json_decref(r);
		if (!pf) {
			cli_err("image %s went away while prefetching", id);
			return 1;
		}
		state = json_string_value(json_object_get(pf, "state")) ?: "?";
		if (strcmp(state, "queued") && strcmp(state, "running") &&
		    strcmp(state, "waiting"))
			break;
		if (!strcmp(state, "waiting") && !said_waiting) {
			fprintf(stderr, "%sprefetch: waiting for the kernel to open the image's "
				"blobs (cachefiles: mount it)\n", tty ? "\r\033[K" : "");
			said_waiting = true;
		}
		if (tty)
			progress_line(pf, false);
		nanosleep(&ts, NULL);
	}
	if (tty)
		progress_line(pf, true);
	if (json) {
		json_object_set_new(pf, "id", json_string(id));
		json_dumpf(pf, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
		putchar('\n');
	} else {
		char a[32], f[32];

		sk_human_size((uint64_t)json_integer_value(json_object_get(pf, "done_bytes")),
			      a, sizeof(a));
		sk_human_size((uint64_t)json_integer_value(json_object_get(pf, "fetched_bytes")),
			      f, sizeof(f));
		printf("prefetch of %s %s: %s ready, %s fetched in %.2f s\n", id, state, a, f,
		       json_real_value(json_object_get(pf, "seconds")));
	}
	if (strcmp(state, "done")) {
		const char *err = json_string_value(json_object_get(pf, "error"));

		cli_err("prefetch of %s %s%s%s", id, state, err ? ": " : "", err ? err : "");
		json_decref(pf);
		return 1;
	}
	json_decref(pf);
	return 0;
}

/* A path as a trace line holds it: tab, newline and backslash escaped. */
static void put_path(FILE *f, const char *p)
{
	for (; *p; p++) {
		switch (*p) {
		case '\\': fputs("\\\\", f); break;
		case '\t': fputs("\\t", f); break;
		case '\n': fputs("\\n", f); break;
		default: fputc(*p, f);
		}
	}
}

static int write_trace(FILE *f, json_t *t)
{
	size_t i, k;
	json_t *file, *ch;

	fprintf(f, "# skiff trace v1\n# image %s (id %s, manifest sha256:%s)\n"
		"# %lld reads reached skiffd in %.1f s%s\n"
		"# path<TAB>chunk indexes read; first-read order\n",
		json_string_value(json_object_get(t, "ref")) ?: "?",
		json_string_value(json_object_get(t, "id")) ?: "?",
		json_string_value(json_object_get(t, "manifest")) ?: "?",
		(long long)json_integer_value(json_object_get(t, "reads")),
		json_real_value(json_object_get(t, "seconds")),
		json_is_true(json_object_get(t, "truncated")) ? " (truncated)" : "");
	json_array_foreach(json_object_get(t, "files"), i, file) {
		long long prev = -2, run = -1;

		put_path(f, json_string_value(json_object_get(file, "path")) ?: "");
		fputc('\t', f);
		/* chunk lists come sorted: print runs as a-b */
		json_array_foreach(json_object_get(file, "chunks"), k, ch) {
			long long v = json_integer_value(ch);

			if (v == prev + 1) {
				prev = v;
				continue;
			}
			if (run >= 0)
				fprintf(f, run == prev ? "%lld," : "%lld-%lld,", run, prev);
			run = prev = v;
		}
		if (run >= 0)
			fprintf(f, run == prev ? "%lld" : "%lld-%lld", run, prev);
		fputc('\n', f);
	}
	return ferror(f) ? -EIO : 0;
}

int cmd_trace(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "output", required_argument, NULL, 'o' },
		{ "socket", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	const char *sock = cli_default_socket(), *out = NULL, *action;
	char mnt[PATH_MAX], id[200], path[300];
	json_t *body, *r;
	int c, ret;

	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'o': out = optarg; break;
		case 's': sock = optarg; break;
		case 'h': fputs(trace_usage, stdout); return 0;
		default: fputs(trace_usage, stderr); return 2;
		}
	}
	if (argc - optind != 2 || (strcmp(argv[optind], "start") &&
				   strcmp(argv[optind], "stop"))) {
		fputs(trace_usage, stderr);
		return 2;
	}
	action = argv[optind];
	if (!realpath(argv[optind + 1], mnt)) {
		cli_err("%s: %s", argv[optind + 1], strerror(errno));
		return 1;
	}
	ret = cli_find_by_mount(sock, mnt, id, sizeof(id));
	if (ret == -ENOENT)
		cli_err("%s: no skiff image is mounted there", mnt);
	if (ret)
		return 1;
	body = json_pack("{s:s}", "action", action);
	snprintf(path, sizeof(path), "/v1/images/%s/trace", id);
	ret = cli_api(sock, "POST", path, body, &r);
	json_decref(body);
	if (ret)
		return 1;
	if (!strcmp(action, "start")) {
		printf("recording reads of %s (id %s)\n", mnt, id);
	} else {
		FILE *f = out ? fopen(out, "w") : stdout;

		if (!f) {
			cli_err("%s: %s", out, strerror(errno));
			json_decref(r);
			return 1;
		}
		ret = write_trace(f, r);
		if (out && fclose(f))
			ret = -errno;
		if (ret) {
			cli_err("writing %s: %s", out ? out : "stdout", strerror(-ret));
			json_decref(r);
			return 1;
		}
		if (out)
			fprintf(stderr, "trace of %s: %zu files, %lld reads, written to %s\n",
				mnt, json_array_size(json_object_get(r, "files")),
				(long long)json_integer_value(json_object_get(r, "reads")), out);
	}
	json_decref(r);
	return 0;
}
