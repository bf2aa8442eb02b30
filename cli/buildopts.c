/* SPDX-License-Identifier: Apache-2.0 */
/* The builder options skiff build and skiff convert share. */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../format/builder.h"
#include "../format/ondisk.h"

int cli_build_opt(int c, const char *arg, struct fmt_build_opts *o)
{
	uint64_t v;
	char *end;
	long n;

	switch (c) {
	case 'c':
		if (sk_parse_size(arg, &v) || v < 4096 || v > (64u << 20) ||
		    (v & (v - 1))) {
			cli_err("--chunk-size %s: need a power of two from 4K to 64M", arg);
			return -1;
		}
		o->chunk_bits = (unsigned int)__builtin_ctzll(v);
		return 1;
	case 'C':
		if (!strcmp(arg, "zstd")) {
			o->compress = SKIFF_COMP_ZSTD;
		} else if (!strcmp(arg, "none")) {
			o->compress = SKIFF_COMP_NONE;
		} else {
			cli_err("--compress %s: use zstd or none", arg);
			return -1;
		}
		return 1;
	case 'l':
		n = strtol(arg, &end, 10);
		if (!*arg || *end || n < 1 || n > 19) {
			cli_err("--level %s: need 1 to 19", arg);
			return -1;
		}
		o->level = (int)n;
		return 1;
	case 'j':
		n = strtol(arg, &end, 10);
		if (!*arg || *end || n < 1 || n > 256) {
			cli_err("--threads %s: need 1 to 256", arg);
			return -1;
		}
		o->threads = (unsigned int)n;
		return 1;
	case CLI_OPT_MAX_EXPANSION: {
		unsigned long long r;

		if (!strcmp(arg, "off")) {
			o->claim_min = FMT_CLAIM_NONE;
			return 1;
		}
		errno = 0;
		r = *arg >= '1' && *arg <= '9' ? strtoull(arg, &end, 10) : 0;
		if (!r || errno || r > 1000000 || (*end && *end != ',') ||
		    (*end == ',' && (sk_parse_size(end + 1, &v) || !v ||
				     v == FMT_CLAIM_NONE))) {
			cli_err("--max-expansion %s: need RATIO[,SIZE] (1 to 1000000, a size such as 64G) or off",
				arg);
			return -1;
		}
		o->claim_ratio = r;
		if (*end == ',')
			o->claim_min = v;
		return 1;
	}
	}
	return 0;
}

const char *cli_build_hint(int ret)
{
	return ret == -EDQUOT ?
	       " (--max-expansion RATIO[,SIZE] raises the limit, if the image is trusted)" : "";
}

int cli_prefetch_list_load(const char *path, struct fmt_prefetch_list *pl,
			   struct fmt_build_opts *o)
{
	struct sk_err e = { { 0 } };
	void *buf;
	size_t len;
	int ret = sk_read_file(path, 64u << 20, &buf, &len);

	if (ret) {
		cli_err("--prefetch-list %s: %s", path, strerror(-ret));
		return ret;
	}
	ret = fmt_prefetch_list_parse(buf, len, pl, &e);
	free(buf);
	if (ret) {
		cli_err("--prefetch-list %s: %s", path, e.msg[0] ? e.msg : strerror(-ret));
		return ret;
	}
	o->prefetch = (const char *const *)pl->paths;
	o->nprefetch = pl->n;
	return 0;
}
