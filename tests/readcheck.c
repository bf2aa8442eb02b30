/* SPDX-License-Identifier: Apache-2.0 */
/*
 * readcheck: readers that check every byte they read, for the tests that
 * kill, restart and upgrade skiffd under load.
 *
 *   readcheck [-r READERS] [-d DEADLINE_S] [-u UNTIL_FILE] [-b BLOCK] [-e] [-R]
 *             MNT SRC FILE...
 *
 * READERS threads (default 8) each go through the FILEs (paths relative to
 * MNT and SRC) in an order of their own, reading MNT/FILE in BLOCK-byte
 * preads (default 64 KiB) and comparing each with the same range of
 * SRC/FILE. One pass each at least; more while UNTIL_FILE does not exist
 * (each later pass first drops the mount's page cache of the file, so its
 * reads reach the kernel again). A read slower than DEADLINE_S (default
 * 60) is a hang: readcheck reports it and exits at once.
 *
 * With -R, every other reader reads each file's blocks in a random order
 * (as many reads as the file has blocks) instead of from start to end.
 *
 * With -e, a read that fails with EIO is tried once more (an EIO leaves
 * no page behind, so the retry reaches the kernel again) and counted as
 * eio; failed counts only errors that persist. For tests in which skiffd
 * answers some reads with EIO by design, and counts them.
 *
 * Prints one line: reads, bytes, wrong (blocks that differ), failed (read
 * errors, with the first few on stderr), hung, the read latency p50, p99
 * and max in ms, and eio. Exits 0 only when nothing was wrong, failed or
 * hung.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* latency histogram: bucket b holds [1.1^b, 1.1^(b+1)) microseconds */
#define NBUCKETS 256

struct shared {
	const char *mnt, *src, *until;
	char **files;
	int nfiles;
	size_t block;
	double deadline;
	atomic_ulong reads, bytes, wrong, failed, eio;
	bool retry_eio;
	atomic_int done;
	pthread_mutex_t lock;	/* hist, maxus, reports */
	unsigned long hist[NBUCKETS];
	double maxus;
	int reports;
};

struct reader {
	struct shared *s;
	unsigned int seed;
	bool random;		/* blocks in a random order */
	atomic_long busy_since;	/* ms of the read in progress, 0: none */
	pthread_t thread;
};

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void report(struct shared *s, const char *fmt, const char *file, long long off,
		   const char *why)
{
	pthread_mutex_lock(&s->lock);
	if (s->reports++ < 10) {
		fprintf(stderr, fmt, file, off, why);
		fputc('\n', stderr);
	}
	pthread_mutex_unlock(&s->lock);
}

static void record(struct shared *s, double us)
{
	int b = us < 1 ? 0 : (int)(log(us) / log(1.1));

	if (b >= NBUCKETS)
		b = NBUCKETS - 1;
	pthread_mutex_lock(&s->lock);
	s->hist[b]++;
	if (us > s->maxus)
		s->maxus = us;
	pthread_mutex_unlock(&s->lock);
}

static void check_file(struct reader *r, const char *name, int pass)
{
	struct shared *s = r->s;
	char mp[4096], sp[4096];
	char *a = malloc(s->block), *b = malloc(s->block);
	int mf = -1, sf = -1;
	long long off = 0, size = 0, nblocks = 0, k = 0;
	struct stat sst;

	snprintf(mp, sizeof(mp), "%s/%s", s->mnt, name);
	snprintf(sp, sizeof(sp), "%s/%s", s->src, name);
	if (!a || !b)
		goto out;
	mf = open(mp, O_RDONLY);
	sf = open(sp, O_RDONLY);
	if (mf < 0 || sf < 0) {
		atomic_fetch_add(&s->failed, 1);
		report(s, "%s (%lld): open: %s", name, 0, strerror(errno));
		goto out;
	}
	if (pass > 0)
		posix_fadvise(mf, 0, 0, POSIX_FADV_DONTNEED);
	if (r->random && fstat(sf, &sst) == 0) {
		size = sst.st_size;
		nblocks = (size + (long long)s->block - 1) / (long long)s->block;
	}
	for (;;) {
		if (r->random) {
			if (k++ >= nblocks)
				break;
			off = (long long)(rand_r(&r->seed) % (unsigned int)nblocks) * (long long)s->block;
		}
		double t0 = now_us();
		ssize_t n, m;

		atomic_store(&r->busy_since, now_ms());
		n = pread(mf, a, s->block, off);
		if (n < 0 && errno == EIO && s->retry_eio) {
			atomic_fetch_add(&s->eio, 1);
			report(s, "%s at %lld: %s", name, off, "EIO, tried again");
			n = pread(mf, a, s->block, off);
		}
		atomic_store(&r->busy_since, 0);
		if (n < 0) {
			atomic_fetch_add(&s->failed, 1);
			report(s, "%s at %lld: %s", name, off, strerror(errno));
			break;
		}
		record(s, now_us() - t0);
		atomic_fetch_add(&s->reads, 1);
		/* a short read is not wrong by itself (the next one tells) */
		m = pread(sf, b, (size_t)n, off);
		if (m != n || memcmp(a, b, (size_t)n) != 0) {
			atomic_fetch_add(&s->wrong, 1);
			report(s, "%s at %lld: %s", name, off, "wrong bytes");
		}
		if (r->random) {
			/* a block comes whole, the last one up to the end */
			if (n != (ssize_t)(size - off < (long long)s->block ? size - off : (long long)s->block)) {
				atomic_fetch_add(&s->wrong, 1);
				report(s, "%s at %lld: %s", name, off, "short read");
			}
			atomic_fetch_add(&s->bytes, (unsigned long)n);
			continue;
		}
		if (n == 0) {
			struct stat st;

			/* an early end of file is as wrong as wrong bytes */
			if (fstat(sf, &st) == 0 && st.st_size != off) {
				atomic_fetch_add(&s->wrong, 1);
				report(s, "%s at %lld: %s", name, off, "ends early");
			}
			break;
		}
		atomic_fetch_add(&s->bytes, (unsigned long)n);
		off += n;
	}
out:
	if (mf >= 0)
		close(mf);
	if (sf >= 0)
		close(sf);
	free(a);
	free(b);
}

