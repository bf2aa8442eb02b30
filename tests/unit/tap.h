/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Minimal header-only TAP producer (TAP version 12, what prove reads) for
 * the C unit tests.
 *
 *   plan(n);                 or no plan and done_testing() prints it last
 *   ok(cond, "name %d", i);  returns cond, so tests can chain on it
 *   is_int(got, want, "name");
 *   is_mem(got, want, len, "name");
 *   is_str(got, want, "name");   strings, NULL only equal to NULL
 *   has_str(got, part, "name");  got contains part
 *   diag("note %s", s);      to stderr, prefixed "# "
 *   skip(n, "why");          n skipped test points
 *   return done_testing();   exit status 0 only if everything passed
 *
 * State is one static struct per test program; a test binary is a single
 * translation unit plus the library, so that is the whole harness.
 * stdout is flushed after every line so that a crash still leaves prove
 * a complete record of what ran before it.
 */
#ifndef SKIFF_TESTS_TAP_H
#define SKIFF_TESTS_TAP_H

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct {
	int planned;	/* -1: no plan yet */
	int run;
	int failed;
} tap_state = { -1, 0, 0 };

#define TAP_PRINTF(a, b) __attribute__((format(printf, a, b)))

static inline void tap_plan(int n)
{
	tap_state.planned = n;
	printf("1..%d\n", n);
	fflush(stdout);
}
#define plan(n) tap_plan(n)

/* Skips the whole program: prove counts it as skipped, not failed. */
static inline TAP_PRINTF(1, 2) void tap_skip_all(const char *fmt, ...)
{
	va_list ap;

	printf("1..0 # SKIP ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	exit(0);
}
#define skip_all(...) tap_skip_all(__VA_ARGS__)

static inline TAP_PRINTF(1, 0) void tap_vdiag(const char *fmt, va_list ap)
{
	char buf[4096];
	const char *p = buf;

	vsnprintf(buf, sizeof(buf), fmt, ap);
	/* every line of a multi-line message must carry the "# " marker */
	fflush(stdout);
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);

		fprintf(stderr, "# %.*s\n", (int)n, p);
		p += n + (nl != NULL);
	}
	fflush(stderr);
}

static inline TAP_PRINTF(1, 2) void diag(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tap_vdiag(fmt, ap);
	va_end(ap);
}

/* A '#' in a description would start a TAP directive; a newline would end
 * the line early. */
static inline void tap_print_desc(const char *fmt, va_list ap)
{
	char buf[1024];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	if (!buf[0])
		return;
	fputs(" - ", stdout);
	for (const char *p = buf; *p; p++) {
		if (*p == '#')
			fputs("\\#", stdout);
		else if (*p == '\n')
			fputc(' ', stdout);
		else
			fputc(*p, stdout);
	}
}

static inline TAP_PRINTF(4, 0) int tap_vok(int cond, const char *file,
					   int line, const char *fmt,
					   va_list ap)
{
	va_list ap2;

	tap_state.run++;
	va_copy(ap2, ap);
	printf("%sok %d", cond ? "" : "not ", tap_state.run);
	tap_print_desc(fmt, ap2);
	va_end(ap2);
	printf("\n");
	fflush(stdout);
	if (!cond) {
		tap_state.failed++;
		diag("  Failed test at %s line %d.", file, line);
	}
	return cond;
}

static inline TAP_PRINTF(4, 5) int tap_ok(int cond, const char *file,
					  int line, const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = tap_vok(cond, file, line, fmt, ap);
	va_end(ap);
	return r;
}
#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

static inline TAP_PRINTF(5, 6) int tap_is_int(long long got, long long want,
					      const char *file, int line,
					      const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = tap_vok(got == want, file, line, fmt, ap);
	va_end(ap);
	if (!r)
		diag("         got: %lld\n    expected: %lld", got, want);
	return r;
}
#define is_int(got, want, ...)                                              \
	tap_is_int((long long)(got), (long long)(want), __FILE__, __LINE__, \
		   __VA_ARGS__)

