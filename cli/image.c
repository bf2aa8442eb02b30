/* SPDX-License-Identifier: Apache-2.0 */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void cli_err(const char *fmt, ...)
{
	va_list ap;

	fputs("skiff: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void cli_put_name(FILE *f, const char *name, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c < 0x20 || c >= 0x7f || c == '\\')
			fprintf(f, "\\x%02x", c);
		else
			fputc(c, f);
	}
}

static int blob_read(void *ctx, unsigned int blob, uint64_t off, void *buf,
		     size_t len)
{
	struct cli_image *ci = ctx;

	return sk_pread_full(ci->fds[blob], buf, len, off);
}

int cli_image_open(struct cli_image *ci, const char *ref, struct sk_err *e)
{
	char dir[PATH_MAX], tag[256], p[PATH_MAX];
	uint8_t d[SK_SHA256_LEN];
	char hex[SK_HEX_LEN + 1];
	int ret;

	memset(ci, 0, sizeof(*ci));
	ret = be_ref_split(ref, dir, sizeof(dir), tag, sizeof(tag));
	if (ret) {
		sk_err_set(e, "%s: %s", ref, strerror(-ret));
		return ret;
	}
	ret = be_store_open(&ci->store, dir, 0, e);
	if (ret)
		return ret;
	ret = be_store_resolve(&ci->store, tag, &ci->img, e);
	if (ret)
		return ret;
	be_store_blob_path(&ci->store, ci->img.bootstrap.hex, p, sizeof(p));
	ret = sk_read_file(p, 1ull << 32, &ci->bs_buf, &ci->bs_size);
	if (ret) {
		sk_err_set(e, "bootstrap %s: %s", p, strerror(-ret));
		goto fail;
	}
	sk_sha256(ci->bs_buf, ci->bs_size, d);
	sk_hex(d, sizeof(d), hex);
	if (strcmp(hex, ci->img.bootstrap.hex) ||
	    ci->bs_size != ci->img.bootstrap.size) {
		sk_err_set(e, "bootstrap %s: digest or size does not match the manifest",
			   p);
		ret = -EBADMSG;
		goto fail;
	}
	ret = fmt_bs_open(&ci->bs, ci->bs_buf, ci->bs_size);
	if (ret) {
		sk_err_set(e, "bootstrap %s: %s", p, ci->bs.err.msg);
		goto fail;
	}
	ci->bs_open = 1;
	if (ci->bs.nblobs != ci->img.nblobs) {
		sk_err_set(e, "manifest names %u blobs, bootstrap %u",
			   ci->img.nblobs, ci->bs.nblobs);
		ret = -EBADMSG;
		goto fail;
	}
	ci->fds = malloc((ci->img.nblobs ? ci->img.nblobs : 1) * sizeof(int));
	if (!ci->fds) {
		ret = -ENOMEM;
		goto fail;
	}
	for (unsigned int i = 0; i < ci->img.nblobs; i++)
		ci->fds[i] = -1;
	for (unsigned int i = 0; i < ci->img.nblobs; i++) {
		struct stat st;

		if (strcmp(ci->img.blobs[i].hex, ci->bs.blobs[i].hex) ||
		    ci->img.blobs[i].size != ci->bs.blobs[i].stored_size) {
			sk_err_set(e, "blob %u: manifest and bootstrap disagree", i);
			ret = -EBADMSG;
			goto fail;
		}
		be_store_blob_path(&ci->store, ci->img.blobs[i].hex, p, sizeof(p));
		ci->fds[i] = open(p, O_RDONLY | O_CLOEXEC);
		if (ci->fds[i] < 0) {
			ret = -errno;
			sk_err_set(e, "blob %s: %s", p, strerror(errno));
			goto fail;
		}
		if (fstat(ci->fds[i], &st) < 0 ||
		    (uint64_t)st.st_size != ci->img.blobs[i].size) {
			sk_err_set(e, "blob %s: size does not match the manifest", p);
			ret = -EBADMSG;
			goto fail;
		}
	}
	ret = fmt_reader_init(&ci->rd, &ci->bs,
			      &(struct fmt_blob_src){ blob_read, ci });
	if (ret) {
		sk_err_set(e, "%s", strerror(-ret));
		goto fail;
	}
	ci->rd_open = 1;
	return 0;
fail:
	cli_image_close(ci);
	return ret;
}

void cli_image_close(struct cli_image *ci)
{
	if (ci->rd_open)
		fmt_reader_free(&ci->rd);
	if (ci->fds)
		for (unsigned int i = 0; i < ci->img.nblobs; i++)
			if (ci->fds[i] >= 0)
				close(ci->fds[i]);
	free(ci->fds);
	if (ci->bs_open)
		fmt_bs_close(&ci->bs);
	free(ci->bs_buf);
	be_image_free(&ci->img);
	memset(ci, 0, sizeof(*ci));
}
