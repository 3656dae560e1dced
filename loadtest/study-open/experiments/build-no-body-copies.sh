#!/usr/bin/env bash
# Builds espace-ps (release) against pingora-core 0.9.1 with the experiment
# pingora-core-0.9.1-no-body-copies.patch applied, to measure what Pingora's
# two user-space copies of a proxied body cost a study opening. Not for
# production: the patch is a measurement, not a fix (see README.md here).
#
#   loadtest/study-open/experiments/build-no-body-copies.sh   # prints the binary's path
#   ESPACE_PS_BIN=<that path> loadtest/study-open/run.sh                       # upstream read copy removed
#   ESPACE_PS_EXPERIMENT_NO_BATCH_COPY=1 ESPACE_PS_BIN=<that path> loadtest/study-open/run.sh   # both removed
#
# Builds from the committed HEAD in a temporary worktree; honours
# CARGO_TARGET_DIR (a shared target directory builds only what the patch
# changes: about 8 minutes with the release profile's fat LTO on 2 cores).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
WORK=$(mktemp -d /tmp/espace-no-copies.XXXXXX)
cleanup() {
  git -C "$ROOT" worktree remove --force "$WORK/src" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

git -C "$ROOT" worktree add --detach -q "$WORK/src" HEAD
cd "$WORK/src"
cargo fetch -q
registry=$(cargo metadata --format-version 1 -q |
  python3 -c 'import json,sys; print(next(p["manifest_path"] for p in json.load(sys.stdin)["packages"] if p["name"]=="pingora-core" and p["version"]=="0.9.1"))')
cp -r "$(dirname "$registry")" "$WORK/pingora-core"
chmod -R u+w "$WORK/pingora-core"
patch -s -d "$WORK/pingora-core" -p1 <"$HERE/pingora-core-0.9.1-no-body-copies.patch"
printf '\n[patch.crates-io]\npingora-core = { path = "%s" }\n' "$WORK/pingora-core" >>Cargo.toml
target=${CARGO_TARGET_DIR:-$ROOT/target}
CARGO_TARGET_DIR=$target nice -n 5 cargo build -q --release -p espace-ps --bin espace-ps >&2
out=$ROOT/target/espace-ps-no-body-copies
mkdir -p "$(dirname "$out")"
cp "$target/release/espace-ps" "$out"
# The shared target directory's release binary is the patched one now:
# build it again before using it for anything else.
printf 'warning: %s/release/espace-ps is the patched build; rebuild before other use\n' "$target" >&2
echo "$out"
