#!/usr/bin/env bash
# The test command: installs what is missing (scripts/setup-debian.sh), then runs every
# test of the workspace (as root the real AF_XDP tests build their own network namespaces
# and veth pairs; LRP_REQUIRE_XDP=1 turns their loud skip into a failure), then builds and
# runs a program outside the workspace that links lrp-net alone (`outside-user/`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-debian.sh
cargo test --workspace
target="$(pwd)/target"
CARGO_TARGET_DIR="$target" cargo run -q --manifest-path outside-user/Cargo.toml -- --sim
echo "outside-user: a crate outside the workspace linked lrp-net and ran"
