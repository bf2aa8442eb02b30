/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Control API routes (HTTP/1.1 over the root-only Unix socket, JSON):
 *
 *   GET    /v1/state         daemon state
 *   GET    /v1/images        registered images with their blobs and counters
 *   POST   /v1/images        {"ref": "DIR[:TAG]", "id"?: "...", "mountpoint"?: "..."}
 *   DELETE /v1/images/<id>   unregister
 *   POST   /v1/credentials   {"registry": "HOST[:PORT]", "username": "...",
 *                             "password": "..."} (no username: forget)
 *   GET    /metrics          Prometheus text format
 *
 * Handlers run on the HTTP server's threads, concurrently with each other
 * and with the frontend: they take the daemon lock for what they read.
 */
#include <errno.h>
#include <signal.h>
#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "gc.h"
#include "holder.h"
#include "prefetch.h"
#include "trace.h"
#include "../ctl/ctl.h"

#define LOAD(x) atomic_load(&(x))

/* Answers with j and drops our reference to it. */
static void reply(struct ctl_resp *resp, int status, json_t *j)
{
	/* on failure the helpers leave a bodiless 500, which is the answer */
	if (!j || ctl_resp_json(resp, status, j))
		resp->status = 500;
	json_decref(j);
}

#define reply_error(r, code, ...)					\
	do {								\
		if (ctl_resp_error(r, code, __VA_ARGS__))		\
			(r)->status = 500;				\
	} while (0)

/* reads_seen: the frontend asks about reads of ready data too (fanotify,
 * a watched file), so bytes fetched ahead and read since are known
 * (cachefiles, or a complete file no longer watched: not) */
static json_t *counters_json(struct ld_counters *c, bool reads_seen)
{
	uint64_t errs = LOAD(c->err_fetch) + LOAD(c->err_verify) + LOAD(c->err_write);

	json_t *j = json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:{s:I, s:I, s:I}}",
			 "error_total", (json_int_t)errs,
			 "reads", (json_int_t)LOAD(c->fills),
			 "read_bytes", (json_int_t)LOAD(c->fill_bytes),
			 "waits", (json_int_t)LOAD(c->waits),
			 "fetches", (json_int_t)LOAD(c->fetches),
			 "fetched_chunks", (json_int_t)LOAD(c->fetch_chunks),
			 "fetched_bytes", (json_int_t)LOAD(c->fetch_bytes),
			 "cache_write_bytes", (json_int_t)LOAD(c->write_bytes),
			 "errors", "fetch", (json_int_t)LOAD(c->err_fetch),
			 "verify", (json_int_t)LOAD(c->err_verify),
			 "write", (json_int_t)LOAD(c->err_write));
	json_t *pf = json_pack("{s:I, s:I, s:I}",
			       "chunks", (json_int_t)LOAD(c->pf_chunks),
			       "bytes", (json_int_t)LOAD(c->pf_bytes),
			       "hits", (json_int_t)LOAD(c->pf_hits));

	json_object_set_new(j, "misses", json_integer((json_int_t)LOAD(c->misses)));
	{
		uint64_t ahead = LOAD(c->raf_bytes) + LOAD(c->rax_bytes) + LOAD(c->pf_bytes);
		uint64_t later = LOAD(c->later_bytes);

		/* why the stored bytes came, and those fetched ahead that no
		 * read has asked for (yet: after an unmount, for nothing) */
		json_object_set_new(j, "fetched_for", json_pack("{s:I, s:I, s:I, s:I}",
			"demand", (json_int_t)LOAD(c->dm_bytes),
			"readahead_file", (json_int_t)LOAD(c->raf_bytes),
			"readahead_across", (json_int_t)LOAD(c->rax_bytes),
			"prefetch", (json_int_t)LOAD(c->pf_bytes)));
		if (reads_seen)
			json_object_set_new(j, "unread_bytes",
					    json_integer((json_int_t)(ahead > later ? ahead - later : 0)));
	}
	json_object_set_new(j, "prefetch", pf);
	return j;
}

static json_t *pf_json(const struct ld_pf_status *st)
{
	double end = st->finished ? st->finished : sk_now();
	json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:i, s:f}",
			      "state", ld_pf_state_name(st->state),
			      "what", st->all ? "all" : "list",
			      "total_bytes", (json_int_t)st->total_bytes,
			      "done_bytes", (json_int_t)st->done_bytes,
			      "fetched_bytes", (json_int_t)st->fetched_bytes,
			      "bandwidth", (json_int_t)st->bandwidth,
			      "list_entries", (int)st->list_entries,
			      "seconds", end - st->started);

	if (j && st->error[0])
		json_object_set_new(j, "error", json_string(st->error));
	return j;
}

static bool reads_seen(const struct ld_daemon *d)
{
	return d->fe && d->fe->ops != &ld_cachefiles_ops;
}

