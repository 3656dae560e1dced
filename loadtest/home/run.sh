#!/usr/bin/env bash
# The home page benchmark (issue 11 §3): "Derniers résultats non vus" of a
# professional with 2,000 unseen reports in the 1M-patient records, on
# PostgreSQL. See README.md.
#
#   PG=postgres://espace@127.0.0.1:PORT loadtest/home/run.sh                # optimized figures
#   PG=… PATIENTS=20000 REQUESTS=50 PROFILE=debug loadtest/home/run.sh      # a sanity run
#
# PG: a PostgreSQL server URL without the database (the role may create
# databases); the script creates records_home_<patients> (kept, reused when
# it exists: generating 1M patients takes minutes) and a fresh portal
# database portal_home_bench (dropped at the end).
#
# Two timings, one after the other: the home page's own code for its data
# (`espace-ps-home-bench run`, in process), then the whole page as a doctor
# waits for it: `GET /` with a session cookie, over HTTP, through a running
# `espace-ps serve` (`espace-ps-home-bench http`; the session is opened by a
# Hopital Manager launch signed here with a throw-away key). HTTP=0 skips
# the second.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
: "${PG:?PG=postgres://user@host:port (no database)}"
PATIENTS="${PATIENTS:-1000000}"
REQUESTS="${REQUESTS:-500}"
UNSEEN="${UNSEEN:-2000}"
PROFILE="${PROFILE:-release}" # release, deb (HELPERS: the optimized build of a shared machine) or debug
TODAY="${TODAY:-2025-06-15}"   # pinned: the data never depends on the real date
HTTP="${HTTP:-1}"
TARGET="${CARGO_TARGET_DIR:-target}"
DOCTOR=899700123450 # Dr Élise Martin-Dupré (demo records)
case $PROFILE in
  debug) cargo_profile=dev ;;
  *) cargo_profile=$PROFILE ;;
esac
cargo build --profile "$cargo_profile" -p espace-ps -p espace-ps-search-bench -p espace-ps-home-bench \
  --bin espace-ps --bin espace-ps-search-bench --bin espace-ps-home-bench
search="$TARGET/$PROFILE/espace-ps-search-bench"
home="$TARGET/$PROFILE/espace-ps-home-bench"
espace="$TARGET/$PROFILE/espace-ps"

log() { printf '[home-bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

records_db="records_home_${PATIENTS}"
psql_admin() { psql "$PG/postgres" -v ON_ERROR_STOP=1 -qAt -c "$1"; }
if [ -z "$(psql_admin "SELECT 1 FROM pg_database WHERE datname = '$records_db'")" ]; then
  psql_admin "CREATE DATABASE $records_db"
  "$search" generate --url "$PG/$records_db" --patients "$PATIENTS" --today "$TODAY"
fi
psql_admin "DROP DATABASE IF EXISTS portal_home_bench"
psql_admin "CREATE DATABASE portal_home_bench"

RUN=$(mktemp -d /tmp/home-bench.XXXXXX)
ESPACE_PID=""
cleanup() {
  [ -n "$ESPACE_PID" ] && kill "$ESPACE_PID" 2>/dev/null && wait "$ESPACE_PID" 2>/dev/null
  [ "${KEEP_RUN_DIR:-0}" = 1 ] || rm -rf "$RUN"
  psql_admin "DROP DATABASE IF EXISTS portal_home_bench WITH (FORCE)" || true
}
trap cleanup EXIT

"$home" seed --url "$PG/$records_db" --unseen "$UNSEEN" --today "$TODAY"
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'); load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "command: PG=… PATIENTS=$PATIENTS UNSEEN=$UNSEEN REQUESTS=$REQUESTS PROFILE=$PROFILE TODAY=$TODAY loadtest/home/run.sh"
"$home" run --records "$PG/$records_db" --portal-db "$PG/portal_home_bench" \
  --policies policies --today "$TODAY" --requests "$REQUESTS"

if [ "$HTTP" = 1 ]; then
  read -r PORT ADMIN_PORT UPSTREAM_PORT <<<"$(python3 - <<'EOF'
import socket
socks = []
for _ in range(3):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
)"
  # espace-ps lives on TODAY (noon UTC), as the generated records do.
  offset=$(( $(date -u -d "$TODAY 12:00" +%s) - $(date -u +%s) ))
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$RUN/hm.key.pem" 2>/dev/null
  openssl pkey -in "$RUN/hm.key.pem" -pubout -out "$RUN/hm.pub.pem"
  cat >"$RUN/espace-ps.toml" <<EOF
[server]
listen = "127.0.0.1:$PORT"
admin_listen = "127.0.0.1:$ADMIN_PORT"
public_url = "http://127.0.0.1:$PORT"
threads = 2

[upstream]
# Not asked by the home page.
address = "127.0.0.1:$UPSTREAM_PORT"

[hm_sso]
issuer = "home-bench"
audience = "espace-ps"
public_keys = ["$RUN/hm.pub.pem"]
allowed_origins = ["http://hm.bench.invalid"]

[database]
url = "$PG/portal_home_bench"
# A throw-away database owned by the benchmark's role.
allow_audit_rewrite = true

[records]
url = "$PG/$records_db"

[policies]
dir = "$ROOT/policies"

[logging]
level = "warn"

[testing]
clock_offset_secs = $offset
EOF
  "$espace" check-config "$RUN/espace-ps.toml" >&2 || die "configuration"
  "$espace" serve --config "$RUN/espace-ps.toml" </dev/null >"$RUN/espace-ps.out" 2>"$RUN/espace-ps.log" &
  ESPACE_PID=$!
  for _ in $(seq 100); do
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$ADMIN_PORT/-/healthz" && break
    sleep 0.2
  done
  curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$ADMIN_PORT/-/healthz" || { tail "$RUN/espace-ps.log" >&2; die "espace-ps did not start"; }

  # A Hopital Manager launch (RS256, system clock) POSTed from an allowed
  # origin, then its confirmation: the session cookie.
  . "$ROOT/loadtest/lib/hm-sso.sh"
  COOKIE=$(hm_sso_cookie "http://127.0.0.1:$PORT" "$RUN/hm.key.pem" home-bench "$DOCTOR" "$RUN") ||
    die "no session cookie from the SSO launch"

  "$home" http --base "http://127.0.0.1:$PORT" --cookie "$COOKIE" --requests "$REQUESTS"
  echo "espace-ps: $(awk '/^VmRSS:/ {print $2 " kB"}' "/proc/$ESPACE_PID/status") resident after the run"
fi
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
