/* SPDX-License-Identifier: Apache-2.0 */
/* Builder internals shared by the tree walk, data and metadata passes. */
#ifndef SKIFF_FORMAT_BUILD_INT_H
#define SKIFF_FORMAT_BUILD_INT_H

#include <stdbool.h>
#include <sys/types.h>

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
	struct bld_node *node;	/* borrowed: nodes are owned by the tree */
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
};

struct bld_tree {
	struct bld_node *root;
	struct bld_node *head, *tail;	/* every node once, walk order */
	uint64_t nnodes;
	struct fmt_build_stats *stats;
	struct sk_err *err;
};

int bld_walk(struct bld_tree *t, const char *srcdir);
void bld_tree_free(struct bld_tree *t);

struct bld_blob {
	uint8_t id[SK_SHA256_LEN];
	uint64_t stored_size, usize, table_off, table_size, count;
	uint8_t table_digest[SK_SHA256_LEN];
};

int bld_data(struct bld_tree *t, const struct fmt_build_opts *o, int blob_fd,
	     struct bld_blob *blob);
int bld_meta(struct bld_tree *t, const struct fmt_build_opts *o,
	     const struct bld_blob *blob, void **out, size_t *outlen);

#endif
