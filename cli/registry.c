/* SPDX-License-Identifier: Apache-2.0 */
/* Registry options and blob uploads shared by skiff push and convert. */
#include "registry.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

void cli_reg_opts_init(struct cli_reg_opts *o)
{
	memset(o, 0, sizeof(*o));
	be_config_defaults(&o->cfg);
}

int cli_reg_opt(int c, const char *arg, struct cli_reg_opts *o)
{
	switch (c) {
	case CLI_OPT_PLAIN_HTTP:
		o->plain_http = true;
		return 1;
	case CLI_OPT_INSECURE:
		o->insecure = true;
		return 1;
	case CLI_OPT_CA_FILE:
		if (snprintf(o->cfg.http.ca_file, sizeof(o->cfg.http.ca_file), "%s",
			     arg) >= (int)sizeof(o->cfg.http.ca_file)) {
			cli_err("--ca-file %s: path too long", arg);
			return -1;
		}
		return 1;
	case CLI_OPT_DOCKER_CONFIG:
		if (snprintf(o->cfg.docker_config, sizeof(o->cfg.docker_config), "%s",
			     arg) >= (int)sizeof(o->cfg.docker_config)) {
			cli_err("--docker-config %s: path too long", arg);
			return -1;
		}
		return 1;
	case CLI_OPT_TOKEN_REALM:
		if (o->ntoken_realms >= BE_TOKEN_REALMS) {
			cli_err("--token-realm: at most %d", BE_TOKEN_REALMS);
			return -1;
		}
		if ((strncmp(arg, "https://", 8) && strncmp(arg, "http://", 7)) ||
		    strlen(arg) >= sizeof(o->token_realms[0])) {
			cli_err("--token-realm %s: need an http(s) URL", arg);
			return -1;
		}
		strcpy(o->token_realms[o->ntoken_realms++], arg);
		return 1;
	case CLI_OPT_UPLOAD_CHUNK:
		if (sk_parse_size(arg, &o->upload_chunk) || o->upload_chunk < 4096 ||
		    o->upload_chunk > (1ull << 30)) {
			cli_err("upload chunk size %s: need 4K to 1G", arg);
			return -1;
		}
		return 1;
	}
	return 0;
}

int cli_reg_open(struct cli_reg_opts *o, const struct be_ref *ref, bool push,
		 struct be_reg **out, struct sk_err *e)
{
	/* the flags configure the reference's host for this run */
	memset(&o->hc, 0, sizeof(o->hc));
	snprintf(o->hc.host, sizeof(o->hc.host), "%s", ref->host);
	o->hc.plain_http = o->plain_http;
	o->hc.insecure = o->insecure;
	memcpy(o->hc.token_realms, o->token_realms, sizeof(o->hc.token_realms));
	o->hc.ntoken_realms = o->ntoken_realms;
	o->cfg.hosts = &o->hc;
	o->cfg.nhosts = 1;
	return be_reg_open(&o->cfg, ref->host, ref->repo, push, NULL, NULL, out, e);
}

/* 0: the registry has the blob or mounted it; -ENOENT: upload it. */
static int have_or_mount(struct be_reg *r, const char *hex, const char *from,
			 struct cli_push_stats *ps, struct sk_err *e)
{
	int ret = be_reg_blob_exists(r, hex, NULL, e);

	if (ret == 0) {
		ps->skipped++;
		return 0;
	}
	if (ret != -ENOENT || !from)
		return ret;
	ret = be_reg_blob_mount(r, hex, from, e);
	if (ret == 0)
		ps->mounted++;
	return ret;
}

static int upload(struct be_reg *r, const char *hex, const void *data,
		  size_t len, size_t chunk, bool progress,
		  struct cli_push_stats *ps, struct sk_err *e)
{
	int ret;

	if (progress && isatty(STDERR_FILENO)) {
		char hs[32];

		sk_human_size(len, hs, sizeof(hs));
		fprintf(stderr, "uploading %.16s... (%s)\n", hex, hs);
	}
	ret = be_reg_blob_upload(r, hex, data, len, chunk, e);
	if (!ret) {
		ps->uploaded++;
		ps->uploaded_bytes += len;
	}
	return ret;
}

int cli_push_mem(struct be_reg *r, const char *hex, const void *data,
		 size_t len, const char *from, size_t chunk, bool progress,
		 struct cli_push_stats *ps, struct sk_err *e)
{
	int ret = have_or_mount(r, hex, from, ps, e);

	if (ret != -ENOENT)
		return ret;
	return upload(r, hex, data, len, chunk, progress, ps, e);
}

/* Uploads size bytes of fd (the registry lacks the blob). */
static int upload_fd(struct be_reg *r, const char *hex, uint64_t size, int fd,
		     const char *name, size_t chunk, bool progress,
		     struct cli_push_stats *ps, struct sk_err *e)
{
	struct stat sb;
	void *map = NULL;
	int ret;

	if (fstat(fd, &sb) < 0) {
		ret = -errno;
		sk_err_set(e, "%s: %s", name, strerror(errno));
		return ret;
	}
	if ((uint64_t)sb.st_size != size || size > SIZE_MAX) {
		sk_err_set(e, "%s: %lld bytes, the manifest says %llu", name,
			   (long long)sb.st_size, (unsigned long long)size);
		return -EBADMSG;
	}
	if (size) {
		map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
		if (map == MAP_FAILED) {
			ret = -errno;
			sk_err_set(e, "%s: %s", name, strerror(errno));
			return ret;
		}
		madvise(map, (size_t)size, MADV_SEQUENTIAL);
	}
	ret = upload(r, hex, map, (size_t)size, chunk, progress, ps, e);
	if (map)
		munmap(map, (size_t)size);
	return ret;
}

int cli_push_fd(struct be_reg *r, const char *hex, uint64_t size, int fd,
		const char *name, const char *from, size_t chunk,
		bool progress, struct cli_push_stats *ps, struct sk_err *e)
{
	int ret = have_or_mount(r, hex, from, ps, e);

	if (ret != -ENOENT)
		return ret;
	return upload_fd(r, hex, size, fd, name, chunk, progress, ps, e);
}

int cli_push_file(struct be_reg *r, const char *hex, uint64_t size,
		  const char *path, const char *from, size_t chunk,
		  bool progress, struct cli_push_stats *ps, struct sk_err *e)
{
	int fd, ret = have_or_mount(r, hex, from, ps, e);

	/* a blob the registry has needs no local file */
	if (ret != -ENOENT)
		return ret;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		sk_err_set(e, "%s: %s", path, strerror(errno));
		return ret;
	}
	ret = upload_fd(r, hex, size, fd, path, chunk, progress, ps, e);
	close(fd);
	return ret;
}

void cli_push_summary(const struct cli_push_stats *ps, char *out, size_t len)
{
	char hs[32];

	sk_human_size(ps->uploaded_bytes, hs, sizeof(hs));
	snprintf(out, len, "%u blobs uploaded (%s), %u already there, %u mounted",
		 ps->uploaded, hs, ps->skipped, ps->mounted);
}
