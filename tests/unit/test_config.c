/* SPDX-License-Identifier: Apache-2.0 */
/*
 * skiffd's option table (loader/config.c) without a daemon: every option
 * refuses a value just outside its range from skiffd.json and from its
 * flag with the same message after the name ("threads" / --threads),
 * takes its bounds from both, and a config file reaches nested keys and
 * prefixes its errors with its path. The defaults are pinned to what
 * skiffd has always started with.
 */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../loader/config.h"
#include "tap.h"

static char g_json[PATH_MAX];

static uint64_t get_num(const struct ld_config *c, const struct ld_opt *o)
{
	const char *p = (const char *)c + o->off;
	uint32_t v32;
	uint64_t v64;

	if (o->type == LD_OPT_BOOL)
		return *(const bool *)p;
	if (o->size == sizeof(uint64_t)) {
		memcpy(&v64, p, sizeof(v64));
		return v64;
	}
	memcpy(&v32, p, sizeof(v32));
	return v32;
}

static bool str_is(const char *got, const char *want, const char *what)
{
	if (!strcmp(got, want))
		return true;
	diag("%s:\n         got: %s\n    expected: %s", what, got, want);
	return false;
}

/* The message of e after the name the option goes by, or NULL when it
 * does not start with that name. */
static const char *after(const struct sk_err *e, const char *name)
{
	size_t n = strlen(name);

	return strncmp(e->msg, name, n) || e->msg[n] != ' ' ? NULL : e->msg + n + 1;
}

/* Set o from JSON value v and from flag argument arg; both must agree:
 * accepted with the field equal to want, or refused with one message. */
static void both(const struct ld_opt *o, json_t *v, const char *arg, bool good,
		 uint64_t want)
{
	struct ld_config cj, cf;
	struct sk_err ej = { { 0 } }, ef = { { 0 } };
	char jname[64], fname[64];
	const char *mj, *mf;
	int rj, rf;

	ld_config_defaults(&cj);
	ld_config_defaults(&cf);
	rj = ld_opt_set_json(&cj, o, v, &ej);
	rf = ld_opt_set_arg(&cf, o, arg, &ef);
	json_decref(v);
	if (good) {
		is_int(rj, 0, "%s %s accepted from JSON", o->key, arg);
		is_int(rf, 0, "--%s %s accepted", o->flag, arg);
		if (o->type == LD_OPT_STR) {
			ok(str_is((char *)&cj + o->off, arg, "JSON"), "%s: the field holds it", o->key);
			ok(str_is((char *)&cf + o->off, arg, "flag"), "--%s: the field holds it", o->flag);
		} else {
			is_int(get_num(&cj, o), want, "%s %s: the field holds it", o->key, arg);
			is_int(get_num(&cf, o), want, "--%s %s: the field holds it", o->flag, arg);
		}
		return;
	}
	is_int(rj, -EINVAL, "%s %s refused from JSON", o->key, arg);
	is_int(rf, -EINVAL, "--%s %s refused", o->flag, arg);
	snprintf(jname, sizeof(jname), "\"%s\"", o->key);
	snprintf(fname, sizeof(fname), "--%s", o->flag);
	mj = after(&ej, jname);
	mf = after(&ef, fname);
	if (!ok(mj, "the JSON error names %s", jname))
		diag("message: %s", ej.msg);
	if (!ok(mf, "the flag's error names %s", fname))
		diag("message: %s", ef.msg);
	if (mj && mf)
		ok(str_is(mj, mf, "messages"), "%s: the same message from JSON and flag: %s",
		   o->key, mf);
	else
		skip(1, "a message does not name the option");
	/* the default stays when a value is refused */
	if (o->type != LD_OPT_STR)
		is_int(get_num(&cf, o), o->def, "--%s: the default stays", o->flag);
}

/* A JSON integer and its decimal text. */
static void num(const struct ld_opt *o, uint64_t v, bool good)
{
	char s[32];

	snprintf(s, sizeof(s), "%llu", (unsigned long long)v);
	both(o, json_integer((json_int_t)v), s, good, v);
}

static void write_json(const char *text)
{
	FILE *f = fopen(g_json, "w");

	if (!f || fputs(text, f) < 0 || fclose(f))
		bail_out("writing %s", g_json);
}

