/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Remote images: image references, the network configuration, OCI
 * manifest and index parsing, Docker config credentials, and the OCI
 * registry client (pull by range, push). See backend/README.md.
 */
#ifndef SKIFF_BACKEND_REMOTE_H
#define SKIFF_BACKEND_REMOTE_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "../common/sk.h"
#include "http.h"
#include "store.h"

/* ---- image references ---- */

enum be_ref_kind {
	BE_REF_LOCAL,	/* DIR[:TAG]: an OCI layout directory */
	BE_REF_HTTP,	/* http(s)://HOST[:PORT]/PATH[#TAG]: a layout on a web server */
	BE_REF_DOCKER,	/* docker://HOST[:PORT]/REPO[:TAG|@sha256:HEX] */
};

struct be_ref {
	enum be_ref_kind kind;
	/* where the blobs are, without tag: DIR, the layout's base URL (no
	 * trailing slash), or HOST/REPO; one source per distinct loc */
	char loc[PATH_MAX];
	char host[256];		/* HTTP, DOCKER: HOST[:PORT] */
	char repo[256];		/* DOCKER: the repository name */
	char tag[128];		/* "" when none was given */
	char digest[72];	/* DOCKER: "sha256:<hex>" when given */
};

/* Parses any of the three forms; a string without "scheme://" is LOCAL
 * (resolved with be_ref_split). A web layout may name its manifest by
 * digest as URL#sha256:HEX. */
int be_ref_parse(const char *s, struct be_ref *r, struct sk_err *e);
/* The same network reference pinned to a manifest digest (tag dropped):
 * docker://HOST/REPO@sha256:HEX, URL#sha256:HEX. -EINVAL for LOCAL. */
int be_ref_pin(const struct be_ref *r, const char *hex, char *out,
	       size_t outlen);

/* ---- configuration (skiffd.json "backend", skiff push flags) ---- */

#define BE_MIRROR_HEADERS 8

struct be_mirror {
	char url[512];		/* base URL: http(s)://HOST[:PORT][/PREFIX] */
	char headers[BE_MIRROR_HEADERS][512];	/* "Name: value" */
	unsigned int nheaders;
	bool insecure;
};

#define BE_TOKEN_REALMS 8

struct be_host_cfg {
	char host[256];		/* HOST[:PORT] as references spell it */
	bool plain_http;	/* registry over http:// */
	bool insecure;		/* https without certificate verification */
	struct be_mirror *mirrors;	/* owned, tried in order before the host */
	unsigned int nmirrors;
	/* token services trusted with the user's credentials besides those
	 * on the registry's own host over its own scheme (see
	 * be_realm_trusted) */
	char token_realms[BE_TOKEN_REALMS][512];
	unsigned int ntoken_realms;
};

struct be_config {
	struct be_http_opts http;
	char platform[64];		/* index entries: "linux/amd64" */
	char docker_config[PATH_MAX];	/* "": $DOCKER_CONFIG or ~/.docker */
	/* a credential helper the Docker config names is killed after this */
	unsigned int cred_helper_timeout_ms;	/* 10000 */
	unsigned int mirror_skip_ms;	/* a failed mirror rests this long */
	unsigned int mirror_attempts;	/* tries per request at a mirror */
	/* a source's blob read ends by then (per MiB it asks for), all
	 * endpoints, attempts, backoffs and redirects included: a stalled
	 * server costs a reader this, not max_attempts times the
	 * transport's timeouts */
	unsigned int read_deadline_ms;	/* 30000 */
	struct be_host_cfg *hosts;	/* owned */
	unsigned int nhosts;
	/* manifests fetched are kept here by digest, and one asked for by
	 * digest is taken from here: a restart pinned to its digests needs
	 * no network ("": none; skiffd: work_dir/manifests) */
	char manifest_dir[PATH_MAX];
	/* credentials handed to skiffd (POST /v1/credentials), a Docker
	 * config file's "auths" only; tried before docker_config ("": none;
	 * skiffd: work_dir/auth.json) */
	char auth_file[PATH_MAX];
};

void be_config_defaults(struct be_config *c);
/* Reads a JSON object (see skiffd.json(5), "backend") into c. */
struct json_t;
int be_config_parse(struct json_t *obj, struct be_config *c, struct sk_err *e);
void be_config_free(struct be_config *c);
/* The settings of host, or NULL. */
const struct be_host_cfg *be_config_host(const struct be_config *c,
					 const char *host);
