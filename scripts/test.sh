#!/usr/bin/env bash
# scripts/test.sh: the one command that runs every espace-ps test.
#
# On a fresh Debian machine (as root; CI runs `bash .ci/run` on a clean
# clone) it installs what is missing (the PEER_PROGRAMS below, Node modules),
# then runs fmt, clippy, build, policy and config checks, the provider's
# self-test, the alert rules (promtool) and Kubernetes manifests (kubectl
# kustomize), the Rust tests (and again the date-sensitive ones with the
# clock moved), the browser tests, and last the Debian package (one build
# with the `deb` profile, `cargo deb`, installed on this machine and checked,
# then purged). It stops at the first failing stage and prints a summary of
# the stages.
#
# The Rust tests start the services they talk to themselves (crate
# espace-ps-testenv, proxy/testenv): a throwaway Redis, PostgreSQL and the
# PSC look-alike OpenID provider with nginx in front of it as a TLS
# terminator that asks for client certificates (mutual TLS, RFC 8705),
# once per `cargo nextest run` / `cargo test` and stopped when it ends; the
# tests that need Orthanc start it too. A plain `cargo test --workspace`
# works on a machine where this script installed the packages.
#
# Usage:
#   scripts/test.sh                  everything
#   scripts/test.sh --keep-services  install, start the services, print the
#                                    `export` lines, and wait (Ctrl-C stops
#                                    them): the tests (and tools) use the
#                                    services named by these variables
#                                    instead of starting their own
# Environment:
#   ESPACE_TEST_KEEP_SERVICES=1      same as --keep-services
#   ESPACE_TEST_SKIP_CARGO=1         skip every cargo stage (try the script
#                                    itself; --keep-services still builds
#                                    espace-ps-test-services)
#   ESPACE_TEST_SKIP_INSTALL=1       do not install anything
#   ESPACE_TEST_OHIF_DIR=DIR         where deploy/ohif/install.sh puts OHIF
#                                    (default $CARGO_TARGET_DIR/ohif-site)
#   CARGO_TARGET_DIR                 honoured (debug builds, and the `deb`
#                                    profile's build for the package)
# The services' variables (set them all to use services of your own):
#   ESPACE_TEST_REDIS_URL      redis://127.0.0.1:PORT/
#   ESPACE_TEST_PG_URL         postgres://espace@127.0.0.1:PORT/espace_test
#   ESPACE_TEST_OIDC_ISSUER    http://127.0.0.1:PORT/auth/realms/esante-wallet
#   ESPACE_TEST_OIDC_CONTROL   http://127.0.0.1:PORT   (the provider's /__test API)
#   ESPACE_TEST_MTLS_URL       https://127.0.0.1:PORT  (nginx in front of the
#                              provider; discovery names its token endpoint in
#                              mtls_endpoint_aliases)
#   ESPACE_TEST_MTLS_CA        PEM of the throwaway CA (server and client certs)
#   ESPACE_TEST_MTLS_CLIENT_CERT, ESPACE_TEST_MTLS_CLIENT_KEY
#                              a client certificate and its key (PEM files)
#   ESPACE_TEST_MTLS_CLIENT_DN its subject DN (RFC 4514), to register as
#                              tls_client_auth_subject_dn
#   ESPACE_TEST_MTLS_OTHER_CERT, ESPACE_TEST_MTLS_OTHER_KEY
#                              another certificate from the same CA, another DN
#   ESPACE_TEST_TLS_REDIS_URL  rediss://127.0.0.1:PORT/ (TLS only, client
#                              certificate required)
#   ESPACE_TEST_TLS_PG_URL     postgres://espace@127.0.0.1:PORT/espace_test
#                              (hostssl only)
#   ESPACE_TEST_TLS_CA, ESPACE_TEST_TLS_OTHER_CA
#                              the CA of both servers' certificates (which
#                              name 127.0.0.1 only), and a CA that signed nothing
#   ESPACE_TEST_TLS_CLIENT_CERT, ESPACE_TEST_TLS_CLIENT_KEY
#                              a client certificate of that CA and its key
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROVIDER_DIR=$ROOT/proxy/tests/peers/oidc-provider
KEEP_SERVICES=${ESPACE_TEST_KEEP_SERVICES:-0}
for arg in "$@"; do
  case $arg in
    --keep-services) KEEP_SERVICES=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $arg (see --help)" >&2; exit 2 ;;
  esac
