/* SPDX-License-Identifier: Apache-2.0 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../format/walk.h"

static const char inspect_usage[] =
"usage: skiff inspect [--json] IMAGE\n"
"\n"
"Summarises a skiff image (IMAGE is an OCI layout DIR[:TAG]): blobs,\n"
"sizes, chunk counts, compression and deduplication ratios, inodes.\n"
"\n"
"  --json      machine-readable output\n"
"  -h, --help  this help\n";

struct inspect {
	struct cli_image *ci;
	uint8_t *seen;		/* inodes counted, by nid */
	uint64_t files, dirs, symlinks, chr, blk, fifo, sock, hardlinks;
	uint64_t file_bytes, mapped_bytes, hole_chunks, mapped_chunks;
	int err;
};

static int count_cb(void *ctx, const char *path, size_t plen,
		    const struct fmt_inode *ino)
{
	struct inspect *s = ctx;
	uint64_t b = ino->nid;

	(void)path;
	(void)plen;
	if (s->seen[b / 8] & (1u << (b % 8))) {
		s->hardlinks++;
		return 0;
	}
	s->seen[b / 8] |= (uint8_t)(1u << (b % 8));
	switch (ino->mode & S_IFMT) {
	case S_IFREG:
		s->files++;
		s->file_bytes += ino->size;
		for (uint64_t i = 0; i < ino->chunk_count; i++) {
			const struct fmt_chunk *c;
			unsigned int blob;
			int ret = fmt_reader_map(&s->ci->rd, ino, i, &blob, &c);

			if (ret)
				return ret;
			if (c) {
				s->mapped_chunks++;
				s->mapped_bytes += c->usize;
			} else {
				s->hole_chunks++;
			}
		}
		break;
	case S_IFDIR: s->dirs++; break;
	case S_IFLNK: s->symlinks++; break;
	case S_IFCHR: s->chr++; break;
	case S_IFBLK: s->blk++; break;
	case S_IFIFO: s->fifo++; break;
	case S_IFSOCK: s->sock++; break;
	}
	return 0;
}

/* The prefetch list's paths, in list order (NIDs resolved by a walk). */
struct pf_names {
	uint64_t *nid;		/* list order */
	char **path;		/* per entry, NULL until found */
	uint32_t n;
};

static int pf_cb(void *ctx, const char *path, size_t pathlen,
		 const struct fmt_inode *ino)
{
	struct pf_names *p = ctx;

	for (uint32_t i = 0; i < p->n; i++)
		if (p->nid[i] == ino->nid && !p->path[i] &&
		    !(p->path[i] = strndup(path, pathlen)))
			return -ENOMEM;
	return 0;
}

static json_t *prefetch_json(struct fmt_bs *bs)
{
	struct pf_names p = { .n = fmt_bs_prefetch_count(bs) };
	json_t *arr = json_array();

	if (!arr || !p.n)
		return arr;
	p.nid = calloc(p.n, sizeof(*p.nid));
	p.path = calloc(p.n, sizeof(*p.path));
	for (uint32_t i = 0; p.nid && p.path && i < p.n; i++)
		fmt_bs_prefetch_nid(bs, i, &p.nid[i]);
	/* a list is short next to the tree: a linear match per inode will do */
	if (p.nid && p.path && fmt_bs_walk(bs, pf_cb, &p) == 0)
		for (uint32_t i = 0; i < p.n; i++)
			json_array_append_new(arr, p.path[i] ? json_string(p.path[i]) :
					      json_sprintf("(nid %llu)",
							   (unsigned long long)p.nid[i]));
	for (uint32_t i = 0; p.path && i < p.n; i++)
		free(p.path[i]);
	free(p.path);
	free(p.nid);
	return arr;
}

