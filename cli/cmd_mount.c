/* SPDX-License-Identifier: Apache-2.0 */
/* skiff mount, umount and status: thin clients of skiffd's control API. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "../format/ondisk.h"
#include "../ctl/ctl.h"

#define DEFAULT_SOCKET "/run/skiff/skiffd.sock"
#define API_TIMEOUT_MS 60000

static const char mount_usage[] =
"usage: skiff mount [--fsid ID] [--domain D] [--socket PATH] IMAGE MNT\n"
"\n"
"Registers IMAGE with skiffd and mounts it at MNT. File data is fetched\n"
"when first read. IMAGE is an OCI layout DIR[:TAG], a layout on a web\n"
"server http(s)://HOST[:PORT]/PATH[#TAG], or a registry image\n"
"docker://HOST[:PORT]/REPO[:TAG|@sha256:HEX] (skiffd fetches it; its\n"
"network settings are skiffd.json's \"backend\"). The same image may be\n"
"mounted at several mount points, each registered on its own (the\n"
"default id gets -2, -3, ...); `skiff umount MNT` takes only MNT's.\n"
"\n"
"  --fsid ID      name to register the image under, the EROFS fsid in\n"
"                cachefiles mode (default from its digest; --id is the same)\n"
"  --domain D     cachefiles domain: images mounted in one domain share the\n"
"                cache files of the blobs they have in common\n"
"  --socket PATH  skiffd's control socket (default $SKIFF_SOCKET or " DEFAULT_SOCKET ")\n";

static const char umount_usage[] =
"usage: skiff umount [--socket PATH] MNT\n"
"\n"
"Unmounts a skiff mount and unregisters its image from skiffd.\n";

static const char status_usage[] =
"usage: skiff status [--json] [--socket PATH]\n"
"\n"
"Shows skiffd's state, the registered images, each blob's cache fill and\n"
"the counters: reads served, chunks and bytes fetched, errors.\n";

static const char stop_usage[] =
"usage: skiff stop [--force] [--socket PATH]\n"
"\n"
"Stops skiffd once every request it holds is answered. Refused while\n"
"images are mounted lazily in fanotify mode (their reads of what is not\n"
"cached would then return zeros): unmount them first. --force stops\n"
"anyway; those reads then return zeros, and the page cache keeps them.\n";

static const char *default_socket(void)
{
	const char *s = getenv("SKIFF_SOCKET");

	return s && *s ? s : DEFAULT_SOCKET;
}

/* Calls skiffd; on success *out is the parsed JSON body. */
static int api_how(const char *sock, const char *method, const char *path,
		   json_t *body, json_t **out, bool quiet)
{
	char *req = body ? json_dumps(body, JSON_COMPACT) : NULL, *resp = NULL;
	size_t rlen = 0;
	int status = 0, ret;
	json_t *j;

	ret = ctl_call(sock, method, path, req, req ? strlen(req) : 0,
		       API_TIMEOUT_MS, &status, &resp, &rlen);
	free(req);
	if (ret && quiet)
		return ret;
	if (ret == -ENOENT || ret == -ECONNREFUSED) {
		cli_err("skiffd is not running (no socket at %s)", sock);
		return -ENOTCONN;
	}
	if (ret) {
		cli_err("talking to skiffd at %s: %s", sock, strerror(-ret));
		return ret;
	}
	j = json_loadb(resp ? resp : "", rlen, 0, NULL);
	free(resp);
	if (status != 200 && quiet) {
		json_decref(j);
		return -EIO;
	}
	if (status != 200) {
		const char *msg = json_string_value(json_object_get(j, "error"));

		cli_err("skiffd: %s", msg ? msg : ctl_reason(status));
		json_decref(j);
		return -EIO;
	}
	if (!j) {
		cli_err("skiffd sent a reply that is not JSON");
		return -EPROTO;
	}
	*out = j;
	return 0;
}

static int api(const char *sock, const char *method, const char *path,
	       json_t *body, json_t **out)
{
	return api_how(sock, method, path, body, out, false);
}

