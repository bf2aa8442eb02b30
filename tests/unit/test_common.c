/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for common/: sizes, hex, SHA-256, the worker pool, files. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/wait.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../../common/sk.h"
#include "tap.h"

static void test_parse_size(void)
{
	static const struct {
		const char *s;
		uint64_t v;
	} good[] = {
		{ "0", 0 },
		{ "4096", 4096 },
		{ "64K", 64ull << 10 },
		{ "64k", 64ull << 10 },
		{ "1M", 1ull << 20 },
		{ "1m", 1ull << 20 },
		{ "2G", 2ull << 30 },
		{ "4KiB", 4096 },
		{ "1MB", 1ull << 20 },
		{ "1MiB", 1ull << 20 },
		{ "16777215G", 16777215ull << 30 },
		{ "18446744073709551615", UINT64_MAX },
	};
	static const char *const bad[] = {
		"", "-1", "K", "abc", "12x", "1T", "1.5M", "0x10", "1KBB",
		"1 K", "1K ", " -1", " 12", "+12", "18446744073709551616",
		"4096B",
	};

	for (size_t i = 0; i < SK_ARRAY_SIZE(good); i++) {
		uint64_t v = 12345;
		int ret = sk_parse_size(good[i].s, &v);

		is_int(ret, 0, "sk_parse_size(\"%s\") is accepted", good[i].s);
		ok(v == good[i].v, "... as %llu (got %llu)",
		   (unsigned long long)good[i].v, (unsigned long long)v);
	}
	for (size_t i = 0; i < SK_ARRAY_SIZE(bad); i++) {
		uint64_t v = 12345;
		int ret = sk_parse_size(bad[i], &v);

		ok(ret < 0, "sk_parse_size(\"%s\") rejected (got %d)", bad[i], ret);
		ok(v == 12345, "... leaving the value alone (got %llu)",
		   (unsigned long long)v);
	}
	{
		uint64_t v = 7;

		is_int(sk_parse_size("17179869184G", &v), -ERANGE,
		       "sk_parse_size overflow after the shift is -ERANGE");
		ok(sk_parse_size(NULL, &v) < 0, "sk_parse_size(NULL) rejected");
	}
}