/* A config file holding only o's key (nested for "prefetch.x") with value
 * text: the error, if any, is the path and ld_opt_set_json's message. */
static int load(const struct ld_opt *o, const char *text, struct sk_err *e)
{
	struct ld_config c;
	const char *dot = strchr(o->key, '.');
	char j[256];
	int ret;

	if (dot)
		snprintf(j, sizeof(j), "{\"%.*s\": {\"%s\": %s}}\n", (int)(dot - o->key),
			 o->key, dot + 1, text);
	else
		snprintf(j, sizeof(j), "{\"%s\": %s}\n", o->key, text);
	write_json(j);
	ld_config_defaults(&c);
	ret = ld_config_load(&c, g_json, e);
	be_config_free(&c.backend);
	return ret;
}

static void check_option(const struct ld_opt *o)
{
	char s[PATH_MAX + 2], text[64], want[PATH_MAX + 600];
	struct sk_err e = { { 0 } }, ej = { { 0 } };
	struct ld_config c;
	json_t *v;

	switch (o->type) {
	case LD_OPT_INT:
	case LD_OPT_SIZE:
		num(o, o->min, true);
		num(o, o->max, true);
		num(o, o->max + 1, false);
		if (o->min > 0)
			num(o, o->min - 1, false);
		/* negative: refused, never taken as a huge number */
		both(o, json_integer(-1), "-1", false, 0);
		both(o, json_string("x"), "x", false, 0);
		if (o->type == LD_OPT_SIZE) {
			/* a size is also a string with a suffix, from both */
			snprintf(text, sizeof(text), "%lluK", (unsigned long long)(o->max >> 10));
			both(o, json_string(text), text, true, o->max);
			snprintf(text, sizeof(text), "%lluK", (unsigned long long)(o->max >> 10) + 1);
			both(o, json_string(text), text, false, 0);
		} else {
			both(o, json_string("2"), "2x", false, 0);
		}
		/* the same from a file, nested keys too */
		snprintf(text, sizeof(text), "%llu", (unsigned long long)o->max + 1);
		ld_config_defaults(&c);
		v = json_integer((json_int_t)o->max + 1);
		ld_opt_set_json(&c, o, v, &ej);
		json_decref(v);
		is_int(load(o, text, &e), -EINVAL, "%s: %s in a file refused", o->key, text);
		snprintf(want, sizeof(want), "%s: %s", g_json, ej.msg);
		ok(str_is(e.msg, want, "file error"), "%s: the file's error is its path and the message",
		   o->key);
		snprintf(text, sizeof(text), "%llu", (unsigned long long)o->max);
		is_int(load(o, text, &e), 0, "%s: %s in a file taken", o->key, text);
		break;
	case LD_OPT_BOOL:
		both(o, json_true(), "true", true, 1);
		both(o, json_false(), "false", true, 0);
		both(o, json_string("true"), "yes", false, 0);
		both(o, json_integer(1), "1", false, 0);
		is_int(load(o, "false", &e), 0, "%s: false in a file taken", o->key);
		is_int(load(o, "0", &e), -EINVAL, "%s: 0 in a file refused", o->key);
		break;
	case LD_OPT_STR:
		both(o, json_string("/x"), "/x", true, 0);
		memset(s, 'a', o->size - 1);
		s[o->size - 1] = '\0';
		both(o, json_string(s), s, true, 0);
		s[o->size - 1] = 'a';
		s[o->size] = '\0';
		both(o, json_string(s), s, false, 0);
		both(o, json_string(""), "", false, 0);
		is_int(load(o, "7", &e), -EINVAL, "%s: a number in a file refused", o->key);
		break;
	case LD_OPT_ENUM:
		for (uint64_t i = 0; o->choices[i]; i++)
			both(o, json_string(o->choices[i]), o->choices[i], true, i);
		both(o, json_string("nope"), "nope", false, 0);
		both(o, json_integer(0), "0", false, 0);
		break;
	}
}

