/* SPDX-License-Identifier: Apache-2.0 */
#include "bootstrap.h"

#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CORRUPT(bs, ...) (sk_err_set(&(bs)->err, __VA_ARGS__), -EFSCORRUPTED)

/* True when [off, off+len) lies inside the bootstrap buffer. */
static int in_buf(const struct fmt_bs *bs, uint64_t off, uint64_t len)
{
	return off <= bs->size && len <= bs->size - off;
}

static int parse_blob_table(struct fmt_bs *bs, const struct erofs_super_block *sb)
{
	struct skiff_bs_header h;
	uint8_t digest[SK_SHA256_LEN];
	uint64_t devt_off = (uint64_t)le16toh(sb->devt_slotoff) *
			    sizeof(struct erofs_deviceslot);
	unsigned int ndev = le16toh(sb->extra_devices);

	memcpy(&h, bs->buf, sizeof(h));
	if (memcmp(h.magic, SKIFF_BS_MAGIC, 8))
		return CORRUPT(bs, "not a skiff bootstrap (no skiff header)");
	if (le32toh(h.version) != SKIFF_BS_VERSION)
		return CORRUPT(bs, "unsupported bootstrap version %u",
			       le32toh(h.version));
	bs->chunk_bits = le32toh(h.chunk_bits);
	if (bs->chunk_bits < 12 || bs->chunk_bits > 26)
		return CORRUPT(bs, "bad chunk size 2^%u", bs->chunk_bits);
	bs->nblobs = le32toh(h.blob_count);
	if (bs->nblobs != ndev)
		return CORRUPT(bs, "blob table has %u blobs, device table %u",
			       bs->nblobs, ndev);
	if (ndev && (devt_off < EROFS_SUPER_OFFSET + sizeof(*sb) ||
		     !in_buf(bs, devt_off,
			     (uint64_t)ndev * sizeof(struct erofs_deviceslot))))
		return CORRUPT(bs, "device table outside the bootstrap");

	uint64_t ext_off = le64toh(h.ext_off), ext_size = le64toh(h.ext_size);

	if (!in_buf(bs, ext_off, ext_size) || ext_off < EROFS_BLKSIZ ||
	    ext_size < (uint64_t)bs->nblobs * sizeof(struct skiff_blob_rec))
		return CORRUPT(bs, "skiff extension outside the bootstrap");
	sk_sha256(bs->buf + ext_off, ext_size, digest);
	if (memcmp(digest, h.ext_digest, SK_SHA256_LEN))
		return CORRUPT(bs, "skiff extension digest mismatch");
	bs->prefetch_off = le64toh(h.prefetch_off);
	bs->prefetch_size = le64toh(h.prefetch_size);
	if (bs->prefetch_size) {
		if (bs->prefetch_off > ext_size ||
		    bs->prefetch_size > ext_size - bs->prefetch_off)
			return CORRUPT(bs, "prefetch list outside the extension");
		if (bs->prefetch_size % sizeof(uint64_t))
			return CORRUPT(bs, "prefetch list of %llu bytes is not whole entries",
				       (unsigned long long)bs->prefetch_size);
		bs->prefetch_off += ext_off;
	}

	bs->blobs = calloc(bs->nblobs ? bs->nblobs : 1, sizeof(*bs->blobs));
	if (!bs->blobs)
		return -ENOMEM;
	for (unsigned int i = 0; i < bs->nblobs; i++) {
		struct fmt_blob_ref *b = &bs->blobs[i];
		struct skiff_blob_rec r;
		struct erofs_deviceslot ds;

		memcpy(&r, bs->buf + ext_off + i * sizeof(r), sizeof(r));
		memcpy(&ds, bs->buf + devt_off + i * sizeof(ds), sizeof(ds));
		memcpy(b->id, r.blob_id, SK_SHA256_LEN);
		sk_hex(b->id, SK_SHA256_LEN, b->hex);
		b->stored_size = le64toh(r.stored_size);
		b->usize = le64toh(r.usize);
		b->table_off = le64toh(r.table_off);
		b->table_size = le64toh(r.table_size);
		b->chunk_count = le64toh(r.chunk_count);
		memcpy(b->table_digest, r.table_digest, SK_SHA256_LEN);
		if (memcmp(ds.tag, b->hex, SK_HEX_LEN))
			return CORRUPT(bs, "device slot %u tag is not blob %s",
				       i, b->hex);
		if (b->usize % EROFS_BLKSIZ ||
		    b->usize / EROFS_BLKSIZ != le32toh(ds.blocks) ||
		    le32toh(ds.mapped_blkaddr))
			return CORRUPT(bs, "device slot %u size mismatch", i);
		/* the table ends where the footer starts: an offset inside
		 * the footer would make the size below wrap around */
		if (b->stored_size < sizeof(struct skiff_blob_footer) ||
		    b->table_off > b->stored_size -
				   sizeof(struct skiff_blob_footer) ||
		    b->table_size != b->stored_size - b->table_off -
					     sizeof(struct skiff_blob_footer) ||
		    b->table_size / sizeof(struct skiff_chunk_rec) !=
			    b->chunk_count ||
		    b->table_size % sizeof(struct skiff_chunk_rec))
			return CORRUPT(bs, "blob %u geometry is inconsistent", i);
	}
	return 0;
}

