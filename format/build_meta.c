/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Metadata pass: lays out inodes (breadth-first from the root, so a
 * directory's children sit together), packs directories into EROFS dirent
 * blocks, and writes the bootstrap into one buffer:
 *
 *   block 0      skiff header (bytes 0-127), EROFS superblock (1024),
 *                device table, then the first inodes (meta_blkaddr = 0)
 *   ...          inodes with inline xattrs, inline tails, chunk indexes
 *   data blocks  directory and symlink blocks that are not inline
 *   extension    skiff blob table (whole blocks, last)
 */
#include "build_int.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "blob.h"
#include "bootstrap.h"

#define INODE_SIZE sizeof(struct erofs_inode_extended)

/* Adds "." and "..", sorts, and cuts the entries into 4 KiB blocks. */
static int pack_dir(struct bld_node *d)
{
	struct bld_dentry *e = realloc(d->ents, (d->nents + 2) * sizeof(*e));
	uint32_t used = 0;

	if (!e)
		return -ENOMEM;
	d->ents = e;
	e[d->nents] = (struct bld_dentry){ strdup("."), 1, d, 0 };
	e[d->nents + 1] = (struct bld_dentry){ strdup(".."), 2, d->parent, 0 };
	d->nents += 2;
	if (!e[d->nents - 1].name || !e[d->nents - 2].name)
		return -ENOMEM;
	qsort(e, d->nents, sizeof(*e), bld_dentry_cmp);

	d->dirblk_first = calloc(d->nents, sizeof(uint32_t));
	if (!d->dirblk_first)
		return -ENOMEM;
	d->ndirblk = 0;
	for (uint32_t i = 0; i < d->nents; i++) {
		uint32_t need = sizeof(struct erofs_dirent) + e[i].namelen;

		if (i == 0 || used + need > EROFS_BLKSIZ) {
			d->dirblk_first[d->ndirblk++] = i;
			used = 0;
		}
		used += need;
	}
	d->data_size = (uint64_t)(d->ndirblk - 1) * EROFS_BLKSIZ + used;
	return 0;
}

struct layout {
	uint64_t pos;		/* next free byte in the metadata area */
	uint32_t next_ino;
	uint32_t nblobs;
	uint64_t devt_off;
};

static void place(struct layout *l, struct bld_node *n, unsigned int chunk_bits)
{
	uint64_t hdr = INODE_SIZE + n->xattr_isize, len = hdr, need = hdr;

	n->layout = EROFS_INODE_FLAT_PLAIN;
	n->full_blocks = 0;
	if (S_ISREG(n->mode) && n->size) {
		n->layout = EROFS_INODE_CHUNK_BASED;
		len = SK_ALIGN_UP(hdr, (uint64_t)8) +
		      n->nchunks * sizeof(struct erofs_inode_chunk_index);
		(void)chunk_bits;
	} else if (S_ISDIR(n->mode) || S_ISLNK(n->mode)) {
		uint64_t tail = n->data_size % EROFS_BLKSIZ;

		if (tail && hdr + tail <= EROFS_BLKSIZ) {
			/* tail-packing: the last partial block follows the
			 * inode and must not cross a block boundary */
			n->layout = EROFS_INODE_FLAT_INLINE;
			n->full_blocks = n->data_size / EROFS_BLKSIZ;
			len = need = hdr + tail;
		} else {
			n->full_blocks = SK_DIV_ROUND_UP(n->data_size, EROFS_BLKSIZ);
		}
	}
	l->pos = SK_ALIGN_UP(l->pos, (uint64_t)1 << EROFS_ISLOTBITS);
	if (need <= EROFS_BLKSIZ && l->pos % EROFS_BLKSIZ + need > EROFS_BLKSIZ)
		l->pos = SK_ALIGN_UP(l->pos, (uint64_t)EROFS_BLKSIZ);
	n->pos = l->pos;
	n->nid = l->pos >> EROFS_ISLOTBITS;
	n->ino = ++l->next_ino;
	n->placed = true;
	l->pos += len;
}

static void put_inode(uint8_t *buf, const struct bld_node *n,
		      unsigned int chunk_bits)
{
	struct erofs_inode_extended di = { 0 };
	uint8_t *p = buf + n->pos + INODE_SIZE;

	di.i_format = htole16(EROFS_I_VERSION_EXTENDED |
			      (n->layout << EROFS_I_DATALAYOUT_BIT));
	di.i_xattr_icount = htole16(n->xattr_isize ?
		(uint16_t)(1 + (n->xattr_isize -
				sizeof(struct erofs_xattr_ibody_header)) / 4) : 0);
	di.i_mode = htole16((uint16_t)n->mode);
	di.i_size = htole64(S_ISDIR(n->mode) ? n->data_size : n->size);
	switch (n->mode & S_IFMT) {
	case S_IFREG:
		if (n->layout == EROFS_INODE_CHUNK_BASED)
			di.i_u = htole32((chunk_bits - EROFS_BLKBITS) |
					 EROFS_CHUNK_FORMAT_INDEXES);
		break;
	case S_IFCHR:
	case S_IFBLK:
		di.i_u = htole32(n->rdev);
		break;
	case S_IFDIR:
	case S_IFLNK:
		di.i_u = htole32(n->full_blocks ? n->raw_blkaddr : 0);
		break;
	}
	di.i_ino = htole32(n->ino);
	di.i_uid = htole32(n->uid);
	di.i_gid = htole32(n->gid);
	di.i_mtime = htole64(n->mtime);
	di.i_mtime_nsec = htole32(n->mtime_nsec);
	di.i_nlink = htole32(n->nlink);
	memcpy(buf + n->pos, &di, sizeof(di));

	if (n->xattr_isize) {
		struct erofs_xattr_ibody_header h = { 0 };

		memcpy(p, &h, sizeof(h));
		p += sizeof(h);
		for (uint32_t i = 0; i < n->nxattrs; i++) {
			const struct bld_xattr *x = &n->xattrs[i];
			struct erofs_xattr_entry e = {
				.e_name_len = x->namelen,
				.e_name_index = x->index,
				.e_value_size = htole16(x->vlen),
			};

			memcpy(p, &e, sizeof(e));
			memcpy(p + sizeof(e), x->name, x->namelen);
			memcpy(p + sizeof(e) + x->namelen, x->value, x->vlen);
			p += SK_ALIGN_UP(sizeof(e) + x->namelen + x->vlen, 4u);
		}
	}
	if (n->layout == EROFS_INODE_CHUNK_BASED)
		memcpy(buf + SK_ALIGN_UP(n->pos + INODE_SIZE + n->xattr_isize,
					 (uint64_t)8),
		       n->chunks, n->nchunks * sizeof(*n->chunks));
}

/* Copies flat data (dir blocks, symlink target) block by block to where
 * the layout put it: full blocks at raw_blkaddr, the tail inline. */
static void put_flat_block(uint8_t *buf, const struct bld_node *n,
			   uint64_t blk, const uint8_t *data, size_t len)
{
	uint64_t dst;

	if (blk < n->full_blocks)
		dst = ((uint64_t)n->raw_blkaddr + blk) * EROFS_BLKSIZ;
	else
		dst = n->pos + INODE_SIZE + n->xattr_isize;
	memcpy(buf + dst, data, len);
}

static void put_dir(uint8_t *buf, const struct bld_node *d)
{
	uint8_t blk[EROFS_BLKSIZ];

	for (uint32_t b = 0; b < d->ndirblk; b++) {
		uint32_t first = d->dirblk_first[b];
		uint32_t end = b + 1 < d->ndirblk ? d->dirblk_first[b + 1] : d->nents;
		uint32_t nameoff = (end - first) * sizeof(struct erofs_dirent);

		memset(blk, 0, sizeof(blk));
		for (uint32_t i = first; i < end; i++) {
			const struct bld_dentry *e = &d->ents[i];
			struct erofs_dirent de = {
				.nid = htole64(e->node->nid),
				.nameoff = htole16((uint16_t)nameoff),
				.file_type = (uint8_t)fmt_file_type(e->node->mode),
			};

			memcpy(blk + (i - first) * sizeof(de), &de, sizeof(de));
			memcpy(blk + nameoff, e->name, e->namelen);
			nameoff += e->namelen;
		}
		put_flat_block(buf, d, b, blk,
			       b + 1 < d->ndirblk ? EROFS_BLKSIZ : nameoff);
	}
}

int bld_meta(struct bld_tree *t, const struct fmt_build_opts *o,
	     const struct bld_blob *blobs, unsigned int nblobs, void **out,
	     size_t *outlen)
{
	struct layout l = { 0 };
	struct bld_node **queue;
	uint64_t qhead = 0, qtail = 0, blk, ext_blk, total_blocks, ext_size;
	struct erofs_super_block sb = { 0 };
	struct skiff_bs_header h = { 0 };
	uint8_t *buf;
	int ret;

	for (struct bld_node *n = t->head; n; n = n->next) {
		if (S_ISDIR(n->mode)) {
			ret = pack_dir(n);
			if (ret)
				return ret;
		} else if (S_ISLNK(n->mode)) {
			n->data_size = n->size;
		}
	}

	if (nblobs > UINT16_MAX) {
		sk_err_set(t->err, "more than 65535 blobs");
		return -E2BIG;
	}
	l.nblobs = nblobs;
	l.devt_off = EROFS_SUPER_OFFSET + sizeof(sb);
	if (l.devt_off + l.nblobs * sizeof(struct erofs_deviceslot) > EROFS_BLKSIZ)
		l.devt_off = EROFS_BLKSIZ;
	l.pos = l.devt_off + l.nblobs * sizeof(struct erofs_deviceslot);

	queue = malloc(t->nnodes * sizeof(*queue));
	if (!queue)
		return -ENOMEM;
	place(&l, t->root, o->chunk_bits);
	queue[qtail++] = t->root;
	while (qhead < qtail) {
		struct bld_node *d = queue[qhead++];

		for (uint32_t i = 0; i < d->nents; i++) {
			struct bld_node *n = d->ents[i].node;

			if (n->placed)
				continue;
			place(&l, n, o->chunk_bits);
			if (S_ISDIR(n->mode))
				queue[qtail++] = n;
		}
	}
	if (t->root->nid > UINT16_MAX) {
		free(queue);
		sk_err_set(t->err, "root inode placed beyond nid 65535");
		return -EFBIG;
	}

	blk = SK_DIV_ROUND_UP(l.pos, EROFS_BLKSIZ);
	for (uint64_t i = 0; i < qtail; i++) {
		/* directories first: they are all in the queue */
	}
	for (struct bld_node *n = t->head; n; n = n->next) {
		if (!n->full_blocks)
			continue;
		n->raw_blkaddr = (uint32_t)blk;
		blk += n->full_blocks;
	}
	free(queue);
	ext_blk = blk;
	/* the extension: the blob table, then the prefetch list (NIDs) */
	ext_size = l.nblobs * sizeof(struct skiff_blob_rec) +
		   t->nprefetch * sizeof(uint64_t);
	total_blocks = ext_blk + SK_MAX((uint64_t)1,
					SK_DIV_ROUND_UP(ext_size, EROFS_BLKSIZ));
	if (total_blocks >= UINT32_MAX) {
		sk_err_set(t->err, "bootstrap larger than 16 TiB");
		return -EFBIG;
	}

	buf = calloc(total_blocks, EROFS_BLKSIZ);
	if (!buf)
		return -ENOMEM;
	for (struct bld_node *n = t->head; n; n = n->next) {
		put_inode(buf, n, o->chunk_bits);
		if (S_ISDIR(n->mode)) {
			put_dir(buf, n);
		} else if (S_ISLNK(n->mode)) {
			for (uint64_t b = 0; b * EROFS_BLKSIZ < n->size; b++)
				put_flat_block(buf, n, b,
					(const uint8_t *)n->link + b * EROFS_BLKSIZ,
					SK_MIN((uint64_t)EROFS_BLKSIZ,
					       n->size - b * EROFS_BLKSIZ));
		}
	}

	for (unsigned int i = 0; i < nblobs; i++) {
		const struct bld_blob *blob = &blobs[i];
		struct erofs_deviceslot ds = { 0 };
		struct skiff_blob_rec r = { 0 };
		char hex[SK_HEX_LEN + 1];

		sk_hex(blob->id, SK_SHA256_LEN, hex);
		memcpy(ds.tag, hex, SK_HEX_LEN);
		ds.blocks = htole32((uint32_t)(blob->usize / EROFS_BLKSIZ));
		memcpy(buf + l.devt_off + i * sizeof(ds), &ds, sizeof(ds));

		memcpy(r.blob_id, blob->id, SK_SHA256_LEN);
		r.stored_size = htole64(blob->stored_size);
		r.usize = htole64(blob->usize);
		r.table_off = htole64(blob->table_off);
		r.table_size = htole64(blob->table_size);
		r.chunk_count = htole64(blob->count);
		memcpy(r.table_digest, blob->table_digest, SK_SHA256_LEN);
		memcpy(buf + ext_blk * EROFS_BLKSIZ + i * sizeof(r), &r, sizeof(r));
	}

	for (size_t i = 0; i < t->nprefetch; i++) {
		uint64_t nid = htole64(t->prefetch[i]->nid);

		memcpy(buf + ext_blk * EROFS_BLKSIZ + l.nblobs * sizeof(struct skiff_blob_rec) +
		       i * sizeof(nid), &nid, sizeof(nid));
	}
	if (t->nprefetch) {
		h.prefetch_off = htole64(l.nblobs * sizeof(struct skiff_blob_rec));
		h.prefetch_size = htole64(t->nprefetch * sizeof(uint64_t));
	}
	memcpy(h.magic, SKIFF_BS_MAGIC, 8);
	h.version = htole32(SKIFF_BS_VERSION);
	h.ext_off = htole64(ext_blk * EROFS_BLKSIZ);
	h.ext_size = htole64(ext_size);
	sk_sha256(buf + ext_blk * EROFS_BLKSIZ, ext_size, h.ext_digest);
	h.blob_count = htole32(l.nblobs);
	h.chunk_bits = htole32(o->chunk_bits);
	memcpy(buf, &h, sizeof(h));

	sb.magic = htole32(EROFS_MAGIC);
	sb.blkszbits = EROFS_BLKBITS;
	sb.root_nid = htole16((uint16_t)t->root->nid);
	sb.inos = htole64(l.next_ino);
	sb.blocks = htole32((uint32_t)total_blocks);
	sb.meta_blkaddr = 0;
	if (o->uuid)
		memcpy(sb.uuid, o->uuid, sizeof(sb.uuid));
	sb.feature_incompat = htole32(EROFS_FEATURE_INCOMPAT_CHUNKED_FILE |
				      (l.nblobs ? EROFS_FEATURE_INCOMPAT_DEVICE_TABLE : 0));
	sb.extra_devices = htole16((uint16_t)l.nblobs);
	sb.devt_slotoff = htole16((uint16_t)(l.devt_off /
					     sizeof(struct erofs_deviceslot)));
	memcpy(buf + EROFS_SUPER_OFFSET, &sb, sizeof(sb));

	*out = buf;
	*outlen = total_blocks * EROFS_BLKSIZ;
	return 0;
}