int main(void)
{
	const char *t = getenv("TMPDIR");
	struct ld_config c;
	static const struct { const char *text, *msg; } bad[] = {
		{ "{\"prefetch\": {\"speed\": 1}}", "unknown key \"prefetch.speed\"" },
		{ "{\"prefetch\": 1}", "\"prefetch\" must be an object" },
		{ "{\"speed\": 1}", "unknown key \"speed\"" },
		{ "{\"threads\": {\"x\": 1}}", "\"threads\" must be 1 to 1024" },
		{ "{\"backend\": {\"speed\": 1}}", "\"backend\": unknown key \"speed\"" },
	};
	struct sk_err e = { { 0 } };
	char want[PATH_MAX + 600];
	int fd;

	fmtpath(g_json, "%s/skiff-test-config.XXXXXX", t ? t : "/tmp");
	fd = mkstemp(g_json);
	if (fd < 0)
		bail_out("mkstemp");
	close(fd);

	/* the defaults skiffd has always had */
	ld_config_defaults(&c);
	ok(str_is(c.cache_dir, "/var/cache/skiff", "cache_dir"), "default cache_dir");
	ok(str_is(c.work_dir, "/var/lib/skiff", "work_dir"), "default work_dir");
	ok(str_is(c.socket_path, "/run/skiff/skiffd.sock", "socket"), "default socket");
	is_int(c.threads, 16, "default threads");
	is_int(c.merge_limit, 8u << 20, "default merge_limit");
	is_int(c.readahead, 1u << 20, "default readahead");
	is_int(c.ahead, 0, "default ahead");
	is_int(c.log_level, LD_LOG_INFO, "default log_level");
	is_int(c.frontend, LD_FE_AUTO, "default frontend");
	is_int(c.ready_fd, -1, "no ready fd");
	is_int(c.prefetch_threads, 2, "default prefetch.threads");
	is_int(c.prefetch_bandwidth, 0, "default prefetch.bandwidth");
	is_int(c.prefetch_on_mount, 1, "default prefetch.on_mount");
	is_int(c.max_bootstrap_size, 256ull << 20, "default max_bootstrap_size");
	be_config_free(&c.backend);

	for (size_t i = 0; i < ld_nopts; i++) {
		const struct ld_opt *o = &ld_opts[i];
		char flag[64];

		ok(ld_opt_by_key(o->key) == o, "%s found by its key", o->key);
		ok(ld_opt_by_flag(o->flag) == o, "--%s found by its flag", o->flag);
		/* a flag is its key spelled with '-' for '_' and '.' */
		snprintf(flag, sizeof(flag), "%s", o->key);
		for (char *p = flag; *p; p++)
			if (*p == '_' || *p == '.')
				*p = '-';
		ok(str_is(o->flag, flag, "flag"), "--%s is spelled after %s", o->flag, o->key);
		check_option(o);
	}

	/* a whole file: nested keys, backend */
	write_json("{\"threads\": 3, \"merge_limit\": \"16M\", \"frontend\": \"fanotify\",\n"
		   " \"prefetch\": {\"threads\": 5, \"bandwidth\": \"10M\", \"on_mount\": false},\n"
		   " \"backend\": {\"max_attempts\": 2}}\n");
	ld_config_defaults(&c);
	is_int(ld_config_load(&c, g_json, &e), 0, "a file with every kind of key loads");
	is_int(c.threads, 3, "... threads");
	is_int(c.merge_limit, 16u << 20, "... merge_limit as a size string");
	is_int(c.frontend, LD_FE_FANOTIFY, "... frontend");
	is_int(c.prefetch_threads, 5, "... prefetch.threads");
	is_int(c.prefetch_bandwidth, 10u << 20, "... prefetch.bandwidth");
	is_int(c.prefetch_on_mount, 0, "... prefetch.on_mount");
	is_int(c.backend.http.max_attempts, 2, "... backend.max_attempts, by the backend");
	be_config_free(&c.backend);

	/* files that are refused, and the error each gives */
	for (size_t i = 0; i < SK_ARRAY_SIZE(bad); i++) {
		write_json(bad[i].text);
		ld_config_defaults(&c);
		is_int(ld_config_load(&c, g_json, &e), -EINVAL, "%s is refused", bad[i].text);
		snprintf(want, sizeof(want), "%s: %s", g_json, bad[i].msg);
		ok(str_is(e.msg, want, "error"), "... saying %s", bad[i].msg);
		be_config_free(&c.backend);
	}
	unlink(g_json);
	return done_testing();
}