int fmt_bs_open(struct fmt_bs *bs, const void *buf, size_t size)
{
	struct erofs_super_block sb;
	struct fmt_inode root;
	int ret;

	memset(bs, 0, sizeof(*bs));
	bs->buf = buf;
	bs->size = size;
	if (size < EROFS_BLKSIZ)
		return CORRUPT(bs, "bootstrap too short (%zu bytes)", size);
	memcpy(&sb, bs->buf + EROFS_SUPER_OFFSET, sizeof(sb));
	if (le32toh(sb.magic) != EROFS_MAGIC)
		return CORRUPT(bs, "bad EROFS magic");
	if (sb.blkszbits != EROFS_BLKBITS)
		return CORRUPT(bs, "block size 2^%u is not 4096", sb.blkszbits);
	if (le32toh(sb.feature_incompat) &
	    ~(EROFS_FEATURE_INCOMPAT_CHUNKED_FILE |
	      EROFS_FEATURE_INCOMPAT_DEVICE_TABLE))
		return CORRUPT(bs, "unsupported EROFS features 0x%x",
			       le32toh(sb.feature_incompat));
	if (sb.dirblkbits || sb.sb_extslots)
		return CORRUPT(bs, "unsupported superblock extensions");
	bs->blocks = le32toh(sb.blocks);
	if ((uint64_t)bs->blocks * EROFS_BLKSIZ > size)
		return CORRUPT(bs, "bootstrap truncated: %u blocks, %zu bytes",
			       bs->blocks, size);
	if (le32toh(sb.meta_blkaddr) >= bs->blocks)
		return CORRUPT(bs, "metadata area outside the image");
	bs->meta_off = (uint64_t)le32toh(sb.meta_blkaddr) * EROFS_BLKSIZ;
	bs->root_nid = le16toh(sb.root_nid);
	bs->inos = le64toh(sb.inos);
	ret = parse_blob_table(bs, &sb);
	if (ret)
		goto fail;
	ret = fmt_bs_inode(bs, bs->root_nid, &root);
	if (ret)
		goto fail;
	if (!S_ISDIR(root.mode)) {
		ret = CORRUPT(bs, "root inode is not a directory");
		goto fail;
	}
	return 0;
fail:
	free(bs->blobs);
	bs->blobs = NULL;
	return ret;
}

void fmt_bs_close(struct fmt_bs *bs)
{
	free(bs->blobs);
	bs->blobs = NULL;
}

