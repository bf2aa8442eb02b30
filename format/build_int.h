/* SPDX-License-Identifier: Apache-2.0 */
/* Builder internals shared by the tree walk, data and metadata passes. */
#ifndef SKIFF_FORMAT_BUILD_INT_H
#define SKIFF_FORMAT_BUILD_INT_H

#include <stdbool.h>
#include <sys/types.h>

#include "blob.h"
#include "builder.h"
#include "ondisk.h"

struct bld_xattr {
	uint8_t index;		/* EROFS_XATTR_INDEX_* */
	uint8_t namelen;	/* suffix length */
	uint16_t vlen;
	char *name;		/* suffix, owned */
	uint8_t *value;		/* owned */
};

struct bld_node;

struct bld_dentry {
	char *name;		/* owned, NUL-terminated for convenience */
	uint16_t namelen;
	struct bld_node *node;	/* borrowed: nodes are owned by the tree;
				 * NULL while merging layers: deleted */
	uint32_t layer;		/* layer merge: the layer that set it */
};

struct bld_node {
	uint32_t mode, uid, gid, nlink, rdev, mtime_nsec;
	uint64_t size, mtime;
	dev_t sdev;
	ino_t sino;
	char *path;		/* source path (regular files), owned */
	bool sparse;		/* fewer blocks than bytes: look for holes */
	char *link;		/* symlink target, owned */
	struct bld_dentry *ents;	/* dirs: sorted, without . and .. */
	uint32_t nents, cap_ents;
	uint32_t nsubdirs;
	struct bld_node *parent;
	struct bld_xattr *xattrs;	/* sorted by (index, name) */
	uint32_t nxattrs;
	uint32_t xattr_isize;
	struct erofs_inode_chunk_index *chunks;	/* on-disk form, owned */
	uint64_t nchunks;
	/* layout */
	bool placed;
	bool in_prefetch;	/* listed in t->prefetch */
	uint8_t layout;
	uint32_t ino;
	uint64_t nid;
	uint64_t pos;		/* byte offset of the inode in the bootstrap */
	uint32_t raw_blkaddr;
	uint64_t data_size;	/* dir: packed dirent bytes; symlink: target */
	uint64_t full_blocks;	/* flat data in blocks outside the inode */
	uint32_t *dirblk_first;	/* dirs: index of the first entry per block */
	uint32_t ndirblk;
	struct bld_node *next;	/* all nodes, in walk order */
	struct bld_node *all_next;	/* layer merge: every node made */
	bool live;		/* layer merge: reached from the root */
};

struct bld_tree {
	struct bld_node *root;
	struct bld_node *head, *tail;	/* every node once, walk order */
	uint64_t nnodes;
	struct fmt_build_stats *stats;
	struct sk_err *err;
	/* the prefetch list resolved: regular files, each once, owned array
	 * of borrowed nodes */
	struct bld_node **prefetch;
	size_t nprefetch;
	uint64_t stored;	/* directory build: allocated file bytes */
};

/* 0, or -EDQUOT with a message naming `what` when claimed (apparent
 * bytes) is over the limit o->claim_* sets for stored bytes. */
int bld_claim_check(const struct fmt_build_opts *o, uint64_t claimed,
		    uint64_t stored, const char *what, struct sk_err *e);

/* Resolves o->prefetch against the tree into t->prefetch. */
int bld_prefetch_resolve(struct bld_tree *t, const struct fmt_build_opts *o);

int bld_walk(struct bld_tree *t, const char *srcdir);
void bld_tree_free(struct bld_tree *t);
void bld_node_free(struct bld_node *n);
/* Adds n at the end of the tree's walk-order list. */
void bld_tree_append(struct bld_tree *t, struct bld_node *n);
/* Bytewise name order of struct bld_dentry, EROFS's directory order. */
int bld_dentry_cmp(const void *a, const void *b);
/* Adds (or replaces) xattr `name` ("user.foo", ...) of n; names outside
 * EROFS's namespaces are skipped with a warning naming `where`. */
