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

#include "config.h"
#include "daemon.h"
#include "evict.h"
#include "prefetch.h"
#include "holder.h"

#ifndef SKIFF_VERSION
#define SKIFF_VERSION "0.1.0"
#endif
#define DEFAULT_CONFIG "/etc/skiff/skiffd.json"

/* Flags that are no key of skiffd.json; ld_opts gives the rest. */
enum { OPT_CONFIG = 'c', OPT_HELP = 'h', OPT_VERSION = 'V', OPT_READY_FD = 256,
       OPT_NO_HOLDER, OPT_DUMP, OPT_HOLDER_ABI, OPT_TABLE };

static const char usage_head[] =
"usage: skiffd [options]\n"
"\n"
"The skiff loader daemon: serves registered images to the kernel, fetching\n"
"chunks on demand. It runs in the foreground; the control socket appears\n"
"when it is ready. Options override keys of the configuration file\n"
"(skiffd.json(5)); a SIZE takes K, M or G, e.g. 8M.\n"
"\n"
"  -c, --config FILE       configuration (default " DEFAULT_CONFIG " if present)\n";

static const char usage_tail[] =
"      --ready-fd FD       write \"READY\\n\" to FD and close it once serving\n"
"      --no-holder         no holder process (a crash then lets reads of\n"
"                          uncached data return zeros with fanotify, or\n"
"                          withdraws the cachefiles cache; for debugging only)\n"
"      --dump-options      print the options of the table above as JSON\n"
"      --holder-abi        print what a holder hands this binary in an upgrade\n"
"  -h, --help              this help\n"
"  -V, --version           print the version\n";

static void usage(FILE *f)
{
	fputs(usage_head, f);
	for (size_t i = 0; i < ld_nopts; i++) {
		const struct ld_opt *o = &ld_opts[i];
		char head[64], sum[256];
		int n;

		if (o->short_flag)
			snprintf(head, sizeof(head), "-%c, --%s %s", o->short_flag, o->flag, o->meta);
		else
			snprintf(head, sizeof(head), "    --%s %s", o->flag, o->meta);
		ld_opt_describe(o, sum, sizeof(sum));
		if (strlen(head) > 23)
			fprintf(f, "  %s\n%26s", head, "");
		else
			fprintf(f, "  %-23s ", head);
		/* the range and default after the help, or below it */
		n = (int)(strlen(o->help) + strlen(sum));
		if (26 + n + 3 <= 80)
			fprintf(f, "%s (%s)\n", o->help, sum);
		else
			fprintf(f, "%s\n%26s(%s)\n", o->help, "", sum);
	}
	fputs(usage_tail, f);
}

static int dump_options(void)
{
	char *text = ld_opt_dump();

	if (!text) {
		fputs("skiffd: out of memory\n", stderr);
		return 1;
	}
	puts(text);
	free(text);
	return 0;
}

