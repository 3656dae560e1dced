#!/usr/bin/env bash
# scripts/test.sh: the one command that runs every espace-ps test.
#
# On a fresh Debian machine (as root; CI runs `bash .ci/run` on a clean
# clone) it installs what is missing, starts throwaway Redis, PostgreSQL and
# the PSC look-alike OpenID provider on free loopback ports, with nginx in
# front of the provider as a TLS terminator that asks for client
# certificates (mutual TLS, RFC 8705), exports their addresses, then runs fmt, clippy, build, policy and config checks, the
# provider's self-test and the Rust tests. It stops at the first failing
# stage and always stops the services and removes their data.
#
# Usage:
#   scripts/test.sh                  everything
#   scripts/test.sh --keep-services  start the services, print the `export`
#                                    lines, and wait (Ctrl-C stops them), to
#                                    run `cargo test` by hand in another shell
# Environment:
#   ESPACE_TEST_KEEP_SERVICES=1      same as --keep-services
#   ESPACE_TEST_SKIP_CARGO=1         skip every cargo stage (try the script itself)
#   ESPACE_TEST_SKIP_INSTALL=1       do not install anything
#   CARGO_TARGET_DIR                 honoured (debug builds only)
# Exported for the tests:
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
# Service logs are kept in .test-run/logs/ (overwritten by the next run).
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

