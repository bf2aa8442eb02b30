/* SPDX-License-Identifier: Apache-2.0 */
/*
 * On-disk structures: the EROFS subset skiff writes (as Linux 6.1 reads
 * it, fs/erofs/erofs_fs.h) and skiff's own additions (blob chunk table
 * and footer, bootstrap header and blob table). All multi-byte fields
 * are little-endian; always go through the fmt_le* helpers, never cast a
 * buffer to these structs on a big-endian host.
 *
 * The byte layout is documented in format/README.md; the static asserts
 * below pin every size so a stray field breaks the build, not images.
 */
#ifndef SKIFF_FORMAT_ONDISK_H
#define SKIFF_FORMAT_ONDISK_H

#include <stddef.h>
#include <stdint.h>

/* ---------------- EROFS ---------------- */

#define EROFS_MAGIC		0xE0F5E1E2u
#define EROFS_SUPER_OFFSET	1024
#define EROFS_BLKBITS		12
#define EROFS_BLKSIZ		(1u << EROFS_BLKBITS)
#define EROFS_ISLOTBITS		5	/* nid = meta offset / 32 */
#define EROFS_NAME_LEN		255
#define EROFS_NULL_ADDR		0xffffffffu

#define EROFS_FEATURE_INCOMPAT_CHUNKED_FILE	0x00000004u
#define EROFS_FEATURE_INCOMPAT_DEVICE_TABLE	0x00000008u

enum {
	EROFS_INODE_FLAT_PLAIN = 0,
	EROFS_INODE_FLAT_INLINE = 2,
	EROFS_INODE_CHUNK_BASED = 4,
};

#define EROFS_I_VERSION_EXTENDED	1
#define EROFS_I_DATALAYOUT_BIT		1
#define EROFS_I_DATALAYOUT_MASK		0x7
#define EROFS_I_ALL			0xf

#define EROFS_CHUNK_FORMAT_BLKBITS_MASK	0x001f
#define EROFS_CHUNK_FORMAT_INDEXES	0x0020

enum {
	EROFS_FT_UNKNOWN, EROFS_FT_REG_FILE, EROFS_FT_DIR, EROFS_FT_CHRDEV,
	EROFS_FT_BLKDEV, EROFS_FT_FIFO, EROFS_FT_SOCK, EROFS_FT_SYMLINK,
	EROFS_FT_MAX
};

enum {
	EROFS_XATTR_INDEX_USER = 1,
	EROFS_XATTR_INDEX_POSIX_ACL_ACCESS = 2,
	EROFS_XATTR_INDEX_POSIX_ACL_DEFAULT = 3,
	EROFS_XATTR_INDEX_TRUSTED = 4,
	EROFS_XATTR_INDEX_SECURITY = 6,
};

struct erofs_super_block {
	uint32_t magic;
	uint32_t checksum;
	uint32_t feature_compat;
	uint8_t blkszbits;
	uint8_t sb_extslots;
	uint16_t root_nid;
	uint64_t inos;
	uint64_t build_time;
	uint32_t build_time_nsec;
	uint32_t blocks;
	uint32_t meta_blkaddr;
	uint32_t xattr_blkaddr;
	uint8_t uuid[16];
	uint8_t volume_name[16];
	uint32_t feature_incompat;
	uint16_t u1;
	uint16_t extra_devices;
	uint16_t devt_slotoff;
	uint8_t dirblkbits;
	uint8_t reserved[5];
	uint64_t packed_nid;
	uint8_t reserved2[24];
} __attribute__((packed));

struct erofs_deviceslot {
	uint8_t tag[64];
	uint32_t blocks;
	uint32_t mapped_blkaddr;
	uint8_t reserved[56];
} __attribute__((packed));

struct erofs_inode_extended {
	uint16_t i_format;
	uint16_t i_xattr_icount;
	uint16_t i_mode;
	uint16_t i_reserved;
	uint64_t i_size;
	uint32_t i_u;		/* raw_blkaddr, rdev or chunk format */
	uint32_t i_ino;
	uint32_t i_uid;
	uint32_t i_gid;
	uint64_t i_mtime;
	uint32_t i_mtime_nsec;
	uint32_t i_nlink;
	uint8_t i_reserved2[16];
} __attribute__((packed));

/* The 32-byte compact inode; skiff never writes it but must read it. */
struct erofs_inode_compact {
	uint16_t i_format;
	uint16_t i_xattr_icount;
	uint16_t i_mode;
	uint16_t i_nlink;
	uint32_t i_size;
	uint32_t i_reserved;
	uint32_t i_u;
	uint32_t i_ino;
	uint16_t i_uid;
	uint16_t i_gid;
	uint32_t i_reserved2;
} __attribute__((packed));

