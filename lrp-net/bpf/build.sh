#!/bin/sh
# Rebuild lrp_xdp.o, the XDP program embedded in lrp-net, from lrp_xdp.c.
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
# Usage: build.sh [OUTPUT]   (default: lrp_xdp.o next to this script)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/lrp_xdp.o"}
CLANG=${CLANG:-clang}
STRIP=${LLVM_STRIP:-llvm-strip}
arch_inc=/usr/include/$(uname -m)-linux-gnu

tmp=$(mktemp "${TMPDIR:-/tmp}/lrp_xdp.XXXXXX")
trap 'rm -f "$tmp"' EXIT

cd "$here"
"$CLANG" -O2 -g -target bpf -mcpu=v3 \
    -Wall -Wextra -Werror \
    -I"$arch_inc" \
    -fdebug-prefix-map="$here"=. \
    -fno-ident \
    -c lrp_xdp.c -o "$tmp"
"$STRIP" --strip-debug "$tmp"
cp "$tmp" "$out"
echo "built $out ($("$CLANG" --version | head -n1))"