static int parse_common(int argc, char **argv, const char *usage,
			const char **sock, const char **id, const char **domain,
			int *json)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "id", required_argument, NULL, 'i' },
		{ "fsid", required_argument, NULL, 'i' },
		{ "domain", required_argument, NULL, 'd' },
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	int c;

	*sock = default_socket();
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's': *sock = optarg; break;
		case 'i':
			if (!id)
				goto bad;
			*id = optarg;
			break;
		case 'd':
			if (!domain)
				goto bad;
			*domain = optarg;
			break;
		case 'J':
			if (!json)
				goto bad;
			*json = 1;
			break;
		case 'h':
			fputs(usage, stdout);
			exit(0);
		default:
			goto bad;
		}
	}
	return 0;
bad:
	fputs(usage, stderr);
	return 2;
}

/* IMAGE with its directory made absolute: skiffd has its own cwd. */
static int absolute_ref(const char *ref, char *out, size_t outlen)
{
	char dir[PATH_MAX], tag[256], real[PATH_MAX];

	/* URLs and registry references mean the same to skiffd */
	if (strstr(ref, "://"))
		return snprintf(out, outlen, "%s", ref) < (int)outlen ? 0 : -ENAMETOOLONG;
	if (be_ref_split(ref, dir, sizeof(dir), tag, sizeof(tag)))
		return -ENAMETOOLONG;
	if (!realpath(dir, real))
		return -errno;
	if (snprintf(out, outlen, "%s%s%s", real, tag[0] ? ":" : "", tag) >=
	    (int)outlen)
		return -ENAMETOOLONG;
	return 0;
}

static int find_by_mount(const char *sock, const char *mnt, char *id, size_t idlen);

/* Whether an EROFS is mounted at mnt (a skiff mount, for the caller that
 * found an image registered there). */
static bool erofs_at(const char *mnt)
{
	struct statfs sf;

	return statfs(mnt, &sf) == 0 && (uint32_t)sf.f_type == EROFS_MAGIC;
}