static void test_hex(void)
{
	uint8_t bin[256], back[256];
	char hex[2 * sizeof(bin) + 1];
	static const char *const bad[] = {
		"0A", "AB", "abc", "0g", "g0", "zz", " 0", "0 ", "-1", "0x",
	};

	for (size_t i = 0; i < sizeof(bin); i++)
		bin[i] = (uint8_t)i;
	sk_hex(bin, sizeof(bin), hex);
	is_int(strlen(hex), 2 * sizeof(bin), "sk_hex output length");
	is_mem(hex, "000102030405060708090a0b0c0d0e0f10", 34,
	       "sk_hex is lowercase, high nibble first");
	is_mem(hex + 2 * 255, "ff", 3, "sk_hex of 0xff, NUL-terminated");
	memset(back, 0xaa, sizeof(back));
	is_int(sk_unhex(hex, strlen(hex), back), 0, "sk_unhex of sk_hex output");
	is_mem(back, bin, sizeof(bin), "hex round trip");
	is_int(sk_unhex("", 0, back), 0, "sk_unhex of the empty string");

	for (size_t i = 0; i < SK_ARRAY_SIZE(bad); i++) {
		uint8_t out[4];

		is_int(sk_unhex(bad[i], strlen(bad[i]), out), -EINVAL,
		       "sk_unhex(\"%s\") rejected", bad[i]);
	}
	/* the length is authoritative: a NUL inside the range is a bad digit */
	is_int(sk_unhex("ab\0d", 4, back), -EINVAL, "sk_unhex rejects an embedded NUL");
	/* a digest as manifests and references must spell it */
	ok(sk_is_hex_digest("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
	   "sk_is_hex_digest: 64 lowercase hex digits");
	ok(!sk_is_hex_digest("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde"),
	   "sk_is_hex_digest: 63 digits refused");
	ok(!sk_is_hex_digest("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0"),
	   "sk_is_hex_digest: 65 digits refused");
	ok(!sk_is_hex_digest("0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"),
	   "sk_is_hex_digest: upper case refused");
	ok(!sk_is_hex_digest(""), "sk_is_hex_digest: the empty string refused");
}

static void test_sha256(void)
{
	static const char abc_hex[] =
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
	static const char empty_hex[] =
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
	static const char two_block_hex[] =	/* FIPS 180-2 example 2 */
		"248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
	static const char two_block[] =
		"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	uint8_t d[SK_SHA256_LEN], d2[SK_SHA256_LEN];
	char hex[SK_HEX_LEN + 1];
	struct sk_sha256_ctx c;

	sk_sha256("abc", 3, d);
	sk_hex(d, sizeof(d), hex);
	is_mem(hex, abc_hex, sizeof(abc_hex), "sha256(\"abc\")");
	sk_sha256("", 0, d);
	sk_hex(d, sizeof(d), hex);
	is_mem(hex, empty_hex, sizeof(empty_hex), "sha256(\"\")");
	sk_sha256(two_block, strlen(two_block), d);
	sk_hex(d, sizeof(d), hex);
	is_mem(hex, two_block_hex, sizeof(two_block_hex), "sha256 of 448 bits");

	if (!ok(sk_sha256_init(&c) == 0, "sk_sha256_init")) {
		skip(2, "no incremental context");
		return;
	}
	for (size_t i = 0; i < strlen(two_block); i += 5)
		sk_sha256_update(&c, two_block + i,
				 SK_MIN((size_t)5, strlen(two_block) - i));
	sk_sha256_final(&c, d2);
	sk_sha256_free(&c);
	is_mem(d2, d, sizeof(d), "incremental sha256 equals one-shot");
	ok(c.md == NULL, "sk_sha256_free clears the context");
}

struct count_job {
	struct sk_job job;
	atomic_uint *order;	/* shared sequence counter */
	unsigned int seq;	/* position at which this job started */
	unsigned int value, result;
};

static void count_fn(struct sk_job *job)
{
	struct count_job *j = (struct count_job *)job;

	j->seq = atomic_fetch_add(j->order, 1);
	/* some work so that several workers overlap */
	j->result = j->value;
	for (unsigned int k = 0; k < 1000; k++)
		j->result = j->result * 1103515245u + 12345u;
}

static unsigned int expect_result(unsigned int v)
{
	for (unsigned int k = 0; k < 1000; k++)
		v = v * 1103515245u + 12345u;
	return v;
}

static void test_pool(unsigned int nthreads, unsigned int njobs)
{
	struct count_job *jobs = calloc(njobs, sizeof(*jobs));
	struct sk_pool *p = NULL;
	atomic_uint order = 0;
	unsigned int bad = 0, misordered = 0, twice = 0;
	unsigned char *seen = calloc(njobs, 1);

	if (!jobs || !seen)
		bail_out("out of memory");
	if (!ok(sk_pool_create(&p, nthreads) == 0, "sk_pool_create(%u)", nthreads)) {
		skip(3, "no pool");
		free(jobs);
		free(seen);
		return;
	}
	for (unsigned int i = 0; i < njobs; i++) {
		jobs[i].job.fn = count_fn;
		jobs[i].order = &order;
		jobs[i].value = i;
		sk_pool_submit(p, &jobs[i].job);
	}
	/* waiting in reverse order also covers jobs that finished long ago */
	for (unsigned int i = njobs; i-- > 0;)
		sk_pool_wait(p, &jobs[i].job);
	for (unsigned int i = 0; i < njobs; i++) {
		if (!jobs[i].job.done || jobs[i].result != expect_result(i))
			bad++;
		if (jobs[i].seq != i)
			misordered++;
		if (jobs[i].seq >= njobs || seen[jobs[i].seq]++)
			twice++;
	}
	is_int(atomic_load(&order), njobs, "%u threads: every one of %u jobs ran once",
	       nthreads, njobs);
	is_int(bad, 0, "%u threads: every job done with the right result", nthreads);
	if (nthreads == 1)
		is_int(misordered, 0, "1 thread: jobs start in submission order");
	else
		is_int(twice, 0, "%u threads: each job started once, in its own turn "
		       "(%u out of submission order, allowed)", nthreads, misordered);
	sk_pool_destroy(p);
	free(jobs);
	free(seen);
}

static void test_pool_reuse(void)
{
	struct count_job j = { .job.fn = count_fn, .value = 42 };
	struct sk_pool *p = NULL;
	atomic_uint order = 0;
	int done = 1, right = 1;

	j.order = &order;
	if (!ok(sk_pool_create(&p, 0) == 0, "sk_pool_create(0) makes one thread")) {
		skip(3, "no pool");
		return;
	}
	/* a job struct may be resubmitted once it has been waited for */
	for (int i = 0; i < 100; i++) {
		sk_pool_submit(p, &j.job);
		sk_pool_wait(p, &j.job);
		done &= j.job.done;
		right &= j.result == expect_result(42);
	}
	ok(done, "one job resubmitted 100 times: done each time");
	ok(right, "... with the right result each time");
	is_int(atomic_load(&order), 100, "... and it ran 100 times");
	sk_pool_destroy(p);
	sk_pool_destroy(NULL);
}

static void test_files(const char *tmp)
{
	char p[PATH_MAX], q[PATH_MAX];
	struct stat st = { 0 };
	void *buf = NULL;
	size_t len = 0;
	static const char data[] = "some bytes\n";

	fmtpath(p, "%s/a/b/c", tmp);
	is_int(sk_mkdir_p(p, 0755), 0, "sk_mkdir_p creates nested directories");
	is_int(stat(p, &st), 0, "... and they exist");
	ok(S_ISDIR(st.st_mode), "... as a directory");
	is_int(sk_mkdir_p(p, 0755), 0, "sk_mkdir_p on an existing path");
	fmtpath(p, "%s/x//y/", tmp);
	is_int(sk_mkdir_p(p, 0755), 0, "sk_mkdir_p with doubled and trailing slashes");
	fmtpath(p, "%s/x/y", tmp);
	is_int(stat(p, &st), 0, "... created x/y");
	ok(S_ISDIR(st.st_mode), "... as a directory");
	is_int(sk_mkdir_p("", 0755), -ENAMETOOLONG, "sk_mkdir_p(\"\") fails");

	fmtpath(p, "%s/a/file", tmp);
	is_int(sk_write_file_atomic(p, data, sizeof(data) - 1), 0,
	       "sk_write_file_atomic writes a new file");
	if (ok(sk_read_file(p, 1024, &buf, &len) == 0, "sk_read_file reads it back")) {
		is_int(len, sizeof(data) - 1, "... same length");
		is_mem(buf, data, sizeof(data) - 1, "... same bytes");
		free(buf);
	} else {
		skip(2, "not readable");
	}
	is_int(sk_write_file_atomic(p, "x", 1), 0, "sk_write_file_atomic replaces it");
	is_int(stat(p, &st), 0, "... which is there");
	is_int(st.st_size, 1, "... with the new size");
	is_int(st.st_mode & 07777, 0644, "... and mode 0644");
	fmtpath(q, "%s.tmp.%d.%d", p, (int)getpid(), (int)gettid());
	is_int(access(q, F_OK) < 0 ? -errno : 0, -ENOENT, "no temporary file left behind");
	is_int(sk_read_file(p, 0, &buf, &len), -EFBIG, "sk_read_file honours max");
	fmtpath(q, "%s/a", tmp);
	is_int(sk_read_file(q, 1024, &buf, &len), -EINVAL,
	       "sk_read_file of a directory fails");

	fmtpath(q, "%s/a/file/sub", tmp);
	is_int(sk_mkdir_p(q, 0755), -ENOTDIR, "sk_mkdir_p through a file is -ENOTDIR");
	fmtpath(q, "%s/nodir/file", tmp);
	is_int(sk_write_file_atomic(q, "x", 1), -ENOENT,
	       "sk_write_file_atomic into a missing directory is -ENOENT");
	fmtpath(q, "%s/a", tmp);
	ok(sk_write_file_atomic(q, "x", 1) < 0, "sk_write_file_atomic over a directory fails");
	fmtpath(q, "%s/a.tmp.%d.%d", tmp, (int)getpid(), (int)gettid());
	ok(access(q, F_OK) < 0, "... and removes its temporary file");
	fmtpath(q, "%s/empty", tmp);
	is_int(sk_write_file_atomic(q, NULL, 0), 0, "sk_write_file_atomic of 0 bytes");
	buf = NULL;
	len = 7;
	if (is_int(sk_read_file(q, 0, &buf, &len), 0, "sk_read_file of an empty file"))
		free(buf);
	is_int(len, 0, "... is 0 bytes long");
}

static void test_misc(void)
{
	char s[32];
	double a, b;

	sk_human_size(0, s, sizeof(s));
	is_mem(s, "0 B", 4, "sk_human_size(0)");
	sk_human_size(1536, s, sizeof(s));
	is_mem(s, "1.5 KiB", 8, "sk_human_size(1536)");
	sk_human_size(3ull << 40, s, sizeof(s));
	is_mem(s, "3.0 TiB", 8, "sk_human_size(3 TiB)");
	sk_human_size(UINT64_MAX, s, sizeof(s));
	ok(strstr(s, "TiB") != NULL, "sk_human_size(UINT64_MAX) = %s", s);
	a = sk_now();
	b = sk_now();
	ok(a > 0, "sk_now is positive");
	ok(b >= a, "sk_now is monotonic");
	ok(sk_ncpus() >= 1, "sk_ncpus() = %u", sk_ncpus());
}

static int rm_rf(const char *path)
{
	char cmd[PATH_MAX + 32];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	return system(cmd);
}

/* sk_grow: doubling from `first`, elements kept, full only when asked
 * for room past what is allocated; a size that would wrap is refused */
static void log_line(const char *prefix, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	sk_vlog_line(prefix, fmt, ap);
	va_end(ap);
}

/* Two processes log into one O_APPEND file (as the holder, its server and
 * a supervisor share stderr): every line comes out whole. */
static void test_log_lines(const char *tmp)
{
	char path[PATH_MAX + 8], line[256];
	int fd, bad = 0, n = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/log", tmp);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
	if (fd < 0)
		bail_out("%s: %s", path, strerror(errno));
	for (int c = 0; c < 2; c++) {
		pid_t pid = fork();

		if (pid == 0) {
			dup2(fd, STDERR_FILENO);
			for (int i = 0; i < 3000; i++)
				log_line(c ? "two: " : "one: ", "line %d of process %s", i, c ? "two" : "one");
			_exit(0);
		}
	}
	while (wait(NULL) > 0)
		;
	close(fd);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f)) {
		char who[8], who2[8];
		int i;

		n++;
		if (sscanf(line, "%7[a-z]: line %d of process %7[a-z]\n", who, &i, who2) != 3 ||
		    strcmp(who, who2))
			bad++;
	}
	if (f)
		fclose(f);
	is_int(n, 6000, "two processes' 6000 log lines, each its own line");
	is_int(bad, 0, "... none cut by the other's");
}