/* Whether TLS to url goes unverified: its host's "insecure", or that of
 * a mirror on its origin. Fits be_http_req.insecure (arg: the config). */
bool be_config_insecure(const void *cfg, const char *url);
/* The absolute deadline of a blob read of len bytes starting now (0:
 * none): read_deadline_ms for each MiB begun. */
double be_read_deadline(const struct be_config *c, uint64_t len);

/* ---- manifests and indexes (untrusted JSON) ---- */

struct be_desc {
	char mt[128];
	char hex[SK_HEX_LEN + 1];
	uint64_t size;
};

struct be_manifest {
	char mt[128];
	struct be_desc config;
	struct be_desc *layers;	/* owned */
	unsigned int nlayers;
};

#define BE_MT_INDEX		"application/vnd.oci.image.index.v1+json"
#define BE_MT_DOCKER_MANIFEST	"application/vnd.docker.distribution.manifest.v2+json"
#define BE_MT_DOCKER_LIST	"application/vnd.docker.distribution.manifest.list.v2+json"

/* An image manifest (OCI or Docker schema 2). */
int be_manifest_parse(const void *buf, size_t len, struct be_manifest *m,
		      struct sk_err *e);
void be_manifest_free(struct be_manifest *m);
/* Whether buf (with the media type the server sent) is an index. */
bool be_is_index(const void *buf, size_t len, const char *content_type);
/*
 * Picks a manifest from an index (OCI index, Docker manifest list, or a
 * layout's index.json): by the ref.name annotation when tag is given,
 * else by platform ("os/arch[/variant]"), else the only entry.
 */
int be_index_pick(const void *buf, size_t len, const char *tag,
		  const char *platform, struct be_desc *out, struct sk_err *e);
/* The skiff image a manifest describes: data blobs, then the bootstrap. */
int be_image_from_manifest(const struct be_manifest *m, struct be_image *img,
			   struct sk_err *e);
/* The manifest (or index) with digest hex kept in dir: 0 with a
 * malloc'd *buf whose digest was checked, -ENOENT when not there. */
int be_manifest_cache_get(const char *dir, const char *hex, char **buf,
			  size_t *len);
/* Keeps one (best effort: a cache, not state). */
void be_manifest_cache_put(const char *dir, const char *hex, const void *buf,
			   size_t len);
/* Both steps on a manifest's bytes, whose digest (hex) and tag the image
 * records. */
int be_image_parse(const void *buf, size_t len, const char *hex,
		   const char *tag, struct be_image *img, struct sk_err *e);

/* ---- credentials ---- */

/* Looks host up in a Docker config file's "auths" (keys may carry a
 * scheme and path); user and pass from its base64 "auth" or its
 * "username"/"password". -ENOENT when it has none for host. */
int be_docker_auth(const void *buf, size_t len, const char *host,
		   char *user, size_t ulen, char *pass, size_t plen,
		   struct sk_err *e);
/* The path of the Docker config file to use (cfg's, $DOCKER_CONFIG,
 * $HOME/.docker). */
void be_docker_config_path(const struct be_config *c, char *out, size_t len);

/* Bounds of what a credential helper may give. */
#define BE_CRED_USER_MAX 256
#define BE_CRED_SECRET_MAX 4096		/* cloud registries' tokens run to KiBs */
#define BE_CRED_HELPER_OUT_MAX (64u << 10)

/* The credential helper a Docker config file names for host:
 * "credHelpers" (keys matched as "auths" keys are), else "credsStore".
 * 0 with its NAME (run as docker-credential-NAME), -ENOENT when none,
 * -EINVAL when the file is malformed or the name unusable. */
int be_docker_helper(const void *buf, size_t len, const char *host,
		     char *name, size_t nlen, struct sk_err *e);
/* The server address a helper is asked about for a registry host: the
 * host as references spell it, Docker Hub's being its historical URL. */
const char *be_cred_server(const char *host);
/* Parses a helper's answer to "get": {"ServerURL", "Username",
 * "Secret"}. 0 with user and secret, -ENOENT when both are empty,
 * -ENOTSUP for an identity token (Username "<token>"), -EINVAL for
 * anything else unusable. */
int be_cred_helper_parse(const void *buf, size_t len, char *user, size_t ulen,
			 char *secret, size_t slen, struct sk_err *e);
