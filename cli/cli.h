/* SPDX-License-Identifier: Apache-2.0 */
#ifndef SKIFF_CLI_H
#define SKIFF_CLI_H

#include <stdio.h>

#include "../backend/store.h"
#include "../format/bootstrap.h"
#include "../format/reader.h"

/* An image opened from the local store, verified from manifest down to
 * the bootstrap: the bootstrap's digest and its blob table match the
 * manifest. Blob contents are verified chunk by chunk as they are read. */
struct cli_image {
	struct be_store store;
	struct be_image img;
	void *bs_buf;
	size_t bs_size;
	struct fmt_bs bs;
	int *fds;
	struct fmt_reader rd;
	int bs_open, rd_open;
};

int cli_image_open(struct cli_image *ci, const char *ref, struct sk_err *e);
void cli_image_close(struct cli_image *ci);

/* Prints a file name with bytes that are not printable ASCII as \xNN. */
void cli_put_name(FILE *f, const char *name, size_t len);
void cli_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

struct fmt_build_opts;
/* The builder options of build and convert: c (--chunk-size), C
 * (--compress), l (--level), j (--threads), CLI_OPT_MAX_EXPANSION
 * (--max-expansion). 1: c was one and o took its value; 0: c is another
 * option; -1: a bad value (said on stderr). */
#define CLI_OPT_MAX_EXPANSION 0x300
#define CLI_BUILD_OPT_MAX_EXPANSION \
	{ "max-expansion", required_argument, NULL, CLI_OPT_MAX_EXPANSION }
#define CLI_BUILD_USAGE_MAX_EXPANSION \
"      --max-expansion RATIO[,SIZE]  files may total (holes count) at most\n" \
"                         RATIO times the bytes stored (per layer), or SIZE\n" \
"                         if more (default 16,16G); off: no limit\n"
int cli_build_opt(int c, const char *arg, struct fmt_build_opts *o);
/* After a build failed with ret: a hint for the user, "" if none. */
const char *cli_build_hint(int ret);
struct fmt_prefetch_list;
/* Reads a --prefetch-list file into pl and points o at it (pl owns the
 * paths: fmt_prefetch_list_free). 0, or -errno said on stderr. */
int cli_prefetch_list_load(const char *path, struct fmt_prefetch_list *pl,
			   struct fmt_build_opts *o);

/* Talking to skiffd (cli/cmd_mount.c): the control socket to use, one
 * API call (0 and *out, the parsed reply, or -errno after a message), the
 * image mounted at mnt, and IMAGE with its directory made absolute. */
#include <jansson.h>
const char *cli_default_socket(void);
int cli_api(const char *sock, const char *method, const char *path,
	    json_t *body, json_t **out);
/* The same, with no message: for polling while skiffd may be away. */
int cli_api_quiet(const char *sock, const char *method, const char *path,
		  json_t *body, json_t **out);
int cli_find_by_mount(const char *sock, const char *mnt, char *id, size_t idlen);
int cli_absolute_ref(const char *ref, char *out, size_t outlen);

int cmd_build(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_cat(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_export_cache(int argc, char **argv);
int cmd_mount(int argc, char **argv);
int cmd_daemon(int argc, char **argv);
int cmd_umount(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_stop(int argc, char **argv);
int cmd_gc(int argc, char **argv);
int cmd_push(int argc, char **argv);
int cmd_prefetch(int argc, char **argv);
int cmd_trace(int argc, char **argv);

#endif