static json_t *image_json(struct ld_daemon *d, struct ld_image *im)
{
	json_t *blobs = json_array();
	struct ld_counters sum = { 0 };
	bool seen = reads_seen(d);

	for (unsigned int i = 0; i < im->nblobs; i++) {
		struct ld_blob *bl = im->blobs[i];
		const struct fmt_blob_ref *r = &im->refs[i];
		json_t *b = json_pack("{s:s, s:I, s:I, s:I}", "id", r->hex,
				      "size", (json_int_t)r->usize,
				      "stored_size", (json_int_t)r->stored_size,
				      "chunks", (json_int_t)r->chunk_count);
		uint64_t bytes, chunks;

		if (!bl) {
			json_array_append_new(blobs, b);
			continue;
		}
		/* known while a file is attached: skiffd's own always, the
		 * kernel's while it has the blob open (cachefiles) */
		if (ld_blob_ready(bl, &bytes, &chunks)) {
			json_object_set_new(b, "ready_bytes", json_integer((json_int_t)bytes));
			json_object_set_new(b, "ready_chunks", json_integer((json_int_t)chunks));
		}
		if (bl->path[0]) {
			struct stat st;

			/* under d->lock: the open file, no path lookup */
			if (bl->own.fd >= 0 && fstat(bl->own.fd, &st) == 0)
				json_object_set_new(b, "cache_bytes",
						    json_integer((json_int_t)st.st_blocks * 512));
			json_object_set_new(b, "cache_file", json_string(bl->path));
			json_object_set_new(b, "watched", json_boolean(bl->marked));
		}
		/* a blob no longer watched (complete, no cache limit) is read
		 * without skiffd hearing of it: what is unread is not known */
		json_object_set_new(b, "counters", counters_json(bl->cache.cnt,
								 reads_seen(d) && bl->marked));
		seen &= bl->marked;
		ld_counters_add(&sum, bl->cache.cnt);
		json_array_append_new(blobs, b);
	}
	json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:o, s:o, s:b}",
			      "id", im->id, "ref", im->ref, "domain", im->domain,
			      "mountpoint", im->mountpoint,
			      "manifest", im->manifest, "bootstrap", im->bootstrap_path,
			      "bootstrap_size", (json_int_t)im->bootstrap_size,
			      "blobs", blobs, "counters", counters_json(&sum, seen),
			      "tracing", im->trace != NULL);
	struct ld_pf_status st;

	if (j && ld_pf_status(d, im, &st) == 0)
		json_object_set_new(j, "prefetch", pf_json(&st));
	return j;
}

/*
 * POST /v1/stop {"force": bool}: stops skiffd as SIGTERM does, answering
 * first. Refused (409, naming them) while lazy mounts are up in fanotify
 * mode, unless forced: their uncached reads would then return zeros.
 */
static void post_stop(struct ld_daemon *d, const struct ctl_req *req,
		      struct ctl_resp *resp)
{
	json_error_t je;
	json_t *j = req->body_len ? json_loadb(req->body, req->body_len, 0, &je) : json_object();
	json_t *force = json_object_get(j, "force");
	char why[1024];

	if (!json_is_object(j) || (force && !json_is_boolean(force))) {
		json_decref(j);
		reply_error(resp, 400, "body must be a JSON object, \"force\" a boolean");
		return;
	}
	if (!json_is_true(force) && ld_stop_refused(d, why, sizeof(why))) {
		json_decref(j);
		reply_error(resp, 409, "%s, or use --force", why);
		return;
	}
	if (json_is_true(force))
		atomic_store(&d->force_stop, true);
	json_decref(j);
	reply(resp, 200, json_pack("{s:b}", "stopping", 1));
	/* main's sigwait takes it once this answer is on its way */
	kill(getpid(), SIGTERM);
}

/*
 * POST /v1/upgrade {"binary": path}: replaces skiffd's binary with mounts
 * up (default: the path skiffd runs from, where a package upgrade puts
 * the new one). Once checked, the holder is told; this server answers
 * what it holds and ends, and the holder becomes the binary and starts a
 * server of it, which takes the images and the unanswered requests.
 */
static void post_upgrade(struct ld_daemon *d, const struct ctl_req *req,
			 struct ctl_resp *resp)
{
	json_error_t je;
	json_t *j = req->body_len ? json_loadb(req->body, req->body_len, 0, &je) : json_object();
	json_t *bin = json_object_get(j, "binary");
	struct sk_err e = { { 0 } };
	char path[PATH_MAX];
	int ret;

	if (!json_is_object(j) || (bin && !json_is_string(bin))) {
		json_decref(j);
		reply_error(resp, 400, "body must be a JSON object, \"binary\" a string");
		return;
	}
	snprintf(path, sizeof(path), "%s", bin ? json_string_value(bin) : d->binary);
	json_decref(j);
	if (d->hold_sock < 0) {
		reply_error(resp, 409, "skiffd runs without its holder (--no-holder): nothing "
			    "keeps the kernel fds across an upgrade; stop and start it instead");
		return;
	}
	/* one at a time: the check runs the new binary, which takes a while.
	 * upgrading itself is set only once the holder was asked, since it
	 * makes a SIGTERM end this server without a stop's checks */
	if (atomic_exchange(&d->upgrade_busy, true)) {
		reply_error(resp, 409, "an upgrade is under way");
		return;
	}
	ret = ld_upgrade_check(path, &e);
	if (ret) {
		atomic_store(&d->upgrade_busy, false);
		reply_error(resp, ret == -EPROTO ? 409 : 400, "%s", e.msg);
		return;
	}
	ret = ld_hold_ask_upgrade(d->hold_sock, path);
	if (ret) {
		atomic_store(&d->upgrade_busy, false);
		reply_error(resp, 500, "telling the holder: %s", strerror(-ret));
		return;
	}
	atomic_store(&d->upgrading, true);
	ld_log(d, LD_LOG_INFO, "upgrade to %s: answering what this server holds, then "
	       "handing over", path);
	reply(resp, 200, json_pack("{s:b,s:s,s:i}", "upgrading", 1, "binary", path,
				   "generation", (int)d->generation));
	/* main's sigwait takes it once this answer is on its way */
	kill(getpid(), SIGTERM);
}

