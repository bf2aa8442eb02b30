/* SPDX-License-Identifier: Apache-2.0 */
/* skiff: the command line. Each command lives in cmd_*.c. */
#include "cli.h"

#include <string.h>

#ifndef SKIFF_VERSION
#define SKIFF_VERSION "0.1.0"
#endif

static const struct {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
} cmds[] = {
	{ "build", cmd_build, "build an image from a directory" },
	{ "convert", cmd_convert, "convert an OCI or Docker image into a skiff image" },
	{ "inspect", cmd_inspect, "summarise an image" },
	{ "ls", cmd_ls, "list a directory of an image" },
	{ "cat", cmd_cat, "print a file of an image" },
	{ "check", cmd_check, "verify an image's structure and digests" },
	{ "export-cache", cmd_export_cache, "write the bootstrap and cache files for a daemon-less mount" },
	{ "mount", cmd_mount, "mount an image lazily through skiffd" },
	{ "umount", cmd_umount, "unmount a skiff mount" },
	{ "status", cmd_status, "show skiffd's images, cache fill and counters" },
	{ "stop", cmd_stop, "stop skiffd (refused while lazy mounts are up)" },
	{ "gc", cmd_gc, "remove cache files no registered image uses" },
	{ "daemon", cmd_daemon, "upgrade: replace skiffd's binary with mounts up" },
	{ "prefetch", cmd_prefetch, "pre-warm an image's cache (its prefetch list, or --all)" },
	{ "trace", cmd_trace, "record which files a mounted image reads (start|stop)" },
	{ "push", cmd_push, "push an image to an OCI registry" },
};

static void usage(FILE *f)
{
	fputs("usage: skiff COMMAND [options] ...\n\ncommands:\n", f);
	for (size_t i = 0; i < SK_ARRAY_SIZE(cmds); i++)
		fprintf(f, "  %-13s %s\n", cmds[i].name, cmds[i].help);
	fputs("\nskiff COMMAND --help describes each command; see skiff(1).\n", f);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
	    !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		printf("skiff %s\n", SKIFF_VERSION);
		return 0;
	}
	for (size_t i = 0; i < SK_ARRAY_SIZE(cmds); i++)
		if (!strcmp(argv[1], cmds[i].name))
			return cmds[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "skiff: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
