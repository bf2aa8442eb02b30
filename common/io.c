/* SPDX-License-Identifier: Apache-2.0 */
#include "sk.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void sk_err_set(struct sk_err *e, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
}

void sk_err_prefix(struct sk_err *e, const char *fmt, ...)
{
	char was[sizeof(e->msg)];
	va_list ap;
	size_t n;

	if (!e)
		return;
	memcpy(was, e->msg, sizeof(was));
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	/* too long: the callee's reason is cut before the caller's words
	 * (copied by hand: snprintf's truncation warning is the point) */
	n = strlen(e->msg);
	if (n + 2 < sizeof(e->msg)) {
		size_t k = strnlen(was, sizeof(was) - 1);

		memcpy(e->msg + n, ": ", 2);
		n += 2;
		if (k > sizeof(e->msg) - 1 - n)
			k = sizeof(e->msg) - 1 - n;
		memcpy(e->msg + n, was, k);
		e->msg[n + k] = '\0';
	}
}

int sk_pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	char *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)	/* the file is shorter than its metadata said */
			return -ENODATA;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int sk_pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	const char *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int sk_write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int sk_read_file(const char *path, size_t max, void **out, size_t *len)
{
	struct stat st;
	void *buf;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = -EINVAL;
		goto out;
	}
	if ((uint64_t)st.st_size > max) {
		ret = -EFBIG;
		goto out;
	}
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf) {
		ret = -ENOMEM;
		goto out;
	}
	ret = sk_pread_full(fd, buf, (size_t)st.st_size, 0);
	if (ret) {
		free(buf);
		goto out;
	}
	*out = buf;
	*len = (size_t)st.st_size;
out:
	close(fd);
	return ret;
}

int sk_write_file_atomic(const char *path, const void *buf, size_t len)
{
	return sk_write_file_atomic_mode(path, buf, len, 0644);
}

int sk_write_file_atomic_mode(const char *path, const void *buf, size_t len, mode_t mode)
{
	char tmp[PATH_MAX];
	int fd, ret;

	/* one temporary name per thread: threads writing the same path at
	 * once (the same content, by its digest) must not share one */
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d.%d", path, (int)getpid(),
		     (int)gettid()) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	ret = sk_write_full(fd, buf, len);
	if (!ret && fsync(fd) < 0)
		ret = -errno;
	if (close(fd) < 0 && !ret)
		ret = -errno;
	if (!ret && rename(tmp, path) < 0)
		ret = -errno;
	if (ret)
		unlink(tmp);
	return ret;
}

int sk_mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int sk_path_join(char *out, size_t outlen, const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la + 1 + lb + 1 > outlen)
		return -ENAMETOOLONG;
	memcpy(out, a, la);
	out[la] = '/';
	memcpy(out + la + 1, b, lb + 1);
	return 0;
}

void sk_hex(const uint8_t *bin, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[bin[i] >> 4];
		out[2 * i + 1] = digits[bin[i] & 15];
	}
	out[2 * len] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;	/* digests are lowercase by definition */
}

bool sk_is_hex_digest(const char *s)
{
	size_t n = 0;

	for (; s[n]; n++)
		if (n == SK_HEX_LEN || hexval(s[n]) < 0)
			return false;
	return n == SK_HEX_LEN;
}

int sk_unhex(const char *hex, size_t hexlen, uint8_t *out)
{
	if (hexlen % 2)
		return -EINVAL;
	for (size_t i = 0; i < hexlen / 2; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int sk_parse_size(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned int shift = 0;

	/* strtoull would skip blanks and accept a sign, wrapping " -1" */
	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case '\0':
		break;
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	default:
		return -EINVAL;
	}
	if (*end == 'i')	/* accept KiB, MB style suffixes */
		end++;
	if (*end == 'B')
		end++;
	if (*end)
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	*out = (uint64_t)v << shift;
	return 0;
}

void sk_human_size(uint64_t v, char *out, size_t outlen)
{
	static const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double d = (double)v;
	unsigned int u = 0;

	while (d >= 1024 && u + 1 < SK_ARRAY_SIZE(units)) {
		d /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(out, outlen, "%llu B", (unsigned long long)v);
	else
		snprintf(out, outlen, "%.1f %s", d, units[u]);
}

double sk_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

uint64_t sk_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void sk_vlog_line(const char *prefix, const char *fmt, va_list ap)
{
	char buf[4096];
	int n = snprintf(buf, sizeof(buf) - 1, "%s", prefix);

	if (n < 0)
		return;
	if ((size_t)n < sizeof(buf) - 1) {
		int m = vsnprintf(buf + n, sizeof(buf) - 1 - (size_t)n, fmt, ap);

		if (m > 0)
			n += m;
	}
	if ((size_t)n > sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	/* one write; a short one (a full pipe) is finished, never retried from
	 * the start */
	for (ssize_t off = 0, w; off < n; off += w) {
		w = write(STDERR_FILENO, buf + off, (size_t)(n - off));
		if (w <= 0 && errno != EINTR)
			return;
		if (w < 0)
			w = 0;
	}
}

int sk_strp_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int sk_timespec_cmp(const struct timespec *a, const struct timespec *b)
{
	if (a->tv_sec != b->tv_sec)
		return a->tv_sec < b->tv_sec ? -1 : 1;
	return (a->tv_nsec > b->tv_nsec) - (a->tv_nsec < b->tv_nsec);
}