/* NULL equals only NULL; it is printed bare, a string in quotes. */
static inline TAP_PRINTF(5, 6) int tap_is_str(const char *got,
					      const char *want,
					      const char *file, int line,
					      const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = tap_vok(got && want ? !strcmp(got, want) : got == want, file,
		    line, fmt, ap);
	va_end(ap);
	if (!r)
		diag("         got: %s%s%s\n    expected: %s%s%s",
		     got ? "\"" : "", got ? got : "NULL", got ? "\"" : "",
		     want ? "\"" : "", want ? want : "NULL", want ? "\"" : "");
	return r;
}
#define is_str(got, want, ...) \
	tap_is_str((got), (want), __FILE__, __LINE__, __VA_ARGS__)

/* For messages and bodies that must name something among other words. */
static inline TAP_PRINTF(5, 6) int tap_has_str(const char *got,
					       const char *part,
					       const char *file, int line,
					       const char *fmt, ...)
{
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = tap_vok(got && strstr(got, part), file, line, fmt, ap);
	va_end(ap);
	if (!r)
		diag("         got: %s%s%s\n  to contain: \"%s\"",
		     got ? "\"" : "", got ? got : "NULL", got ? "\"" : "", part);
	return r;
}
#define has_str(got, part, ...) \
	tap_has_str((got), (part), __FILE__, __LINE__, __VA_ARGS__)

static inline void tap_hex_window(const char *label, const uint8_t *p,
				  size_t len, size_t at)
{
	size_t lo = at > 8 ? at - 8 : 0, hi = SIZE_MAX - at > 8 ? at + 8 : at;
	char line[128];
	int n;

	if (hi > len)
		hi = len;
	n = snprintf(line, sizeof(line), "%12s @%zu:", label, lo);
	for (size_t i = lo; i < hi && n < (int)sizeof(line) - 4; i++)
		n += snprintf(line + n, sizeof(line) - (size_t)n, " %02x", p[i]);
	diag("%s", line);
}

static inline TAP_PRINTF(6, 7) int tap_is_mem(const void *got,
					      const void *want, size_t len,
					      const char *file, int line,
					      const char *fmt, ...)
{
	const uint8_t *g = got, *w = want;
	size_t at = 0;
	va_list ap;
	int same, r;

	if (!g || !w)
		same = g == w;
	else
		same = !memcmp(g, w, len);
	va_start(ap, fmt);
	r = tap_vok(same, file, line, fmt, ap);
	va_end(ap);
	if (r)
		return r;
	if (!g || !w) {
		diag("    %s is NULL", g ? "expected" : "got");
		return r;
	}
	while (g[at] == w[at])
		at++;
	diag("    first difference at byte %zu of %zu", at, len);
	tap_hex_window("got", g, len, at);
	tap_hex_window("expected", w, len, at);
	return r;
}
#define is_mem(got, want, len, ...) \
	tap_is_mem((got), (want), (len), __FILE__, __LINE__, __VA_ARGS__)

static inline TAP_PRINTF(2, 3) void skip(int n, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	for (int i = 0; i < n; i++) {
		tap_state.run++;
		printf("ok %d # skip %s\n", tap_state.run, why);
	}
	fflush(stdout);
}

/* Stops the whole run: prove reports the reason and fails the file. */
static inline TAP_PRINTF(1, 2) void bail_out(const char *fmt, ...)
{
	va_list ap;

	printf("Bail out! ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	exit(255);
}

/* Formats a path into out[PATH_MAX]; an overlong one stops the run. */
static inline TAP_PRINTF(2, 3) void fmtpath(char out[PATH_MAX], const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, PATH_MAX, fmt, ap);
	va_end(ap);
	if (n < 0 || n >= PATH_MAX)
		bail_out("path too long");
}

/* Prints the plan if none was given and returns the exit status: the
 * number of failures (capped), or 255 when the plan was not followed. */
static inline int done_testing(void)
{
	if (tap_state.planned < 0) {
		tap_state.planned = tap_state.run;
		printf("1..%d\n", tap_state.run);
		fflush(stdout);
	}
	if (tap_state.failed)
		diag("Looks like you failed %d test%s of %d.", tap_state.failed,
		     tap_state.failed == 1 ? "" : "s", tap_state.run);
	if (tap_state.run != tap_state.planned) {
		diag("Looks like you planned %d tests but ran %d.",
		     tap_state.planned, tap_state.run);
		return 255;
	}
	return tap_state.failed > 254 ? 254 : tap_state.failed;
}

#endif
