#!/usr/bin/python3
"""Makes tar layers and OCI image layouts that exercise skiff convert.

usage: gen-test-layers.py OUTDIR

Writes OUTDIR/layers/*.tar (uncompressed layer tars, applied in name
order) made with Python's tarfile in PAX and GNU formats (long names
and links, xattrs, nanosecond mtimes, base-256 ids, hard links, devices,
whiteouts, an opaque directory, file/directory replacement), plus the
sparse layers GNU tar makes (PAX 0.0, 0.1 and 1.0), and two OCI
layouts holding the same image:

  OUTDIR/ref  every layer gzip-compressed (for a reference unpacker)
  OUTDIR/mix  layers plain, gzip and zstd, OCI and Docker media types

OUTDIR/many: 30 layers of one file each; OUTDIR/huge and OUTDIR/claim:
layers no conversion may take as they are (a PAX sparse file of 2^64 - 7
bytes; 10 KiB of tar claiming a 1 TiB sparse file); OUTDIR/multi: tag "multi", a Docker manifest list naming mix's image for
linux/amd64 and extra's for linux/arm64; and OUTDIR/extra (a Docker
schema 2 manifest): what common unpackers do not take, checked on its own:
a layer that leaves out parent directories and carries a
LIBARCHIVE.xattr record and a negative mtime, and an old GNU sparse
('S') layer.
"""
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile

OUT = sys.argv[1]
LAYERS = os.path.join(OUT, "layers")


def data(n, seed=0):
    """n deterministic, poorly compressible bytes."""
    h = hashlib.sha256(str(seed).encode()).digest()
    out = bytearray()
    while len(out) < n:
        h = hashlib.sha256(h).digest()
        out += h * 4
    return bytes(out[:n])


class Layer:
    def __init__(self, name, fmt):
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=fmt)
        self.name = name

    def add(self, name, type=tarfile.REGTYPE, data=b"", mode=0o644, uid=0,
            gid=0, mtime=1700000000, link="", pax=None, dev=(0, 0)):
        ti = tarfile.TarInfo(name)
        ti.type = type
        ti.mode = mode
        ti.uid, ti.gid = uid, gid
        ti.mtime = mtime
        ti.linkname = link
        ti.devmajor, ti.devminor = dev
        if pax:
            ti.pax_headers = dict(pax)
        if type == tarfile.REGTYPE:
            ti.size = len(data)
            self.tar.addfile(ti, io.BytesIO(data))
        else:
            self.tar.addfile(ti)

    def dir(self, name, mode=0o755, **kw):
        self.add(name, tarfile.DIRTYPE, mode=mode, **kw)

    def write(self):
        self.tar.close()
        with open(os.path.join(LAYERS, self.name), "wb") as f:
            f.write(self.buf.getvalue())


