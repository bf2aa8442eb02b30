/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Small helpers shared by every skiff module: full reads and writes that
 * retry short transfers and EINTR, SHA-256, hex, alignment. Functions
 * return 0 (or a count) on success and -errno on failure.
 */
#ifndef SKIFF_COMMON_SK_H
#define SKIFF_COMMON_SK_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define SK_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
/* For sizes the program itself made; a size read from untrusted bytes
 * goes through sk_align_up(), which cannot wrap. */
#define SK_ALIGN_UP(x, a) (((x) + ((a) - 1)) & ~((__typeof__(x))(a) - 1))
/* Never overflows (no x + d - 1), so it takes any untrusted x. */
#define SK_DIV_ROUND_UP(x, d) ((x) / (d) + ((x) % (d) != 0))
#define SK_MIN(a, b) ((a) < (b) ? (a) : (b))
#define SK_MAX(a, b) ((a) > (b) ? (a) : (b))

/* x rounded up to a multiple of a (a power of two) into *out: false,
 * and *out untouched, when that does not fit in 64 bits. */
static inline bool sk_align_up(uint64_t x, uint64_t a, uint64_t *out)
{
	uint64_t r;

	if (__builtin_add_overflow(x, a - 1, &r))
		return false;
	*out = r & ~(a - 1);
	return true;
}

#define SK_SHA256_LEN 32
#define SK_HEX_LEN 64	/* hex of a SHA-256, without NUL */

/* Error text that a module hands back to its caller with a -errno. */
struct sk_err {
	char msg[512];
};

void sk_err_set(struct sk_err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Puts the formatted text and ": " before e's message: a caller says
 * what it was doing, the callee why it failed. */
void sk_err_prefix(struct sk_err *e, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

int sk_pread_full(int fd, void *buf, size_t len, uint64_t off);
int sk_pwrite_full(int fd, const void *buf, size_t len, uint64_t off);
int sk_write_full(int fd, const void *buf, size_t len);
/* Room for element n of the array *arrp (a T ** passed as void *; *cap
 * allocated, size bytes each): doubles it when full, from `first`. 0 or
 * -ENOMEM, the array then as it was. */
int sk_grow(void *arrp, size_t *cap, size_t n, size_t size, size_t first);
/* Reads a whole regular file of at most max bytes into a malloc'd buffer. */
int sk_read_file(const char *path, size_t max, void **out, size_t *len);
/* Writes a file via a temporary name (PATH.tmp.PID.TID) and rename(2), so
 * readers never see a half-written file, also when threads write it at
 * once. */
int sk_write_file_atomic(const char *path, const void *buf, size_t len);
/* PREFIX, the formatted message and a newline to stderr in one write(2)
 * (cut at 4 KiB): processes that share stderr (the holder, its server, a
 * supervisor) never split each other's lines. */
void sk_vlog_line(const char *prefix, const char *fmt, va_list ap);
/* The same with the file's mode (0600 for secrets: the temporary file has
 * it from its creation on). */
int sk_write_file_atomic_mode(const char *path, const void *buf, size_t len, mode_t mode);
int sk_mkdir_p(const char *path, mode_t mode);
/* out = a "/" b; -ENAMETOOLONG when it does not fit. */
int sk_path_join(char *out, size_t outlen, const char *a, const char *b);

void sk_sha256(const void *buf, size_t len, uint8_t out[SK_SHA256_LEN]);
void sk_hex(const uint8_t *bin, size_t len, char *out /* 2*len+1 */);
int sk_unhex(const char *hex, size_t hexlen, uint8_t *out);
/* Whether s is the lowercase hex of a SHA-256 (64 digits, nothing more). */
bool sk_is_hex_digest(const char *s);
/* Parses sizes such as 4096, 64K, 1M, 2G. */
int sk_parse_size(const char *s, uint64_t *out);
void sk_human_size(uint64_t v, char *out, size_t outlen);
/* qsort/bsearch comparators: of two char * (by strcmp), and of two
 * struct timespec (earlier first) */
int sk_strp_cmp(const void *a, const void *b);
struct timespec;
int sk_timespec_cmp(const struct timespec *a, const struct timespec *b);
double sk_now(void);		/* monotonic seconds */
uint64_t sk_now_ns(void);	/* monotonic nanoseconds */

/* Incremental SHA-256 (OpenSSL EVP underneath). */
struct sk_sha256_ctx {
	void *md;	/* EVP_MD_CTX */
};
int sk_sha256_init(struct sk_sha256_ctx *c);
void sk_sha256_update(struct sk_sha256_ctx *c, const void *buf, size_t len);
void sk_sha256_final(struct sk_sha256_ctx *c, uint8_t out[SK_SHA256_LEN]);
void sk_sha256_free(struct sk_sha256_ctx *c);

/*
 * A fixed pool of worker threads running jobs in submission order. A job
 * is embedded in the caller's struct; sk_pool_wait() blocks until that job
 * has run. The pool owns its threads only.
 */
struct sk_job {
	void (*fn)(struct sk_job *job);
	struct sk_job *next;
	int done;
	/* set by the caller: fn owns the job (may free it) and nobody waits
	 * for it, so the pool must not touch it once fn has started */
	bool detached;
	/* set by the pool before fn runs: which worker (0..nthreads-1), so a
	 * job can use per-worker scratch state the caller owns */
	unsigned int worker;
};

struct sk_pool;
int sk_pool_create(struct sk_pool **out, unsigned int nthreads);
void sk_pool_submit(struct sk_pool *p, struct sk_job *job);
void sk_pool_wait(struct sk_pool *p, struct sk_job *job);
void sk_pool_destroy(struct sk_pool *p);
/* Forgets the jobs not started yet (they never run; nobody may wait for
 * them): for a process that ends and leaves them to its successor.
 * Returns how many. */
size_t sk_pool_drop_queued(struct sk_pool *p);
unsigned int sk_pool_threads(const struct sk_pool *p);
unsigned int sk_ncpus(void);

#endif
