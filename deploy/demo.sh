#!/usr/bin/env bash
# Runs the espace-ps demo on this machine with the demo binary
# (`espace-ps-demo demo`, never the production `espace-ps`): the real proxy,
# the dev identity provider (a Pro
# Santé Connect look-alike), SQLite, in-memory sessions, and Orthanc as the
# viewer on 127.0.0.1:8042 (started here unless something already answers
# there), loaded with generated DICOM studies matching the demo records.
# Installs what is missing on Debian/Ubuntu (as root, or with sudo), builds,
# and starts. Stop with Ctrl-C.
#
#   ./deploy/demo.sh                 # portal on http://127.0.0.1:8080/
#   ./deploy/demo.sh --listen 127.0.0.1:8888 --idp-listen 127.0.0.1:8889
#   ESPACE_DEMO_VIEWER=ohif ./deploy/demo.sh   # images in OHIF v3 (npm
#                                    # download the first time; docs/viewer-ohif.md)
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need_apt=()
command -v cmake >/dev/null 2>&1 || need_apt+=(cmake)
command -v cc >/dev/null 2>&1 || need_apt+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "demo: installing ${need_apt[*]}"
  as_root apt-get update -qq
  as_root apt-get install -y --no-install-recommends "${need_apt[@]}"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "demo: cargo (the Rust toolchain) is needed: https://rustup.rs" >&2
  exit 1
fi

echo "demo: building espace-ps-demo (first build takes a few minutes)"
cargo build -p espace-ps-demo
target_dir="${CARGO_TARGET_DIR:-target}"

# The viewer: Orthanc from Debian's packages, on loopback only.
# shellcheck source=../scripts/lib/orthanc.sh
. scripts/lib/orthanc.sh
if curl -sf -o /dev/null http://127.0.0.1:8042/system; then
  echo "demo: a viewer already answers on 127.0.0.1:8042; using it"
else
  if [ "$(id -u)" = 0 ]; then orthanc_install; else sudo bash -c '. scripts/lib/orthanc.sh && orthanc_install'; fi
  mkdir -p .demo/orthanc
  orthanc_start "$PWD/.demo/orthanc" 8042 4242 >/dev/null
  trap 'orthanc_stop' EXIT
fi
ohif=()
if [[ ${ESPACE_DEMO_VIEWER:-orthanc} == ohif ]]; then
  ./deploy/ohif/install.sh "$PWD/.demo/ohif"
  ohif=(--ohif-dir "$PWD/.demo/ohif")
fi
"$target_dir/debug/espace-ps-demo" demo --data-dir .demo "${ohif[@]}" "$@"