def layer1():
    l = Layer("1-pax.tar", tarfile.PAX_FORMAT)
    l.dir("./", pax={"mtime": "1700000001.5"})
    l.dir("etc/", pax={"mtime": "1700000002.123456789"})
    l.add("etc/passwd", data=b"root:x:0:0:root:/root:/bin/sh\n")
    l.add("etc/hostname", data=b"before\n")
    l.add("etc/xattrs", data=b"x\n", pax={
        "SCHILY.xattr.user.test": "value",
        "SCHILY.xattr.user.empty": "",
        "SCHILY.xattr.security.capability":
            "\x01\x00\x00\x02\x00\x20\x00\x00" + "\x00" * 12,
        "mtime": "1600000000.000000001"})
    l.dir("data/", uid=70000, gid=70001)
    l.add("data/big", data=data(3 << 20, 1), uid=70000, gid=70001)
    l.add("data/big-copy", data=data(3 << 20, 1))
    l.add("data/zeros", data=bytes(2 << 20))
    l.add("data/inner-zeros", data=data(1 << 20, 2) + bytes(2 << 20) + data(5000, 3))
    l.add("data/empty", data=b"")
    l.add("data/hl", tarfile.LNKTYPE, link="data/big")
    l.add("data/sym", tarfile.SYMTYPE, link="../etc/passwd", mode=0o777)
    long_dir = "d" * 120 + "/" + "e" * 200
    l.dir("data/" + "d" * 120 + "/")
    l.dir("data/" + long_dir + "/")
    l.add("data/" + long_dir + "/" + "f" * 250, data=b"long path\n")
    l.add("data/longlink", tarfile.SYMTYPE, link="t" * 300, mode=0o777)
    l.add("dev-null", tarfile.CHRTYPE, mode=0o666, dev=(1, 3))
    l.add("dev-loop", tarfile.BLKTYPE, mode=0o660, dev=(7, 300))
    l.add("fifo", tarfile.FIFOTYPE, mode=0o600)
    l.add("setuid", data=b"#!/bin/sh\n", mode=0o4755)
    for d in ("todel/", "todel/sub/", "opq/", "opq/keep-not/", "d2f/"):
        l.dir(d)
    l.add("todel/sub/f", data=b"gone\n")
    l.add("todel/g", data=b"gone too\n")
    l.add("opq/old", data=b"hidden by the opaque marker\n")
    l.add("opq/keep-not/x", data=b"also hidden\n")
    l.add("d2f/child", data=b"replaced by a file\n")
    l.add("f2d", data=b"replaced by a directory\n")
    l.add("partial/", tarfile.DIRTYPE, mode=0o755)
    l.add("partial/a", data=b"a\n")
    l.add("partial/b", data=b"b\n")
    l.write()


def layer2():
    l = Layer("2-gnu.tar", tarfile.GNU_FORMAT)
    l.dir("etc/", mtime=1700000100)
    l.add("etc/hostname", data=b"after\n")
    l.add("etc/.wh.passwd")
    l.add(".wh.todel")
    l.add("partial/.wh.a")
    l.dir("opq/", mode=0o750)
    l.add("opq/new-before", data=b"same layer, before the marker\n")
    l.add("opq/.wh..wh..opq")
    l.add("opq/new-after", data=b"same layer, after the marker\n")
    l.add("d2f", data=b"now a file\n")
    l.dir("f2d/", mode=0o711)
    l.add("f2d/inside", data=b"inside\n")
    name = "gnu/" + "L" * 150
    l.dir("gnu/")
    l.add(name, data=b"gnu long name\n", uid=3000000, gid=2100000)
    l.add("gnu/longlink", tarfile.SYMTYPE, link="K" * 180, mode=0o777)
    l.add("gnu/hl-long", tarfile.LNKTYPE, link=name)
    l.add("gnu/hl-lower", tarfile.LNKTYPE, link="data/big-copy")
    l.add("gnu/old-time", data=b"1970\n", mtime=12345)
    l.write()


def sparse_layers(tmp):
    """Sparse files in every GNU tar sparse format; needs holes in tmp."""
    src = os.path.join(tmp, "sparse-src")
    os.makedirs(os.path.join(src, "sparse"), exist_ok=True)
    kinds = [("extra-sparse-gnu.tar", ["--format=gnu"], "gnu"),
             ("4-sparse-posix10.tar", ["--format=posix", "--sparse-version=1.0"], "p10"),
             ("5-sparse-posix01.tar", ["--format=posix", "--sparse-version=0.1"], "p01"),
             ("6-sparse-posix00.tar", ["--format=posix", "--sparse-version=0.0"], "p00")]
    for i, (name, opts, tag) in enumerate(kinds):
        d = os.path.join(src, tag)
        os.makedirs(os.path.join(d, "sparse"), exist_ok=True)
        p = os.path.join(d, "sparse", "f-" + tag)
        with open(p, "wb") as f:
            # many segments (old GNU needs extension blocks past 4),
            # data at odd offsets, a trailing hole
            for k in range(7):
                f.seek(k * (1 << 20) + 777 * k)
                f.write(data(5000 + 3000 * k, 10 + i * 10 + k))
            f.truncate(9 << 20)
        os.utime(p, (1700000000, 1700000000))
        # the big file of layer 1 again: every chunk deduplicates
        if tag == "p10":
            with open(os.path.join(d, "sparse", "big-again"), "wb") as f:
                f.write(data(3 << 20, 1))
            os.utime(os.path.join(d, "sparse", "big-again"), (1700000000, 1700000000))
        os.utime(os.path.join(d, "sparse"), (1700000000, 1700000000))
        subprocess.run(["tar", "--sparse", "--numeric-owner", "--owner=0", "--group=0",
                        "-cf", os.path.abspath(os.path.join(LAYERS, name))] + opts +
                       ["-C", d, "sparse"], check=True)