struct erofs_xattr_ibody_header {
	uint32_t h_reserved;
	uint8_t h_shared_count;
	uint8_t h_reserved2[7];
} __attribute__((packed));

struct erofs_xattr_entry {
	uint8_t e_name_len;
	uint8_t e_name_index;
	uint16_t e_value_size;
} __attribute__((packed));

struct erofs_inode_chunk_index {
	uint16_t advise;
	uint16_t device_id;
	uint32_t blkaddr;
} __attribute__((packed));

struct erofs_dirent {
	uint64_t nid;
	uint16_t nameoff;
	uint8_t file_type;
	uint8_t reserved;
} __attribute__((packed));

_Static_assert(sizeof(struct erofs_super_block) == 128, "erofs sb");
_Static_assert(sizeof(struct erofs_deviceslot) == 128, "erofs devslot");
_Static_assert(sizeof(struct erofs_inode_extended) == 64, "erofs inode");
_Static_assert(sizeof(struct erofs_inode_compact) == 32, "erofs cinode");
_Static_assert(sizeof(struct erofs_xattr_ibody_header) == 12, "xattr hdr");
_Static_assert(sizeof(struct erofs_xattr_entry) == 4, "xattr entry");
_Static_assert(sizeof(struct erofs_inode_chunk_index) == 8, "chunk idx");
_Static_assert(sizeof(struct erofs_dirent) == 12, "dirent");

/* ---------------- skiff additions ---------------- */

/*
 * Stored blob: chunks, then the chunk table (fmt_chunk_rec[count]), then
 * the 128-byte footer at the very end. Digest = SHA-256.
 */
#define SKIFF_BLOB_MAGIC	"SKIFFBLB"
#define SKIFF_BLOB_VERSION	1
#define SKIFF_DIGEST_LEN	32

enum {
	SKIFF_COMP_NONE = 0,
	SKIFF_COMP_ZSTD = 1,
};

struct skiff_chunk_rec {
	uint64_t uoff;		/* offset in the cache file, 4 KiB aligned */
	uint64_t soff;		/* offset in the stored blob */
	uint32_t usize;		/* uncompressed bytes */
	uint32_t ssize;		/* stored bytes */
	uint8_t comp;		/* SKIFF_COMP_* */
	uint8_t reserved[7];
	uint8_t digest[SKIFF_DIGEST_LEN];	/* of the uncompressed bytes */
} __attribute__((packed));

struct skiff_blob_footer {
	uint8_t magic[8];
	uint32_t version;
	uint32_t flags;
	uint64_t table_off;
	uint64_t table_size;
	uint64_t chunk_count;
	uint64_t usize;		/* cache file size, multiple of 4 KiB */
	uint8_t table_digest[SKIFF_DIGEST_LEN];
	uint8_t reserved[48];
} __attribute__((packed));

_Static_assert(sizeof(struct skiff_chunk_rec) == 64, "chunk rec");
_Static_assert(sizeof(struct skiff_blob_footer) == 128, "blob footer");

/*
 * Bootstrap header: lives in bytes [0, 128) of the bootstrap, inside the
 * 1 KiB that EROFS leaves to boot loaders and never reads. It locates the
 * skiff extension (blob table, prefetch list) stored in whole blocks
 * inside the image.
 */
#define SKIFF_BS_MAGIC		"SKIFFRFS"
#define SKIFF_BS_VERSION	1

struct skiff_bs_header {
	uint8_t magic[8];
	uint32_t version;
	uint32_t flags;
	uint64_t ext_off;	/* offset of the extension in the bootstrap */
	uint64_t ext_size;
	uint8_t ext_digest[SKIFF_DIGEST_LEN];
	uint32_t blob_count;
	uint32_t chunk_bits;	/* log2 of the build's chunk size */
	uint64_t prefetch_off;	/* relative to ext_off; 0 = none */
	uint64_t prefetch_size;
	uint8_t reserved[40];
} __attribute__((packed));

struct skiff_blob_rec {
	uint8_t blob_id[SKIFF_DIGEST_LEN];	/* SHA-256 of the stored blob */
	uint64_t stored_size;
	uint64_t usize;
	uint64_t table_off;
	uint64_t table_size;
	uint64_t chunk_count;
	uint8_t table_digest[SKIFF_DIGEST_LEN];
	uint8_t reserved[24];
} __attribute__((packed));

_Static_assert(sizeof(struct skiff_bs_header) == 128, "bs header");
_Static_assert(sizeof(struct skiff_blob_rec) == 128, "blob rec");
_Static_assert(sizeof(struct skiff_bs_header) <= EROFS_SUPER_OFFSET,
	       "header must stay out of the EROFS superblock");

#endif
