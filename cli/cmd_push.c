/* SPDX-License-Identifier: Apache-2.0 */
/* skiff push: an image of the local store to an OCI registry. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "../backend/remote.h"
#include "registry.h"

static const char push_usage[] =
"usage: skiff push [options] IMAGE docker://HOST[:PORT]/REPO[:TAG]\n"
"\n"
"Pushes IMAGE (an OCI layout DIR[:TAG]) to a registry: every blob the\n"
"registry lacks (blobs it has are skipped), the image config, then the\n"
"manifest under TAG (default: IMAGE's tag, else latest). Credentials come\n"
"from the Docker config file.\n"
"\n"
"      --from REPO        a repository of the same registry that may hold\n"
"                         the blobs: they are mounted from it, not uploaded\n"
"      --chunk-size SIZE  upload in chunks of SIZE (PATCH requests) instead\n"
"                         of one request per blob\n"
CLI_REG_USAGE
"  -q, --quiet            print nothing but errors\n";

/* Uploads one blob of the store unless the registry has it. */
static int push_blob(struct be_reg *r, const struct be_store *st,
		     const struct be_desc *d, const char *from, size_t chunk,
		     bool quiet, struct cli_push_stats *ps)
{
	struct sk_err e = { { 0 } };
	char p[PATH_MAX];
	int ret = be_store_blob_path(st, d->hex, p, sizeof(p));

	if (!ret)
		ret = cli_push_file(r, d->hex, d->size, p, from, chunk, !quiet, ps, &e);
	if (ret)
		cli_err("%s", e.msg[0] ? e.msg : strerror(-ret));
	return ret;
}

int cmd_push(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "from", required_argument, NULL, 'f' },
		{ "chunk-size", required_argument, NULL, CLI_OPT_UPLOAD_CHUNK },
		CLI_REG_OPTIONS,
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	const char *from = NULL;
	bool quiet = false;
	struct cli_reg_opts ro;
	struct be_store st;
	struct be_image img = { 0 };
	struct be_manifest man = { 0 };
	struct be_ref ref;
	struct be_reg *r = NULL;
	struct sk_err e = { { 0 } };
	struct cli_push_stats ps = { 0 };
	char dir[PATH_MAX], tag[256], p[PATH_MAX];
	void *mbuf = NULL;
	size_t mlen;
	int c, ret = 1;

	cli_reg_opts_init(&ro);
	while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
		int r2 = cli_reg_opt(c, optarg, &ro);

		if (r2 < 0)
			return 2;
		if (r2 > 0)
			continue;
		switch (c) {
		case 'f': from = optarg; break;
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
	if (cli_reg_open(&ro, &ref, true, &r, &e) ||
	    (from && be_reg_add_scope(r, from))) {
		cli_err("%s", e.msg);
		goto out;
	}
	for (unsigned int i = 0; i < man.nlayers; i++)
		if (push_blob(r, &st, &man.layers[i], from, (size_t)ro.upload_chunk,
			      quiet, &ps))
			goto out;
	if (push_blob(r, &st, &man.config, from, (size_t)ro.upload_chunk, quiet, &ps))
		goto out;
	const char *dtag = ref.tag[0] ? ref.tag : img.tag[0] ? img.tag : "latest";

	if (be_reg_manifest_put(r, dtag, man.mt, mbuf, mlen, &e)) {
		cli_err("%s", e.msg);
		goto out;
	}
	if (!quiet) {
		char sum[160];

		cli_push_summary(&ps, sum, sizeof(sum));
		printf("pushed docker://%s:%s (manifest sha256:%s): %s\n",
		       ref.loc, dtag, img.manifest_hex, sum);
	}
	ret = 0;
out:
	be_reg_close(r);
	be_manifest_free(&man);
	be_image_free(&img);
	free(mbuf);
	return ret;
}