def layer7():
    l = Layer("7-meta-only.tar", tarfile.PAX_FORMAT)
    l.add("data/.wh.zeros")
    # the only file of layer 6: its blob is referenced no more
    l.add("sparse/.wh.f-p00")
    l.dir("data/", mode=0o700, uid=70000, gid=70001)
    l.write()


def extra_layer():
    l = Layer("extra.tar", tarfile.PAX_FORMAT)
    l.add("implicit/a/b/file", data=b"parents are implicit\n")
    l.add("lib-xattr", data=b"x\n", pax={
        "LIBARCHIVE.xattr.user.lib%3Dname": "bGliLXZhbHVl"})
    l.add("neg-time", data=b"before 1970\n", pax={"mtime": "-1.25"})
    l.write()


def sparse_claim(name, real, stored=10240):
    """A PAX 0.1 sparse file of real bytes whose stored data is the first
    `stored` bytes: a layer of about stored + 2 KiB of tar."""
    l = Layer(name, tarfile.PAX_FORMAT)
    l.add("claim", data=data(stored, 7), pax={
        "GNU.sparse.map": "0,%d" % stored,
        "GNU.sparse.realsize": str(real)})
    l.write()


def sha(b):
    return hashlib.sha256(b).hexdigest()


def write_layout(dest, layers, comps, tag="test", docker=False, arch="amd64"):
    """comps: per layer one of tar, gzip, zstd, docker-gzip. docker: a
    Docker schema 2 manifest and config media type. Returns the manifest
    descriptor."""
    blobs = os.path.join(dest, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)

    def put(b):
        h = sha(b)
        with open(os.path.join(blobs, h), "wb") as f:
            f.write(b)
        return h

    descs, diff_ids = [], []
    for name, comp in zip(layers, comps):
        raw = open(os.path.join(LAYERS, name), "rb").read()
        diff_ids.append("sha256:" + sha(raw))
        if comp == "tar":
            b, mt = raw, "application/vnd.oci.image.layer.v1.tar"
        elif comp == "zstd":
            b = subprocess.run(["zstd", "-q", "-c", "-3"], input=raw,
                               stdout=subprocess.PIPE, check=True).stdout
            mt = "application/vnd.oci.image.layer.v1.tar+zstd"
        else:
            b = gzip.compress(raw, mtime=0)
            mt = ("application/vnd.docker.image.rootfs.diff.tar.gzip"
                  if comp == "docker-gzip" else
                  "application/vnd.oci.image.layer.v1.tar+gzip")
        descs.append({"mediaType": mt, "digest": "sha256:" + put(b), "size": len(b)})
    config = {"architecture": arch, "os": "linux",
              "config": {"Entrypoint": ["/bin/sh", "-c"], "Cmd": ["echo hi"],
                         "Env": ["PATH=/usr/bin:/bin", "SKIFF_TEST=1"],
                         "WorkingDir": "/data", "User": "70000:70001",
                         "Labels": {"org.example.test": "convert"}},
              "rootfs": {"type": "layers", "diff_ids": diff_ids},
              "history": [{"created_by": "gen-test-layers.py"}] * len(layers)}
    cb = json.dumps(config, sort_keys=True).encode()
    mt = ("application/vnd.docker.distribution.manifest.v2+json" if docker
          else "application/vnd.oci.image.manifest.v1+json")
    manifest = {"schemaVersion": 2, "mediaType": mt,
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json"
                           if docker else "application/vnd.oci.image.config.v1+json",
                           "digest": "sha256:" + put(cb), "size": len(cb)},
                "layers": descs}
    mb = json.dumps(manifest, sort_keys=True).encode()
    desc = {"mediaType": mt, "digest": "sha256:" + put(mb), "size": len(mb)}
    index = {"schemaVersion": 2, "manifests": [
        dict(desc, platform={"os": "linux", "architecture": arch},
             annotations={"org.opencontainers.image.ref.name": tag})]}
    with open(os.path.join(dest, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(dest, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')
    return desc


def write_multi(dest, amd64, arm64):
    """A layout whose tag names a Docker manifest list of two platforms;
    amd64 and arm64 are layouts whose blobs are merged in."""
    blobs = os.path.join(dest, "blobs", "sha256")
    os.makedirs(blobs, exist_ok=True)
    descs = []
    for src, arch in ((arm64, "arm64"), (amd64, "amd64")):
        idx = json.load(open(os.path.join(src, "index.json")))
        for b in os.listdir(os.path.join(src, "blobs", "sha256")):
            shutil.copy(os.path.join(src, "blobs", "sha256", b), blobs)
        d = dict(idx["manifests"][0])
        del d["annotations"]
        d["platform"] = {"os": "linux", "architecture": arch}
        descs.append(d)
    lst = {"schemaVersion": 2,
           "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
           "manifests": descs}
    lb = json.dumps(lst).encode()
    h = sha(lb)
    with open(os.path.join(blobs, h), "wb") as f:
        f.write(lb)
    index = {"schemaVersion": 2, "manifests": [
        {"mediaType": lst["mediaType"], "digest": "sha256:" + h, "size": len(lb),
         "annotations": {"org.opencontainers.image.ref.name": "multi"}}]}
    with open(os.path.join(dest, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(dest, "oci-layout"), "w") as f:
        f.write('{"imageLayoutVersion":"1.0.0"}')


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(LAYERS)
    layer1()
    layer2()
    sparse_layers(OUT)
    layer7()
    extra_layer()
    names = sorted(n for n in os.listdir(LAYERS) if n[0].isdigit())
    write_layout(os.path.join(OUT, "ref"), names, ["gzip"] * len(names))
    comps = ["tar", "gzip", "zstd", "docker-gzip", "tar", "zstd", "gzip"]
    write_layout(os.path.join(OUT, "mix"), names, comps[:len(names)])
    write_layout(os.path.join(OUT, "extra"), ["extra.tar", "extra-sparse-gnu.tar"],
                 ["gzip", "zstd"], docker=True, arch="arm64")
    write_multi(os.path.join(OUT, "multi"), os.path.join(OUT, "mix"),
                os.path.join(OUT, "extra"))
    # more blobs than fit in the superblock's block (the device table
    # then starts at 4096)
    many = []
    for i in range(30):
        l = Layer("many-%02d.tar" % i, tarfile.PAX_FORMAT)
        l.add("layer-%02d" % i, data=data(5000 + i, 100 + i))
        l.write()
        many.append(l.name)
    write_layout(os.path.join(OUT, "many"), many, ["gzip"] * len(many))
    sparse_claim("hostile-huge.tar", (1 << 64) - 7, stored=5)
    write_layout(os.path.join(OUT, "huge"), ["hostile-huge.tar"], ["tar"])
    sparse_claim("hostile-claim.tar", 1 << 40)
    write_layout(os.path.join(OUT, "claim"), ["hostile-claim.tar"], ["gzip"])


main()