static void test_grow(void)
{
	int *a = NULL;
	size_t cap = 0, n = 0;
	bool kept = true;

	for (int i = 0; i < 100; i++) {
		if (sk_grow(&a, &cap, n, sizeof(*a), 4))
			break;
		a[n++] = i;
	}
	is_int((int)n, 100, "sk_grow: room for 100 ints, one at a time");
	is_int((int)cap, 128, "... in 4, 8, ..., 128");
	for (size_t i = 0; i < n; i++)
		kept = kept && a[i] == (int)i;
	ok(kept, "... every element kept through the moves");
	is_int(sk_grow(&a, &cap, 10, sizeof(*a), 4), 0, "room that is there: nothing moves");
	is_int((int)cap, 128, "... the same capacity");
	cap = SIZE_MAX / 2 + 1;
	is_int(sk_grow(&a, &cap, cap, sizeof(*a), 4), -ENOMEM, "a size that would wrap: -ENOMEM");
	free(a);
}

static void test_err_prefix(void)
{
	struct sk_err e;
	char big[600];

	sk_err_set(&e, "HTTP %d", 503);
	sk_err_prefix(&e, "bootstrap %s", "ab12");
	is_str(e.msg, "bootstrap ab12: HTTP 503", "sk_err_prefix: the caller's words, then the callee's");
	sk_err_prefix(&e, "mount");
	is_str(e.msg, "mount: bootstrap ab12: HTTP 503", "... and again");
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	sk_err_prefix(&e, "%s", big);
	is_int((int)strlen(e.msg), (int)sizeof(e.msg) - 1, "a prefix too long: cut to the message's size");
	ok(e.msg[0] == 'x' && e.msg[sizeof(e.msg) - 2] == 'x', "... the prefix kept, the rest dropped");
	sk_err_prefix(NULL, "nothing");
	ok(1, "... no message to prefix: nothing happens");
}

int main(void)
{
	char tmp[PATH_MAX];
	const char *base = getenv("TMPDIR");

	snprintf(tmp, sizeof(tmp), "%s/skiff-common-XXXXXX",
		 base && *base ? base : "/tmp");
	if (!mkdtemp(tmp))
		bail_out("mkdtemp: %s", strerror(errno));

	test_parse_size();
	test_hex();
	test_sha256();
	test_pool(1, 200);
	test_pool(4, 2000);
	test_pool_reuse();
	test_files(tmp);
	test_misc();
	test_grow();
	test_log_lines(tmp);
	test_err_prefix();
	rm_rf(tmp);
	return done_testing();
}