static void *run(void *arg)
{
	struct reader *r = arg;
	struct shared *s = r->s;
	int *order = malloc(sizeof(int) * (size_t)s->nfiles);

	if (!order)
		return NULL;
	for (int pass = 0;; pass++) {
		for (int i = 0; i < s->nfiles; i++)
			order[i] = i;
		for (int i = s->nfiles - 1; i > 0; i--) {
			int j = (int)(rand_r(&r->seed) % (unsigned int)(i + 1)), t = order[i];

			order[i] = order[j];
			order[j] = t;
		}
		for (int i = 0; i < s->nfiles; i++)
			check_file(r, s->files[order[i]], pass);
		if (!s->until || access(s->until, F_OK) == 0)
			break;
	}
	free(order);
	atomic_fetch_add(&s->done, 1);
	return NULL;
}

static double percentile(const struct shared *s, double q)
{
	unsigned long total = 0, seen = 0;

	for (int b = 0; b < NBUCKETS; b++)
		total += s->hist[b];
	for (int b = 0; b < NBUCKETS; b++) {
		seen += s->hist[b];
		if (total && seen >= (unsigned long)ceil(q * (double)total))
			return pow(1.1, b + 1) / 1000.0;	/* the bucket's top, ms */
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct shared s = { .block = 65536, .deadline = 60,
			    .lock = PTHREAD_MUTEX_INITIALIZER };
	struct reader *rs;
	int nreaders = 8, opt, hung = 0;

	bool random = false;

	while ((opt = getopt(argc, argv, "r:d:u:b:eR")) != -1) {
		switch (opt) {
		case 'R': random = true; break;
		case 'e': s.retry_eio = true; break;
		case 'r': nreaders = atoi(optarg); break;
		case 'd': s.deadline = atof(optarg); break;
		case 'u': s.until = optarg; break;
		case 'b': s.block = (size_t)strtoul(optarg, NULL, 0); break;
		default: goto usage;
		}
	}
	if (argc - optind < 3 || nreaders < 1 || s.block == 0 || s.deadline <= 0)
		goto usage;
	s.mnt = argv[optind];
	s.src = argv[optind + 1];
	s.files = argv + optind + 2;
	s.nfiles = argc - optind - 2;
	rs = calloc((size_t)nreaders, sizeof(*rs));
	if (!rs)
		return 2;
	for (int i = 0; i < nreaders; i++) {
		rs[i].s = &s;
		rs[i].seed = (unsigned int)i * 7919u + 1;
		rs[i].random = random && i % 2;
		if (pthread_create(&rs[i].thread, NULL, run, &rs[i]))
			return 2;
	}
	/* the watchdog: a read past the deadline is a hang, reported at once
	 * (the thread may never come back to say so) */
	while (atomic_load(&s.done) < nreaders && !hung) {
		long now = now_ms();

		usleep(100000);
		for (int i = 0; i < nreaders; i++) {
			long since = atomic_load(&rs[i].busy_since);

			if (since && now - since > (long)(s.deadline * 1000))
				hung++;
		}
	}
	if (!hung)
		for (int i = 0; i < nreaders; i++)
			pthread_join(rs[i].thread, NULL);
	pthread_mutex_lock(&s.lock);
	printf("reads %lu bytes %lu wrong %lu failed %lu hung %d p50_ms %.2f p99_ms %.2f "
	       "max_ms %.2f eio %lu\n", atomic_load(&s.reads), atomic_load(&s.bytes),
	       atomic_load(&s.wrong), atomic_load(&s.failed), hung, percentile(&s, 0.5),
	       percentile(&s, 0.99), s.maxus / 1000.0, atomic_load(&s.eio));
	fflush(stdout);
	if (hung)
		_exit(1);
	return atomic_load(&s.wrong) || atomic_load(&s.failed) ? 1 : 0;
usage:
	fprintf(stderr, "usage: readcheck [-r READERS] [-d DEADLINE_S] [-u UNTIL_FILE] "
		"[-b BLOCK] [-e] [-R] MNT SRC FILE...\n");
	return 2;
}
