/* SPDX-License-Identifier: Apache-2.0 */
/* skiff push: an image of the local store to an OCI registry. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../backend/remote.h"

static const char push_usage[] =
"usage: skiff push [options] IMAGE docker://HOST[:PORT]/REPO[:TAG]\n"
"\n"
"Pushes IMAGE (an OCI layout DIR[:TAG]) to a registry: every blob the\n"
"registry lacks (blobs it has are skipped), the image config, then the\n"
"manifest under TAG (default: IMAGE's tag, else latest). Credentials come\n"
"from the Docker config file.\n"
"\n"
"  --from REPO           a repository of the same registry that may hold\n"
"                        the blobs: they are mounted from it, not uploaded\n"
"  --chunk-size SIZE     upload in chunks of SIZE (PATCH requests) instead\n"
"                        of one request per blob\n"
"  --plain-http          the registry speaks http://, not https://\n"
"  --insecure            do not verify the registry's TLS certificate\n"
"  --ca-file FILE        CA certificates to verify the registry (and its\n"
"                        token service) with\n"
"  --docker-config FILE  credentials file (default $DOCKER_CONFIG/config.json\n"
"                        or ~/.docker/config.json)\n"
"  -q, --quiet           print nothing but errors\n";

struct push_stats {
	unsigned int uploaded, skipped, mounted;
	uint64_t uploaded_bytes;
};

/* Uploads one blob of the store unless the registry has it. */
static int push_blob(struct be_reg *r, const struct be_store *st,
		     const struct be_desc *d, const char *from, size_t chunk,
		     bool quiet, struct push_stats *ps)
{
	struct sk_err e = { { 0 } };
	char p[PATH_MAX];
	struct stat sb;
	void *map = NULL;
	int fd, ret;

	ret = be_reg_blob_exists(r, d->hex, NULL, &e);
	if (ret == 0) {
		ps->skipped++;
		return 0;
	}
	if (ret != -ENOENT) {
		cli_err("%s", e.msg);
		return ret;
	}
	if (from) {
		ret = be_reg_blob_mount(r, d->hex, from, &e);
		if (ret == 0) {
			ps->mounted++;
			return 0;
		}
		if (ret != -ENOENT) {
			cli_err("%s", e.msg);
			return ret;
		}
	}
	be_store_blob_path(st, d->hex, p, sizeof(p));
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &sb) < 0) {
		ret = -errno;
		cli_err("%s: %s", p, strerror(errno));
		goto out;
	}
	if ((uint64_t)sb.st_size != d->size) {
		cli_err("%s: %lld bytes, the manifest says %llu", p, (long long)sb.st_size,
			(unsigned long long)d->size);
		ret = -EBADMSG;
		goto out;
	}
	if (sb.st_size) {
		map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (map == MAP_FAILED) {
			map = NULL;
			ret = -errno;
			cli_err("%s: %s", p, strerror(errno));
			goto out;
		}
	}
	if (!quiet && isatty(STDERR_FILENO)) {
		char hs[32];

		sk_human_size(d->size, hs, sizeof(hs));
		fprintf(stderr, "uploading %.16s... (%s)\n", d->hex, hs);
	}
	ret = be_reg_blob_upload(r, d->hex, map, (size_t)sb.st_size, chunk, &e);
	if (ret)
		cli_err("%s", e.msg);
	else {
		ps->uploaded++;
		ps->uploaded_bytes += d->size;
	}
out:
	if (map)
		munmap(map, (size_t)sb.st_size);
	if (fd >= 0)
		close(fd);
	return ret;
}

