/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Image builder: walks a directory tree and writes one data blob (to a
 * caller-supplied fd, sequentially) and a bootstrap (returned in memory).
 * Output depends only on the tree and the options: no timestamps, no
 * random UUIDs unless the caller passes one.
 */
#ifndef SKIFF_FORMAT_BUILDER_H
#define SKIFF_FORMAT_BUILDER_H

#include <stddef.h>
#include <stdint.h>

#include "../common/sk.h"

struct fmt_build_stats {
	uint64_t inodes, files, dirs, symlinks, specials, hardlinks;
	uint64_t file_bytes;	/* logical size of all regular files */
	uint64_t read_bytes;	/* bytes read from the source (holes skipped) */
	uint64_t chunks;	/* chunk indexes that map data */
	uint64_t chunks_unique;	/* chunks stored in the blob */
	uint64_t chunks_hole;	/* unmapped (all-zero or sparse) chunks */
	uint64_t chunks_compressed;
	uint64_t blob_usize;	/* cache-file size of the blob */
	uint64_t blob_stored;	/* stored blob size */
	uint64_t bootstrap_size;
	uint64_t prefetch_files;	/* list entries found as regular files */
};

/* Claim limits (fmt_build_opts.claim_*): defaults and "no limit". */
#define FMT_CLAIM_MIN_DEFAULT	(16ull << 30)
#define FMT_CLAIM_RATIO_DEFAULT	16u
#define FMT_CLAIM_NONE		UINT64_MAX

struct fmt_build_opts {
	unsigned int chunk_bits;	/* 12..26 */
	int compress;			/* SKIFF_COMP_NONE or SKIFF_COMP_ZSTD */
	int level;			/* zstd level */
	unsigned int threads;		/* 0: one per CPU */
	const uint8_t *uuid;		/* 16 bytes or NULL for zeros */
	/* Files read first (paths from the image root, in first-read order):
	 * their data goes first in the blob, so prefetching them is a few
	 * sequential reads, and the bootstrap keeps the list. Entries that
	 * are missing or not regular files are skipped. */
	const char *const *prefetch;
	size_t nprefetch;
	/*
	 * What files may claim beyond what is stored: a hole costs nothing
	 * to send but a chunk index in the bootstrap. The regular files of
	 * one tar layer (of the whole tree for fmt_build) may claim at most
	 * max(claim_min, claim_ratio x stored) bytes of apparent size
	 * together; stored is the layer's tar bytes (the tree's allocated
	 * file bytes). More fails with -EDQUOT. 0: FMT_CLAIM_*_DEFAULT;
	 * claim_min FMT_CLAIM_NONE: no limit.
	 */
	uint64_t claim_min;
	uint64_t claim_ratio;
	/* Called from the building thread now and then, and once at the end. */
	void (*progress)(void *ctx, const struct fmt_build_stats *s, int final);
	void *progress_ctx;
};

struct fmt_build_result {
	int has_blob;			/* 0 when the tree has no file data */
	uint8_t blob_id[SK_SHA256_LEN];
	uint64_t blob_size;
	void *bootstrap;		/* owned by the caller: free() */
	size_t bootstrap_size;
	struct fmt_build_stats stats;
};

int fmt_build(const char *srcdir, const struct fmt_build_opts *o, int blob_fd,
	      struct fmt_build_result *res, struct sk_err *e);

/*
 * A prefetch list file: one path a line (from the image root; a leading
 * "/" is optional), "#" lines and empty lines skipped. A tab ends the
 * path (what follows, e.g. a trace's chunk indexes, is ignored); \\, \t
 * and \n in a path stand for a backslash, a tab and a newline. So a trace
 * written by `skiff trace stop` is a prefetch list as it is.
 */
struct fmt_prefetch_list {
	char **paths;	/* owned */
	size_t n;
};
int fmt_prefetch_list_parse(const char *buf, size_t len,
			    struct fmt_prefetch_list *l, struct sk_err *e);
void fmt_prefetch_list_free(struct fmt_prefetch_list *l);

/*
 * Layered build: applies tar layers (container image layers) one after
 * the other as a container runtime would (later entries replace earlier
 * ones, .wh.NAME whiteouts delete, .wh..wh..opq makes a directory
 * opaque, missing parents are created 0755 root:root with mtime 0), and
 * writes one blob per layer that brings new chunks. Chunks equal to one
 * an earlier layer stored, or a chunk dictionary holds, are referenced,
 * not stored again. With a prefetch list, fmt_layers_prefetch_blob()
 * then copies the listed files' chunks into one more blob, in list
 * order. The bootstrap's device slots are the blobs that its files
 * reference: dictionary blobs first (in the order added), then layer
 * blobs in layer order, then the prefetch blob.
 */
struct fmt_layers;
struct fmt_tar;
struct fmt_blob_table;

struct fmt_layer_result {
	int has_blob;			/* the layer stored new chunks */
	uint8_t blob_id[SK_SHA256_LEN];
	uint64_t blob_size;
	uint64_t entries;		/* tar members read */
};

/* One device slot of the finished bootstrap. */
struct fmt_layers_slot {
	int dict;			/* a dictionary blob (else a layer's) */
	unsigned int index;		/* which dictionary blob / which layer;
					 * the prefetch blob: the layer count */
	uint8_t blob_id[SK_SHA256_LEN];
	uint64_t blob_size;
};

int fmt_layers_new(struct fmt_layers **out, const struct fmt_build_opts *o,
		   struct sk_err *e);
/* A blob of a chunk dictionary: id, its parsed chunk table, and fd, the
 * stored blob open for reading (borrowed, open until fmt_layers_free;
 * -1: the prefetch blob leaves its chunks where they are). */
int fmt_layers_add_dict(struct fmt_layers *l, const uint8_t id[SK_SHA256_LEN],
			const struct fmt_blob_table *t, int fd);
/* Reads the whole tar stream; new chunks go to blob_fd (left untouched
 * when res->has_blob is 0). With a prefetch list, blob_fd must also be
 * readable and stay open until fmt_layers_prefetch_blob() returns: that
 * reads the chunks back. */
int fmt_layers_apply(struct fmt_layers *l, struct fmt_tar *tar, int blob_fd,
		     struct fmt_layer_result *res);
/*
 * After the last layer, with a prefetch list (o->prefetch): resolves the
 * list against the merged tree and writes the prefetch blob to blob_fd,
 * every stored chunk the listed regular files reference, in list order
 * (file by file, chunk by chunk, each chunk once; holes stay holes),
 * copied as stored and checked against its digest. The listed files
 * then reference that blob alone, so a layer blob only they used drops
 * out. res->has_blob 0: no list, or nothing to copy (blob_fd untouched).
 * Optional; at most once, before fmt_layers_finish. After an error the
 * build is unusable: free it.
 */
int fmt_layers_prefetch_blob(struct fmt_layers *l, int blob_fd,
			     struct fmt_layer_result *res);
/* Lays out the bootstrap (res->bootstrap, owned by the caller) and tells
 * which blobs became device slots (*slots malloc'd, owned by the caller). */
int fmt_layers_finish(struct fmt_layers *l, struct fmt_build_result *res,
		      struct fmt_layers_slot **slots, unsigned int *nslots);
void fmt_layers_free(struct fmt_layers *l);

#endif
