#!/usr/bin/env python3
"""cg_layers - self instruction counts of a callgrind output file, grouped by
layer (tests/bench/profile.sh uses it).

    cg_layers.py OUT [BASELINE_OUT] --requests N [--top K] [--binary ELF]...

Prints, per layer, instructions per request: (OUT - BASELINE_OUT) / N. The
baseline is a run of the same program that made no measured requests, so
startup, warm-up and shutdown cancel out. Layers come from the ELF object
(libpq, libcurl, libuv, libc ...) and, for Porter's own code, from the
source file (conn.c reads and frames, connout.c writes; db*.c the DB path ...).
Self cost only: each instruction is counted once, in the layer that ran it.
Valgrind 3.19 does not read the DWARF 5 line tables of Debian 12's gcc, so
callgrind names no source file for Porter's code: --binary ELF maps each
function of that program or library to its file with `nm -l` instead.
"""
import argparse
import collections
import os
import re
import subprocess
import sys

NAME = re.compile(r"\((\d+)\)(?: (.*))?$")

# Porter's source files by layer (basename prefix match, first wins).
PORTER_FILES = [
    ("wire codec (proto/: frames, hand-written DB codec, arenas)",
     ("frame.c", "dbwire.c", "pbwire.c", "pingwire.c", "arena.c", "palloc.c", "errors.c")),
    ("porterd read/frame/write (conn, connout, listen, inbox)", ("conn.c", "connout.c", "listen.c", "inbox.c")),
    ("porterd dispatch (ops, req, batch, server, worker, fwd)",
     ("ops.c", "req.c", "batch.c", "server.c", "worker.c", "fwd.c", "cancel.c",
      "clients.c", "htab.c", "dalloc.c", "stats.c", "metrics.c")),
    ("porterd db (pool, pipeline, results)", ("db", )),
    ("porterd http (requests, glue, transfer)", ("http", )),
    ("protobuf encode/decode (generated)", ("porter.pb-c.c", )),
]

# ELF objects by layer (substring of the object's basename, first wins).
OBJECTS = [
    ("libprotobuf-c", "protobuf encode/decode (libprotobuf-c)"),
    ("libuv", "libuv (event loop)"),
    ("libpq", "libpq"),
    ("libcurl", "libcurl"),
    ("libnghttp2", "libcurl"),
    ("libssl", "TLS/crypto (libssl, libcrypto)"),
    ("libcrypto", "TLS/crypto (libssl, libcrypto)"),
    ("libz", "zlib"),
    ("libc.so", "libc (malloc, memcpy, syscall stubs)"),
    ("ld-linux", "dynamic linker"),
    ("libporter", "client library (libporter)"),
]


FILE_OF = {}  # (object basename, function) -> source file, from nm -l


def load_binary(path):
    out = subprocess.run(["nm", "-l", "--defined-only", path], capture_output=True,
                         text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 4 and ":" in parts[3]:
            FILE_OF.setdefault((os.path.basename(os.path.realpath(path)), parts[2]), parts[3].rsplit(":", 1)[0])


def layer_of(obj, fl, fn):
    base = os.path.basename(obj)
    if fl.startswith("???"):
        fl = FILE_OF.get((base, re.sub(r"'\d+$", "", fn)), fl)
    fbase = os.path.basename(fl)
    if fbase == "porter.pb-c.c" or fn.startswith("porter__"):
        return "protobuf encode/decode (generated)"
    if "/proto/" in fl and not fbase.startswith("sockpath"):
        return PORTER_FILES[0][0]
    if "libporter" in base or "/client/" in fl:
        return "client library (libporter)"
    if "/daemon/" in fl:
        for name, prefixes in PORTER_FILES:
            if any(fbase.startswith(p) for p in prefixes):
                return name
        return "porterd other"
    for needle, name in OBJECTS:
        if needle in base:
            return name
    if base in ("profile_load", "porterd"):
        return "program (%s)" % base
    return "other (%s)" % base


def parse(path):
    """Self Ir per (object, file, function)."""
    names = {"ob": {}, "fl": {}, "fn": {}}
    cost = collections.Counter()
    ob = fl = fn = "?"
    skip_next = False
    kind_of = {"ob": "ob", "cob": "ob", "fl": "fl", "fi": "fl", "fe": "fl", "cfi": "fl",
               "cfl": "fl", "fn": "fn", "cfn": "fn"}
    with open(path, errors="replace") as f:
        for line in f:
            c = line[0]
            if c.isdigit() or c in "+-*":
                if skip_next:
                    skip_next = False
                    continue
                parts = line.split()
                if len(parts) > 1:
                    cost[(ob, fl, fn)] += int(parts[1])
                continue
            key, sep, val = line.rstrip("\n").partition("=")
            if not sep:
                continue
            if key == "calls":
                skip_next = True
                continue
            kind = kind_of.get(key)
            if not kind:
                continue
            m = NAME.match(val)
            if m:
                if m.group(2) is not None:
                    names[kind][m.group(1)] = m.group(2)
                val = names[kind].get(m.group(1), "?")
            if key == "ob":
                ob = val
            elif key == "fl":
                fl = val
            elif key == "fn":
                fn = val
            # fi/fe (inlined code) and c* (call targets) only define names.
    return cost


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("baseline", nargs="?")
    ap.add_argument("--requests", type=int, required=True)
    ap.add_argument("--top", type=int, default=0)
    ap.add_argument("--binary", action="append", default=[])
    a = ap.parse_args()
    for path in a.binary:
        load_binary(path)
    cost = parse(a.out)
    if a.baseline:
        cost.subtract(parse(a.baseline))
    n = max(a.requests, 1)
    layers = collections.Counter()
    for (ob, fl, fn), ir in cost.items():
        layers[layer_of(ob, fl, fn)] += ir
    total = sum(layers.values())
    for name, ir in sorted(layers.items(), key=lambda kv: -kv[1]):
        if abs(ir) / n >= 50:
            print("  %-58s %9.0f  %5.1f%%" % (name, ir / n, 100.0 * ir / total if total else 0))
    print("  %-58s %9.0f" % ("total instructions per request", total / n))
    if a.top:
        print("  top functions (self, per request):")
        for (ob, fl, fn), ir in cost.most_common(a.top):
            print("    %9.0f  %s [%s]" % (ir / n, fn, os.path.basename(ob)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
