#!/usr/bin/python3
"""Writes the archives in this directory. Run from here:

    /usr/bin/python3 make_archives.py

Python's tarfile is a different writer from Go's archive/tar, so these also
check that murder reads archives it did not make. Every hostile-*.tar must
be refused by bundle.Extract as unsafe, every bomb-*.tar as too large;
every good-*.tar must extract.
"""
import io
import tarfile

MTIME = 1700000000


def entry(name, kind=tarfile.REGTYPE, data=b"", link="", mode=0o644):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.mode = mode
    ti.mtime = MTIME
    ti.linkname = link
    ti.size = len(data) if kind == tarfile.REGTYPE else 0
    return ti, (io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def write(path, entries):
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tf:
        for ti, f in entries:
            tf.addfile(ti, f)


DIR, SYM, LNK = tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE

write("good-simple.tar", [
    entry("dir/", DIR, mode=0o755),
    entry("dir/file.txt", data=b"hello\n"),
    entry("dir/run.sh", data=b"#!/bin/sh\n", mode=0o4755),  # setuid dropped
    entry("dir/link", SYM, link="file.txt"),
    entry("dir/hard", LNK, link="dir/file.txt"),
    entry("top", SYM, link="dir/link"),
])
# A PAX global header, as `git archive` writes, carries no file.
with tarfile.open("good-pax-global.tar", "w", format=tarfile.PAX_FORMAT,
                  pax_headers={"comment": "0123456789abcdef0123456789abcdef01234567"}) as tf:
    ti, f = entry("file.txt", data=b"from git archive\n")
    tf.addfile(ti, f)
write("hostile-absolute.tar", [entry("/tmp/murder-absolute", data=b"x")])
write("hostile-dotdot.tar", [entry("a/../../escape", data=b"x")])
write("hostile-symlink-abs.tar", [entry("etc", SYM, link="/etc")])
write("hostile-symlink-out.tar", [entry("a/up", SYM, link="../../..")])
write("hostile-write-through-symlink.tar", [
    entry("sub/", DIR, mode=0o755),
    entry("l", SYM, link="sub"),
    entry("l/file", data=b"x"),
])
# Each link is harmless alone; together m leads out once deep/x/y/l exists.
write("hostile-symlink-chain.tar", [
    entry("deep/x/y/", DIR, mode=0o755),
    entry("m", SYM, link="deep/x/y/l/../z"),
    entry("deep/x/y/l", SYM, link="../../.."),
])
write("hostile-hardlink-out.tar", [entry("h", LNK, link="../outside")])
write("hostile-hardlink-abs.tar", [entry("h", LNK, link="/etc/passwd")])
write("hostile-chardev.tar", [entry("null", tarfile.CHRTYPE)])
write("hostile-blockdev.tar", [entry("sda", tarfile.BLKTYPE)])
write("hostile-fifo.tar", [entry("pipe", tarfile.FIFOTYPE)])

# One file declared at 4 EiB (a base-256 size in a GNU header), larger than
# any file system, with only one block of its data: it must be refused by
# its header, before anything is written or read.
huge, _ = entry("huge.bin")
huge.size = 1 << 62
with open("bomb-declared.tar", "wb") as f:
    f.write(huge.tobuf(tarfile.GNU_FORMAT))
    f.write(b"\0" * 512)