static int check_flat(struct fmt_bs *bs, struct fmt_inode *ino)
{
	uint64_t nblocks = SK_DIV_ROUND_UP(ino->size, EROFS_BLKSIZ);
	uint64_t full = ino->layout == EROFS_INODE_FLAT_INLINE && nblocks ?
				nblocks - 1 : nblocks;

	if (ino->size > bs->size)
		return CORRUPT(bs, "inode %llu: size %llu beyond the image",
			       (unsigned long long)ino->nid,
			       (unsigned long long)ino->size);
	if (full && !in_buf(bs, (uint64_t)ino->raw_blkaddr * EROFS_BLKSIZ,
			    full * EROFS_BLKSIZ))
		return CORRUPT(bs, "inode %llu: data blocks outside the image",
			       (unsigned long long)ino->nid);
	if (ino->layout == EROFS_INODE_FLAT_INLINE && ino->size) {
		uint64_t tail = ino->size - full * EROFS_BLKSIZ;
		uint64_t tpos = ino->pos + ino->isize + ino->xattr_isize;

		if (!in_buf(bs, tpos, tail) ||
		    tpos % EROFS_BLKSIZ + tail > EROFS_BLKSIZ)
			return CORRUPT(bs, "inode %llu: inline data crosses a block",
				       (unsigned long long)ino->nid);
	}
	return 0;
}

