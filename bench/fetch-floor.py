#!/usr/bin/env python3
# fetch-floor.py LAYOUT BOOTSTRAP_ID RESIDENT...: the stored-byte floor of
# a workload for fetch-bench.sh. LAYOUT is an OCI layout skiff built,
# BOOTSTRAP_ID the hex digest of its bootstrap (skiff inspect --json).
# Each RESIDENT file holds lines "BYTES PATH" (fincore --bytes --raw
# --noheadings -o RES,FILE run in the workload's tree: PATH relative to
# the tree's root, bytes outside printable ASCII as \xNN): the bytes of
# each file's pages that were in the page cache after the program ran.
#
# Walks the bootstrap (format/README.md: inodes, directories, chunk
# indexes) and each blob's chunk table: a regular file's stored bytes are
# the stored sizes of the chunks its indexes name. For each RESIDENT file
# it prints one line, "touched floor files unmatched":
#   touched    the sum over files of min(resident, size): the bytes of
#              the pages the program touched (a file hard-linked under
#              several names counts once, its largest count)
#   floor      those pages at their file's compression ratio: the sum
#              over files of min(resident, size) * stored(file) / size(file),
#              taken chunk by chunk so that a chunk several files share
#              (deduplicated) counts once, at the largest share any of
#              them touched
#   files      the regular files of the image
#   unmatched  resident paths with bytes that name no regular file of
#              the image (0 when the tree is the image's)
import os
import re
import struct
import sys

NULL_ADDR = 0xFFFFFFFF
S_IFMT, S_IFDIR, S_IFREG = 0o170000, 0o040000, 0o100000
BLK = 4096


def load_layout(layout, bs_hex):
    blobs = os.path.join(layout, "blobs", "sha256")
    with open(os.path.join(blobs, bs_hex), "rb") as f:
        bs = f.read()
    if bs[0:8] != b"SKIFFRFS":
        sys.exit(f"fetch-floor: {bs_hex}: not a skiff bootstrap")
    ext_off, = struct.unpack_from("<Q", bs, 16)
    blob_count, chunk_bits = struct.unpack_from("<II", bs, 64)
    # per device slot: cache-file block -> stored size of the chunk there
    ssize = []
    for i in range(blob_count):
        rec = ext_off + 128 * i
        bid = bs[rec:rec + 32].hex()
        table_off, table_size = struct.unpack_from("<QQ", bs, rec + 48)
        m = {}
        with open(os.path.join(blobs, bid), "rb") as f:
            f.seek(table_off)
            tab = f.read(table_size)
        for k in range(0, len(tab), 64):
            uoff, _soff, _usize, ss = struct.unpack_from("<QQII", tab, k)
            m[uoff // BLK] = ss
        ssize.append(m)
    return bs, 1 << chunk_bits, ssize


def inode(bs, nid):
    pos = nid * 32
    fmt, icount, mode, _r, size, i_u = struct.unpack_from("<HHHHQI", bs, pos)
    xsize = 12 + (icount - 1) * 4 if icount else 0
    return pos, (fmt >> 1) & 7, mode, size, i_u, xsize


def dir_blocks(bs, nid):
    pos, layout, _mode, size, i_u, xsize = inode(bs, nid)
    nblk = (size + BLK - 1) // BLK
    for b in range(nblk):
        n = min(BLK, size - b * BLK)
        if layout == 2 and b == nblk - 1 and size % BLK:  # FLAT_INLINE tail
            start = pos + 64 + xsize
        else:
            start = (i_u + b) * BLK
        yield bs[start:start + n]


def entries(bs, nid):
    for blk in dir_blocks(bs, nid):
        if len(blk) < 12:
            continue
        first, = struct.unpack_from("<H", blk, 8)
        n = first // 12
        offs = [struct.unpack_from("<QH", blk, 12 * i) for i in range(n)]
        for i, (cnid, noff) in enumerate(offs):
            end = offs[i + 1][1] if i + 1 < n else len(blk)
            name = blk[noff:end]
            if i + 1 == n:
                name = name.split(b"\0", 1)[0]
            if name not in (b".", b".."):
                yield name, cnid


def files(bs, csize, ssize):
    """(path bytes, nid, size, [(slot, block, stored size)]) of every
    regular file: its mapped chunks"""
    root, = struct.unpack_from("<H", bs, 1024 + 14)
    stack = [(b"", root)]
    while stack:
        path, nid = stack.pop()
        for name, cnid in entries(bs, nid):
            pos, layout, mode, size, _i_u, xsize = inode(bs, cnid)
            p = path + b"/" + name
            if mode & S_IFMT == S_IFDIR:
                stack.append((p, cnid))
            elif mode & S_IFMT == S_IFREG:
                chunks = []
                if layout == 4 and size:  # CHUNK_BASED
                    idx = (pos + 64 + xsize + 7) & ~7
                    for i in range((size + csize - 1) // csize):
                        _adv, dev, blk = struct.unpack_from("<HHI", bs, idx + 8 * i)
                        if blk != NULL_ADDR:
                            chunks.append((dev, blk, ssize[dev - 1][blk]))
                yield p, cnid, size, chunks


def unescape(s):
    return re.sub(rb"\\x([0-9a-fA-F]{2})", lambda m: bytes([int(m.group(1), 16)]), s)


def main():
    if len(sys.argv) < 4:
        sys.exit("usage: fetch-floor.py LAYOUT BOOTSTRAP_ID RESIDENT...")
    bs, csize, ssize = load_layout(sys.argv[1], sys.argv[2])
    byname, bynid = {}, {}
    for p, nid, size, chunks in files(bs, csize, ssize):
        byname[p] = nid
        bynid[nid] = (size, chunks)
    for res_path in sys.argv[3:]:
        per_nid = {}
        unmatched = 0
        with open(res_path, "rb") as f:
            for line in f:
                line = line.rstrip(b"\n")
                if not line:
                    continue
                res, path = line.split(b" ", 1)
                res = int(res)
                path = unescape(path)
                if path.startswith(b"./"):
                    path = path[1:]
                elif not path.startswith(b"/"):
                    path = b"/" + path
                nid = byname.get(path)
                if nid is None:
                    unmatched += res > 0
                    continue
                size = bynid[nid][0]
                per_nid[nid] = max(per_nid.get(nid, 0), min(res, size))
        touched = 0
        frac = {}  # chunk -> (largest touched share of a file using it, stored size)
        for nid, res in per_nid.items():
            size, chunks = bynid[nid]
            if not size or not res:
                continue
            touched += res
            for dev, blk, ss in chunks:
                k = (dev, blk)
                if k not in frac or frac[k][0] < res / size:
                    frac[k] = (res / size, ss)
        floor = sum(f * ss for f, ss in frac.values())
        print(f"{touched} {int(round(floor))} {len(byname)} {unmatched}")


if __name__ == "__main__":
    main()