int cmd_mount(int argc, char **argv)
{
	const char *sock, *id = NULL, *domain = NULL;
	char ref[PATH_MAX + 300], mnt[PATH_MAX], *opts = NULL;
	json_t *body, *r = NULL, *devs;
	size_t olen = 0;
	int ret;

	ret = parse_common(argc, argv, mount_usage, &sock, &id, &domain, NULL);
	if (ret)
		return ret;
	if (argc - optind != 2) {
		fputs(mount_usage, stderr);
		return 2;
	}
	ret = absolute_ref(argv[optind], ref, sizeof(ref));
	if (ret) {
		cli_err("%s: %s", argv[optind], strerror(-ret));
		return 1;
	}
	if (!realpath(argv[optind + 1], mnt)) {
		cli_err("%s: %s", argv[optind + 1], strerror(errno));
		return 1;
	}
	/* a mount on top of a live one would share its registration, and
	 * the first `skiff umount` would take it from the one below */
	char have[200];

	ret = find_by_mount(sock, mnt, have, sizeof(have));
	if (ret && ret != -ENOENT)
		return 1;
	if (!ret && erofs_at(mnt)) {
		cli_err("%s: image %s is mounted there already (skiff umount it first)",
			mnt, have);
		return 1;
	}
	body = json_pack("{s:s, s:s}", "ref", ref, "mountpoint", mnt);
	if (id)
		json_object_set_new(body, "id", json_string(id));
	if (domain)
		json_object_set_new(body, "domain", json_string(domain));
	ret = api(sock, "POST", "/v1/images", body, &r);
	json_decref(body);
	if (ret)
		return 1;
	const char *rid = json_string_value(json_object_get(r, "id"));
	const char *fe = json_string_value(json_object_get(r, "frontend"));
	const char *bs = json_string_value(json_object_get(r, "bootstrap"));
	char path[PATH_MAX + 32];
	size_t i;
	json_t *dv;

	devs = json_object_get(r, "devices");
	if (!rid || !fe || !bs || !json_is_array(devs)) {
		cli_err("skiffd's reply lacks id, frontend, bootstrap or devices");
		ret = -EPROTO;
		goto out;
	}
	if (!strcmp(fe, "cachefiles")) {
		/* fscache mode: the kernel asks skiffd for everything by fsid */
		char o[300];

		const char *dom = json_string_value(json_object_get(r, "domain"));

		snprintf(o, sizeof(o), "fsid=%s%s%s", rid, dom && *dom ? ",domain_id=" : "",
			 dom && *dom ? dom : "");
		if (mount("none", mnt, "erofs", MS_RDONLY | MS_NODEV | MS_NOSUID, o) < 0) {
			ret = -errno;
			cli_err("mounting %s at %s (fsid %s): %s%s", argv[optind], mnt, rid,
				strerror(errno), errno == EINVAL ? " (see dmesg)" : "");
			goto unregister;
		}
		printf("mounted %s at %s (id %s)\n", argv[optind], mnt, rid);
		ret = 0;
		goto out;
	}
	if (strcmp(fe, "fanotify")) {
		cli_err("frontend %s: mounting is not supported by this skiff", fe);
		ret = -EOPNOTSUPP;
		goto unregister;
	}
	/* EROFS file-backed: the bootstrap is the source, every blob's cache
	 * file a device=, in device-table order */
	json_array_foreach(devs, i, dv) {
		const char *p = json_string_value(dv);
		size_t n = p ? strlen(p) : 0;
		char *no = realloc(opts, olen + n + 9);

		if (!p || !no) {
			ret = -ENOMEM;
			goto unregister;
		}
		opts = no;
		olen += (size_t)sprintf(opts + olen, "%sdevice=%s", olen ? "," : "", p);
	}
	if (mount(bs, mnt, "erofs", MS_RDONLY | MS_NODEV | MS_NOSUID, opts) < 0) {
		ret = -errno;
		cli_err("mounting %s at %s: %s%s", argv[optind], mnt, strerror(errno),
			errno == EINVAL ? " (see dmesg)" : "");
		goto unregister;
	}
	printf("mounted %s at %s (id %s)\n", argv[optind], mnt, rid);
	ret = 0;
	goto out;
unregister:
	snprintf(path, sizeof(path), "/v1/images/%s", rid);
	json_decref(body = NULL);
	if (!api(sock, "DELETE", path, NULL, &body))
		json_decref(body);
out:
	free(opts);
	json_decref(r);
	return ret ? 1 : 0;
}

/* Finds the registered image mounted at mnt. */
static int find_by_mount(const char *sock, const char *mnt, char *id, size_t idlen)
{
	json_t *r, *im;
	size_t i;
	int ret = api(sock, "GET", "/v1/images", NULL, &r);

	if (ret)
		return ret;
	ret = -ENOENT;
	json_array_foreach(json_object_get(r, "images"), i, im) {
		const char *m = json_string_value(json_object_get(im, "mountpoint"));
		const char *iid = json_string_value(json_object_get(im, "id"));

		if (m && iid && !strcmp(m, mnt)) {
			snprintf(id, idlen, "%s", iid);
			ret = 0;
			break;
		}
	}
	json_decref(r);
	return ret;
}

int cmd_umount(int argc, char **argv)
{
	const char *sock;
	char mnt[PATH_MAX], id[200], path[300];
	json_t *r;
	int ret = parse_common(argc, argv, umount_usage, &sock, NULL, NULL, NULL);

	if (ret)
		return ret;
	if (argc - optind != 1) {
		fputs(umount_usage, stderr);
		return 2;
	}
	if (!realpath(argv[optind], mnt)) {
		cli_err("%s: %s", argv[optind], strerror(errno));
		return 1;
	}
	ret = find_by_mount(sock, mnt, id, sizeof(id));
	if (ret == -ENOENT) {
		cli_err("%s: no skiff image is mounted there", mnt);
		return 1;
	}
	if (ret)
		return 1;
	if (umount2(mnt, 0) < 0 && errno != EINVAL) {
		cli_err("unmounting %s: %s", mnt, strerror(errno));
		return 1;
	}
	snprintf(path, sizeof(path), "/v1/images/%s", id);
	if (api(sock, "DELETE", path, NULL, &r))
		return 1;
	json_decref(r);
	printf("unmounted %s (id %s)\n", mnt, id);
	return 0;
}

