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

int cmd_build(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_cat(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_export_cache(int argc, char **argv);
int cmd_mount(int argc, char **argv);
int cmd_umount(int argc, char **argv);
int cmd_status(int argc, char **argv);

#endif
