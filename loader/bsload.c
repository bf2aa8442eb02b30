/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An image's bootstrap, from its source to a verified, checked mapping:
 * streamed in bounded pieces, hashed on the way, kept under its digest in
 * cache_dir/bootstraps, mapped read-only, and walked with the structural
 * check of skiff check before the kernel may parse it.
 */
#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../format/check.h"

/* Stored bytes of the bootstrap read from a source at once: the memory a
 * registration needs whatever size a manifest claims. Most bootstraps fit
 * in one piece, one range request. */
#define BS_PIECE (8u << 20)

/*
 * Maps `path` read-only if it holds exactly `size` bytes whose SHA-256 is
 * `hex` (NULL: bytes bs_fetch() hashed as it wrote them, not read again).
 * -ENOENT: no such file; -EBADMSG: another content.
 */
static int bs_map(const char *path, uint64_t size, const char *hex, void **out)
{
	char got[SK_HEX_LEN + 1];
	uint8_t dg[SK_SHA256_LEN];
	struct stat st;
	void *p;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW), ret = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		ret = -errno;
	else if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != size || !size)
		ret = -EBADMSG;
	if (ret) {
		close(fd);
		return ret;
	}
	p = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
	ret = p == MAP_FAILED ? -errno : 0;
	close(fd);
	if (ret)
		return ret;
	if (hex) {
		sk_sha256(p, (size_t)size, dg);
		sk_hex(dg, sizeof(dg), got);
		if (strcmp(got, hex)) {
			munmap(p, (size_t)size);
			return -EBADMSG;
		}
	}
	*out = p;
	return 0;
}

/*
 * Streams the bootstrap from src into `path` in BS_PIECE pieces, hashing
 * on the way; the file appears under its name only once the digest
 * matches the manifest, so a half-read or lying bootstrap never lands.
 */