int cmd_push(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "from", required_argument, NULL, 'f' },
		{ "chunk-size", required_argument, NULL, 'c' },
		{ "plain-http", no_argument, NULL, 'P' },
		{ "insecure", no_argument, NULL, 'k' },
		{ "ca-file", required_argument, NULL, 'A' },
		{ "docker-config", required_argument, NULL, 'D' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	const char *from = NULL;
	bool plain = false, insecure = false, quiet = false;
	struct be_config cfg;
	struct be_host_cfg hc;
	struct be_store st;
	struct be_image img = { 0 };
	struct be_manifest man = { 0 };
	struct be_ref ref;
	struct be_reg *r = NULL;
	struct sk_err e = { { 0 } };
	struct push_stats ps = { 0 };
	char dir[PATH_MAX], tag[256], p[PATH_MAX];
	uint64_t chunk = 0;
	void *mbuf = NULL;
	size_t mlen;
	int c, ret = 1;

	be_config_defaults(&cfg);
	while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
		switch (c) {
		case 'f': from = optarg; break;
		case 'c':
			if (sk_parse_size(optarg, &chunk) || chunk < 4096 || chunk > (1ull << 30)) {
				cli_err("--chunk-size %s: need 4K to 1G", optarg);
				return 2;
			}
			break;
		case 'P': plain = true; break;
		case 'k': insecure = true; break;
		case 'A':
			snprintf(cfg.http.ca_file, sizeof(cfg.http.ca_file), "%s", optarg);
			break;
		case 'D':
			snprintf(cfg.docker_config, sizeof(cfg.docker_config), "%s", optarg);
			break;
		case 'q': quiet = true; break;
		case 'h':
			fputs(push_usage, stdout);
			return 0;
		default:
			fputs(push_usage, stderr);
			return 2;
		}
	}
	if (argc - optind != 2) {
		fputs(push_usage, stderr);
		return 2;
	}
	if (be_ref_parse(argv[optind + 1], &ref, &e) || ref.kind != BE_REF_DOCKER) {
		cli_err("%s: %s", argv[optind + 1],
			e.msg[0] ? e.msg : "the destination must be docker://HOST[:PORT]/REPO[:TAG]");
		return 2;
	}
	if (ref.digest[0]) {
		cli_err("%s: push to a tag, not a digest", argv[optind + 1]);
		return 2;
	}
	/* the flags configure the destination host for this run */
	memset(&hc, 0, sizeof(hc));
	snprintf(hc.host, sizeof(hc.host), "%s", ref.host);
	hc.plain_http = plain;
	hc.insecure = insecure;
	cfg.hosts = &hc;
	cfg.nhosts = 1;

	if (be_ref_split(argv[optind], dir, sizeof(dir), tag, sizeof(tag))) {
		cli_err("%s: name too long", argv[optind]);
		return 1;
	}
	if (be_store_open(&st, dir, 0, &e) || be_store_resolve(&st, tag, &img, &e)) {
		cli_err("%s", e.msg);
		return 1;
	}
	be_store_blob_path(&st, img.manifest_hex, p, sizeof(p));
	if (sk_read_file(p, 4u << 20, &mbuf, &mlen) || be_manifest_parse(mbuf, mlen, &man, &e)) {
		cli_err("manifest %s: %s", p, e.msg[0] ? e.msg : "unreadable");
		goto out;
	}
	if (be_reg_open(&cfg, ref.host, ref.repo, true, NULL, NULL, &r, &e) ||
	    (from && be_reg_add_scope(r, from))) {
		cli_err("%s", e.msg);
		goto out;
	}
	for (unsigned int i = 0; i < man.nlayers; i++)
		if (push_blob(r, &st, &man.layers[i], from, (size_t)chunk, quiet, &ps))
			goto out;
	if (push_blob(r, &st, &man.config, from, (size_t)chunk, quiet, &ps))
		goto out;
	const char *dtag = ref.tag[0] ? ref.tag : img.tag[0] ? img.tag : "latest";

	if (be_reg_manifest_put(r, dtag, man.mt, mbuf, mlen, &e)) {
		cli_err("%s", e.msg);
		goto out;
	}
	if (!quiet) {
		char hs[32];

		sk_human_size(ps.uploaded_bytes, hs, sizeof(hs));
		printf("pushed docker://%s:%s (manifest sha256:%s): %u blobs uploaded (%s), %u already there, %u mounted\n",
		       ref.loc, dtag, img.manifest_hex, ps.uploaded, hs, ps.skipped, ps.mounted);
	}
	ret = 0;
out:
	be_reg_close(r);
	be_manifest_free(&man);
	be_image_free(&img);
	free(mbuf);
	return ret;
}