USED_PORTS=" "
# free_port: a loopback TCP port nobody listens on (and not handed out yet).
free_port() {
  local p
  for _ in {1..200}; do
    p=$((20000 + RANDOM % 40000))
    [[ $USED_PORTS == *" $p "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      USED_PORTS+="$p "
      echo "$p"
      return 0
    fi
  done
  die "no free port found"
}

# wait_until WHAT SECONDS PID COMMAND...: polls COMMAND until it succeeds;
# fails if PID (when not empty) dies or the time is up.
wait_until() {
  local what=$1 timeout=$2 pid=$3
  shift 3
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
      echo "$what exited before it was ready" >&2
      return 1
    fi
    if ((SECONDS >= deadline)); then
      echo "timed out after ${timeout}s waiting for $what" >&2
      return 1
    fi
    sleep 0.1
  done
}

show_log() { # show_log FILE: the end of a service log, after a failure
  [[ -f $1 ]] && { echo "---- last lines of $1"; tail -n 30 "$1"; echo "----"; } >&2
  return 0
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
  "/usr/bin/sqlite3 sqlite3"                                        # browser tests read the demo records
  "node nodejs"                                                     # provider, JS and browser tests
  "npm npm"
  "/usr/bin/openssl openssl"                                        # throwaway PKI for mutual TLS
  "/usr/bin/curl curl"
  "/usr/bin/cmake cmake"                                            # building pingora (zlib-ng)
  "/usr/bin/pkg-config pkg-config"
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
  install_rust_components
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

install_rust_components() {
  [[ ${ESPACE_TEST_SKIP_CARGO:-0} == 1 ]] && return 0
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

# ------------------------------------------------------------------ services

RUN_DIR=""      # per-run data (removed at exit)
PG_DATA_DIR=""  # PostgreSQL cluster (removed at exit; in /tmp so that the
                # postgres user can reach it whatever the repo's permissions)
PG_OS_USER=""   # system user that owns the cluster ("" = the current user)
PIDS=()         # background processes we started
LOG_DIR=$ROOT/.test-run/logs

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null
  done
  if [[ -n $PG_DATA_DIR && -f $PG_DATA_DIR/data/postmaster.pid ]]; then
    as_pg_user "$PG_BIN/pg_ctl" -D "$PG_DATA_DIR/data" stop -m immediate >/dev/null 2>&1
  fi
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null
  done
  [[ -n $PG_DATA_DIR ]] && rm -rf "$PG_DATA_DIR"
  [[ -n $RUN_DIR ]] && rm -rf "$RUN_DIR"
  if ((${#STAGE_REPORT[@]})) || [[ -n $STAGE_NAME ]]; then
    echo
    echo "Stages:"
    printf '  %s\n' "${STAGE_REPORT[@]}"
    [[ -n $STAGE_NAME ]] && echo "  FAIL  $STAGE_NAME ($((SECONDS - STAGE_START))s)"
  fi
  if ((rc == 0)) && [[ $KEEP_SERVICES == 1 ]]; then
    echo "Services stopped."
  elif ((rc == 0)); then
    echo "All stages passed."
  else
    echo "FAILED (exit $rc). Service logs: $LOG_DIR"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

as_pg_user() {
  if [[ -n $PG_OS_USER ]]; then
    setpriv --reuid="$PG_OS_USER" --regid="$(id -g "$PG_OS_USER")" --init-groups -- "$@"
  else
    "$@"
  fi
}

start_redis() {
  REDIS_PORT=$(free_port)
  mkdir -p "$RUN_DIR/redis"
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' --appendonly no \
    --dir "$RUN_DIR/redis" --daemonize no >"$LOG_DIR/redis.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  wait_until "redis-server" 20 "$pid" \
    bash -c "[[ \$(redis-cli -h 127.0.0.1 -p $REDIS_PORT ping) == PONG ]]" || { show_log "$LOG_DIR/redis.log"; return 1; }
  export ESPACE_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT/"
  echo "    redis on 127.0.0.1:$REDIS_PORT"
}

start_postgres() {
  PG_BIN=$(pg_bin_dir) || die "PostgreSQL binaries not found under /usr/lib/postgresql/*/bin"
  PG_PORT=$(free_port)
  local db_user=espace
  if [[ $(id -u) -eq 0 ]]; then
    # PostgreSQL refuses to run as root: use Debian's postgres user, or make one.
    if id postgres >/dev/null 2>&1; then
      PG_OS_USER=postgres
    else
      id espace >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin espace
      PG_OS_USER=espace
    fi
  fi
  PG_DATA_DIR=$(mktemp -d /tmp/espace-pg.XXXXXX)
  [[ -n $PG_OS_USER ]] && chown "$PG_OS_USER" "$PG_DATA_DIR"
  as_pg_user "$PG_BIN/initdb" -D "$PG_DATA_DIR/data" -U "$db_user" --auth=trust \
    -E UTF8 --locale=C --no-sync >"$LOG_DIR/postgres-initdb.log" 2>&1 || { show_log "$LOG_DIR/postgres-initdb.log"; return 1; }
  # Trust, on loopback TCP and the private socket only.
  printf '%s\n' 'local all all trust' 'host all all 127.0.0.1/32 trust' >"$PG_DATA_DIR/data/pg_hba.conf"
  # (the log file is opened by this shell, so the postgres user needs no
  # access to the log dir)
  as_pg_user "$PG_BIN/postgres" -D "$PG_DATA_DIR/data" -c listen_addresses=127.0.0.1 -p "$PG_PORT" \
    -k "$PG_DATA_DIR" -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
    >"$LOG_DIR/postgres.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  wait_until "postgres" 60 "$pid" "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -U "$db_user" \
    || { show_log "$LOG_DIR/postgres.log"; return 1; }
  "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U "$db_user" espace_test
  export ESPACE_TEST_PG_URL="postgres://$db_user@127.0.0.1:$PG_PORT/espace_test"
  echo "    postgres ($(basename "$(dirname "$PG_BIN")")) on 127.0.0.1:$PG_PORT, database espace_test"
}

# make_mtls_pki DIR: a throwaway CA, a server certificate for 127.0.0.1 and
# two client certificates (EC P-256, valid 2 days), as PEM files in DIR.
make_mtls_pki() {
  local d=$1
  mkdir -p "$d"
  chmod 700 "$d"
  newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$d/$1.key"; }
  # sign NAME SUBJECT EXTENSIONS: a certificate for a new key, signed by the CA
  sign() {
    newkey "$1"
    openssl req -new -key "$d/$1.key" -subj "$2" \
      | openssl x509 -req -CA "$d/ca.pem" -CAkey "$d/ca.key" -set_serial "0x$(openssl rand -hex 8)" \
        -days 2 -extfile <(printf '%s\n' "$3") -out "$d/$1.pem" 2>/dev/null
  }
  newkey ca
  openssl req -x509 -new -key "$d/ca.key" -subj "/C=FR/O=Espace PS Test/CN=espace-ps test CA" -days 2 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$d/ca.pem"
  local leaf
  leaf=$'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature'
  sign server "/C=FR/O=Espace PS Test/CN=127.0.0.1" "$leaf"$'\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1'
  sign client "/C=FR/O=Espace PS Test/CN=espace-ps-client" "$leaf"$'\nextendedKeyUsage=clientAuth'
  sign other "/C=FR/O=Espace PS Test/CN=other-client" "$leaf"$'\nextendedKeyUsage=clientAuth'
  chmod 600 "$d"/*.key
}

# write_nginx_conf FILE DIR PKI SECRET: nginx on MTLS_PORT in front of the
# provider on OIDC_PORT. TLS with the test CA's server certificate; a client
# certificate is asked for (optional_no_ca: nginx records the verification
# against the test CA in $ssl_client_verify and the provider refuses anything
# but SUCCESS); the certificate goes to the provider in X-SSL-Client-Cert,
# with the shared secret that makes the provider believe that header.
write_nginx_conf() {
  local file=$1 dir=$2 pki=$3 secret=$4 user_line=""
  # As root the workers would switch to nobody, who cannot enter the run dir.
  [[ $(id -u) -eq 0 ]] && user_line="user root;"
  cat >"$file" <<NGINX_CONF
# generated by scripts/test.sh: TLS terminator in front of the test provider
$user_line
daemon off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $LOG_DIR/nginx-error.log info;
events { worker_connections 64; }
http {
  access_log $LOG_DIR/nginx-access.log;
  client_body_temp_path $dir/client_body;
  proxy_temp_path $dir/proxy;
  fastcgi_temp_path $dir/fastcgi;
  uwsgi_temp_path $dir/uwsgi;
  scgi_temp_path $dir/scgi;
  server {
    listen 127.0.0.1:$MTLS_PORT ssl;
    ssl_certificate $pki/server.pem;
    ssl_certificate_key $pki/server.key;
    ssl_client_certificate $pki/ca.pem;
    ssl_verify_client optional_no_ca;
    location / {
      proxy_pass http://127.0.0.1:$OIDC_PORT;
      proxy_http_version 1.1;
      proxy_set_header X-SSL-Client-Cert \$ssl_client_escaped_cert;
      proxy_set_header X-SSL-Client-Verify \$ssl_client_verify;
      proxy_set_header X-Mtls-Terminator-Secret $secret;
    }
  }
}
NGINX_CONF
  chmod 600 "$file"
}

# The provider (plain HTTP) with nginx in front of it for mutual TLS.
start_oidc_provider() {
  OIDC_PORT=$(free_port)
  MTLS_PORT=$(free_port)
  local pki=$RUN_DIR/mtls ngx=$RUN_DIR/nginx secret
  make_mtls_pki "$pki"
  secret=$(openssl rand -hex 24)

  (cd "$PROVIDER_DIR" && OIDC_MTLS_TERMINATOR_SECRET=$secret \
    exec node server.mjs --port "$OIDC_PORT" --mtls-url "https://127.0.0.1:$MTLS_PORT") \
    >"$LOG_DIR/oidc-provider.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")

  mkdir -p "$ngx"
  chmod 700 "$ngx"
  write_nginx_conf "$ngx/nginx.conf" "$ngx" "$pki" "$secret"
  : >"$LOG_DIR/nginx-error.log"
  nginx -p "$ngx" -e "$LOG_DIR/nginx-error.log" -c "$ngx/nginx.conf" >"$LOG_DIR/nginx.log" 2>&1 &
  local nginx_pid=$!
  PIDS+=("$nginx_pid")

  wait_until "oidc-provider" 30 "$pid" curl -fsS "http://127.0.0.1:$OIDC_PORT/__test/health" \
    || { show_log "$LOG_DIR/oidc-provider.log"; return 1; }
  wait_until "nginx (mutual TLS terminator)" 30 "$nginx_pid" \
    curl -fsS --cacert "$pki/ca.pem" "https://127.0.0.1:$MTLS_PORT/__test/health" \
    || { show_log "$LOG_DIR/nginx-error.log"; show_log "$LOG_DIR/nginx.log"; return 1; }
  export ESPACE_TEST_OIDC_ISSUER="http://127.0.0.1:$OIDC_PORT/auth/realms/esante-wallet"
  export ESPACE_TEST_OIDC_CONTROL="http://127.0.0.1:$OIDC_PORT"
  export ESPACE_TEST_MTLS_URL="https://127.0.0.1:$MTLS_PORT"
  export ESPACE_TEST_MTLS_CA=$pki/ca.pem
  export ESPACE_TEST_MTLS_CLIENT_CERT=$pki/client.pem
  export ESPACE_TEST_MTLS_CLIENT_KEY=$pki/client.key
  local dn
  dn=$(openssl x509 -in "$pki/client.pem" -noout -subject -nameopt RFC2253)
  export ESPACE_TEST_MTLS_CLIENT_DN=${dn#subject=}
  export ESPACE_TEST_MTLS_OTHER_CERT=$pki/other.pem
  export ESPACE_TEST_MTLS_OTHER_KEY=$pki/other.key
  echo "    oidc-provider on 127.0.0.1:$OIDC_PORT, behind nginx (mutual TLS) on 127.0.0.1:$MTLS_PORT"
}

print_exports() {
  local v
  for v in ESPACE_TEST_REDIS_URL ESPACE_TEST_PG_URL ESPACE_TEST_OIDC_ISSUER ESPACE_TEST_OIDC_CONTROL \
    ESPACE_TEST_MTLS_URL ESPACE_TEST_MTLS_CA ESPACE_TEST_MTLS_CLIENT_CERT ESPACE_TEST_MTLS_CLIENT_KEY \
    ESPACE_TEST_MTLS_CLIENT_DN ESPACE_TEST_MTLS_OTHER_CERT ESPACE_TEST_MTLS_OTHER_KEY; do
    printf 'export %s=%q\n' "$v" "${!v}"
  done
}

# ------------------------------------------------------------------ cargo

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
[[ $TARGET_DIR == /* ]] || TARGET_DIR=$ROOT/$TARGET_DIR
BIN=$TARGET_DIR/debug/espace-ps
DEMO_BIN=$TARGET_DIR/debug/espace-ps-demo

# The moved-clock runs: the tests whose data or expectations hold dates.
MOVED_CLOCKS=(2028-02-29T10:00:00Z 2025-12-31T23:30:00Z)
DATE_SENSITIVE_TESTS='package(espace-ps-records) | (package(espace-ps) & test(/^it::(portal|lockout|session_end)::/))'

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

  run_browser_stage
}

# Browser tests: Playwright (playwright-core, npm) in Debian's Chromium,
# against Orthanc and `espace-ps-demo demo` (the binary built above), which
# proxy/tests/browser/lib/stack.mjs starts once for every test file.
run_browser_stage() {
  stage "browser tests (Playwright in Chromium)"
  local dir=$ROOT/proxy/tests/browser
  # (Orthanc, Chromium and sqlite3: install_prerequisites, checked by check_programs)
  ESPACE_PS_DEMO_BIN=$DEMO_BIN timeout 300 node "$dir/lib/stack.mjs" \
    node --test --test-concurrency=1 "$dir/"
}

# ------------------------------------------------------------------ main

cd "$ROOT"
mkdir -p "$LOG_DIR"

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

stage "start services"
RUN_DIR=$(mktemp -d "$ROOT/.test-run/run.XXXXXX")
start_redis
start_postgres
start_oidc_provider

if [[ $KEEP_SERVICES == 1 ]]; then
  stage_done
  echo
  echo "Services are up; in another shell:"
  echo
  print_exports
  echo
  echo "Ctrl-C stops them."
  trap 'echo; echo "stopping services"; exit 0' INT TERM
  # Wait for a signal, or for a service to die.
  wait -n "${PIDS[@]}" || true
  echo "a service exited; stopping" >&2
  exit 1
fi

print_exports | sed 's/^/    /'

stage "oidc provider self-test"
(cd "$PROVIDER_DIR" && node selftest.mjs 2>&1 | grep -v 'oidc-provider WARNING')

if [[ ${ESPACE_TEST_SKIP_CARGO:-0} == 1 ]]; then
  stage "cargo stages"
  notice "skipped (ESPACE_TEST_SKIP_CARGO=1)"
else
  run_cargo_stages
fi
stage_done
