#!/usr/bin/env bash
# Installs what lrp's tests and demos need on Debian, when missing: the C toolchain for the
# XDP program (clang, llvm, libbpf headers), network tools (iproute2, ethtool), and the
# Linux peers the tests talk to (nginx, wrk, curl, httperf, python3). Also the rustfmt and
# clippy components. Idempotent and quiet when everything is there. Needs root to install.
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1; }
have clang || need+=(clang)
have llc || need+=(llvm)
have ip || need+=(iproute2)
have ethtool || need+=(ethtool)
have nginx || need+=(nginx-light)
have wrk || need+=(wrk)
have curl || need+=(curl)
have httperf || need+=(httperf)
have python3 || need+=(python3)
[ -f /usr/include/bpf/bpf_helpers.h ] || need+=(libbpf-dev)
[ -f /usr/include/linux/if_xdp.h ] || need+=(linux-libc-dev)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing Debian packages: ${need[*]} (run as root to install them)" >&2
    exit 1
  fi
  echo "installing: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
if have rustup; then
  have cargo-fmt || rustup component add rustfmt
  have cargo-clippy || rustup component add clippy
fi