/* Runs "docker-credential-NAME get" (from PATH, no shell, our
 * environment) with server on its standard input, killed after
 * timeout_ms, reading at most BE_CRED_HELPER_OUT_MAX bytes of its
 * answer. 0 with user and secret; -ENOENT when it has no credentials for
 * server (it exits non-zero saying "credentials not found"); any other
 * failure a negative errno with a message naming the helper (-ENOEXEC:
 * not installed, -ETIMEDOUT, -EMSGSIZE, -EIO: it failed, -EPROTO: its
 * answer is unusable, -ENOTSUP: an identity token). */
int be_cred_helper_get(const char *name, const char *server,
		       unsigned int timeout_ms, char *user, size_t ulen,
		       char *secret, size_t slen, struct sk_err *e);

/* ---- the registry client ---- */

/*
 * Whether a token realm may be sent the user's credentials: one on the
 * registry's own host (any port) over the registry's scheme or https,
 * or one the configuration trusts (hc->token_realms, an entry matching
 * the realm up to its query; Docker Hub's auth.docker.io by default for
 * docker.io). registry: the URL the registry was reached at. Pure.
 */
bool be_realm_trusted(const char *registry, const char *host,
		      const struct be_host_cfg *hc, const char *realm);
/*
 * A token service's JSON answer: "token" (else "access_token"), at most
 * toklen - 1 bytes without line breaks, and "expires_in" seconds (60
 * when absent, at least 10). 0, or -EPROTO when there is no usable
 * token. Pure.
 */
int be_parse_token(const void *buf, size_t len, char *tok, size_t toklen,
		   int64_t *ttl);

struct be_reg;

/*
 * A client of one repository on one registry. push: also ask for push
 * rights. Credentials come from the Docker config file (or user/pass when
 * given). Mirrors of the host are tried first for reads.
 */
int be_reg_open(const struct be_config *cfg, const char *host,
		const char *repo, bool push, const char *user,
		const char *pass, struct be_reg **out, struct sk_err *e);
void be_reg_close(struct be_reg *r);
struct be_http_stats *be_reg_stats(struct be_reg *r);
/* Also asks for pull rights on another repository (cross-repo mounts). */
int be_reg_add_scope(struct be_reg *r, const char *repo);

/* A manifest by tag or digest; digest-checked. *buf is malloc'd. */
int be_reg_get_manifest(struct be_reg *r, const char *ref, char **buf,
			size_t *len, char mt[128], char hex[SK_HEX_LEN + 1],
			struct sk_err *e);
/* Tag or digest to a skiff image, through an index when there is one. */
int be_reg_resolve(struct be_reg *r, const char *ref, const char *platform,
		   struct be_image *img, struct sk_err *e);
/* Exactly len bytes of a blob at off (mirrors first). */
int be_reg_blob_read(struct be_reg *r, const char *hex, uint64_t off,
		     void *buf, size_t len, struct sk_err *e);
/* A whole small blob (an image config), at most max bytes, its digest
 * checked; *buf is malloc'd (mirrors first). */
int be_reg_blob_get(struct be_reg *r, const char *hex, size_t max,
		    char **buf, size_t *len, struct sk_err *e);
/* Bytes read for [off, off+len) of blob hex failed verification: later
 * reads overlapping it skip the mirrors (the last 32 such ranges). */
void be_reg_bad_range(struct be_reg *r, const char *hex, uint64_t off,
		      uint64_t len);
/* 0 when the registry has the blob (its size in *size), -ENOENT if not. */
int be_reg_blob_exists(struct be_reg *r, const char *hex, uint64_t *size,
		       struct sk_err *e);
/* Cross-repository mount from repo `from`: 0 mounted, -ENOENT not. */
int be_reg_blob_mount(struct be_reg *r, const char *hex, const char *from,
		      struct sk_err *e);
/* Uploads a blob: monolithic (chunk 0) or in PATCH chunks of chunk bytes. */
int be_reg_blob_upload(struct be_reg *r, const char *hex, const void *data,
		       size_t len, size_t chunk, struct sk_err *e);
/* Puts a manifest under ref (a tag or its digest). */
int be_reg_manifest_put(struct be_reg *r, const char *ref, const char *mt,
			const void *buf, size_t len, struct sk_err *e);

#endif