int cmd_status(int argc, char **argv)
{
	const char *sock;
	json_t *st = NULL, *ims = NULL, *im, *b;
	int json = 0, ret = parse_common(argc, argv, status_usage, &sock, NULL, NULL, &json);
	size_t i, k;

	if (ret)
		return ret;
	if (argc != optind) {
		fputs(status_usage, stderr);
		return 2;
	}
	if (api(sock, "GET", "/v1/state", NULL, &st) ||
	    api(sock, "GET", "/v1/images", NULL, &ims)) {
		json_decref(st);
		return 1;
	}
	if (json) {
		json_object_set(st, "images", json_object_get(ims, "images"));
		json_dumpf(st, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
		fputc('\n', stdout);
		goto out;
	}
	printf("skiffd %s: frontend %s, up %.0fs, cache %s\n",
	       json_string_value(json_object_get(st, "version")),
	       json_string_value(json_object_get(st, "frontend")),
	       json_real_value(json_object_get(st, "uptime")),
	       json_string_value(json_object_get(st, "cache_dir")));
	{
		char cb[32], ub[32];

		sk_human_size((uint64_t)json_integer_value(json_object_get(st, "cache_bytes")), cb, sizeof(cb));
		sk_human_size((uint64_t)json_integer_value(json_object_get(st, "cache_unused_bytes")), ub,
			      sizeof(ub));
		printf("cache on disk %s, of which %s no registered image uses (skiff gc)\n", cb, ub);
		if (json_integer_value(json_object_get(st, "cache_max_bytes")) > 0) {
			char mb[32], eb[32];

			sk_human_size((uint64_t)json_integer_value(json_object_get(st, "cache_max_bytes")),
				      mb, sizeof(mb));
			sk_human_size((uint64_t)json_integer_value(json_object_get(st, "cache_evicted_bytes")),
				      eb, sizeof(eb));
			printf("cache limit %s, %s evicted so far\n", mb, eb);
		}
	}
	if (json_integer_value(json_object_get(st, "holder_pid")) > 0)
		printf("serving process %lld (generation %lld under holder %lld), "
		       "%lld unanswered reads handed over at its start\n",
		       json_integer_value(json_object_get(st, "pid")),
		       json_integer_value(json_object_get(st, "generation")),
		       json_integer_value(json_object_get(st, "holder_pid")),
		       json_integer_value(json_object_get(st, "handed_over")));
	json_array_foreach(json_object_get(ims, "images"), i, im) {
		json_t *c = json_object_get(im, "counters");
		char fb[32];

		sk_human_size((uint64_t)json_integer_value(json_object_get(c, "fetched_bytes")),
			      fb, sizeof(fb));
		printf("\n%s  %s\n  mounted at %s\n  reads %lld, fetched %lld chunks (%s), errors %lld\n",
		       json_string_value(json_object_get(im, "id")),
		       json_string_value(json_object_get(im, "ref")),
		       json_string_value(json_object_get(im, "mountpoint"))[0] ?
			       json_string_value(json_object_get(im, "mountpoint")) : "(nowhere)",
		       json_integer_value(json_object_get(c, "reads")),
		       json_integer_value(json_object_get(c, "fetched_chunks")), fb,
		       json_integer_value(json_object_get(c, "error_total")));
		json_t *ff = json_object_get(c, "fetched_for");
		json_t *unread = json_object_get(c, "unread_bytes");

		if (ff) {
			char dm[32], rf[32], rx[32], pf[32], un[32];

#define HS(v, buf) sk_human_size((uint64_t)json_integer_value(v), buf, sizeof(buf))
			HS(json_object_get(ff, "demand"), dm);
			HS(json_object_get(ff, "readahead_file"), rf);
			HS(json_object_get(ff, "readahead_across"), rx);
			HS(json_object_get(ff, "prefetch"), pf);
			HS(unread, un);
#undef HS
			printf("  fetched for reads %s, read ahead %s in files and %s "
			       "across, prefetch %s", dm, rf, rx, pf);
			if (unread)
				printf("; %s of it not read (yet)", un);
			printf("\n");
		}
		json_array_foreach(json_object_get(im, "blobs"), k, b) {
			double size = (double)json_integer_value(json_object_get(b, "size"));
			json_t *rb = json_object_get(b, "ready_bytes");
			char sz[32];

			sk_human_size((uint64_t)size, sz, sizeof(sz));
			if (!rb) {	/* cachefiles, and the kernel has it closed */
				printf("  blob %.16s...  %s, in the kernel's cache (not open)\n",
				       json_string_value(json_object_get(b, "id")), sz);
				continue;
			}
			json_t *cb = json_object_get(b, "cache_bytes");
			char ob[48] = "";

			if (cb) {	/* skiffd's own file (fanotify) */
				memcpy(ob, ", ", 3);
				sk_human_size((uint64_t)json_integer_value(cb), ob + 2, sizeof(ob) - 2);
				strcat(ob, " on disk");
			}
			printf("  blob %.16s...  %s, cached %.1f%%%s%s\n",
			       json_string_value(json_object_get(b, "id")), sz,
			       size > 0 ? 100.0 * (double)json_integer_value(rb) / size : 100.0,
			       json_is_false(json_object_get(b, "watched")) ? " (complete)" : "", ob);
		}
	}
	json_array_foreach(json_object_get(st, "sources"), i, b) {
		json_t *errs = json_object_get(b, "errors"), *v;
		const char *kind;
		long long nerr = 0;
		char by[32];

		if (!json_object_get(b, "requests"))
			continue;	/* the local store counts nothing */
		json_object_foreach(errs, kind, v)
			nerr += json_integer_value(v);
		sk_human_size((uint64_t)json_integer_value(json_object_get(b, "bytes")), by,
			      sizeof(by));
		printf("\nsource %s\n  requests %lld, retries %lld, received %s, failed attempts %lld\n",
		       json_string_value(json_object_get(b, "source")),
		       json_integer_value(json_object_get(b, "requests")),
		       json_integer_value(json_object_get(b, "retries")), by, nerr);
	}
out:
	json_decref(st);
	json_decref(ims);
	return 0;
}

/* For the other commands that talk to skiffd (cmd_prefetch.c). */
const char *cli_default_socket(void)
{
	return default_socket();
}

int cli_api(const char *sock, const char *method, const char *path,
	    json_t *body, json_t **out)
{
	return api(sock, method, path, body, out);
}

int cli_api_quiet(const char *sock, const char *method, const char *path,
		  json_t *body, json_t **out)
{
	return api_how(sock, method, path, body, out, true);
}

int cli_find_by_mount(const char *sock, const char *mnt, char *id, size_t idlen)
{
	return find_by_mount(sock, mnt, id, idlen);
}

int cli_absolute_ref(const char *ref, char *out, size_t outlen)
{
	return absolute_ref(ref, out, outlen);
}

int cmd_stop(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	const char *sock = default_socket();
	bool force = false;
	json_t *r, *body;
	int c, ret;

	while ((c = getopt_long(argc, argv, "fh", opts, NULL)) != -1) {
		switch (c) {
		case 's': sock = optarg; break;
		case 'f': force = true; break;
		case 'h':
			fputs(stop_usage, stdout);
			return 0;
		default:
			fputs(stop_usage, stderr);
			return 2;
		}
	}
	if (argc != optind) {
		fputs(stop_usage, stderr);
		return 2;
	}
	body = json_pack("{s:b}", "force", force);
	ret = api(sock, "POST", "/v1/stop", body, &r);
	json_decref(body);
	if (ret)
		return 1;
	json_decref(r);
	/* gone when its socket is: it unlinks it first when it stops */
	for (int i = 0; i < 600; i++) {
		if (access(sock, F_OK) < 0) {
			printf("skiffd stopped\n");
			return 0;
		}
		usleep(100 * 1000);
	}
	cli_err("skiffd said it stops, but its socket %s is still there after 60 s", sock);
	return 1;
}
