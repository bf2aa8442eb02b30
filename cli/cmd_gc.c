/* SPDX-License-Identifier: Apache-2.0 */
/*
 * skiff gc: remove the cache files no registered image uses, through
 * skiffd (which knows what is in use and keeps a registration from
 * linking a file while it goes).
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/sk.h"
#include "cli.h"

static const char gc_usage[] =
"usage: skiff gc [options]\n"
"\n"
"Removes what skiffd keeps in its cache directory that no registered image\n"
"uses: the cache files of blobs (with their records of verified chunks),\n"
"kept chunk tables and bootstraps. They stay after an image is unmounted\n"
"so that the next image with the same blobs fetches nothing; the next\n"
"image that needs them fetches them again. Files written in the last\n"
"--min-age seconds stay, and chunk tables and bootstraps stay while an\n"
"image is being registered. The kernel's cachefiles cache is culled by\n"
"cachefiles itself.\n"
"\n"
"  -n, --dry-run          say what would go, remove nothing\n"
"      --min-age SECONDS  spare files written more recently (default 60)\n"
"      --json             print skiffd's answer as JSON\n"
"  -s, --socket PATH      skiffd's control socket (default $SKIFF_SOCKET\n"
"                         or /run/skiff/skiffd.sock)\n"
"  -h, --help             this help\n";

int cmd_gc(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dry-run", no_argument, NULL, 'n' },
		{ "min-age", required_argument, NULL, 'a' },
		{ "json", no_argument, NULL, 'j' },
		{ "socket", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	const char *sock = cli_default_socket();
	bool dry = false, json = false;
	double min_age = 60;
	json_t *body, *r, *f;
	char *end;
	char by[32], yb[32];
	size_t i;
	int c;

	while ((c = getopt_long(argc, argv, "ns:h", opts, NULL)) != -1) {
		switch (c) {
		case 'n': dry = true; break;
		case 'j': json = true; break;
		case 's': sock = optarg; break;
		case 'a':
			errno = 0;
			min_age = strtod(optarg, &end);
			if (errno || end == optarg || *end || !isfinite(min_age) || min_age < 0) {
				cli_err("--min-age %s: seconds, 0 or more", optarg);
				return 2;
			}
			break;
		case 'h':
			fputs(gc_usage, stdout);
			return 0;
		default:
			fputs(gc_usage, stderr);
			return 2;
		}
	}
	if (argc != optind) {
		fputs(gc_usage, stderr);
		return 2;
	}
	body = json_pack("{s:b, s:f}", "dry_run", dry, "min_age", min_age);
	if (!body || cli_api(sock, "POST", "/v1/gc", body, &r)) {
		json_decref(body);
		return 1;
	}
	json_decref(body);
	if (json) {
		json_dumpf(r, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
		fputc('\n', stdout);
		json_decref(r);
		return 0;
	}
	json_array_foreach(json_object_get(r, "files"), i, f) {
		sk_human_size((uint64_t)json_integer_value(json_object_get(f, "bytes")), by, sizeof(by));
		printf("%s%s  %s\n", dry ? "would remove " : "removed ",
		       json_string_value(json_object_get(f, "path")), by);
	}
	sk_human_size((uint64_t)json_integer_value(json_object_get(r, "bytes")), by, sizeof(by));
	sk_human_size((uint64_t)json_integer_value(json_object_get(r, "young_bytes")), yb, sizeof(yb));
	printf("%s %zu files, %s; %s more unused but written in the last %g s%s\n",
	       dry ? "would remove" : "removed", json_array_size(json_object_get(r, "files")), by,
	       yb, min_age,
	       json_is_true(json_object_get(r, "registration_under_way")) ?
		       " or kept for a registration under way" : "");
	json_decref(r);
	return 0;
}
