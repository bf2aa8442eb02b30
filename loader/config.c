/* SPDX-License-Identifier: Apache-2.0 */
#include "config.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIELD(f) .off = offsetof(struct ld_config, f), \
	.size = sizeof(((struct ld_config *)0)->f)

static const char *const frontends[] = { "auto", "fanotify", "cachefiles", NULL };
static const char *const log_levels[] = { "error", "warn", "info", "debug", NULL };

const struct ld_opt ld_opts[] = {
	{ .key = "cache_dir", .flag = "cache-dir", .type = LD_OPT_STR, .meta = "DIR",
	  .def_str = "/var/cache/skiff", FIELD(cache_dir),
	  .help = "cache files and bootstraps" },
	{ .key = "work_dir", .flag = "work-dir", .type = LD_OPT_STR, .meta = "DIR",
	  .def_str = "/var/lib/skiff", FIELD(work_dir),
	  .help = "state: registered images" },
	{ .key = "socket", .flag = "socket", .type = LD_OPT_STR, .meta = "PATH",
	  .def_str = "/run/skiff/skiffd.sock", FIELD(socket_path),
	  .help = "control socket" },
	{ .key = "frontend", .flag = "frontend", .type = LD_OPT_ENUM, .meta = "NAME",
	  .choices = frontends, .def = LD_FE_AUTO, FIELD(frontend),
	  .help = "how the kernel asks for data" },
	{ .key = "threads", .flag = "threads", .short_flag = 'j', .type = LD_OPT_INT,
	  .meta = "N", .min = 1, .max = 1024, .def = 16, FIELD(threads),
	  .help = "request workers" },
	{ .key = "merge_limit", .flag = "merge-limit", .type = LD_OPT_SIZE, .meta = "SIZE",
	  .min = 4096, .max = 256u << 20, .def = 8u << 20, FIELD(merge_limit),
	  .help = "largest merged backend read" },
	{ .key = "readahead", .flag = "readahead", .type = LD_OPT_SIZE, .meta = "SIZE",
	  .min = 0, .max = 256u << 20, .def = 1u << 20, FIELD(readahead),
	  .help = "stored bytes fetched with a miss: the rest of a small file, more for a reader going through files in order" },
	/* off by default: on a slow link, windows fetched ahead of a
	 * program starting up compete with what it reads next */
	{ .key = "ahead", .flag = "ahead", .type = LD_OPT_SIZE, .meta = "SIZE",
	  .min = 0, .max = 256u << 20, .def = 0, FIELD(ahead),
	  .help = "read-ahead kept in flight for a sequential reader" },
	{ .key = "log_level", .flag = "log-level", .type = LD_OPT_ENUM, .meta = "LEVEL",
	  .choices = log_levels, .def = LD_LOG_INFO, FIELD(log_level),
	  .help = "what goes to standard error" },
	/* a bootstrap holds ~100-300 bytes per file: room for a million
	 * files, and a bound on what a manifest can make skiffd store */
	{ .key = "max_bootstrap_size", .flag = "max-bootstrap-size", .type = LD_OPT_SIZE,
	  .meta = "SIZE", .min = 4096, .max = 4ull << 30, .def = 256u << 20,
	  FIELD(max_bootstrap_size),
	  .help = "largest bootstrap an image's manifest may name" },
	/* 0: none. The walk that counts the cache runs when fills wrote a
	 * 32nd of the limit, so the limit may be passed by that much */
	{ .key = "cache.max_size", .flag = "cache-max-size", .type = LD_OPT_SIZE, .meta = "SIZE",
	  .min = 0, .max = 1ull << 50, .def = 0, FIELD(cache_max),
	  .help = "bytes of the cache directory kept (0: no limit)" },
	/* how long after a read let through its bytes may go: far longer
	 * than a read takes from the event to its copy */
	{ .key = "cache.evict_grace", .flag = "cache-evict-grace", .type = LD_OPT_INT,
	  .meta = "SECONDS", .min = 1, .max = 86400, .def = 60, FIELD(evict_grace),
	  .help = "seconds a chunk stays after a read asked for it" },
	{ .key = "prefetch.threads", .flag = "prefetch-threads", .type = LD_OPT_INT,
	  .meta = "N", .min = 1, .max = 64, .def = 2, FIELD(prefetch_threads),
	  .help = "threads that prefetch" },
	/* the bound only keeps a typo from meaning "no limit" silently */
	{ .key = "prefetch.bandwidth", .flag = "prefetch-bandwidth", .type = LD_OPT_SIZE,
	  .meta = "SIZE", .min = 0, .max = 1ull << 40, .def = 0, FIELD(prefetch_bandwidth),
	  .help = "bytes per second prefetch may fetch (0: no limit)" },
	{ .key = "prefetch.on_mount", .flag = "prefetch-on-mount", .type = LD_OPT_BOOL,
	  .meta = "BOOL", .def = 1, FIELD(prefetch_on_mount),
	  .help = "prefetch an image's list when it is mounted" },
};
const size_t ld_nopts = SK_ARRAY_SIZE(ld_opts);