int fmt_bs_inode(struct fmt_bs *bs, uint64_t nid, struct fmt_inode *ino)
{
	uint16_t ifmt, icount;
	uint32_t iu;

	memset(ino, 0, sizeof(*ino));
	ino->nid = nid;
	if (nid > (bs->size - bs->meta_off) >> EROFS_ISLOTBITS)
		return CORRUPT(bs, "nid %llu outside the image",
			       (unsigned long long)nid);
	ino->pos = bs->meta_off + (nid << EROFS_ISLOTBITS);
	if (!in_buf(bs, ino->pos, sizeof(struct erofs_inode_compact)))
		return CORRUPT(bs, "nid %llu outside the image",
			       (unsigned long long)nid);
	memcpy(&ifmt, bs->buf + ino->pos, 2);
	ifmt = le16toh(ifmt);
	if (ifmt & ~EROFS_I_ALL)
		return CORRUPT(bs, "inode %llu: bad format 0x%x",
			       (unsigned long long)nid, ifmt);
	ino->layout = (ifmt >> EROFS_I_DATALAYOUT_BIT) & EROFS_I_DATALAYOUT_MASK;
	if (ifmt & EROFS_I_VERSION_EXTENDED) {
		struct erofs_inode_extended d;

		if (!in_buf(bs, ino->pos, sizeof(d)))
			return CORRUPT(bs, "inode %llu truncated",
				       (unsigned long long)nid);
		memcpy(&d, bs->buf + ino->pos, sizeof(d));
		ino->isize = sizeof(d);
		icount = le16toh(d.i_xattr_icount);
		ino->mode = le16toh(d.i_mode);
		ino->size = le64toh(d.i_size);
		iu = le32toh(d.i_u);
		ino->uid = le32toh(d.i_uid);
		ino->gid = le32toh(d.i_gid);
		ino->mtime = le64toh(d.i_mtime);
		ino->mtime_nsec = le32toh(d.i_mtime_nsec);
		ino->nlink = le32toh(d.i_nlink);
	} else {
		struct erofs_inode_compact d;

		memcpy(&d, bs->buf + ino->pos, sizeof(d));
		ino->isize = sizeof(d);
		icount = le16toh(d.i_xattr_icount);
		ino->mode = le16toh(d.i_mode);
		ino->size = le32toh(d.i_size);
		iu = le32toh(d.i_u);
		ino->uid = le16toh(d.i_uid);
		ino->gid = le16toh(d.i_gid);
		ino->nlink = le16toh(d.i_nlink);
	}
	ino->xattr_isize = icount ? sizeof(struct erofs_xattr_ibody_header) +
					    4u * (icount - 1u) : 0;
	if (ino->mtime_nsec >= 1000000000u)
		return CORRUPT(bs, "inode %llu: bad mtime nanoseconds",
			       (unsigned long long)nid);
	if (!in_buf(bs, ino->pos, (uint64_t)ino->isize + ino->xattr_isize))
		return CORRUPT(bs, "inode %llu: xattrs outside the image",
			       (unsigned long long)nid);

	switch (ino->mode & S_IFMT) {
	case S_IFREG:
		if (ino->layout == EROFS_INODE_FLAT_PLAIN && ino->size == 0)
			return 0;
		if (ino->layout != EROFS_INODE_CHUNK_BASED)
			return CORRUPT(bs, "inode %llu: regular file layout %u is not chunk-based",
				       (unsigned long long)nid, ino->layout);
		if ((iu & 0xffff) & ~(EROFS_CHUNK_FORMAT_BLKBITS_MASK |
				      EROFS_CHUNK_FORMAT_INDEXES) ||
		    !(iu & EROFS_CHUNK_FORMAT_INDEXES))
			return CORRUPT(bs, "inode %llu: bad chunk format 0x%x",
				       (unsigned long long)nid, iu);
		ino->chunk_bits = EROFS_BLKBITS +
				  (iu & EROFS_CHUNK_FORMAT_BLKBITS_MASK);
		if (ino->chunk_bits > 26)
			return CORRUPT(bs, "inode %llu: chunk size 2^%u too large",
				       (unsigned long long)nid, ino->chunk_bits);
		ino->chunk_count = (ino->size >> ino->chunk_bits) +
				   !!(ino->size & ((1ull << ino->chunk_bits) - 1));
		ino->chunk_pos = SK_ALIGN_UP(ino->pos + ino->isize +
						     ino->xattr_isize,
					     (uint64_t)8);
		if (ino->chunk_count > bs->size / 8 ||
		    !in_buf(bs, ino->chunk_pos, ino->chunk_count * 8))
			return CORRUPT(bs, "inode %llu: chunk indexes outside the image",
				       (unsigned long long)nid);
		return 0;
	case S_IFDIR:
	case S_IFLNK:
		if (ino->layout != EROFS_INODE_FLAT_PLAIN &&
		    ino->layout != EROFS_INODE_FLAT_INLINE)
			return CORRUPT(bs, "inode %llu: unsupported layout %u",
				       (unsigned long long)nid, ino->layout);
		if (S_ISLNK(ino->mode) && (ino->size == 0 || ino->size >= 4096))
			return CORRUPT(bs, "inode %llu: bad symlink length %llu",
				       (unsigned long long)nid,
				       (unsigned long long)ino->size);
		ino->raw_blkaddr = iu;
		return check_flat(bs, ino);
	case S_IFCHR:
	case S_IFBLK:
		ino->rdev = iu;
		/* fall through */
	case S_IFIFO:
	case S_IFSOCK:
		if (ino->size)
			return CORRUPT(bs, "inode %llu: special file with size",
				       (unsigned long long)nid);
		return 0;
	default:
		return CORRUPT(bs, "inode %llu: bad mode 0%o",
			       (unsigned long long)nid, ino->mode);
	}
}

/*
 * Maps byte off of a flat inode to a pointer and the number of bytes
 * contiguous from there (up to the end of that block or the inode).
 */