static int parse_args(struct ld_config *c, int argc, char **argv, bool resumed)
{
	static const struct option fixed[] = {
		{ "config", required_argument, NULL, OPT_CONFIG },
		{ "ready-fd", required_argument, NULL, OPT_READY_FD },
		{ "no-holder", no_argument, NULL, OPT_NO_HOLDER },
		{ "dump-options", no_argument, NULL, OPT_DUMP },
		{ "holder-abi", no_argument, NULL, OPT_HOLDER_ABI },
		{ "help", no_argument, NULL, OPT_HELP },
		{ "version", no_argument, NULL, OPT_VERSION },
	};
	struct option opts[SK_ARRAY_SIZE(fixed) + 32];
	char shorts[64] = "c:hV";
	size_t n = 0, ns = strlen(shorts);
	const char *config = NULL;
	struct sk_err e = { { 0 } };
	int o, idx;

	/* the table's flags have val OPT_TABLE + their index; a short flag
	 * (-j) is found in the table by its letter */
	if (ld_nopts + SK_ARRAY_SIZE(fixed) + 1 > SK_ARRAY_SIZE(opts)) {
		fputs("skiffd: too many options\n", stderr);
		return 1;
	}
	memcpy(opts, fixed, sizeof(fixed));
	n = SK_ARRAY_SIZE(fixed);
	for (size_t i = 0; i < ld_nopts; i++) {
		opts[n++] = (struct option){ ld_opts[i].flag, required_argument, NULL,
					     OPT_TABLE + (int)i };
		if (ld_opts[i].short_flag && ns + 3 < sizeof(shorts)) {
			shorts[ns++] = ld_opts[i].short_flag;
			shorts[ns++] = ':';
			shorts[ns] = '\0';
		}
	}
	opts[n] = (struct option){ 0 };

	/* first pass: the config file, so that flags override it */
	opterr = 0;
	while ((o = getopt_long(argc, argv, shorts, opts, NULL)) != -1)
		if (o == OPT_CONFIG)
			config = optarg;
	if (!config && access(DEFAULT_CONFIG, F_OK) == 0)
		config = DEFAULT_CONFIG;
	if (config && ld_config_load(c, config, &e)) {
		fprintf(stderr, "skiffd: %s\n", e.msg);
		return 1;
	}
	opterr = 1;
	optind = 1;
	while ((o = getopt_long(argc, argv, shorts, opts, NULL)) != -1) {
		char *end;
		long v;

		idx = -1;
		if (o >= OPT_TABLE)
			idx = o - OPT_TABLE;
		for (size_t i = 0; o < 256 && i < ld_nopts; i++)
			if (ld_opts[i].short_flag == o)
				idx = (int)i;
		if (idx >= 0) {
			if (ld_opt_set_arg(c, &ld_opts[idx], optarg, &e)) {
				fprintf(stderr, "skiffd: %s\n", e.msg);
				return 2;
			}
			continue;
		}
		switch (o) {
		case OPT_CONFIG:
			break;
		case OPT_READY_FD:
			/* a holder that became this binary (an upgrade) keeps
			 * the command line: its readiness pipe is long gone,
			 * and the number may be one of the held fds now */
			if (resumed)
				break;
			v = strtol(optarg, &end, 10);
			if (*end || v < 0 || fcntl((int)v, F_GETFD) < 0) {
				fprintf(stderr, "skiffd: --ready-fd %s: not an open descriptor\n", optarg);
				return 2;
			}
			c->ready_fd = (int)v;
			break;
		case OPT_NO_HOLDER:
			c->no_holder = true;
			break;
		case OPT_DUMP:
			exit(dump_options());
		case OPT_HOLDER_ABI: {
			char abi[128];

			ld_holder_abi(abi, sizeof(abi));
			printf("%s\n", abi);
			exit(0);
		}
		case OPT_HELP:
			usage(stdout);
			exit(0);
		case OPT_VERSION:
			printf("skiffd %s\n", SKIFF_VERSION);
			exit(0);
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
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

/* The path skiffd runs from: where a package upgrade puts the new binary
 * (the link says " (deleted)" once it has). */
static void what_binary(char *buf, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", buf, len - 1);
	const char *del = " (deleted)";
	size_t dl = strlen(del);

	buf[n > 0 ? n : 0] = '\0';
	if (n > 0 && (size_t)n > dl && !strcmp(buf + n - dl, del))
		buf[n - dl] = '\0';
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
	const struct ld_frontend_ops *ops = NULL;
	struct sk_err e = { { 0 } };
	sigset_t set;
	enum ld_hold_kind kind = LD_HOLD_FANOTIFY;
	struct ld_hold_inherit in;
	bool resumed = false;
	int sig, ret;

	ld_config_defaults(&d.cfg);
	d.hold_fd = d.hold_sock = d.hold_jfd = -1;
	d.argv = argv;
	/* every thread inherits the mask; only main takes signals */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	if (getenv("SKIFFD_HOLDER_STATE")) {
		/* a holder that became this binary (skiff daemon upgrade):
		 * it takes over before anything here can fail, since it is
		 * the only one holding the kernel fd. A server it starts that
		 * cannot parse the command line or the configuration dies,
		 * and the holder treats that as a failed start. */
		int statefd = atoi(getenv("SKIFFD_HOLDER_STATE"));
		struct ld_hold_info hi = { 0, 0, -1, false };

		unsetenv("SKIFFD_HOLDER_STATE");	/* not for its children */
		resumed = true;
		ret = ld_holder_resume(statefd, &kind, &d.hold_fd, &d.hold_sock,
				       d.cfg.log_level, &hi, argv);
		if (ret) {
			/* nobody else holds the kernel fd: keep it open and
			 * say so, rather than exit and break every mount */
			ld_log(&d, LD_LOG_ERROR, "upgrade: cannot take over the holder's state: "
			       "%s; holding the kernel fd, serving nothing", strerror(-ret));
			for (;;)
				pause();
		}
		ops = kind == LD_HOLD_CACHEFILES ? &ld_cachefiles_ops : &ld_fanotify_ops;
		d.generation = hi.generation;
		d.handed = hi.handed;
		d.hold_jfd = hi.jfd;
		d.hold_fdstore = hi.fdstore;
	} else if ((ret = ld_holder_inherited(&in)) != 0) {
		/* the kernel fd of a dead holder: from systemd's fd store
		 * (a restart), or from our former serving process. It is
		 * adopted before anything here can fail, as above. */
		struct ld_hold_info hi = { 0, 0, -1, false };

		if (ret < 0 && in.only_copy && in.readyfd < 0) {
			ld_log(&d, LD_LOG_ERROR, "cannot adopt the kernel fd of the dead holder "
			       "(%s): holding it, serving nothing", strerror(-ret));
			for (;;)
				pause();
		}
		/* a server that waits for us still holds its copy: it
		 * tries again when we are gone */
		if (ret < 0) {
			/* systemd still has them in its store */
			ld_log(&d, LD_LOG_ERROR, "the fds passed to skiffd are not a kernel fd "
			       "it can adopt: %s", strerror(-ret));
			return 1;
		}
		resumed = true;
		ret = ld_holder_adopt(&in, &d.hold_sock, d.cfg.log_level, &hi, argv);
		if (ret) {
			ld_log(&d, LD_LOG_ERROR, "adopting the kernel fd: %s; holding it, serving "
			       "nothing", strerror(-ret));
			for (;;)
				pause();
		}
		d.hold_fd = in.kfd;
		ops = in.kind == LD_HOLD_CACHEFILES ? &ld_cachefiles_ops : &ld_fanotify_ops;
		d.generation = hi.generation;
		d.handed = hi.handed;
		d.hold_jfd = hi.jfd;
		d.hold_fdstore = hi.fdstore;
	}
	ret = parse_args(&d.cfg, argc, argv, resumed);
	if (ret)
		return ret;
	pthread_mutex_init(&d.lock, NULL);
	pthread_mutex_init(&d.cache_full.lock, NULL);
	pthread_rwlock_init(&d.registering, NULL);
	pthread_mutex_init(&d.api_lock, NULL);
	pthread_mutex_init(&d.src_lock, NULL);
	d.start_time = sk_now();

	if (make_dirs(&d))
		return 1;
	what_binary(d.binary, sizeof(d.binary));
	if (!resumed && !d.cfg.no_holder) {
		/* the kernel fd must outlive any crash of the serving
		 * process: a small holder process keeps it and restarts the
		 * server */
		bool fan;

		ops = pick_frontend(&d);
		if (!ops)
			return 1;
		fan = ops == &ld_fanotify_ops;
		if (fan) {
			d.hold_fd = fanotify_init(FAN_CLASS_PRE_CONTENT | FAN_CLOEXEC |
						  FAN_NONBLOCK, O_RDWR | O_LARGEFILE);
			if (d.hold_fd < 0)
				ld_log(&d, LD_LOG_ERROR, "fanotify_init: %s", strerror(errno));
		} else {
			d.hold_fd = ld_cachefiles_bind(d.cfg.cache_dir, &e);
			if (d.hold_fd < 0)
				ld_log(&d, LD_LOG_ERROR, "cachefiles: %s", e.msg);
		}
		if (d.hold_fd < 0)
			return 1;
		struct ld_hold_info hi = { 0, 0, -1, false };

		ret = ld_holder_run(fan ? LD_HOLD_FANOTIFY : LD_HOLD_CACHEFILES, d.hold_fd,
				    &d.hold_sock, d.cfg.log_level, &d.cfg.ready_fd, &hi, argv);
		d.generation = hi.generation;
		d.handed = hi.handed;
		d.hold_jfd = hi.jfd;
		d.hold_fdstore = hi.fdstore;
		if (ret) {
			ld_log(&d, LD_LOG_ERROR, "holder: %s", strerror(-ret));
			return 1;
		}
		/* tests: a serving process that dies at once, for as long
		 * as the named file exists */
		if (getenv("SKIFF_TEST_SERVER_CRASH_FILE") &&
		    access(getenv("SKIFF_TEST_SERVER_CRASH_FILE"), F_OK) == 0) {
			ld_log(&d, LD_LOG_ERROR, "test: the serving process dies at start");
			_exit(3);
		}
	}
	if (!ops && !(ops = pick_frontend(&d)))
		return 1;
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
	/* before events are served: a full disk's kick finds it started */
	ret = ld_evict_start(&d, &e);
	if (ret) {
		ld_log(&d, LD_LOG_ERROR, "%s", e.msg);
		d.fe->ops->destroy(d.fe);
		return 1;
	}
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
	/* the holder restarts a server that served at once when it dies */
	if (d.hold_sock >= 0 && (ret = ld_hold_answered(d.hold_sock, -1, LD_HOLD_READY)))
		ld_log(&d, LD_LOG_WARN, "telling the holder: %s", strerror(-ret));
	if (d.cfg.ready_fd >= 0) {
		if (write(d.cfg.ready_fd, "READY\n", 6) < 0)
			ld_log(&d, LD_LOG_WARN, "--ready-fd: %s", strerror(errno));
		close(d.cfg.ready_fd);
	}
	while (sigwait(&set, &sig) == 0) {
		char why[1024];

		if (sig == SIGHUP) {
			ld_log(&d, LD_LOG_INFO, "SIGHUP: nothing to reload");
			continue;
		}
		/* the group would close with the holder: the kernel would
		 * read the holes of those mounts as zeros */
		if (!atomic_load(&d.force_stop) && !atomic_load(&d.upgrading) &&
		    ld_stop_refused(&d, why, sizeof(why))) {
			ld_log(&d, LD_LOG_ERROR, "signal %d: not stopping: %s, or stop with "
			       "skiff stop --force", sig, why);
			continue;
		}
		break;
	}
	if (atomic_load(&d.upgrading))
		ld_log(&d, LD_LOG_INFO, "upgrade: this server ends; the holder hands over");
	else
		ld_log(&d, LD_LOG_INFO, "signal %d: stopping", sig);
	ld_api_stop(&d);
	ld_evict_stop(&d);
	/* no new events; answer every queued one; only then let go of the
	 * group (the kernel allows what nobody answers) */
	d.fe->ops->stop(d.fe);
	if (atomic_load(&d.upgrading)) {
		/* the holder keeps every request until it is answered, and
		 * hands what we leave to the next server: answer only what
		 * runs now, not a backlog that may take minutes on a slow
		 * link. What the process owns goes with it, as in a crash. */
		size_t left = sk_pool_drop_queued(d.pool);

		/* a fetch that takes long (retries, a slow link) is not
		 * waited for: after 3 s the alarm ends this process, which
		 * is as safe as a crash (the holder still has it all) */
		alarm(3);
		sk_pool_destroy(d.pool);
		ld_log(&d, LD_LOG_INFO, "upgrade: %zu queued requests left to the next server",
		       left);
		_exit(0);
	}
	/* after the frontend: a cachefiles OPEN kicks the prefetcher */
	ld_pf_stop(&d);
	sk_pool_destroy(d.pool);
	sk_pool_destroy(d.ra_pool);	/* runs what is queued, then ends */
	ld_evict_free(&d);
	ld_rings_free(d.rings);
	ld_bufs_free(d.bufs);
	if (d.images && !atomic_load(&d.upgrading))
		ld_log(&d, LD_LOG_WARN, "images still mounted: their uncached reads fail or read zeros until skiffd runs again");
	d.fe->ops->destroy(d.fe);
	d.fe = NULL;
	/* nothing runs now; freeing what is left lets a leak checker
	 * see the daemon's real leaks */
	ld_daemon_free_images(&d);
	be_config_free(&d.cfg.backend);	/* the sources used it until now */
	return 0;
}