static void store_num(struct ld_config *c, const struct ld_opt *o, uint64_t v)
{
	char *p = (char *)c + o->off;

	if (o->type == LD_OPT_BOOL) {
		*(bool *)p = v != 0;
	} else if (o->size == sizeof(uint64_t)) {
		memcpy(p, &v, sizeof(uint64_t));
	} else {
		/* unsigned int, uint32_t, int and the enums: the range
		 * check keeps v within each */
		uint32_t v32 = (uint32_t)v;

		memcpy(p, &v32, sizeof(v32));
	}
}

void ld_config_defaults(struct ld_config *c)
{
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < ld_nopts; i++) {
		const struct ld_opt *o = &ld_opts[i];

		if (o->type == LD_OPT_STR)
			snprintf((char *)c + o->off, o->size, "%s", o->def_str);
		else
			store_num(c, o, o->def);
	}
	c->ready_fd = -1;
	be_config_defaults(&c->backend);
}

const struct ld_opt *ld_opt_by_key(const char *key)
{
	for (size_t i = 0; i < ld_nopts; i++)
		if (!strcmp(ld_opts[i].key, key))
			return &ld_opts[i];
	return NULL;
}

const struct ld_opt *ld_opt_by_flag(const char *flag)
{
	for (size_t i = 0; i < ld_nopts; i++)
		if (!strcmp(ld_opts[i].flag, flag))
			return &ld_opts[i];
	return NULL;
}

/* 4096 -> "4K", 268435456 -> "256M"; a size as --help and the man
 * pages write it. */
static void fmt_size(char *buf, size_t len, uint64_t v)
{
	static const char units[] = "GMK";

	for (unsigned int i = 0; v && i < 3; i++) {
		unsigned int shift = 30 - 10 * i;

		if (!(v & ((1ull << shift) - 1))) {
			snprintf(buf, len, "%llu%c", (unsigned long long)(v >> shift), units[i]);
			return;
		}
	}
	snprintf(buf, len, "%llu", (unsigned long long)v);
}

/* "auto, fanotify or cachefiles" */
static void fmt_choices(char *buf, size_t len, const char *const *ch)
{
	size_t n = 0, used = 0;

	while (ch[n])
		n++;
	buf[0] = '\0';
	for (size_t i = 0; i < n && used < len; i++)
		used += (size_t)snprintf(buf + used, len - used, "%s%s",
					 i == 0 ? "" : i + 1 == n ? " or " : ", ", ch[i]);
}

void ld_opt_describe(const struct ld_opt *o, char *buf, size_t len)
{
	char lo[32], hi[32], def[32], ch[128];

	switch (o->type) {
	case LD_OPT_INT:
		snprintf(buf, len, "integer %llu..%llu, default %llu",
			 (unsigned long long)o->min, (unsigned long long)o->max,
			 (unsigned long long)o->def);
		break;
	case LD_OPT_SIZE:
		fmt_size(lo, sizeof(lo), o->min);
		fmt_size(hi, sizeof(hi), o->max);
		fmt_size(def, sizeof(def), o->def);
		snprintf(buf, len, "size %s..%s, default %s", lo, hi, def);
		break;
	case LD_OPT_BOOL:
		snprintf(buf, len, "boolean, default %s", o->def ? "true" : "false");
		break;
	case LD_OPT_STR:
		snprintf(buf, len, "string, default %s", o->def_str);
		break;
	case LD_OPT_ENUM:
		fmt_choices(ch, sizeof(ch), o->choices);
		snprintf(buf, len, "%s; default %s", ch, o->choices[o->def]);
		break;
	}
}

