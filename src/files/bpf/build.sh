#!/bin/sh
# Compiles files.bpf.c into files.bpf.o, the object psdiff embeds.
# The object is committed, so building psdiff needs no clang; CI runs this
# with --check to prove the committed object is made from this source.
# Needs Debian 12's clang (14) and libbpf-dev; another clang makes other
# (equally valid) bytes, which --check reports.
set -eu
cd "$(dirname "$0")"
out=files.bpf.o
[ "${1:-}" = --check ] && out=$(mktemp /tmp/files.bpf.XXXXXX.o)
# -g gives the BTF aya needs; the DWARF is stripped after, and the source
# path is written relative, so the bytes do not depend on the checkout.
clang -O2 -g -target bpf -D__TARGET_ARCH_x86 -I/usr/include/x86_64-linux-gnu \
    -fdebug-prefix-map="$PWD"=. -fdebug-compilation-dir=. \
    -Wall -Werror -c files.bpf.c -o "$out"
llvm-strip -g "$out"
if [ "${1:-}" = --check ]; then
    if ! cmp -s "$out" files.bpf.o; then
        rm -f "$out"
        echo "src/files/bpf/files.bpf.o is not what files.bpf.c compiles to; run src/files/bpf/build.sh and commit it" >&2
        exit 1
    fi
    rm -f "$out"
    echo "files.bpf.o is reproducible from files.bpf.c"
fi