static void get_images(struct ld_daemon *d, struct ctl_resp *resp)
{
	json_t *arr = json_array();

	pthread_mutex_lock(&d->lock);
	for (struct ld_image *im = d->images; im; im = im->next)
		json_array_append_new(arr, image_json(d, im));
	pthread_mutex_unlock(&d->lock);
	reply(resp, 200, json_pack("{s:o}", "images", arr));
}

static void post_image(struct ld_daemon *d, const struct ctl_req *req,
		       struct ctl_resp *resp)
{
	json_error_t je;
	json_t *j = json_loadb(req->body, req->body_len, 0, &je), *devs, *out;
	const char *ref, *id, *mnt, *dom;
	struct ld_image *im;
	struct ld_image_new *n;
	struct sk_err e = { { 0 } };
	int ret;

	if (!json_is_object(j)) {
		reply_error(resp, 400, "body must be a JSON object: %s", je.text);
		json_decref(j);
		return;
	}
	ref = json_string_value(json_object_get(j, "ref"));
	id = json_string_value(json_object_get(j, "id"));
	mnt = json_string_value(json_object_get(j, "mountpoint"));
	dom = json_string_value(json_object_get(j, "domain"));
	if (!ref || (ref[0] != '/' && !strstr(ref, "://"))) {
		reply_error(resp, 400, "\"ref\" must be an absolute DIR[:TAG], a URL or docker://...");
		json_decref(j);
		return;
	}
	/* the network work holds no lock: a slow source delays this call
	 * alone, not reads, status or other images' calls */
	ret = ld_image_fetch(d, ref, id, dom, mnt, &n, &e);
	if (!ret) {
		/* from here until the answer, nobody unregisters im */
		pthread_mutex_lock(&d->api_lock);
		ret = ld_image_add(d, n, &im, &e);
		if (ret)
			pthread_mutex_unlock(&d->api_lock);
	}
	if (!ret)
		ld_log(d, LD_LOG_INFO, "registered %s as %s", ref, im->id);
	json_decref(j);
	if (ret) {
		reply_error(resp, ret == -EEXIST ? 409 : ret == -ENOENT ? 404 : 422,
				   "%s", e.msg[0] ? e.msg : strerror(-ret));
		return;
	}
	pthread_mutex_lock(&d->lock);
	devs = json_array();
	/* the kernel's cache files (cachefiles) are no devices of ours */
	for (unsigned int i = 0; im->blobs && i < im->nblobs; i++)
		if (im->blobs[i] && im->blobs[i]->path[0])
			json_array_append_new(devs, json_string(im->blobs[i]->path));
	out = json_pack("{s:s, s:s, s:s, s:s, s:o}", "id", im->id, "domain", im->domain,
			"frontend", d->fe->ops->name, "bootstrap", im->bootstrap_path,
			"devices", devs);
	pthread_mutex_unlock(&d->lock);
	pthread_mutex_unlock(&d->api_lock);
	reply(resp, 200, out);
}