/*
 * The one check of a value, from JSON or a flag: text for STR and ENUM,
 * a number for the rest (valid false: not one). name is how the user
 * spelled the option, "\"key\"" or "--flag"; the message after it is the
 * same either way.
 */
static int opt_set(struct ld_config *c, const struct ld_opt *o, const char *name,
		   const char *text, bool valid, uint64_t v, struct sk_err *e)
{
	char lo[32], hi[32], ch[128];

	switch (o->type) {
	case LD_OPT_INT:
		if (!valid || v < o->min || v > o->max) {
			sk_err_set(e, "%s must be %llu to %llu", name,
				   (unsigned long long)o->min, (unsigned long long)o->max);
			return -EINVAL;
		}
		break;
	case LD_OPT_SIZE:
		if (!valid || v < o->min || v > o->max) {
			fmt_size(lo, sizeof(lo), o->min);
			fmt_size(hi, sizeof(hi), o->max);
			sk_err_set(e, "%s must be %llu to %llu bytes (%s to %s)", name,
				   (unsigned long long)o->min, (unsigned long long)o->max,
				   lo, hi);
			return -EINVAL;
		}
		break;
	case LD_OPT_BOOL:
		if (!valid) {
			sk_err_set(e, "%s must be true or false", name);
			return -EINVAL;
		}
		break;
	case LD_OPT_STR:
		if (!text || !*text || strlen(text) >= o->size) {
			sk_err_set(e, "%s must be a non-empty string shorter than %zu bytes",
				   name, o->size);
			return -EINVAL;
		}
		memcpy((char *)c + o->off, text, strlen(text) + 1);
		return 0;
	case LD_OPT_ENUM:
		for (v = 0; text && o->choices[v]; v++)
			if (!strcmp(text, o->choices[v]))
				break;
		if (!text || !o->choices[v]) {
			fmt_choices(ch, sizeof(ch), o->choices);
			sk_err_set(e, "%s must be %s", name, ch);
			return -EINVAL;
		}
		break;
	}
	store_num(c, o, v);
	return 0;
}

int ld_opt_set_json(struct ld_config *c, const struct ld_opt *o, json_t *v,
		    struct sk_err *e)
{
	char name[64];
	uint64_t n = 0;
	bool valid = false;

	snprintf(name, sizeof(name), "\"%s\"", o->key);
	switch (o->type) {
	case LD_OPT_INT:
	case LD_OPT_SIZE:
		/* a negative number is out of range, not a huge one */
		if (json_is_integer(v) && json_integer_value(v) >= 0) {
			n = (uint64_t)json_integer_value(v);
			valid = true;
		} else if (o->type == LD_OPT_SIZE && json_is_string(v)) {
			valid = sk_parse_size(json_string_value(v), &n) == 0;
		}
		break;
	case LD_OPT_BOOL:
		valid = json_is_boolean(v);
		n = json_is_true(v);
		break;
	case LD_OPT_STR:
	case LD_OPT_ENUM:
		break;
	}
	return opt_set(c, o, name, json_string_value(v), valid, n, e);
}

int ld_opt_set_arg(struct ld_config *c, const struct ld_opt *o, const char *arg,
		   struct sk_err *e)
{
	char name[64], *end;
	uint64_t n = 0;
	bool valid = false;

	snprintf(name, sizeof(name), "--%s", o->flag);
	switch (o->type) {
	case LD_OPT_INT:
		/* digits only: strtoull would take blanks and a sign */
		if (arg[0] >= '0' && arg[0] <= '9') {
			errno = 0;
			n = strtoull(arg, &end, 10);
			valid = !errno && !*end;
		}
		break;
	case LD_OPT_SIZE:
		valid = sk_parse_size(arg, &n) == 0;
		break;
	case LD_OPT_BOOL:
		valid = !strcmp(arg, "true") || !strcmp(arg, "false");
		n = !strcmp(arg, "true");
		break;
	case LD_OPT_STR:
	case LD_OPT_ENUM:
		break;
	}
	return opt_set(c, o, name, arg, valid, n, e);
}

