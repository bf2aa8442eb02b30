#!/usr/bin/env python3
# Prints, for each file of a skiff bootstrap's prefetch list (in list
# order), one line: the file's NID, then each chunk index as DEV:BLOCK
# (DEV the 0-based device slot, BLOCK the 4 KiB block in its cache file)
# or "-" for a hole. Tests use it to check where listed files' data lies
# (format/README.md: skiff header, inodes, chunk indexes).
import struct
import sys

NULL_ADDR = 0xFFFFFFFF


def main(path):
    bs = open(path, "rb").read()
    if bs[0:8] != b"SKIFFRFS":
        sys.exit(f"{path}: not a skiff bootstrap")
    ext_off, _ext_size = struct.unpack_from("<QQ", bs, 16)
    chunk_bits, = struct.unpack_from("<I", bs, 68)
    pf_off, pf_size = struct.unpack_from("<QQ", bs, 72)
    if not pf_off:
        return
    csize = 1 << chunk_bits
    for k in range(pf_size // 8):
        nid, = struct.unpack_from("<Q", bs, ext_off + pf_off + 8 * k)
        pos = nid * 32
        _fmt, icount, _mode, _r, size = struct.unpack_from("<HHHHQ", bs, pos)
        xsize = 12 + (icount - 1) * 4 if icount else 0
        idx = (pos + 64 + xsize + 7) & ~7
        out = [str(nid)]
        for i in range((size + csize - 1) // csize):
            _adv, dev, blk = struct.unpack_from("<HHI", bs, idx + 8 * i)
            out.append("-" if blk == NULL_ADDR else f"{dev - 1}:{blk}")
        print(" ".join(out))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: chunkmap.py BOOTSTRAP")
    main(sys.argv[1])