static int bs_fetch(struct be_source *src, const struct be_image *bi,
		    const char *path, struct sk_err *e)
{
	const char *hex = bi->bootstrap.hex;
	uint64_t size = bi->bootstrap.size;
	size_t plen = (size_t)SK_MIN((uint64_t)BS_PIECE, size);
	char tmp[PATH_MAX] = "", got[SK_HEX_LEN + 1];
	uint8_t dg[SK_SHA256_LEN];
	struct sk_sha256_ctx h = { 0 };
	uint8_t *piece = malloc(plen ? plen : 1);
	int fd = -1, ret;

	if (!piece)
		return -ENOMEM;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d.%d", path, (int)getpid(),
		     (int)gettid()) >= (int)sizeof(tmp)) {
		tmp[0] = '\0';
		sk_err_set(e, "%s: path too long", path);
		ret = -ENAMETOOLONG;
		goto out;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		ret = -errno;
		sk_err_set(e, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	ret = sk_sha256_init(&h);
	for (uint64_t off = 0; !ret && off < size; off += plen) {
		size_t n = (size_t)SK_MIN((uint64_t)plen, size - off);

		ret = be_source_read(src, hex, off, piece, n, e);
		if (ret) {
			sk_err_prefix(e, "bootstrap %s", hex);
			break;
		}
		sk_sha256_update(&h, piece, n);
		ret = sk_write_full(fd, piece, n);
		if (ret)
			sk_err_set(e, "%s: %s", tmp, strerror(-ret));
	}
	if (h.md) {
		sk_sha256_final(&h, dg);
		sk_sha256_free(&h);
		sk_hex(dg, sizeof(dg), got);
		if (!ret && strcmp(got, hex)) {
			sk_err_set(e, "bootstrap %s from %s: digest does not match the manifest",
				   hex, src->desc);
			ret = -EBADMSG;
		}
	}
	if (!ret && fsync(fd) < 0) {
		ret = -errno;
		sk_err_set(e, "%s: %s", tmp, strerror(errno));
	}
	if (close(fd) < 0 && !ret) {
		ret = -errno;
		sk_err_set(e, "%s: %s", tmp, strerror(errno));
	}
	fd = -1;
	if (!ret && rename(tmp, path) < 0) {
		ret = -errno;
		sk_err_set(e, "%s: %s", path, strerror(errno));
	}
out:
	if (ret && tmp[0])
		unlink(tmp);
	if (fd >= 0)
		close(fd);
	free(piece);
	return ret;
}

/*
 * The image's bootstrap, verified against the manifest: a read-only
 * mapping of its copy in cache_dir/bootstraps (what the kernel mounts in
 * fanotify mode; cachefiles mode copies it into the kernel's cache file
 * from the mapping). A copy a previous registration left costs no network
 * round trip once it verifies. On success *map (im->bootstrap_size bytes)
 * is the caller's to munmap; on failure nothing is left to free.
 */
int ld_bs_load(struct ld_daemon *d, struct be_source *src, const struct be_image *bi,
	       struct ld_image *im, void **map, struct sk_err *e)
{
	char rel[16 + SK_HEX_LEN];
	const char *hex = bi->bootstrap.hex;
	uint64_t size = bi->bootstrap.size;
	int ret;

	*map = NULL;
	snprintf(rel, sizeof(rel), "bootstraps/%s", hex);
	ret = sk_path_join(im->bootstrap_path, sizeof(im->bootstrap_path),
			   d->cfg.cache_dir, rel);
	if (ret) {
		sk_err_set(e, "%s: path too long", d->cfg.cache_dir);
		return ret;
	}
	/* a manifest's claim, checked before a byte is read or a file
	 * grows: the size is the digest's, so it cannot change later */
	if (size > d->cfg.max_bootstrap_size || size > SIZE_MAX) {
		sk_err_set(e, "bootstrap %s: the manifest says %llu bytes, over "
			   "max_bootstrap_size (%llu bytes; skiffd.json)", hex,
			   (unsigned long long)size,
			   (unsigned long long)d->cfg.max_bootstrap_size);
		return -EFBIG;
	}
	if (!size) {
		sk_err_set(e, "bootstrap %s: the manifest says 0 bytes", hex);
		return -EBADMSG;
	}
	/* a copy an earlier registration left: verified again */
	if (bs_map(im->bootstrap_path, size, hex, map) == 0)
		goto done;
	ret = bs_fetch(src, bi, im->bootstrap_path, e);
	if (ret)
		return ret;
	ret = bs_map(im->bootstrap_path, size, NULL, map);
	if (ret) {
		sk_err_set(e, "%s: changed under skiffd: %s", im->bootstrap_path,
			   strerror(-ret));
		return ret;
	}
done:
	im->bootstrap_size = size;
	return 0;
}

struct bs_check_ctx {
	struct ld_cache *const *caches;	/* per blob, its table read and verified */
	char first[256];	/* the first problem found */
	/* where the last chunk the check found right was: a file's next
	 * chunk stored right after it goes on with it, anything else
	 * starts a piece of its own (ld_cache_file_start) */
	uint64_t pnid, pchunk;
	unsigned int pblob;
	bool have;
};

static int bs_check_table(void *ctx, unsigned int blob, const struct fmt_blob_table **t,
			  struct sk_err *e)
{
	struct bs_check_ctx *c = ctx;

	(void)e;	/* every table of the image was read and verified */
	*t = &c->caches[blob]->table;
	return 0;
}

static void bs_check_problem(void *ctx, const char *msg)
{
	struct bs_check_ctx *c = ctx;

	if (!c->first[0])
		snprintf(c->first, sizeof(c->first), "%s", msg);
}

static int bs_check_chunk(void *ctx, const struct fmt_inode *ino, unsigned int blob,
			  uint64_t chunk)
{
	struct bs_check_ctx *c = ctx;
	bool goes_on = c->have && c->pnid == ino->nid && c->pblob == blob &&
		       c->pchunk + 1 == chunk;

	c->pnid = ino->nid;
	c->pchunk = chunk;
	c->pblob = blob;
	c->have = true;
	return goes_on ? 0 : ld_cache_file_start(c->caches[blob], chunk);
}

int ld_bs_check(struct fmt_bs *bs, struct ld_cache *const *caches, const char *ref,
		struct sk_err *e)
{
	struct bs_check_ctx c = { .caches = caches };
	struct fmt_check ck = { .table = bs_check_table, .problem = bs_check_problem,
				.chunk = bs_check_chunk, .ctx = &c };
	int ret = fmt_bs_check(bs, &ck);

	if (ret == -EFSCORRUPTED)
		sk_err_set(e, "bootstrap of %s is damaged (%llu problem%s; skiff check "
			   "names them all): %s", ref, (unsigned long long)ck.problems,
			   ck.problems > 1 ? "s" : "", c.first);
	else if (ret)
		sk_err_set(e, "checking the bootstrap of %s: %s", ref, strerror(-ret));
	return ret;
}
