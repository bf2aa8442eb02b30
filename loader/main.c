/* SPDX-License-Identifier: Apache-2.0 */
/* skiffd: the loader daemon. See skiffd(8) and skiffd.json(5). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sys/fanotify.h>

#include "daemon.h"
#include "prefetch.h"
#include "holder.h"

#ifndef SKIFF_VERSION
#define SKIFF_VERSION "0.1.0"
#endif
#define DEFAULT_CONFIG "/etc/skiff/skiffd.json"

static const char usage[] =
"usage: skiffd [options]\n"
"\n"
"The skiff loader daemon: serves registered images to the kernel, fetching\n"
"chunks on demand. It runs in the foreground; the control socket appears\n"
"when it is ready.\n"
"\n"
"  -c, --config FILE       configuration (default " DEFAULT_CONFIG " if present)\n"
"      --cache-dir DIR     cache files (default /var/cache/skiff)\n"
"      --work-dir DIR      state: registered images (default /var/lib/skiff)\n"
"      --socket PATH       control socket (default /run/skiff/skiffd.sock)\n"
"      --frontend NAME     auto (default), fanotify or cachefiles\n"
"  -j, --threads N         request workers (default 16)\n"
"      --merge-limit SIZE  largest merged backend read (default 8M)\n"
"      --ahead SIZE        most stored bytes of background read-ahead for a\n"
"                          sequential reader, reached as it reads on, e.g.\n"
"                          32M (default 0: none)\n"
"      --readahead SIZE    stored bytes of following chunks fetched with a\n"
"                          miss (default 1M; 0: only what is asked)\n"
"      --prefetch-threads N  threads that prefetch (default 2)\n"
"      --prefetch-bandwidth SIZE  bytes per second prefetch may fetch, e.g.\n"
"                          10M (default 0: no limit)\n"
"      --log-level LEVEL   error, warn, info (default) or debug\n"
"      --ready-fd FD       write \"READY\\n\" to FD and close it once serving\n"
"      --no-holder         fanotify: no holder process (a crash then lets reads\n"
"                          of uncached data return zeros; for debugging only)\n"
"  -h, --help              this help\n"
"  -V, --version           print the version\n";

static int parse_args(struct ld_config *c, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "cache-dir", required_argument, NULL, 'C' },
		{ "work-dir", required_argument, NULL, 'W' },
		{ "socket", required_argument, NULL, 'S' },
		{ "frontend", required_argument, NULL, 'F' },
		{ "threads", required_argument, NULL, 'j' },
		{ "merge-limit", required_argument, NULL, 'M' },
		{ "readahead", required_argument, NULL, 'A' },
		{ "ahead", required_argument, NULL, 'H' },
		{ "log-level", required_argument, NULL, 'L' },
		{ "ready-fd", required_argument, NULL, 'R' },
		{ "no-holder", no_argument, NULL, 'N' },
		{ "prefetch-threads", required_argument, NULL, 'P' },
		{ "prefetch-bandwidth", required_argument, NULL, 'B' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 }
	};
	const char *config = NULL;
	struct sk_err e = { { 0 } };
	int o;

	/* first pass: the config file, so that flags override it */
	opterr = 0;
	while ((o = getopt_long(argc, argv, "c:j:hV", opts, NULL)) != -1)
		if (o == 'c')
			config = optarg;
	if (!config && access(DEFAULT_CONFIG, F_OK) == 0)
		config = DEFAULT_CONFIG;
	if (config && ld_config_load(c, config, &e)) {
		fprintf(stderr, "skiffd: %s\n", e.msg);
		return 1;
	}
	opterr = 1;
	optind = 1;
	while ((o = getopt_long(argc, argv, "c:j:hV", opts, NULL)) != -1) {
		char *end;
		long v;
		uint64_t sz;

		switch (o) {
		case 'c':
			break;
		case 'C':
			snprintf(c->cache_dir, sizeof(c->cache_dir), "%s", optarg);
			break;
		case 'W':
			snprintf(c->work_dir, sizeof(c->work_dir), "%s", optarg);
			break;
		case 'S':
			snprintf(c->socket_path, sizeof(c->socket_path), "%s", optarg);
			break;
		case 'F':
			if (!strcmp(optarg, "auto"))
				c->frontend = LD_FE_AUTO;
			else if (!strcmp(optarg, "fanotify"))
				c->frontend = LD_FE_FANOTIFY;
			else if (!strcmp(optarg, "cachefiles"))
				c->frontend = LD_FE_CACHEFILES;
			else {
				fprintf(stderr, "skiffd: --frontend %s: use auto, fanotify or cachefiles\n", optarg);
				return 2;
			}
			break;
		case 'j':
			v = strtol(optarg, &end, 10);
			if (*end || v < 1 || v > 1024) {
				fprintf(stderr, "skiffd: --threads %s: need 1 to 1024\n", optarg);
				return 2;
			}
			c->threads = (unsigned int)v;
			break;
		case 'P':
			v = strtol(optarg, &end, 10);
			if (*end || v < 1 || v > 64) {
				fprintf(stderr, "skiffd: --prefetch-threads %s: need 1 to 64\n", optarg);
				return 2;
			}
			c->prefetch_threads = (unsigned int)v;
			break;
		case 'B':
			if (sk_parse_size(optarg, &sz)) {
				fprintf(stderr, "skiffd: --prefetch-bandwidth %s: need bytes per second, e.g. 10M\n", optarg);
				return 2;
			}
			c->prefetch_bandwidth = sz;
			break;
		case 'M':
			if (sk_parse_size(optarg, &sz) || sz < 4096 || sz > (256u << 20)) {
				fprintf(stderr, "skiffd: --merge-limit %s: need 4K to 256M\n", optarg);
				return 2;
			}
			c->merge_limit = (uint32_t)sz;
			break;
		case 'A':
			if (sk_parse_size(optarg, &sz) || sz > (256u << 20)) {
				fprintf(stderr, "skiffd: --readahead %s: need 0 to 256M\n", optarg);
				return 2;
			}
			c->readahead = (uint32_t)sz;
			break;
		case 'H':
			if (sk_parse_size(optarg, &sz) || sz > (256u << 20)) {
				fprintf(stderr, "skiffd: --ahead %s: need 0 to 256M\n", optarg);
				return 2;
			}
			c->ahead = (uint32_t)sz;
			break;
		case 'L':
			if (!strcmp(optarg, "error"))
				c->log_level = LD_LOG_ERROR;
			else if (!strcmp(optarg, "warn"))
				c->log_level = LD_LOG_WARN;
			else if (!strcmp(optarg, "info"))
				c->log_level = LD_LOG_INFO;
			else if (!strcmp(optarg, "debug"))
				c->log_level = LD_LOG_DEBUG;
			else {
				fprintf(stderr, "skiffd: --log-level %s: use error, warn, info or debug\n", optarg);
				return 2;
			}
			break;
		case 'R':
			v = strtol(optarg, &end, 10);
			if (*end || v < 0 || fcntl((int)v, F_GETFD) < 0) {
				fprintf(stderr, "skiffd: --ready-fd %s: not an open descriptor\n", optarg);
				return 2;
			}
			c->ready_fd = (int)v;
			break;
		case 'N':
			c->no_holder = true;
			break;
		case 'h':
			fputs(usage, stdout);
			exit(0);
		case 'V':
			printf("skiffd %s\n", SKIFF_VERSION);
			exit(0);
		default:
			fputs(usage, stderr);
			return 2;
		}
	}
	if (optind != argc) {
		fputs(usage, stderr);
		return 2;
	}
	return 0;
}