static void metric(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void metric(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(*buf ? *buf + *len : NULL, *buf ? *cap - *len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if (*buf && *len + (size_t)n < *cap) {
			*len += (size_t)n;
			return;
		}
		size_t ncap = (*cap ? *cap * 2 : 8192) + (size_t)n;
		char *nb = realloc(*buf, ncap);

		if (!nb)
			return;
		*buf = nb;
		*cap = ncap;
	}
}

/* A label value with its quotes and backslashes escaped. */
static void label_escape(const char *in, char *out, size_t outlen)
{
	size_t n = 0;

	for (; *in && n + 3 < outlen; in++) {
		if (*in == '"' || *in == '\\')
			out[n++] = '\\';
		out[n++] = *in == '\n' ? ' ' : *in;
	}
	out[n] = '\0';
}

/* A source's transport counters (NULL: it has none) and its label. */
static struct be_http_stats *src_stats(struct ld_source_ent *s, char *label,
				       size_t len)
{
	label_escape(s->src->desc, label, len);
	return s->src->ops->stats ? s->src->ops->stats(s->src) : NULL;
}

/* A counter kept as an _Atomic uint64_t field of some struct: its
 * metric name and help, and where the field lies. */
struct counter_def {
	const char *name, *help;
	size_t off;
};

static unsigned long long counter_at(void *base, size_t off)
{
	return atomic_load((_Atomic uint64_t *)((char *)base + off));
}

/* Writes a counter's samples: one line per label set. */
typedef void counter_samples_fn(char **buf, size_t *len, size_t *cap,
				const struct counter_def *c, void *arg);

/* Each counter of cs with its HELP and TYPE lines, then its samples. */
static void counter_table(char **buf, size_t *len, size_t *cap,
			  const struct counter_def *cs, size_t n,
			  counter_samples_fn *samples, void *arg)
{
	for (size_t k = 0; k < n; k++) {
		metric(buf, len, cap, "# HELP %s %s\n# TYPE %s counter\n", cs[k].name,
		       cs[k].help, cs[k].name);
		samples(buf, len, cap, &cs[k], arg);
	}
}

/* A transport counter of every network source (arg: the daemon). */
static void source_samples(char **buf, size_t *len, size_t *cap,
			   const struct counter_def *c, void *arg)
{
	struct ld_daemon *d = arg;
	char label[600];

	for (struct ld_source_ent *s = d->sources; s; s = s->next) {
		struct be_http_stats *st = src_stats(s, label, sizeof(label));

		if (st)
			metric(buf, len, cap, "%s{source=\"%s\"} %llu\n", c->name, label,
			       counter_at(st, c->off));
	}
}

/* Network sources' transport counters, labelled by source (called with
 * the daemon lock held: the source list does not change under us). */
static void source_metrics(struct ld_daemon *d, char **buf, size_t *len, size_t *cap)
{
	static const struct counter_def cs[] = {
#define C(f, n, h) { n, h, offsetof(struct be_http_stats, f) }
		C(requests, "skiff_backend_requests_total", "HTTP requests sent by network sources (every attempt and redirect)"),
		C(retries, "skiff_backend_retries_total", "HTTP attempts repeated after a failed one"),
		C(bytes, "skiff_backend_bytes_total", "HTTP body bytes received"),
		C(sent_bytes, "skiff_backend_sent_bytes_total", "HTTP body bytes sent"),
		C(redirects, "skiff_backend_redirects_total", "HTTP redirects followed"),
		C(http2, "skiff_backend_http2_total", "HTTP answers that came over HTTP/2"),
#undef C
	};
	char label[600];

	pthread_mutex_lock(&d->src_lock);
	counter_table(buf, len, cap, cs, SK_ARRAY_SIZE(cs), source_samples, d);
	metric(buf, len, cap, "# HELP skiff_backend_errors_total Failed HTTP attempts by kind\n# TYPE skiff_backend_errors_total counter\n");
	for (struct ld_source_ent *s = d->sources; s; s = s->next) {
		struct be_http_stats *st = src_stats(s, label, sizeof(label));

		if (!st)
			continue;
		for (int k = 0; k < BE_HE_COUNT; k++)
			metric(buf, len, cap, "skiff_backend_errors_total{source=\"%s\",kind=\"%s\"} %llu\n",
			       label, be_http_errkind_names[k],
			       (unsigned long long)LOAD(st->errors[k]));
	}
	pthread_mutex_unlock(&d->src_lock);
}

/* The same counters as JSON, for skiff status. */
static json_t *sources_json(struct ld_daemon *d)
{
	json_t *arr = json_array();

	pthread_mutex_lock(&d->src_lock);
	for (struct ld_source_ent *s = d->sources; s; s = s->next) {
		struct be_http_stats *st = s->src->ops->stats ? s->src->ops->stats(s->src) : NULL;
		json_t *o = json_pack("{s:s}", "source", s->src->desc), *errs;

		if (st) {
			errs = json_object();
			for (int k = 0; k < BE_HE_COUNT; k++)
				json_object_set_new(errs, be_http_errkind_names[k],
						    json_integer((json_int_t)LOAD(st->errors[k])));
			json_object_set_new(o, "requests", json_integer((json_int_t)LOAD(st->requests)));
			json_object_set_new(o, "retries", json_integer((json_int_t)LOAD(st->retries)));
			json_object_set_new(o, "bytes", json_integer((json_int_t)LOAD(st->bytes)));
			json_object_set_new(o, "sent_bytes", json_integer((json_int_t)LOAD(st->sent_bytes)));
			json_object_set_new(o, "redirects", json_integer((json_int_t)LOAD(st->redirects)));
			json_object_set_new(o, "http2", json_integer((json_int_t)LOAD(st->http2)));
			json_object_set_new(o, "errors", errs);
		}
		json_array_append_new(arr, o);
	}
	pthread_mutex_unlock(&d->src_lock);
	return arr;
}

/* A cachefiles blob's volume as a label: one blob id may be in several. */
#define VOLUME_LABEL(b) (b)->volume[0] ? ",volume=\"" : "", (b)->volume, \
			(b)->volume[0] ? "\"" : ""

/* A loader counter's total over the blobs gone, those in use and those
 * being closed (arg: the daemon, locked): every blob is in exactly one
 * of these, so the total never goes down. */
static void total_sample(char **buf, size_t *len, size_t *cap,
			 const struct counter_def *c, void *arg)
{
	struct ld_daemon *d = arg;
	unsigned long long total = counter_at(&d->retired, c->off);

	for (struct ld_blob *b = d->blobs; b; b = b->next)
		total += counter_at(b->cache.cnt, c->off);
	for (struct ld_blob *b = d->closing; b; b = b->next)
		total += counter_at(b->cache.cnt, c->off);
	metric(buf, len, cap, "%s %llu\n", c->name, total);
}

/*
 * POST /v1/gc {"dry_run": bool, "min_age": seconds}: removes the cache
 * files no registered image uses (gc.c), or with dry_run says which it
 * would; files written less than min_age seconds ago (default 60) stay.
 */
static void post_gc(struct ld_daemon *d, const struct ctl_req *req, struct ctl_resp *resp)
{
	json_error_t je;
	json_t *j = req->body_len ? json_loadb(req->body, req->body_len, 0, &je) : json_object();
	json_t *dry = json_object_get(j, "dry_run"), *age = json_object_get(j, "min_age");
	struct ld_gc_opts o = { .min_age = 60 };
	struct ld_gc_result res;
	struct sk_err e = { { 0 } };
	json_t *files;
	int ret;

	if (!json_is_object(j) || (dry && !json_is_boolean(dry)) ||
	    (age && (!json_is_number(age) || json_number_value(age) < 0))) {
		json_decref(j);
		reply_error(resp, 400, "body must be a JSON object, \"dry_run\" a boolean, \"min_age\" seconds (0 or more)");
		return;
	}
	o.dry_run = json_is_true(dry);
	if (age)
		o.min_age = json_number_value(age);
	json_decref(j);
	pthread_mutex_lock(&d->api_lock);
	ret = ld_gc(d, &o, &res, &e);
	pthread_mutex_unlock(&d->api_lock);
	if (ret) {
		reply_error(resp, 500, "%s", e.msg);
		return;
	}
	files = json_array();
	for (size_t i = 0; i < res.nfiles; i++)
		json_array_append_new(files, json_pack("{s:s, s:I}", "path", res.files[i].path,
						       "bytes", (json_int_t)res.files[i].bytes));
	reply(resp, 200, json_pack("{s:b, s:I, s:I, s:I, s:b, s:o}", "dry_run", o.dry_run,
				   "bytes", (json_int_t)res.bytes,
				   "young_bytes", (json_int_t)res.young_bytes,
				   "total_bytes", (json_int_t)res.total_bytes,
				   "registration_under_way", res.busy, "files", files));
	ld_gc_result_free(&res);
}

/* The cache's bytes on disk (skiffd's own files), and those no image
 * uses; 0 and 0 when the directory cannot be read. */
static void cache_use(struct ld_daemon *d, uint64_t *total, uint64_t *unused)
{
	struct ld_gc_opts o = { .dry_run = true, .count_only = true };
	struct ld_gc_result res;
	struct sk_err e = { { 0 } };

	*total = *unused = 0;
	if (ld_gc(d, &o, &res, &e) == 0) {
		*total = res.total_bytes;
		*unused = res.bytes;
		ld_gc_result_free(&res);
	}
}

static void get_metrics(struct ld_daemon *d, struct ctl_resp *resp)
{
	static const struct counter_def cs[] = {
#define C(f, n, h) { n, h, offsetof(struct ld_counters, f) }
		C(fills, "skiff_reads_total", "Read requests from the kernel that needed the loader"),
		C(fill_bytes, "skiff_read_bytes_total", "Bytes those requests covered"),
		C(waits, "skiff_read_waits_total", "Requests that waited for a fetch in flight"),
		C(fetches, "skiff_backend_fetches_total", "Backend reads (merged chunk ranges)"),
		C(fetch_chunks, "skiff_fetched_chunks_total", "Chunks fetched from the backend"),
		C(fetch_bytes, "skiff_fetched_bytes_total", "Stored bytes fetched from the backend"),
		C(write_bytes, "skiff_cache_write_bytes_total", "Verified bytes written to cache files"),
		C(err_fetch, "skiff_fetch_errors_total", "Backend reads that failed"),
		C(err_verify, "skiff_verify_errors_total", "Chunks that failed decompression or digest checks"),
		C(err_write, "skiff_cache_write_errors_total", "Cache file writes that failed"),
		C(misses, "skiff_read_misses_total", "Reads that had to fetch or wait for a fetch"),
		C(pf_chunks, "skiff_prefetch_chunks_total", "Chunks prefetch fetched"),
		C(pf_bytes, "skiff_prefetch_bytes_total", "Stored bytes prefetch fetched"),
		C(pf_hits, "skiff_prefetch_hits_total", "Chunks prefetch made ready before any read asked"),
		C(ra_windows, "skiff_readahead_windows_total", "Background read-ahead windows started"),
		C(dm_bytes, "skiff_fetched_demand_bytes_total", "Stored bytes fetched for what reads asked (whole chunks)"),
		C(raf_bytes, "skiff_fetched_readahead_file_bytes_total", "Stored bytes read ahead within the file a read was in"),
		C(rax_bytes, "skiff_fetched_readahead_across_bytes_total", "Stored bytes read ahead into other files"),
		C(later_bytes, "skiff_fetched_read_later_bytes_total", "Of the stored bytes fetched before any read asked (read-ahead, prefetch), those a read asked for later"),
#undef C
	};
	char *buf = NULL;
	size_t len = 0, cap = 0;
	uint64_t total, unused;

	/* before d->lock: ld_gc takes it */
	cache_use(d, &total, &unused);

	metric(&buf, &len, &cap,
	       "# HELP skiff_events_total Kernel events received\n# TYPE skiff_events_total counter\nskiff_events_total %llu\n"
	       "# HELP skiff_events_cached_total Events answered from the chunk map at once\n# TYPE skiff_events_cached_total counter\nskiff_events_cached_total %llu\n"
	       "# HELP skiff_events_failed_total Events answered with an error\n# TYPE skiff_events_failed_total counter\nskiff_events_failed_total %llu\n"
	       "# HELP skiff_opens_total Objects the kernel opened (cachefiles OPEN)\n# TYPE skiff_opens_total counter\nskiff_opens_total %llu\n"
	       "# HELP skiff_closes_total Objects the kernel closed (cachefiles CLOSE)\n# TYPE skiff_closes_total counter\nskiff_closes_total %llu\n"
	       "# HELP skiff_events_adopted_total Events a dead holder had read, served from its journal by this process\n# TYPE skiff_events_adopted_total counter\nskiff_events_adopted_total %llu\n"
	       "# HELP skiff_cache_full_episodes_total Times the cache disk filled up (fills failing with ENOSPC or EDQUOT until one succeeds)\n# TYPE skiff_cache_full_episodes_total counter\nskiff_cache_full_episodes_total %llu\n"
	       "# HELP skiff_cache_full_failures_total Reads that failed for lack of room on the cache disk\n# TYPE skiff_cache_full_failures_total counter\nskiff_cache_full_failures_total %llu\n",
	       (unsigned long long)LOAD(d->events), (unsigned long long)LOAD(d->events_fast),
	       (unsigned long long)LOAD(d->events_denied),
	       (unsigned long long)LOAD(d->opens), (unsigned long long)LOAD(d->closes),
	       (unsigned long long)LOAD(d->orphans), (unsigned long long)LOAD(d->cache_full.started),
	       (unsigned long long)LOAD(d->cache_full.failed));
	pthread_mutex_lock(&d->lock);
	counter_table(&buf, &len, &cap, cs, SK_ARRAY_SIZE(cs), total_sample, d);
	/* the same per cache file in use, as skiff_blob_* */
	for (size_t k = 0; k < SK_ARRAY_SIZE(cs); k++) {
		metric(&buf, &len, &cap, "# TYPE skiff_blob_%s counter\n",
		       cs[k].name + 6);
		for (struct ld_blob *b = d->blobs; b; b = b->next)
			metric(&buf, &len, &cap, "skiff_blob_%s{blob=\"%s\"%s%s%s} %llu\n",
			       cs[k].name + 6, b->cache.hex, VOLUME_LABEL(b),
			       counter_at(b->cache.cnt, cs[k].off));
	}
	{
		metric(&buf, &len, &cap,
		       "# HELP skiff_cache_bytes Bytes skiffd's cache files take on disk (blobs, tables, bootstraps)\n# TYPE skiff_cache_bytes gauge\nskiff_cache_bytes %llu\n"
		       "# HELP skiff_cache_unused_bytes Of those, bytes of files no registered image uses (skiff gc removes them)\n# TYPE skiff_cache_unused_bytes gauge\nskiff_cache_unused_bytes %llu\n"
		       "# HELP skiff_gc_removed_files_total Cache files gc removed\n# TYPE skiff_gc_removed_files_total counter\nskiff_gc_removed_files_total %llu\n"
		       "# HELP skiff_gc_removed_bytes_total Bytes of cache files gc removed\n# TYPE skiff_gc_removed_bytes_total counter\nskiff_gc_removed_bytes_total %llu\n",
		       (unsigned long long)total, (unsigned long long)unused,
		       (unsigned long long)LOAD(d->gc_files), (unsigned long long)LOAD(d->gc_bytes));
		metric(&buf, &len, &cap,
		       "# HELP skiff_cache_limit_bytes cache.max_size (0: no limit)\n# TYPE skiff_cache_limit_bytes gauge\nskiff_cache_limit_bytes %llu\n"
		       "# HELP skiff_cache_used_bytes What the cache limit last counted (skiffd's files and, in cachefiles mode, the kernel's)\n# TYPE skiff_cache_used_bytes gauge\nskiff_cache_used_bytes %llu\n"
		       "# HELP skiff_cache_evictions_total Passes of the cache limit that freed something\n# TYPE skiff_cache_evictions_total counter\nskiff_cache_evictions_total %llu\n"
		       "# HELP skiff_cache_evicted_files_total Unused cache files the cache limit removed\n# TYPE skiff_cache_evicted_files_total counter\nskiff_cache_evicted_files_total %llu\n"
		       "# HELP skiff_cache_evicted_chunks_total Chunks of registered images' cache files the cache limit punched out\n# TYPE skiff_cache_evicted_chunks_total counter\nskiff_cache_evicted_chunks_total %llu\n"
		       "# HELP skiff_cache_evicted_bytes_total Bytes the cache limit freed, by what\n# TYPE skiff_cache_evicted_bytes_total counter\n"
		       "skiff_cache_evicted_bytes_total{kind=\"file\"} %llu\nskiff_cache_evicted_bytes_total{kind=\"chunk\"} %llu\n",
		       (unsigned long long)d->cfg.cache_max, (unsigned long long)LOAD(d->cache_used),
		       (unsigned long long)LOAD(d->evict_passes),
		       (unsigned long long)LOAD(d->evict_files), (unsigned long long)LOAD(d->evict_chunks),
		       (unsigned long long)LOAD(d->evict_file_bytes),
		       (unsigned long long)LOAD(d->evict_chunk_bytes));
	}
	metric(&buf, &len, &cap, "# HELP skiff_cache_ready_bytes Bytes of each cache file that hold verified data\n# TYPE skiff_cache_ready_bytes gauge\n");
	for (struct ld_blob *b = d->blobs; b; b = b->next) {
		uint64_t bytes, chunks;

		if (ld_blob_ready(b, &bytes, &chunks))
			metric(&buf, &len, &cap, "skiff_cache_ready_bytes{blob=\"%s\"%s%s%s} %llu\n",
			       b->cache.hex, VOLUME_LABEL(b), (unsigned long long)bytes);
	}
	metric(&buf, &len, &cap, "# HELP skiff_event_seconds From a kernel event reaching skiffd to its answer, by whether the data was already there\n# TYPE skiff_event_seconds histogram\n");
	for (int k = 0; k < 2; k++) {
		struct ld_hist *h = k ? &d->lat_fetched : &d->lat_cached;
		const char *path = k ? "fetched" : "cached";
		uint64_t cum = 0;

		for (unsigned int b = 0; b < LD_HIST_BUCKETS; b++) {
			cum += LOAD(h->b[b]);
			if (b < LD_HIST_BUCKETS - 1)
				metric(&buf, &len, &cap, "skiff_event_seconds_bucket{path=\"%s\",le=\"%g\"} %llu\n",
				       path, ld_hist_bounds[b], (unsigned long long)cum);
			else
				metric(&buf, &len, &cap, "skiff_event_seconds_bucket{path=\"%s\",le=\"+Inf\"} %llu\n",
				       path, (unsigned long long)cum);
		}
		metric(&buf, &len, &cap, "skiff_event_seconds_sum{path=\"%s\"} %.9f\nskiff_event_seconds_count{path=\"%s\"} %llu\n",
		       path, (double)LOAD(h->sum_ns) / 1e9, path, (unsigned long long)LOAD(h->count));
	}
	source_metrics(d, &buf, &len, &cap);
	metric(&buf, &len, &cap, "# HELP skiff_images Registered images\n# TYPE skiff_images gauge\n");
	unsigned int n = 0;

	for (struct ld_image *im = d->images; im; im = im->next)
		n++;
	metric(&buf, &len, &cap, "skiff_images %u\n", n);
	pthread_mutex_unlock(&d->lock);
	resp->status = 200;
	snprintf(resp->content_type, sizeof(resp->content_type),
		 "text/plain; version=0.0.4");
	resp->body = buf;
	resp->body_len = len;
}

/*
 * POST /v1/images/ID/prefetch {"all": bool, "bandwidth": bytes/s}
 * POST /v1/images/ID/trace {"action": "start" | "stop"}
 * Called under d->api_lock: nobody unregisters im meanwhile.
 */
static void image_action(struct ld_daemon *d, const char *rest,
			 const struct ctl_req *req, struct ctl_resp *resp)
{
	const char *slash = strchr(rest, '/');
	char id[128];
	struct ld_image *im;
	struct sk_err e = { { 0 } };
	json_error_t je;
	json_t *j, *out = NULL;
	int ret;

	if (!slash || (size_t)(slash - rest) >= sizeof(id)) {
		reply_error(resp, 404, "no route POST /v1/images/%s", rest);
		return;
	}
	memcpy(id, rest, (size_t)(slash - rest));
	id[slash - rest] = 0;
	pthread_mutex_lock(&d->lock);
	im = ld_image_find(d, id);
	pthread_mutex_unlock(&d->lock);
	if (!im) {
		reply_error(resp, 404, "no image registered as %s", id);
		return;
	}
	j = req->body_len ? json_loadb(req->body, req->body_len, 0, &je) : json_object();
	if (!json_is_object(j)) {
		reply_error(resp, 400, "body must be a JSON object");
		json_decref(j);
		return;
	}
	if (!strcmp(slash, "/prefetch")) {
		json_t *bw = json_object_get(j, "bandwidth");
		struct ld_pf_status st;

		if (bw && (!json_is_integer(bw) || json_integer_value(bw) < 0)) {
			reply_error(resp, 400, "\"bandwidth\" must be bytes per second");
			json_decref(j);
			return;
		}
		ret = ld_pf_image(d, im, json_is_true(json_object_get(j, "all")),
				  bw ? (uint64_t)json_integer_value(bw) : 0, &e);
		if (ret)
			reply_error(resp, ret == -ENODATA ? 409 : 500, "%s", e.msg);
		else if (ld_pf_status(d, im, &st) == 0)
			reply(resp, 200, json_pack("{s:s, s:o}", "id", im->id,
						   "prefetch", pf_json(&st)));
		else
			reply_error(resp, 500, "prefetch of %s vanished", im->id);
	} else if (!strcmp(slash, "/trace")) {
		const char *action = json_string_value(json_object_get(j, "action"));

		if (action && !strcmp(action, "start")) {
			ret = ld_trace_start(d, im, &e);
			if (ret)
				reply_error(resp, ret == -EBUSY ? 409 : 500, "%s", e.msg);
			else
				reply(resp, 200, json_pack("{s:s, s:b}", "id", im->id,
							   "tracing", 1));
		} else if (action && !strcmp(action, "stop")) {
			ret = ld_trace_stop(d, im, &out, &e);
			if (ret)
				reply_error(resp, ret == -ENOENT ? 409 : 500, "%s",
					    e.msg[0] ? e.msg : strerror(-ret));
			else {
				json_object_set_new(out, "id", json_string(im->id));
				json_object_set_new(out, "ref", json_string(im->ref));
				json_object_set_new(out, "manifest", json_string(im->manifest));
				reply(resp, 200, out);
			}
		} else {
			reply_error(resp, 400, "\"action\" must be \"start\" or \"stop\"");
		}
	} else {
		reply_error(resp, 404, "no route POST /v1/images/%s", rest);
	}
	json_decref(j);
}

/*
 * Registry credentials handed to skiffd (by skiff-snapshotter pull, from
 * the pull's own): kept in work_dir/auth.json (0600, Docker config
 * "auths"), so that restarts and upgrades keep them, and used by every
 * registration of an image of that registry made afterwards, before the
 * Docker config file. Never echoed back.
 */
static void post_credentials(struct ld_daemon *d, const struct ctl_req *req,
			     struct ctl_resp *resp)
{
	json_error_t je;
	json_t *j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &je);
	json_t *file = NULL, *auths;
	const char *reg = json_string_value(json_object_get(j, "registry"));
	const char *user = json_string_value(json_object_get(j, "username"));
	const char *pass = json_string_value(json_object_get(j, "password"));
	char p[PATH_MAX], *text = NULL;
	size_t len;
	void *old;
	int ret;

	if (!json_is_object(j) || !reg) {
		reply_error(resp, 400, "body must be a JSON object with \"registry\" (HOST[:PORT])");
		goto out;
	}
	if (!*reg || strlen(reg) > 255 || strspn(reg, "abcdefghijklmnopqrstuvwxyz"
		"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]") != strlen(reg)) {
		reply_error(resp, 400, "\"registry\" must be HOST[:PORT]");
		goto out;
	}
	if (user && *user && (!pass || !*pass || strchr(user, ':') ||
			      strlen(user) >= BE_CRED_USER_MAX || strlen(pass) >= BE_CRED_SECRET_MAX)) {
		reply_error(resp, 400, "\"username\" (no ':', under %d bytes) needs a \"password\" "
			    "(under %d bytes)", BE_CRED_USER_MAX, BE_CRED_SECRET_MAX);
		goto out;
	}
	if (sk_path_join(p, sizeof(p), d->cfg.work_dir, LD_AUTH_FILE)) {
		reply_error(resp, 500, "work_dir too long");
		goto out;
	}
	pthread_mutex_lock(&d->api_lock);
	if (sk_read_file(p, 1u << 20, &old, &len) == 0) {
		file = json_loadb(old, len, 0, NULL);
		free(old);
	}
	if (!json_is_object(file)) {
		json_decref(file);
		file = json_object();
	}
	auths = json_object_get(file, "auths");
	if (!json_is_object(auths)) {
		auths = json_object();
		json_object_set_new(file, "auths", auths);
	}
	if (user && *user)
		json_object_set_new(auths, reg, json_pack("{s:s, s:s}", "username", user,
							  "password", pass));
	else
		json_object_del(auths, reg);
	text = json_dumps(file, JSON_COMPACT);
	ret = text ? sk_write_file_atomic_mode(p, text, strlen(text), 0600) : -ENOMEM;
	pthread_mutex_unlock(&d->api_lock);
	if (ret) {
		reply_error(resp, 500, "%s: %s", p, strerror(-ret));
		goto out;
	}
	ld_log(d, LD_LOG_INFO, "credentials for %s %s", reg, user && *user ? "kept" : "forgotten");
	reply(resp, 200, json_pack("{s:s, s:b}", "registry", reg, "kept", user && *user));
out:
	free(text);
	json_decref(file);
	json_decref(j);
}

