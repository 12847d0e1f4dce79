#!/bin/sh
# Rebuild the XDP objects embedded in lrp-net: lrp_xdp.o (the demux program, one instance
# per served queue) from lrp_xdp.c, and lrp_dispatch.o (the per-interface dispatcher that
# tail-calls the instance of a frame's queue) from lrp_dispatch.c.
#
# Needs clang (BPF target), llvm-strip and libbpf headers (Debian: clang llvm libbpf-dev).
# The object is committed so that `cargo build` needs only the Rust toolchain; CI can
# rebuild it with this script and run the tests against the rebuilt object with
#   LRP_XDP_OBJECT=/path/to/lrp_xdp.o cargo test -p lrp-net
#
# Output is deterministic for a given clang: we compile from the script's directory
# with relative paths, map the directory to "." in debug info, and strip DWARF
# (BTF and BTF.ext, which the loader needs, are kept).
#
# Usage: build.sh [XDP_OUTPUT [DISPATCH_OUTPUT]]
#   (defaults: lrp_xdp.o and lrp_dispatch.o next to this script)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/lrp_xdp.o"}
dispatch_out=${2:-"$here/lrp_dispatch.o"}
CLANG=${CLANG:-clang}
STRIP=${LLVM_STRIP:-llvm-strip}
arch_inc=/usr/include/$(uname -m)-linux-gnu

tmp=$(mktemp "${TMPDIR:-/tmp}/lrp_xdp.XXXXXX")
trap 'rm -f "$tmp"' EXIT

cd "$here"
build() {
    "$CLANG" -O2 -g -target bpf -mcpu=v3 \
        -Wall -Wextra -Werror \
        -I"$arch_inc" \
        -fdebug-prefix-map="$here"=. \
        -fno-ident \
        -c "$1" -o "$tmp"
    "$STRIP" --strip-debug "$tmp"
    cp "$tmp" "$2"
    echo "built $2 ($("$CLANG" --version | head -n1))"
}
build lrp_xdp.c "$out"
build lrp_dispatch.c "$dispatch_out"