static int make_dirs(struct ld_daemon *d)
{
	char p[PATH_MAX];
	const char *dirs[] = { "blobs", "bootstraps", "tables" };
	int ret;

	for (size_t i = 0; i < SK_ARRAY_SIZE(dirs); i++) {
		ret = sk_path_join(p, sizeof(p), d->cfg.cache_dir, dirs[i]);
		if (!ret)
			ret = sk_mkdir_p(p, 0700);
		if (ret) {
			ld_log(d, LD_LOG_ERROR, "%s: %s", p, strerror(-ret));
			return ret;
		}
	}
	ret = sk_mkdir_p(d->cfg.work_dir, 0700);
	if (ret) {
		ld_log(d, LD_LOG_ERROR, "%s: %s", d->cfg.work_dir, strerror(-ret));
		return ret;
	}
	snprintf(p, sizeof(p), "%s", d->cfg.socket_path);
	char *slash = strrchr(p, '/');

	if (slash && slash != p) {
		*slash = '\0';
		ret = sk_mkdir_p(p, 0755);
		if (ret) {
			ld_log(d, LD_LOG_ERROR, "%s: %s", p, strerror(-ret));
			return ret;
		}
	}
	return 0;
}

static const struct ld_frontend_ops *pick_frontend(struct ld_daemon *d)
{
	struct sk_err ce = { { 0 } }, fe = { { 0 } };
	int dev;

	if (d->cfg.frontend != LD_FE_FANOTIFY) {
		/* probing binds the device; closing it again is harmless as
		 * no cache is in use yet */
		dev = ld_cachefiles_bind(d->cfg.cache_dir, &ce);
		if (dev >= 0) {
			close(dev);
			return &ld_cachefiles_ops;
		}
		if (d->cfg.frontend == LD_FE_CACHEFILES) {
			ld_log(d, LD_LOG_ERROR, "cachefiles frontend unavailable: %s", ce.msg);
			return NULL;
		}
	}
	if (ld_fanotify_probe(d->cfg.cache_dir, &fe) == 0)
		return &ld_fanotify_ops;
	if (d->cfg.frontend == LD_FE_FANOTIFY) {
		ld_log(d, LD_LOG_ERROR, "fanotify frontend unavailable: %s", fe.msg);
		return NULL;
	}
	ld_log(d, LD_LOG_ERROR, "no frontend: cachefiles: %s; fanotify: %s", ce.msg, fe.msg);
	return NULL;
}