static int flat_map(struct fmt_bs *bs, const struct fmt_inode *ino,
		    uint64_t off, const uint8_t **p, size_t *avail)
{
	uint64_t nblocks = SK_DIV_ROUND_UP(ino->size, EROFS_BLKSIZ);
	uint64_t blk = off / EROFS_BLKSIZ, in = off % EROFS_BLKSIZ, pos;
	uint64_t left = ino->size - off;

	if (off >= ino->size)
		return -EINVAL;
	if (ino->layout == EROFS_INODE_FLAT_INLINE && blk == nblocks - 1)
		pos = ino->pos + ino->isize + ino->xattr_isize + in;
	else
		pos = ((uint64_t)ino->raw_blkaddr + blk) * EROFS_BLKSIZ + in;
	*avail = (size_t)SK_MIN(left, (uint64_t)(EROFS_BLKSIZ - in));
	if (!in_buf(bs, pos, *avail))	/* checked by fmt_bs_inode too */
		return CORRUPT(bs, "inode %llu: data outside the image",
			       (unsigned long long)ino->nid);
	*p = bs->buf + pos;
	return 0;
}

int fmt_bs_read_flat(struct fmt_bs *bs, const struct fmt_inode *ino,
		     uint64_t off, void *out, size_t len)
{
	uint8_t *o = out;

	if (off > ino->size || len > ino->size - off)
		return -EINVAL;
	while (len) {
		const uint8_t *p;
		size_t avail;
		int ret = flat_map(bs, ino, off, &p, &avail);

		if (ret)
			return ret;
		avail = SK_MIN(avail, len);
		memcpy(o, p, avail);
		o += avail;
		off += avail;
		len -= avail;
	}
	return 0;
}

int fmt_bs_readdir(struct fmt_bs *bs, const struct fmt_inode *dir,
		   int (*cb)(void *ctx, const struct fmt_dirent *de), void *ctx)
{
	if (!S_ISDIR(dir->mode))
		return -ENOTDIR;
	for (uint64_t off = 0; off < dir->size; off += EROFS_BLKSIZ) {
		const uint8_t *blk;
		size_t blen;
		struct erofs_dirent d0;
		unsigned int count;
		int ret = flat_map(bs, dir, off, &blk, &blen);

		if (ret)
			return ret;
		if (blen < sizeof(d0))
			return CORRUPT(bs, "dir %llu: block too short",
				       (unsigned long long)dir->nid);
		memcpy(&d0, blk, sizeof(d0));
		count = le16toh(d0.nameoff) / sizeof(d0);
		if (le16toh(d0.nameoff) % sizeof(d0) || count == 0 ||
		    le16toh(d0.nameoff) >= blen)
			return CORRUPT(bs, "dir %llu: bad first name offset",
				       (unsigned long long)dir->nid);
		for (unsigned int i = 0; i < count; i++) {
			struct erofs_dirent d, dn;
			struct fmt_dirent de;
			unsigned int noff, end;

			memcpy(&d, blk + i * sizeof(d), sizeof(d));
			noff = le16toh(d.nameoff);
			if (i + 1 < count) {
				memcpy(&dn, blk + (i + 1) * sizeof(dn), sizeof(dn));
				end = le16toh(dn.nameoff);
			} else {
				end = noff < blen ? noff + (unsigned int)strnlen(
					(const char *)blk + noff, blen - noff) : noff;
			}
			if (noff < count * sizeof(d) || noff >= blen ||
			    end > blen || end <= noff ||
			    end - noff > EROFS_NAME_LEN)
				return CORRUPT(bs, "dir %llu: bad name at entry %u",
					       (unsigned long long)dir->nid, i);
			de.name = (const char *)blk + noff;
			de.namelen = end - noff;
			de.nid = le64toh(d.nid);
			de.type = d.file_type;
			if (de.type >= EROFS_FT_MAX)
				return CORRUPT(bs, "dir %llu: bad file type %u",
					       (unsigned long long)dir->nid, de.type);
			ret = cb(ctx, &de);
			if (ret)
				return ret;
		}
	}
	return 0;
}

struct lookup_ctx {
	const char *name;
	size_t len;
	uint64_t nid;
};

static int lookup_cb(void *ctx, const struct fmt_dirent *de)
{
	struct lookup_ctx *l = ctx;

	if (de->namelen == l->len && !memcmp(de->name, l->name, l->len)) {
		l->nid = de->nid;
		return 1;
	}
	return 0;
}