int cmd_inspect(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct cli_image ci;
	struct inspect s = { .ci = &ci };
	struct sk_err e = { { 0 } };
	uint64_t stored = 0, usize = 0, unique = 0, chunks = 0, comp = 0;
	json_t *jblobs;
	int json = 0, c, ret;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'J') {
			json = 1;
		} else if (c == 'h') {
			fputs(inspect_usage, stdout);
			return 0;
		} else {
			fputs(inspect_usage, stderr);
			return 2;
		}
	}
	if (argc - optind != 1) {
		fputs(inspect_usage, stderr);
		return 2;
	}
	if (cli_image_open(&ci, argv[optind], &e)) {
		cli_err("%s", e.msg);
		return 1;
	}
	s.seen = calloc((ci.bs.size >> EROFS_ISLOTBITS) / 8 + 1, 1);
	jblobs = json_array();
	if (!s.seen || !jblobs) {
		cli_err("out of memory");
		ret = 1;
		goto out;
	}
	for (unsigned int i = 0; i < ci.bs.nblobs; i++) {
		const struct fmt_blob_table *t;
		uint64_t bu = 0, bc = 0;
		char tdhex[SK_HEX_LEN + 1];

		ret = fmt_reader_table(&ci.rd, i, &t);
		if (ret) {
			cli_err("%s", ci.rd.err.msg);
			ret = 1;
			goto out;
		}
		for (uint64_t k = 0; k < t->count; k++) {
			bu += t->chunks[k].usize;
			bc += t->chunks[k].comp != SKIFF_COMP_NONE;
		}
		stored += t->stored_size;
		usize += t->usize;
		unique += bu;
		chunks += t->count;
		comp += bc;
		sk_hex(ci.bs.blobs[i].table_digest, SK_SHA256_LEN, tdhex);
		json_array_append_new(jblobs, json_pack(
			"{s:s, s:s, s:I, s:I, s:I, s:I, s:I}", "id", ci.bs.blobs[i].hex,
			"table_digest", tdhex,
			"stored_size", (json_int_t)t->stored_size,
			"uncompressed_size", (json_int_t)t->usize,
			"chunk_bytes", (json_int_t)bu,
			"chunks", (json_int_t)t->count,
			"compressed_chunks", (json_int_t)bc));
	}
	ret = fmt_bs_walk(&ci.bs, count_cb, &s);
	if (ret) {
		cli_err("%s", ci.rd.err.msg[0] ? ci.rd.err.msg : ci.bs.err.msg);
		ret = 1;
		goto out;
	}
	double cratio = stored ? (double)unique / (double)stored : 1.0;
	double dratio = unique ? (double)s.mapped_bytes / (double)unique : 1.0;

	if (json) {
		json_t *j = json_pack(
			"{s:s, s:s?, s:s, s:I, s:I, s:I, s:o, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I},"
			" s:I, s:I, s:I, s:I, s:I, s:f, s:f}",
			"manifest", ci.img.manifest_hex,
			"tag", ci.img.tag[0] ? ci.img.tag : NULL,
			"bootstrap", ci.img.bootstrap.hex,
			"bootstrap_size", (json_int_t)ci.bs_size,
			"chunk_size", (json_int_t)(1ull << ci.bs.chunk_bits),
			"inos", (json_int_t)ci.bs.inos,
			"blobs", jblobs,
			"inodes", "files", (json_int_t)s.files, "dirs", (json_int_t)s.dirs,
			"symlinks", (json_int_t)s.symlinks, "chardevs", (json_int_t)s.chr,
			"blockdevs", (json_int_t)s.blk, "fifos", (json_int_t)s.fifo,
			"sockets", (json_int_t)s.sock,
			"hardlinks", (json_int_t)s.hardlinks,
			"total", (json_int_t)(s.files + s.dirs + s.symlinks + s.chr +
					      s.blk + s.fifo + s.sock),
			"file_bytes", (json_int_t)s.file_bytes,
			"mapped_bytes", (json_int_t)s.mapped_bytes,
			"unique_chunk_bytes", (json_int_t)unique,
			"stored_bytes", (json_int_t)stored,
			"hole_chunks", (json_int_t)s.hole_chunks,
			"compression_ratio", cratio,
			"dedup_ratio", dratio);

		jblobs = NULL;
		if (j)
			json_object_set_new(j, "prefetch", prefetch_json(&ci.bs));
		if (!j) {
			cli_err("out of memory");
			ret = 1;
			goto out;
		}
		json_dumpf(j, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
		fputc('\n', stdout);
		json_decref(j);
	} else {
		char a[32], b[32], d[32];

		printf("image:       %s%s%s\n", argv[optind], ci.img.tag[0] ? " tag " : "",
		       ci.img.tag);
		printf("manifest:    sha256:%s\n", ci.img.manifest_hex);
		sk_human_size(ci.bs_size, a, sizeof(a));
		printf("bootstrap:   sha256:%s (%s)\n", ci.img.bootstrap.hex, a);
		sk_human_size(1ull << ci.bs.chunk_bits, a, sizeof(a));
		printf("chunk size:  %s\n", a);
		printf("inodes:      %llu (%llu files, %llu dirs, %llu symlinks, %llu devices, %llu fifos, %llu sockets; %llu extra hard links)\n",
		       (unsigned long long)ci.bs.inos, (unsigned long long)s.files,
		       (unsigned long long)s.dirs, (unsigned long long)s.symlinks,
		       (unsigned long long)(s.chr + s.blk), (unsigned long long)s.fifo,
		       (unsigned long long)s.sock, (unsigned long long)s.hardlinks);
		sk_human_size(s.file_bytes, a, sizeof(a));
		sk_human_size(s.mapped_bytes, b, sizeof(b));
		printf("file data:   %s logical, %s in mapped chunks, %llu hole chunks\n",
		       a, b, (unsigned long long)s.hole_chunks);
		for (unsigned int i = 0; i < ci.bs.nblobs; i++) {
			const struct fmt_blob_table *t = &ci.rd.tables[i];

			sk_human_size(t->stored_size, a, sizeof(a));
			sk_human_size(t->usize, b, sizeof(b));
			printf("blob %u:      sha256:%s\n             stored %s, cache file %s, %llu chunks\n",
			       i, ci.bs.blobs[i].hex, a, b,
			       (unsigned long long)t->count);
		}
		sk_human_size(unique, a, sizeof(a));
		sk_human_size(stored, d, sizeof(d));
		printf("compression: %s -> %s (ratio %.2f, %llu of %llu chunks compressed)\n",
		       a, d, cratio, (unsigned long long)comp,
		       (unsigned long long)chunks);
		printf("dedup:       ratio %.2f (mapped bytes / unique chunk bytes)\n",
		       dratio);
		if (fmt_bs_prefetch_count(&ci.bs)) {
			json_t *pl = prefetch_json(&ci.bs), *v;
			size_t i;

			printf("prefetch:    %u files (--json lists them all)\n",
			       fmt_bs_prefetch_count(&ci.bs));
			json_array_foreach(pl, i, v) {
				if (i == 10) {
					printf("             ...\n");
					break;
				}
				printf("             %s\n", json_string_value(v));
			}
			json_decref(pl);
		}
	}
	ret = 0;
out:
	json_decref(jblobs);
	free(s.seen);
	cli_image_close(&ci);
	return ret;
}
