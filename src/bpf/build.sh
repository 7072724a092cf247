#!/bin/sh
# Compiles psdiff's eBPF programs (src/files/bpf/files.bpf.c and
# src/watch/bpf/watch.bpf.c) into the .bpf.o beside each, which psdiff
# embeds. The objects are committed, so building psdiff needs no clang; CI
# runs this with --check to prove each committed object is made from its
# source. Needs Debian 12's clang (14) and libbpf-dev; another clang makes
# other (equally valid) bytes, which --check reports.
set -eu
cd "$(dirname "$0")/.."
status=0
for source in files/bpf/files.bpf.c watch/bpf/watch.bpf.c; do
    dir=$(dirname "$source")
    name=$(basename "$source" .c)
    out=$name.o
    [ "${1:-}" = --check ] && out=$(mktemp "/tmp/$name.XXXXXX.o")
    # -g gives the BTF aya needs; the DWARF is stripped after, and the
    # source path is written relative, so the bytes do not depend on the
    # checkout.
    (cd "$dir" && clang -O2 -g -target bpf -D__TARGET_ARCH_x86 -I/usr/include/x86_64-linux-gnu \
        -fdebug-prefix-map="$PWD"=. -fdebug-compilation-dir=. \
        -Wall -Werror -c "$name.c" -o "$out" && llvm-strip -g "$out")
    if [ "${1:-}" = --check ]; then
        if ! cmp -s "$out" "$dir/$name.o"; then
            echo "src/$dir/$name.o is not what $name.c compiles to; run src/bpf/build.sh and commit it" >&2
            status=1
        else
            echo "$name.o is reproducible from $name.c"
        fi
        rm -f "$out"
    fi
done
exit $status