int fmt_bs_lookup(struct fmt_bs *bs, const struct fmt_inode *dir,
		  const char *name, size_t namelen, uint64_t *nid)
{
	struct lookup_ctx l = { .name = name, .len = namelen };
	int ret = fmt_bs_readdir(bs, dir, lookup_cb, &l);

	if (ret < 0)
		return ret;
	if (ret == 0)
		return -ENOENT;
	*nid = l.nid;
	return 0;
}

int fmt_bs_resolve(struct fmt_bs *bs, const char *path, struct fmt_inode *out)
{
	struct fmt_inode cur;
	int ret = fmt_bs_inode(bs, bs->root_nid, &cur);

	while (!ret && *path) {
		const char *end;
		size_t len;
		uint64_t nid;

		while (*path == '/')
			path++;
		if (!*path)
			break;
		end = strchr(path, '/');
		len = end ? (size_t)(end - path) : strlen(path);
		if (!(len == 1 && path[0] == '.')) {
			if (!S_ISDIR(cur.mode))
				return -ENOTDIR;
			ret = fmt_bs_lookup(bs, &cur, path, len, &nid);
			if (!ret)
				ret = fmt_bs_inode(bs, nid, &cur);
		}
		path += len;
	}
	if (!ret)
		*out = cur;
	return ret;
}

static const char *xattr_prefix(unsigned int index)
{
	switch (index) {
	case EROFS_XATTR_INDEX_USER: return "user.";
	case EROFS_XATTR_INDEX_POSIX_ACL_ACCESS: return "system.posix_acl_access";
	case EROFS_XATTR_INDEX_POSIX_ACL_DEFAULT: return "system.posix_acl_default";
	case EROFS_XATTR_INDEX_TRUSTED: return "trusted.";
	case EROFS_XATTR_INDEX_SECURITY: return "security.";
	default: return NULL;
	}
}

int fmt_xattr_fullname(const struct fmt_xattr *x, char *out, size_t outlen)
{
	const char *pfx = xattr_prefix(x->index);
	size_t plen;

	if (!pfx)
		return -EINVAL;
	plen = strlen(pfx);
	if (plen + x->namelen + 1 > outlen)
		return -ENAMETOOLONG;
	memcpy(out, pfx, plen);
	memcpy(out + plen, x->name, x->namelen);
	out[plen + x->namelen] = '\0';
	return (int)(plen + x->namelen);
}

int fmt_bs_xattrs(struct fmt_bs *bs, const struct fmt_inode *ino,
		  int (*cb)(void *ctx, const struct fmt_xattr *x), void *ctx)
{
	struct erofs_xattr_ibody_header h;
	uint64_t pos, end;

	if (!ino->xattr_isize)
		return 0;
	pos = ino->pos + ino->isize;
	end = pos + ino->xattr_isize;	/* in_buf checked by fmt_bs_inode */
	memcpy(&h, bs->buf + pos, sizeof(h));
	if (h.h_shared_count)
		return CORRUPT(bs, "inode %llu: shared xattrs are not supported",
			       (unsigned long long)ino->nid);
	pos += sizeof(h);
	while (pos < end) {
		struct erofs_xattr_entry e;
		struct fmt_xattr x;
		uint64_t esz;
		int ret;

		if (end - pos < sizeof(e))
			return CORRUPT(bs, "inode %llu: truncated xattr",
				       (unsigned long long)ino->nid);
		memcpy(&e, bs->buf + pos, sizeof(e));
		esz = SK_ALIGN_UP(sizeof(e) + e.e_name_len +
					  (uint64_t)le16toh(e.e_value_size),
				  (uint64_t)4);
		if (esz > end - pos || !xattr_prefix(e.e_name_index))
			return CORRUPT(bs, "inode %llu: bad xattr entry",
				       (unsigned long long)ino->nid);
		x.index = e.e_name_index;
		x.name = (const char *)bs->buf + pos + sizeof(e);
		x.namelen = e.e_name_len;
		x.value = bs->buf + pos + sizeof(e) + e.e_name_len;
		x.value_len = le16toh(e.e_value_size);
		ret = cb(ctx, &x);
		if (ret)
			return ret;
		pos += esz;
	}
	return 0;
}