int main(int argc, char **argv)
{
	struct ld_daemon d = { 0 };
	const struct ld_frontend_ops *ops;
	struct sk_err e = { { 0 } };
	sigset_t set;
	int sig, ret;

	ld_config_defaults(&d.cfg);
	d.hold_group = d.hold_sock = -1;
	ret = parse_args(&d.cfg, argc, argv);
	if (ret)
		return ret;
	pthread_mutex_init(&d.lock, NULL);
	pthread_mutex_init(&d.api_lock, NULL);
	pthread_mutex_init(&d.src_lock, NULL);
	d.start_time = sk_now();
	/* every thread inherits the mask; only main takes signals */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (make_dirs(&d))
		return 1;
	ops = pick_frontend(&d);
	if (!ops)
		return 1;
	if (ops == &ld_fanotify_ops && !d.cfg.no_holder) {
		/* the group must outlive any crash of the serving process:
		 * a small holder process keeps it and restarts the server */
		d.hold_group = fanotify_init(FAN_CLASS_PRE_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK,
					     O_RDWR | O_LARGEFILE);
		if (d.hold_group < 0) {
			ld_log(&d, LD_LOG_ERROR, "fanotify_init: %s", strerror(errno));
			return 1;
		}
		ret = ld_holder_run(d.hold_group, &d.hold_sock, d.cfg.log_level,
				    &d.cfg.ready_fd);
		if (ret) {
			ld_log(&d, LD_LOG_ERROR, "holder: %s", strerror(-ret));
			return 1;
		}
	}
	ret = sk_pool_create(&d.pool, d.cfg.threads);
	if (ret) {
		ld_log(&d, LD_LOG_ERROR, "worker pool: %s", strerror(-ret));
		return 1;
	}
	/* windows run on their own threads: requests wait on them, so they
	 * must never queue behind requests */
	ret = sk_pool_create(&d.ra_pool, 2);
	if (ret) {
		ld_log(&d, LD_LOG_ERROR, "read-ahead threads: %s", strerror(-ret));
		return 1;
	}
	/* enough for the fetches of a busy moment (requests, windows,
	 * prefetch); a burst beyond allocates and frees as before */
	ret = ld_bufs_new(&d.bufs, d.cfg.threads + 4, 64u << 20);
	if (ret) {
		ld_log(&d, LD_LOG_ERROR, "buffers: %s", strerror(-ret));
		return 1;
	}
	ret = ld_rings_new(&d.rings, d.cfg.threads, 64);
	if (ret) {
		/* a kernel without io_uring (or a seccomp policy) still works */
		ld_log(&d, LD_LOG_WARN, "io_uring unavailable (%s): writing with pwrite(2)",
		       strerror(-ret));
		d.rings = NULL;
	}
	ret = ops->start(&d, &d.fe, &e);
	if (ret) {
		ld_log(&d, LD_LOG_ERROR, "%s frontend: %s", ops->name, e.msg);
		return 1;
	}
	ret = ld_pf_start(&d, &e);
	if (ret) {
		ld_log(&d, LD_LOG_ERROR, "%s", e.msg);
		d.fe->ops->destroy(d.fe);
		return 1;
	}
	ld_state_restore(&d);
	ret = d.fe->ops->serve(d.fe);
	if (ret) {
		ld_log(&d, LD_LOG_ERROR, "%s frontend: %s", ops->name, strerror(-ret));
		d.fe->ops->destroy(d.fe);
		return 1;
	}
	ret = ld_api_start(&d, &e);
	if (ret) {
		ld_log(&d, LD_LOG_ERROR, "control socket %s: %s", d.cfg.socket_path, e.msg);
		d.fe->ops->destroy(d.fe);
		return 1;
	}
	ld_log(&d, LD_LOG_INFO, "ready: frontend %s, socket %s, cache %s",
	       ops->name, d.cfg.socket_path, d.cfg.cache_dir);
	if (d.cfg.ready_fd >= 0) {
		if (write(d.cfg.ready_fd, "READY\n", 6) < 0)
			ld_log(&d, LD_LOG_WARN, "--ready-fd: %s", strerror(errno));
		close(d.cfg.ready_fd);
	}
	while (sigwait(&set, &sig) == 0 && sig == SIGHUP)
		ld_log(&d, LD_LOG_INFO, "SIGHUP: nothing to reload");
	ld_log(&d, LD_LOG_INFO, "signal %d: stopping", sig);
	ld_api_stop(&d);
	ld_pf_stop(&d);
	/* no new events; answer every queued one; only then let go of the
	 * group (the kernel allows what nobody answers) */
	d.fe->ops->stop(d.fe);
	sk_pool_destroy(d.pool);
	sk_pool_destroy(d.ra_pool);	/* runs what is queued, then ends */
	ld_rings_free(d.rings);
	ld_bufs_free(d.bufs);
	if (d.images)
		ld_log(&d, LD_LOG_WARN, "images still mounted: their uncached reads fail or read zeros until skiffd runs again");
	d.fe->ops->destroy(d.fe);
	d.fe = NULL;
	/* nothing runs now; freeing what is left lets a leak checker
	 * see the daemon's real leaks */
	ld_daemon_free_images(&d);
	be_config_free(&d.cfg.backend);	/* the sources used it until now */
	return 0;
}