done

# ------------------------------------------------------------------ helpers

STAGE_REPORT=()
STAGE_NAME=""
STAGE_START=0
stage() {
  stage_done
  STAGE_NAME=$1
  STAGE_START=$SECONDS
  printf '\n\033[1m==> %s\033[0m\n' "$STAGE_NAME"
}
stage_done() {
  if [[ -n $STAGE_NAME ]]; then
    STAGE_REPORT+=("ok    $STAGE_NAME ($((SECONDS - STAGE_START))s)")
    STAGE_NAME=""
  fi
}
notice() { printf '    notice: %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null && SUDO=(sudo)
fi

APT_UPDATED=0
# installed PACKAGE: is the package really installed? (`dpkg -s` also
# succeeds for a package that was removed but not purged, status `rc`.)
installed() {
  [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

# apt_install PACKAGE...: installs the packages that are not installed.
apt_install() {
  local missing=() p
  for p in "$@"; do
    installed "$p" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  [[ ${ESPACE_TEST_SKIP_INSTALL:-0} == 1 ]] && die "missing packages: ${missing[*]} (ESPACE_TEST_SKIP_INSTALL=1)"
  if ((!APT_UPDATED)); then
    "${SUDO[@]}" apt-get update
    APT_UPDATED=1
  fi
  echo "    installing: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
}

# pg_bin_dir: the newest Debian PostgreSQL bin directory, if any.
pg_bin_dir() {
  local d
  d=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  [[ -n $d && -x $d/initdb && -x $d/pg_ctl ]] && echo "$d"
}

# ------------------------------------------------------------------ install

# Every program a test stage runs, with the Debian package that brings it:
# the one list. A program is an absolute path, or a command name looked up in
# PATH (Node.js may come from elsewhere than Debian's package).
# `install_prerequisites` installs the package of every program that is
# missing, before the first stage, and `check_programs` refuses to start the
# test stages when one is still missing. (PostgreSQL's server binaries live in
# a versioned directory: see pg_bin_dir.)
PEER_PROGRAMS=(
  "/usr/sbin/Orthanc orthanc"                                       # viewer/PACS stand-in (Rust viewer tests, dicomgen, browser)
  "/usr/share/orthanc/plugins/libOrthancDicomWeb.so orthanc-dicomweb"
  "/usr/share/orthanc/plugins/libOrthancWebViewer.so orthanc-webviewer"
  "/usr/sbin/nginx nginx"                                           # TLS terminator for mutual TLS to the provider
  "/usr/bin/chromium chromium"                                      # Playwright browser tests
  "/usr/bin/redis-server redis-server"                              # shared sessions
  "/usr/bin/redis-cli redis-tools"
  "/usr/bin/redis-sentinel redis-sentinel"                          # Sentinel failover test (primary, replica, 3 Sentinels)
  "/usr/bin/sqlite3 sqlite3"                                        # browser tests read the demo records
  "node nodejs"                                                     # provider, JS and browser tests
  "npm npm"
  "/usr/bin/openssl openssl"                                        # throwaway PKI for mutual TLS
  "/usr/bin/curl curl"
  "/usr/bin/cmake cmake"                                            # building pingora (zlib-ng)
  "/usr/bin/pkg-config pkg-config"
  "/usr/sbin/useradd passwd"                                        # the harness's PostgreSQL system user, as root
  "/usr/sbin/nologin login"                                         # ... and its shell
  "/usr/bin/python3 python3"                                        # docs/hm-sso.md's worked example (it::hm_sso_doc)
  "/usr/lib/python3/dist-packages/jwt/__init__.py python3-jwt"      # ... PyJWT
  "/usr/lib/python3/dist-packages/cryptography/__init__.py python3-cryptography" # ... its RS256/ES256 backend
  "/usr/bin/promtool prometheus"                                    # alert rules and dashboard checks (deploy/observability)
  "/usr/sbin/rsyslogd rsyslog"                                      # the audit trail's syslog sink: a throwaway receiver (it::viewer::audit_ship)
  "/usr/share/doc/rsyslog-gnutls rsyslog-gnutls"                    # ... over TLS (its gtls driver)
  "/usr/bin/systemd-analyze systemd"                                # verifies the package's unit
  "/usr/bin/dpkg-deb dpkg"                                          # installs the package
  "/usr/bin/git git"                                                # the previous release's worktree (scripts/two-versions.sh)
)

# has_program PROGRAM: an existing absolute path, or a command in PATH.
has_program() {
  if [[ $1 == /* ]]; then [[ -e $1 ]]; else command -v "$1" >/dev/null; fi
}

install_prerequisites() {
  local pkgs=() entry
  for entry in "${PEER_PROGRAMS[@]}"; do
    has_program "${entry%% *}" || pkgs+=("${entry#* }")
  done
  pg_bin_dir >/dev/null || pkgs+=(postgresql)
  ((${#pkgs[@]} == 0)) || apt_install "${pkgs[@]}"
  # Only promtool is needed from `prometheus`: where its install started the
  # server (it listens on 9090, the demo's admin port), stop it again.
  if [[ " ${pkgs[*]} " == *" prometheus "* ]]; then
    if [[ -d /run/systemd/system ]]; then
      "${SUDO[@]}" systemctl disable --now prometheus >/dev/null 2>&1 || true
    else
      "${SUDO[@]}" service prometheus stop >/dev/null 2>&1 || true
    fi
  fi
  install_rust_components
  install_kubectl
  local node_major
  node_major=$(node -p 'process.versions.node.split(".")[0]')
  ((node_major >= 20)) || die "Node.js $(node -v) is too old for oidc-provider 9 (need 20 or later)"
}

# check_programs: every program of PEER_PROGRAMS (and PostgreSQL) is there.
check_programs() {
  local entry missing=()
  for entry in "${PEER_PROGRAMS[@]}"; do
    has_program "${entry%% *}" || missing+=("${entry%% *} (package ${entry#* })")
  done
  pg_bin_dir >/dev/null || missing+=("/usr/lib/postgresql/*/bin/initdb (package postgresql)")
  ((${#missing[@]} == 0)) || die "programs the tests run are missing: ${missing[*]}"
}

# kubectl renders the Kubernetes manifests (deploy/container/): Debian's
# kubernetes-client where kubectl is missing and Debian has it; else the
# stage only checks the files for a kind and no tabs.
install_kubectl() {
  command -v kubectl >/dev/null && return 0
  if ((!APT_UPDATED)); then
    "${SUDO[@]}" apt-get update
    APT_UPDATED=1
  fi
  if apt-cache policy kubernetes-client | grep -q 'Candidate: [0-9]'; then
    apt_install kubernetes-client
  else
    notice "kubectl is not in Debian's packages here: the manifests will not be rendered"
  fi
}

# cargo-deb builds the Debian package (deploy/debian/, the packaging stage).
CARGO_DEB_VERSION=3.8.0

install_rust_components() {
  [[ ${ESPACE_TEST_SKIP_CARGO:-0} == 1 ]] && return 0
  if [[ $(cargo deb --version 2>/dev/null) != *" $CARGO_DEB_VERSION"* ]]; then
    nice -n 10 cargo install --locked cargo-deb --version "$CARGO_DEB_VERSION"
  fi
  # Debian's cargo is older than the workspace's rust-version: use rustup.
  command -v cargo >/dev/null || die "cargo not found: install Rust with rustup (https://rustup.rs)"
  local c
  for c in rustfmt clippy; do
    if ! cargo "${c/rustfmt/fmt}" --version >/dev/null 2>&1; then
      command -v rustup >/dev/null || die "cargo $c missing and no rustup to add it"
      rustup component add "$c"
    fi
  done
}

# npm_ci DIR: `npm ci` in DIR when node_modules is absent or was installed
# from another lock file.
npm_ci() {
  local dir=$1 stamp want
  stamp=$dir/node_modules/.espace-lock.sha256
  want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
    echo "    $dir: node_modules up to date"
    return 0
  fi
  (cd "$dir" && npm ci --no-audit --no-fund)
  echo "$want" >"$stamp"
}

# ------------------------------------------------------------------ exit

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  if ((${#STAGE_REPORT[@]})) || [[ -n $STAGE_NAME ]]; then
    echo
    echo "Stages:"
    printf '  %s\n' "${STAGE_REPORT[@]}"
    [[ -n $STAGE_NAME ]] && echo "  FAIL  $STAGE_NAME ($((SECONDS - STAGE_START))s)"
  fi
  if ((rc == 0)); then
    echo "All stages passed."
  else
    echo "FAILED (exit $rc)."
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ------------------------------------------------------------------ cargo

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
[[ $TARGET_DIR == /* ]] || TARGET_DIR=$ROOT/$TARGET_DIR
BIN=$TARGET_DIR/debug/espace-ps
DEMO_BIN=$TARGET_DIR/debug/espace-ps-demo

# The moved-clock runs: the tests whose data or expectations hold dates.
MOVED_CLOCKS=(2028-02-29T10:00:00Z 2025-12-31T23:30:00Z)
DATE_SENSITIVE_TESTS='package(espace-ps-records) | package(espace-ps-demo-data) | (package(espace-ps) & test(/^it::(portal|lockout|session_end)::/))'

# has_subcommand NAME: does `espace-ps --help` list that subcommand?
has_subcommand() {
  "$BIN" --help 2>&1 | grep -Eq "^[[:space:]]+$1([[:space:]]|$)"
}

run_cargo_stages() {
  cd "$ROOT"
  stage "portal JavaScript tests (node --test)"
  node --test portal-pages/static/tests/

  stage "cargo fmt --check"
  cargo fmt --all -- --check

  stage "cargo clippy"
  cargo clippy --workspace --all-targets -- -D warnings

  stage "cargo build -p espace-ps -p espace-ps-demo"
  cargo build -p espace-ps -p espace-ps-demo

  stage "espace-ps policies check policies"
  "$BIN" policies check policies

  stage "espace-ps check-config deploy/*.toml"
  local configs=()
  shopt -s nullglob
  configs=("$ROOT"/deploy/*.toml)
  shopt -u nullglob
  if ! has_subcommand check-config; then
    notice "skipped: espace-ps has no 'check-config' subcommand yet"
  elif ((${#configs[@]} == 0)); then
    notice "skipped: no deploy/*.toml"
  else
    local c
    for c in "${configs[@]}"; do
      echo "    $c"
      # The shipped examples take the PSC secret from the environment.
      ESPACE_PSC_CLIENT_SECRET=${ESPACE_PSC_CLIENT_SECRET:-placeholder-for-check-config} \
        "$BIN" check-config "$c"
    done
  fi

  stage "alert rules and dashboard (promtool check/test rules, deploy/observability/check.sh)"
  "$ROOT/deploy/observability/check.sh"

  stage "Kubernetes manifests rendered (kubectl kustomize, deploy/container/check.sh)"
  if command -v kubectl >/dev/null; then
    "$ROOT/deploy/container/check.sh"
  else
    notice "kubectl missing: the manifests are NOT rendered, only checked for a kind and no tabs"
    node -e 'for (const f of process.argv.slice(1)) { const t = require("fs").readFileSync(f, "utf8"); if (!/^(apiVersion|kind|#)/m.test(t) || /\t/.test(t)) { console.error(f); process.exit(1); } }' \
      "$ROOT"/deploy/container/kubernetes/*.yaml
  fi

  if cargo nextest --version >/dev/null 2>&1; then
    stage "cargo nextest run --workspace"
    cargo nextest run --workspace --no-fail-fast
    stage "cargo test --doc --workspace (doctests: nextest does not run them)"
    cargo test --doc --workspace
    # Every test process lives at one instant (ESPACE_TEST_NOW, pinned by
    # default): the date-sensitive tests run again on other days, a leap day
    # and the last evening of a year, to prove that none depends on the date.
    local now
    for now in "${MOVED_CLOCKS[@]}"; do
      stage "date-sensitive tests with the clock moved to $now"
      ESPACE_TEST_NOW=$now cargo nextest run --workspace --no-fail-fast -E "$DATE_SENSITIVE_TESTS"
    done
  else
    stage "cargo test --workspace"
    cargo test --workspace --no-fail-fast
  fi

  # A rolling upgrade: the previous release (a pinned commit, built once
  # from a git worktree into this target directory) and this build on one
  # database, PostgreSQL and SQLite (docs/operations.md, "Upgrading across
  # versions"). About 1 min once the previous release is built (its first
  # build: its workspace crates and a few dependencies, a few minutes).
  stage "two-version migration test (scripts/two-versions.sh)"
  "$ROOT/scripts/two-versions.sh"

  run_browser_stage
  run_package_stages
}

# The Debian package: one build with the `deb` profile (release code,
# its own target directory), `cargo deb` on it, then the package installed
# on this machine and checked (deploy/debian/check-package.sh).
run_package_stages() {
  stage "cargo build --profile deb -p espace-ps (the Debian package's binary)"
  nice -n 10 cargo build --profile deb -p espace-ps
  stage "cargo deb --profile deb --no-build"
  rm -rf "$TARGET_DIR/debian-package"
  cargo deb -p espace-ps --profile deb --no-build --output "$TARGET_DIR/debian-package/"
  stage "Debian package: install, files, check-config, policies check, systemd-analyze verify"
  local deb
  deb=$(ls "$TARGET_DIR"/debian-package/espace-ps_*.deb)
  "$ROOT/deploy/debian/check-package.sh" "$deb"
}

# Browser tests: Playwright (playwright-core, npm) in Debian's Chromium,
# against Orthanc and `espace-ps-demo demo` (the binary built above), which
# proxy/tests/browser/lib/stack.mjs starts once for every test file.
run_browser_stage() {
  stage "browser tests (Playwright in Chromium)"
  local dir=$ROOT/proxy/tests/browser
  # (Orthanc, Chromium and sqlite3: install_prerequisites, checked by check_programs)
  # ohif.test.mjs starts a stack of its own (route table `ohif`).
  ESPACE_BROWSER_OHIF_DIR=$OHIF_DIR ESPACE_PS_DEMO_BIN=$DEMO_BIN timeout 420 node "$dir/lib/stack.mjs" \
    node --test --test-concurrency=1 "$dir/"
}

# ------------------------------------------------------------------ main

cd "$ROOT"

stage "install prerequisites"
if [[ ${ESPACE_TEST_SKIP_INSTALL:-0} == 1 ]]; then
  notice "skipped (ESPACE_TEST_SKIP_INSTALL=1)"
else
  install_prerequisites
fi

stage "check that every program the tests run is installed"
check_programs

stage "npm ci (oidc provider, browser tests)"
npm_ci "$PROVIDER_DIR"
npm_ci "$ROOT/proxy/tests/browser"

if [[ $KEEP_SERVICES == 1 ]]; then
  stage "start services (espace-ps-test-services)"
  cargo build -q -p espace-ps-testenv --bin espace-ps-test-services
  stage_done
  echo
  echo "Stages:"
  printf '  %s\n' "${STAGE_REPORT[@]}"
  echo
  trap - EXIT INT TERM
  # It prints the `export` lines, then runs until Ctrl-C, SIGTERM or a
  # service's exit; the services stop with it.
  exec "$TARGET_DIR/debug/espace-ps-test-services"
fi

# OHIF v3 (@ohif/app, pinned in deploy/ohif/install.sh; ~200 MB, outside
# git) for proxy/tests/browser/ohif.test.mjs.
stage "install OHIF (npm pack @ohif/app)"
OHIF_DIR=${ESPACE_TEST_OHIF_DIR:-$TARGET_DIR/ohif-site}
"$ROOT/deploy/ohif/install.sh" "$OHIF_DIR" "$TARGET_DIR/ohif-cache"
echo "    $OHIF_DIR"

# The self-test stops itself after 120 s, naming the check it was in;
# timeout is the backstop. grep passes each line on as it comes, so a
# failure shows how far the self-test got.
stage "oidc provider self-test"
(cd "$PROVIDER_DIR" && timeout -k 10 180 node selftest.mjs 2>&1 | grep --line-buffered -v 'oidc-provider WARNING')

if [[ ${ESPACE_TEST_SKIP_CARGO:-0} == 1 ]]; then
  stage "cargo stages"
  notice "skipped (ESPACE_TEST_SKIP_CARGO=1)"
else
  run_cargo_stages
fi
stage_done