uint32_t fmt_bs_prefetch_count(const struct fmt_bs *bs)
{
	uint64_t n = bs->prefetch_size / sizeof(uint64_t);

	return n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
}

int fmt_bs_prefetch_nid(struct fmt_bs *bs, uint32_t i, uint64_t *nid)
{
	uint64_t v;

	if (i >= fmt_bs_prefetch_count(bs))
		return -EINVAL;
	memcpy(&v, bs->buf + bs->prefetch_off + (uint64_t)i * sizeof(v), sizeof(v));
	*nid = le64toh(v);
	return 0;
}

int fmt_bs_chunk(struct fmt_bs *bs, const struct fmt_inode *ino, uint64_t i,
		 unsigned int *device, uint32_t *blkaddr)
{
	struct erofs_inode_chunk_index ci;

	if (i >= ino->chunk_count)
		return -EINVAL;
	memcpy(&ci, bs->buf + ino->chunk_pos + i * sizeof(ci), sizeof(ci));
	*blkaddr = le32toh(ci.blkaddr);
	*device = le16toh(ci.device_id);
	if (*blkaddr == EROFS_NULL_ADDR) {
		*device = 0;
		return 0;
	}
	if (*device == 0 || *device > bs->nblobs)
		return CORRUPT(bs, "inode %llu: chunk %llu names device %u",
			       (unsigned long long)ino->nid,
			       (unsigned long long)i, *device);
	return 0;
}

int fmt_bs_chunks(struct fmt_bs *bs, const struct fmt_inode *ino,
		  int (*cb)(void *ctx, const struct fmt_chunk_range *r),
		  void *ctx)
{
	uint64_t csize;

	if (!S_ISREG(ino->mode))
		return -EINVAL;
	if (!ino->chunk_count)
		return 0;	/* empty: no chunk indexes */
	/* fmt_bs_inode derives chunk_count from the size, so no chunk
	 * starts past the end (the length below cannot wrap); an inode
	 * made any other way is held to the same */
	if (ino->chunk_bits < EROFS_BLKBITS || ino->chunk_bits > 26)
		return -EINVAL;
	csize = 1ull << ino->chunk_bits;
	if (ino->chunk_count != (ino->size >> ino->chunk_bits) +
				!!(ino->size & (csize - 1)))
		return -EINVAL;
	for (uint64_t i = 0; i < ino->chunk_count; i++) {
		struct fmt_chunk_range r = { .index = i };
		const struct fmt_blob_ref *b;
		unsigned int dev;
		uint64_t end;
		int ret = fmt_bs_chunk(bs, ino, i, &dev, &r.blkaddr);

		if (ret)
			return ret;
		if (dev == 0)
			continue;	/* a hole: reads as zeros, nothing to fetch */
		r.blob = dev - 1;	/* fmt_bs_chunk checked dev <= nblobs */
		r.len = SK_MIN(csize, ino->size - (i << ino->chunk_bits));
		b = &bs->blobs[r.blob];
		end = (uint64_t)r.blkaddr * EROFS_BLKSIZ +
		      SK_ALIGN_UP(r.len, (uint64_t)EROFS_BLKSIZ);
		if (end > b->usize)
			return CORRUPT(bs, "inode %llu: chunk %llu at block %u ends past blob %u (%llu bytes)",
				       (unsigned long long)ino->nid,
				       (unsigned long long)i, r.blkaddr, r.blob,
				       (unsigned long long)b->usize);
		ret = cb(ctx, &r);
		if (ret)
			return ret;
	}
	return 0;
}
