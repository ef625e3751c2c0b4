#!/usr/bin/python3
"""Generates the benchmark's mixed tree: many small text files and a few
large ones, about 1 GiB in all, the same bytes on every run.

    gentree.py DIR [SOURCE_DIR]

Small files (1 KiB to 48 KiB, 18,000 of them in nested directories) are
cut from the Go sources under SOURCE_DIR (default: $(go env GOROOT)/src),
so they compress like real code. The large files are: two of 160 MiB of
pseudo-random bytes (incompressible, like media or compressed assets), one
of 192 MiB of code-like text and one of 96 MiB of log lines.
"""
import os
import random
import sys

MiB = 1 << 20


def corpus(src):
    chunks, size = [], 0
    for root, dirs, files in os.walk(src):
        dirs.sort()
        for f in sorted(files):
            if f.endswith(".go"):
                with open(os.path.join(root, f), "rb") as fh:
                    data = fh.read()
                chunks.append(data)
                size += len(data)
                if size > 48 * MiB:
                    return b"".join(chunks)
    return b"".join(chunks)


def main():
    dest = sys.argv[1]
    src = sys.argv[2] if len(sys.argv) > 2 else None
    if src is None:
        import subprocess
        src = os.path.join(subprocess.check_output(["go", "env", "GOROOT"], text=True).strip(), "src")
    rnd = random.Random(42)
    text = corpus(src)
    os.makedirs(dest, exist_ok=True)

    total = 0
    for i in range(18000):
        d = os.path.join(dest, "src", "m%02d" % (i % 40), "p%03d" % (i % 300))
        os.makedirs(d, exist_ok=True)
        n = rnd.randint(1 << 10, 48 << 10)
        off = rnd.randrange(0, len(text) - n)
        with open(os.path.join(d, "f%05d.go" % i), "wb") as fh:
            fh.write(text[off:off + n])
        total += n
    os.makedirs(os.path.join(dest, "assets"), exist_ok=True)
    for name in ("blob-a.bin", "blob-b.bin"):
        with open(os.path.join(dest, "assets", name), "wb") as fh:
            r = random.Random(name)
            for _ in range(160):
                fh.write(r.randbytes(MiB))
        total += 160 * MiB
    with open(os.path.join(dest, "assets", "bundle.js"), "wb") as fh:
        for k in range(192):
            off = rnd.randrange(0, len(text) - MiB)
            fh.write(text[off:off + MiB])
        total += 192 * MiB
    with open(os.path.join(dest, "assets", "app.log"), "wb") as fh:
        lines = []
        for k in range(96 * MiB // 100):
            lines.append(b"2024-05-06T07:%02d:%02d.%06dZ INFO request id=%08x path=/api/v1/item/%d status=%d dur=%dms\n" % (
                k // 60000 % 60, k // 1000 % 60, k % 1000000, rnd.getrandbits(32), rnd.randint(1, 99999),
                rnd.choice((200, 200, 200, 204, 304, 404, 500)), rnd.randint(1, 900)))
            if len(lines) == 10000:
                fh.write(b"".join(lines))
                lines = []
        fh.write(b"".join(lines))
        total += fh.tell()
    os.makedirs(os.path.join(dest, "empty"), exist_ok=True)
    os.makedirs(os.path.join(dest, ".git"), exist_ok=True)
    with open(os.path.join(dest, ".git", "HEAD"), "w") as fh:
        fh.write("ref: refs/heads/main\n")
    print("generated %s: %.0f MiB" % (dest, total / MiB), file=sys.stderr)


main()
