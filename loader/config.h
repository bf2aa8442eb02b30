/* SPDX-License-Identifier: Apache-2.0 */
/*
 * skiffd's configuration: struct ld_config and the one table of its
 * options. Each option is a key of skiffd.json and a flag of skiffd; both
 * go through the same range check and error text (ld_opt_set_json,
 * ld_opt_set_arg), the defaults are the table's, and --help, the man
 * pages (checked by tests/options.t) and --dump-options show the table.
 */
#ifndef SKIFF_LOADER_CONFIG_H
#define SKIFF_LOADER_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../backend/remote.h"
#include "../common/sk.h"

/* Values are the index of their name in the option's choices. */
enum ld_frontend_kind { LD_FE_AUTO, LD_FE_FANOTIFY, LD_FE_CACHEFILES };
enum { LD_LOG_ERROR, LD_LOG_WARN, LD_LOG_INFO, LD_LOG_DEBUG };

struct ld_config {
	char cache_dir[PATH_MAX];
	char work_dir[PATH_MAX];
	char socket_path[PATH_MAX];
	unsigned int threads;
	uint32_t merge_limit;
	uint32_t readahead;
	uint32_t ahead;		/* stored bytes of a background read-ahead window */
	int log_level;
	enum ld_frontend_kind frontend;
	int ready_fd;		/* -1: none; written and closed when serving */
	bool no_holder;		/* no holder process (debugging) */
	unsigned int prefetch_threads;	/* prefetch's own threads */
	uint64_t prefetch_bandwidth;	/* bytes/s prefetch may fetch, 0: any */
	bool prefetch_on_mount;	/* run an image's prefetch list at mount */
	/* bytes a manifest may claim for a bootstrap: more is refused
	 * before anything is read */
	uint64_t max_bootstrap_size;
	uint64_t cache_max;	/* bytes of cache_dir skiffd keeps (0: no limit) */
	unsigned int evict_grace;	/* seconds a chunk read is safe from eviction */
	struct be_config backend;	/* HTTP and registry sources; owns hosts */
};

enum ld_opt_type {
	LD_OPT_INT,	/* a JSON integer; a flag's decimal digits */
	LD_OPT_SIZE,	/* bytes: an integer, or a string like "8M" (sk_parse_size) */
	LD_OPT_BOOL,	/* JSON true or false; a flag's "true" or "false" */
	LD_OPT_STR,	/* a non-empty string that fits its field */
	LD_OPT_ENUM,	/* one of choices, stored as its index */
};

struct ld_opt {
	const char *key;	/* JSON key; "prefetch.threads" is "threads" in "prefetch" */
	const char *flag;	/* long flag without "--" */
	char short_flag;	/* 0: none */
	enum ld_opt_type type;
	const char *meta;	/* the flag's argument in --help */
	uint64_t min, max;	/* INT, SIZE */
	uint64_t def;		/* INT, SIZE, BOOL; ENUM: index of the default */
	const char *def_str;	/* STR */
	const char *const *choices;	/* ENUM, NULL-terminated */
	size_t off;		/* of the field in struct ld_config */
	size_t size;		/* of the field: a number's width, a string's room */
	const char *help;	/* one line for --help */
};

extern const struct ld_opt ld_opts[];
extern const size_t ld_nopts;

void ld_config_defaults(struct ld_config *c);
/* Reads skiffd.json; keys not present keep their value. "backend" goes to
 * be_config_parse. Errors name the file and the key. */
int ld_config_load(struct ld_config *c, const char *path, struct sk_err *e);

/* The option of a JSON key ("prefetch.threads") or flag ("prefetch-threads"). */
const struct ld_opt *ld_opt_by_key(const char *key);
const struct ld_opt *ld_opt_by_flag(const char *flag);
/* Set o from a JSON value (errors name "key") or a flag's argument
 * (errors name --flag); the same check and message after the name. */
struct json_t;
int ld_opt_set_json(struct ld_config *c, const struct ld_opt *o,
		    struct json_t *v, struct sk_err *e);
int ld_opt_set_arg(struct ld_config *c, const struct ld_opt *o,
		   const char *arg, struct sk_err *e);
/* "integer 1..1024, default 16": the type, range and default as --help
 * and both man pages state them. */
void ld_opt_describe(const struct ld_opt *o, char *buf, size_t len);
/* The table as a JSON array, for tests/options.t; NULL when out of memory. */
char *ld_opt_dump(void);

#endif