int bld_xattr_set(struct bld_node *n, const char *name, const void *value,
		  size_t vlen, const char *where, struct sk_err *e);
/* Sorts n's xattrs and sizes their inline body. */
int bld_xattrs_done(struct bld_node *n, const char *where, struct sk_err *e);
void bld_xattrs_clear(struct bld_node *n);

struct bld_blob {
	uint8_t id[SK_SHA256_LEN];
	uint64_t stored_size, usize, table_off, table_size, count;
	uint8_t table_digest[SK_SHA256_LEN];
};

/*
 * The chunk pipeline, kept across the blobs of one build (the layers of a
 * conversion): a worker pool hashing and compressing, and every chunk the
 * build knows (stored in one of its blobs, or named by a chunk
 * dictionary) by digest. Chunk indexes it writes carry device_id =
 * build-local blob index + 1; a multi-blob build renumbers them to device
 * slots before the metadata pass.
 */
struct bld_data;
struct fmt_tar;
struct fmt_tar_entry;
int bld_data_new(struct bld_data **out, struct bld_tree *t,
		 const struct fmt_build_opts *o);
void bld_data_free(struct bld_data *c);
/* Chunks already stored in blob `blob` (a chunk dictionary). */
int bld_data_add_known(struct bld_data *c, uint32_t blob,
		       const struct fmt_chunk *chunks, uint64_t count);
int bld_data_begin_blob(struct bld_data *c, uint32_t blob, int fd);
/* Queues a file's chunks: from n->path, or from the tar member now being
 * read. Chunk indexes are final after bld_data_end_blob(). */
int bld_data_file(struct bld_data *c, struct bld_node *n);
int bld_data_tar_file(struct bld_data *c, struct bld_node *n,
		      struct fmt_tar *tar, const struct fmt_tar_entry *ent);
/* Commits everything queued and writes the chunk table and footer;
 * blob->count is 0 when no new chunk went into it (nothing written). */
int bld_data_end_blob(struct bld_data *c, struct bld_blob *blob);
/* After an error: waits for the queued chunks and drops the blob (what
 * was written to its fd is garbage). */
void bld_data_abort_blob(struct bld_data *c);

int bld_data(struct bld_tree *t, const struct fmt_build_opts *o, int blob_fd,
	     struct bld_blob *blob);

/* Writing a stored blob: bld_blob_write() appends bytes to fd, hashing
 * them into h and counting them in *soff; bld_blob_seal() then appends
 * the chunk table (chunks in cache order) and the footer and fills b. */
int bld_blob_write(int fd, struct sk_sha256_ctx *h, uint64_t *soff,
		   const void *buf, size_t len, struct sk_err *e);
int bld_blob_seal(int fd, struct sk_sha256_ctx *h, uint64_t *soff,
		  const struct fmt_chunk *chunks, uint64_t n, uint64_t usize,
		  struct bld_blob *b, struct sk_err *e);

/*
 * The prefetch blob of a layered build: copies the stored chunks of the
 * files in t->prefetch, in list order (file by file, chunk by chunk, a
 * chunk once), from the blobs they live in into one new blob written to
 * out_fd, and points those files' chunk indexes at it (device new_blob +
 * 1). blobs[i] is build-local blob i, readable at fds[i] (-1: not
 * readable, its chunks stay where they are). b->count is 0 when nothing
 * was copied (nothing written).
 */
int bld_prefetch_blob(struct bld_tree *t, const struct bld_blob *blobs,
		      const int *fds, unsigned int nblobs, uint32_t new_blob,
		      int out_fd, struct bld_blob *b);

/* blobs[i] is device slot i (chunk indexes say device i + 1). */
int bld_meta(struct bld_tree *t, const struct fmt_build_opts *o,
	     const struct bld_blob *blobs, unsigned int nblobs, void **out,
	     size_t *outlen);

#endif