static void handler(void *ctx, const struct ctl_req *req,
		    struct ctl_resp *resp)
{
	struct ld_daemon *d = ctx;
	const char *p = req->path;

	if (!strcmp(p, "/v1/state") && !strcmp(req->method, "GET")) {
		unsigned int n = 0;
		uint64_t cache_bytes, unused_bytes;
		json_t *srcs, *st;

		pthread_mutex_lock(&d->lock);
		for (struct ld_image *im = d->images; im; im = im->next)
			n++;
		srcs = sources_json(d);
		pthread_mutex_unlock(&d->lock);
		cache_use(d, &cache_bytes, &unused_bytes);
		st = json_pack(
			"{s:i, s:i, s:i, s:i, s:s, s:s, s:s, s:f, s:s, s:s, s:i, s:I, s:o}",
			"pid", (int)getpid(), "holder_pid", d->hold_sock >= 0 ? (int)getppid() : 0,
			"generation", (int)d->generation, "handed_over", (int)d->handed,
			"binary", d->binary,
			"version", "0.1.0",
			"frontend", d->fe->ops->name, "uptime", sk_now() - d->start_time,
			"cache_dir", d->cfg.cache_dir, "socket", d->cfg.socket_path,
			"images", n, "events", (json_int_t)LOAD(d->events),
			"sources", srcs);
		if (st) {
			json_object_set_new(st, "cache_bytes", json_integer((json_int_t)cache_bytes));
			json_object_set_new(st, "cache_unused_bytes", json_integer((json_int_t)unused_bytes));
			json_object_set_new(st, "cache_max_bytes", json_integer((json_int_t)d->cfg.cache_max));
			json_object_set_new(st, "cache_evicted_bytes",
					    json_integer((json_int_t)(LOAD(d->evict_file_bytes) +
								      LOAD(d->evict_chunk_bytes))));
		}
		reply(resp, 200, st);
	} else if (!strcmp(p, "/v1/stop") && !strcmp(req->method, "POST")) {
		post_stop(d, req, resp);
	} else if (!strcmp(p, "/v1/upgrade") && !strcmp(req->method, "POST")) {
		post_upgrade(d, req, resp);
	} else if (!strcmp(p, "/v1/images") && !strcmp(req->method, "GET")) {
		get_images(d, resp);
	} else if (!strcmp(p, "/v1/images") && !strcmp(req->method, "POST")) {
		post_image(d, req, resp);	/* takes api_lock after fetching */
	} else if (!strncmp(p, "/v1/images/", 11) && !strcmp(req->method, "POST")) {
		pthread_mutex_lock(&d->api_lock);
		image_action(d, p + 11, req, resp);
		pthread_mutex_unlock(&d->api_lock);
	} else if (!strncmp(p, "/v1/images/", 11) && !strcmp(req->method, "DELETE")) {
		struct sk_err e = { { 0 } };
		int ret;

		pthread_mutex_lock(&d->api_lock);
		ret = ld_image_unregister(d, p + 11, &e);
		pthread_mutex_unlock(&d->api_lock);

		if (ret)
			reply_error(resp, ret == -ENOENT ? 404 : 500, "%s", e.msg);
		else {
			ld_log(d, LD_LOG_INFO, "unregistered %s", p + 11);
			reply(resp, 200, json_pack("{s:s}", "id", p + 11));
		}
	} else if (!strcmp(p, "/v1/gc") && !strcmp(req->method, "POST")) {
		post_gc(d, req, resp);
	} else if (!strcmp(p, "/v1/credentials") && !strcmp(req->method, "POST")) {
		post_credentials(d, req, resp);
	} else if (!strcmp(p, "/metrics") && !strcmp(req->method, "GET")) {
		get_metrics(d, resp);
	} else {
		reply_error(resp, 404, "no route %s %s", req->method, p);
	}
}

int ld_api_start(struct ld_daemon *d, struct sk_err *e)
{
	int ret = ctl_server_start(&d->http, d->cfg.socket_path, handler, d);

	if (ret)
		sk_err_set(e, "%s", strerror(-ret));
	return ret;
}

void ld_api_stop(struct ld_daemon *d)
{
	if (d->http)
		ctl_server_stop(d->http);
	d->http = NULL;
}
