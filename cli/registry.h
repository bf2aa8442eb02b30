/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the commands that talk to a registry share (skiff push, and skiff
 * convert with docker:// references): the connection options and the
 * upload of one blob (HEAD first, a cross-repository mount when asked,
 * else one PUT or PATCH chunks).
 */
#ifndef SKIFF_CLI_REGISTRY_H
#define SKIFF_CLI_REGISTRY_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>

#include "../backend/remote.h"

/* getopt codes of the shared options (above any character) */
enum {
	CLI_OPT_PLAIN_HTTP = 0x200,
	CLI_OPT_INSECURE,
	CLI_OPT_CA_FILE,
	CLI_OPT_DOCKER_CONFIG,
	CLI_OPT_UPLOAD_CHUNK,	/* push: --chunk-size, convert: --upload-chunk-size */
	CLI_OPT_TOKEN_REALM,
};

/* Entries of a command's struct option table. */
#define CLI_REG_OPTIONS \
	{ "plain-http", no_argument, NULL, CLI_OPT_PLAIN_HTTP }, \
	{ "insecure", no_argument, NULL, CLI_OPT_INSECURE }, \
	{ "ca-file", required_argument, NULL, CLI_OPT_CA_FILE }, \
	{ "docker-config", required_argument, NULL, CLI_OPT_DOCKER_CONFIG }, \
	{ "token-realm", required_argument, NULL, CLI_OPT_TOKEN_REALM }

/* Their lines of a usage text. */
#define CLI_REG_USAGE \
"      --plain-http       the registry speaks http://, not https://\n" \
"      --insecure         do not verify the registry's TLS certificate\n" \
"      --ca-file FILE     CA certificates to verify the registry (and its\n" \
"                         token service) with\n" \
"      --docker-config FILE  credentials file (default $DOCKER_CONFIG/config.json\n" \
"                         or ~/.docker/config.json)\n" \
"      --token-realm URL  a token service on another host that may have the\n" \
"                         credentials (repeatable; its own host's and Docker\n" \
"                         Hub's are trusted already)\n"

/*
 * The options as given, and the configuration a client is opened with.
 * cli_reg_open points cfg.hosts at hc: a client borrows cfg, so this
 * struct must neither move nor go while the client is open.
 */
struct cli_reg_opts {
	struct be_config cfg;
	struct be_host_cfg hc;
	bool plain_http, insecure;
	uint64_t upload_chunk;		/* 0: one request per blob */
	/* --token-realm: realms trusted with the credentials */
	char token_realms[BE_TOKEN_REALMS][512];
	unsigned int ntoken_realms;
};

void cli_reg_opts_init(struct cli_reg_opts *o);
/* One option of CLI_REG_OPTIONS or CLI_OPT_UPLOAD_CHUNK: 1 taken, 0 not
 * one of them, -1 a bad value (said on stderr). */
int cli_reg_opt(int c, const char *arg, struct cli_reg_opts *o);
/* A client of ref's repository (ref: docker://), the flags applying to
 * ref's host; push: also push rights. */
int cli_reg_open(struct cli_reg_opts *o, const struct be_ref *ref, bool push,
		 struct be_reg **out, struct sk_err *e);

struct cli_push_stats {
	unsigned int uploaded, skipped, mounted;
	uint64_t uploaded_bytes;
};

/* A blob from memory: nothing when the registry has it (HEAD), mounted
 * from repository from (may be NULL) when it can, else uploaded in
 * chunks of chunk bytes (0: one request). progress: a line on stderr. */
int cli_push_mem(struct be_reg *r, const char *hex, const void *data,
		 size_t len, const char *from, size_t chunk, bool progress,
		 struct cli_push_stats *ps, struct sk_err *e);
/* The same from an open file of size bytes (mapped only when uploaded);
 * name is for messages. */
int cli_push_fd(struct be_reg *r, const char *hex, uint64_t size, int fd,
		const char *name, const char *from, size_t chunk,
		bool progress, struct cli_push_stats *ps, struct sk_err *e);
/* The same from a file. */
int cli_push_file(struct be_reg *r, const char *hex, uint64_t size,
		  const char *path, const char *from, size_t chunk,
		  bool progress, struct cli_push_stats *ps, struct sk_err *e);
/* "N blobs uploaded (SIZE), N already there, N mounted" */
void cli_push_summary(const struct cli_push_stats *ps, char *out, size_t len);

#endif