/* The options of section "prefix" (an object such as "prefetch"), or of
 * the top level when prefix is NULL. */
static int load_object(struct ld_config *c, json_t *obj, const char *prefix,
		       struct sk_err *e)
{
	char full[128];
	const char *key;
	json_t *v;
	int ret;

	json_object_foreach(obj, key, v) {
		const struct ld_opt *o;
		size_t n;

		if (!prefix && !strcmp(key, "backend")) {
			ret = be_config_parse(v, &c->backend, e);
			if (ret)
				return ret;
			continue;
		}
		if (prefix)
			snprintf(full, sizeof(full), "%s.%s", prefix, key);
		else
			snprintf(full, sizeof(full), "%s", key);
		o = ld_opt_by_key(full);
		if (o) {
			ret = ld_opt_set_json(c, o, v, e);
			if (ret)
				return ret;
			continue;
		}
		/* a section: a key that options' keys start with */
		n = strlen(full);
		for (size_t i = 0; !prefix && !o && i < ld_nopts; i++)
			if (!strncmp(ld_opts[i].key, full, n) && ld_opts[i].key[n] == '.')
				o = &ld_opts[i];
		if (!o) {
			sk_err_set(e, "unknown key \"%s\"", full);
			return -EINVAL;
		}
		if (!json_is_object(v)) {
			sk_err_set(e, "\"%s\" must be an object", full);
			return -EINVAL;
		}
		ret = load_object(c, v, full, e);
		if (ret)
			return ret;
	}
	return 0;
}

int ld_config_load(struct ld_config *c, const char *path, struct sk_err *e)
{
	json_error_t je;
	json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
	int ret;

	if (!j) {
		sk_err_set(e, "%s: %s (line %d)", path, je.text, je.line);
		return -EINVAL;
	}
	if (!json_is_object(j)) {
		sk_err_set(e, "%s: not a JSON object", path);
		json_decref(j);
		return -EINVAL;
	}
	ret = load_object(c, j, NULL, e);
	if (ret)
		sk_err_prefix(e, "%s", path);
	json_decref(j);
	return ret;
}

static const char *const type_names[] = {
	[LD_OPT_INT] = "integer", [LD_OPT_SIZE] = "size", [LD_OPT_BOOL] = "boolean",
	[LD_OPT_STR] = "string", [LD_OPT_ENUM] = "enum",
};

char *ld_opt_dump(void)
{
	json_t *arr = json_array();
	char *text;

	if (!arr)
		return NULL;
	for (size_t i = 0; i < ld_nopts; i++) {
		const struct ld_opt *o = &ld_opts[i];
		char sum[256];
		json_t *j;

		ld_opt_describe(o, sum, sizeof(sum));
		j = json_pack("{s:s, s:s, s:s, s:s, s:s}", "key", o->key, "flag", o->flag,
			      "type", type_names[o->type], "summary", sum, "help", o->help);
		if (!j || json_array_append_new(arr, j)) {
			json_decref(arr);
			return NULL;
		}
		if (o->type == LD_OPT_INT || o->type == LD_OPT_SIZE) {
			json_object_set_new(j, "min", json_integer((json_int_t)o->min));
			json_object_set_new(j, "max", json_integer((json_int_t)o->max));
		}
		if (o->type == LD_OPT_STR)
			json_object_set_new(j, "default", json_string(o->def_str));
		else if (o->type == LD_OPT_ENUM)
			json_object_set_new(j, "default", json_string(o->choices[o->def]));
		else if (o->type == LD_OPT_BOOL)
			json_object_set_new(j, "default", json_boolean(o->def));
		else
			json_object_set_new(j, "default", json_integer((json_int_t)o->def));
		if (o->type == LD_OPT_ENUM) {
			json_t *ch = json_array();

			for (size_t k = 0; o->choices[k]; k++)
				json_array_append_new(ch, json_string(o->choices[k]));
			json_object_set_new(j, "choices", ch);
		}
		if (o->short_flag)
			json_object_set_new(j, "short", json_sprintf("%c", o->short_flag));
	}
	text = json_dumps(arr, JSON_INDENT(2));
	json_decref(arr);
	return text;
}
