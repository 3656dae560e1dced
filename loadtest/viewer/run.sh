#!/usr/bin/env bash
# loadtest/viewer/run.sh: viewer requests through espace-ps vs direct to
# Orthanc vs a plain nginx reverse proxy, and espace-ps's memory while it
# streams a large study archive. See loadtest/viewer/README.md.
#
# Everything runs on loopback, in a temporary directory, and is stopped on
# exit (trap). Results: loadtest/viewer/results/latest.md (also printed).
#
# Knobs (environment): DURATION (s, default 20), WARMUP (s, 5),
# CONNECTIONS (8), WRK_THREADS (2), STUDIES (demo studies loaded, 50),
# ARCHIVE_INSTANCES (512) x ARCHIVE_ROWS (1024) x ARCHIVE_COLS (1024) 16-bit
# instances added to the archived study (512 x 2 MiB = 1 GiB),
# ESPACE_PS_BIN (default $CARGO_TARGET_DIR or target, /release/espace-ps),
# ESPACE_PS_DEMO_BIN (the demo binary, for demo-data; default beside it),
# KEEP_RUN_DIR=1 to keep the temporary directory (logs, configs),
# LATENCY=0 to skip the one-connection latency runs, LAT_ROUNDS (4) rounds of
# DURATION / LAT_ROUNDS seconds (at least 5) per path for them,
# PERF=1 to record a CPU profile of espace-ps and of bare Pingora (perf
# record) during their measured runs; the top symbols are printed and the data kept in the run
# directory (set KEEP_RUN_DIR=1 too to read it afterwards; PERF_ARGS adds
# options, e.g. "--call-graph dwarf").
# PAIRED=N adds N rounds in which bare Pingora and espace-ps are loaded at
# the same time, each by its own wrk: their CPU per request compared in one
# window of the machine (section 4a).
# INSTRUCTIONS=N also counts, under callgrind, the user-space instructions
# each proxy executes per request over N requests (section 4c; repeatable,
# unlike CPU time; needs valgrind).
# STRACE=1 counts espace-ps's and bare Pingora's system calls (strace -c)
# during their measured runs (strace slows them: CPU figures of such a run
# are not comparable; the calls per request are).
# ONLY=saturated runs the 8-connection part only (no one-connection runs,
# no 1 GiB archive study, no archive download); ONLY=latency the
# one-connection part only; PATHS (default "direct
# nginx bare espace") picks the paths, e.g. PATHS="bare espace"; ROUNDS
# (default 1) repeats the saturated part that many times in a row (even
# rounds take the paths in reverse order: Orthanc slows down as a run goes
# on) and the report adds espace-ps's CPU per request over bare Pingora's,
# per round.
# The quick check of espace-ps's own cost:
#   ONLY=saturated ROUNDS=4 PATHS="bare espace" loadtest/viewer/run.sh
# REQS (default "frame rendered preview download") picks the requests;
# "download" (one instance's DICOM file, `/instances/{id}/file`) writes an
# audit row on every request (with its records lookups and decision): the
# audit trail's cost on the hot path (issue 13). AUDIT_DB (default sqlite)
# = postgres puts espace-ps's database (accounts, audit trail) in a
# throwaway PostgreSQL started here, used by an insert-only role as in
# production (docs/operations.md, "Audit trail"). PG_SETTINGS adds
# server settings to that PostgreSQL (e.g. "-c synchronous_commit=off": a
# diagnostic of how much of the added time is the commit's flush, never a
# production setting: the row must be durable before the bytes leave).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/loadtest/viewer
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-5}
CONNECTIONS=${CONNECTIONS:-8}
WRK_THREADS=${WRK_THREADS:-2}
STUDIES=${STUDIES:-50}
ARCHIVE_INSTANCES=${ARCHIVE_INSTANCES:-512}
ARCHIVE_ROWS=${ARCHIVE_ROWS:-1024}
ARCHIVE_COLS=${ARCHIVE_COLS:-1024}
BIN=${ESPACE_PS_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/release/espace-ps}
ONLY=${ONLY:-}
ROUNDS=${ROUNDS:-1}
WANTED_PATHS=" ${PATHS:-direct nginx bare espace} "
WANTED_REQS=" ${REQS:-frame rendered preview download} "
AUDIT_DB=${AUDIT_DB:-sqlite}
case $ONLY in
  "" | saturated | latency) ;;
  *) printf 'ONLY must be empty, "saturated" or "latency", not %s\n' "$ONLY" >&2; exit 2 ;;
esac
[[ $ROUNDS =~ ^[0-9]+$ ]] || { printf 'ROUNDS must be a whole number (0: no saturated runs one path at a time)\n' >&2; exit 2; }
PAIRED=${PAIRED:-0}
[[ $PAIRED =~ ^[0-9]+$ ]] || { printf 'PAIRED must be a whole number\n' >&2; exit 2; }
INSTRUCTIONS=${INSTRUCTIONS:-0}
[[ $INSTRUCTIONS =~ ^[0-9]+$ ]] || { printf 'INSTRUCTIONS must be a whole number\n' >&2; exit 2; }
for w in $WANTED_PATHS; do
  [[ $w =~ ^(direct|nginx|bare|espace)$ ]] || { printf 'PATHS: unknown path %s (direct, nginx, bare, espace)\n' "$w" >&2; exit 2; }
done
for w in $WANTED_REQS; do
  [[ $w =~ ^(frame|rendered|preview|download)$ ]] || { printf 'REQS: unknown request %s (frame, rendered, preview, download)\n' "$w" >&2; exit 2; }
done
[[ $AUDIT_DB =~ ^(sqlite|postgres)$ ]] || { printf 'AUDIT_DB must be sqlite or postgres\n' >&2; exit 2; }
wanted() { [[ $WANTED_PATHS == *" $1 "* ]]; }
if ((PAIRED > 0 || INSTRUCTIONS > 0)) && ! { wanted bare && wanted espace; }; then
  printf 'PAIRED and INSTRUCTIONS need both bare and espace in PATHS\n' >&2
  exit 2
fi
wanted_req() { [[ $WANTED_REQS == *" $1 "* ]]; }
if [[ $ONLY == saturated ]]; then
  LATENCY=0
fi
# The 1 GiB archive study and its download: only in the full run.
ARCHIVE=1
[[ -n $ONLY ]] && ARCHIVE=0
DOCTOR=899700123450 # Dr Élise Martin-Dupré (demo records)

log() { printf '[viewer-bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

# --- tools -----------------------------------------------------------------
need_apt=()
command -v wrk >/dev/null || need_apt+=(wrk)
wanted nginx && { [[ -x /usr/sbin/nginx ]] || need_apt+=(nginx-light); }
command -v sqlite3 >/dev/null || need_apt+=(sqlite3)
command -v curl >/dev/null || need_apt+=(curl)
command -v openssl >/dev/null || need_apt+=(openssl)
((INSTRUCTIONS > 0)) && { command -v callgrind_control >/dev/null || need_apt+=(valgrind); }
[[ $AUDIT_DB == postgres ]] && { ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql); }
if ((${#need_apt[@]})); then
  log "installing ${need_apt[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_apt[@]}" >&2
fi
command -v python3 >/dev/null || die "python3 is needed (standard library only)"
# shellcheck source=../../scripts/lib/orthanc.sh
. "$ROOT/scripts/lib/orthanc.sh"
orthanc_install
if [[ ! -x $BIN ]]; then
  log "no $BIN: building it (cargo build --release -p espace-ps)"
  (cd "$ROOT" && cargo build --release -p espace-ps) >&2
fi
DEMO_BIN=${ESPACE_PS_DEMO_BIN:-$(dirname "$BIN")/espace-ps-demo}
if [[ ! -x $DEMO_BIN ]]; then
  log "no $DEMO_BIN: building it (cargo build --release -p espace-ps-demo)"
  (cd "$ROOT" && cargo build --release -p espace-ps-demo) >&2
fi
BARE_BIN=${BARE_PROXY_BIN:-$(dirname "$BIN")/examples/bare_proxy}
if wanted bare && [[ ! -x $BARE_BIN ]]; then
  log "no $BARE_BIN: building it (cargo build --release -p espace-ps --example bare_proxy)"
  (cd "$ROOT" && cargo build --release -p espace-ps --example bare_proxy) >&2
fi

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
# --- run directory, cleanup ------------------------------------------------
RUN=$(mktemp -d /tmp/espace-viewer-bench.XXXXXX)
ESPACE_PID="" NGINX_PID="" BARE_PID="" SAMPLER_PID="" PG_DATA="" VG_PID=""
cleanup() {
  local rc=$?
  set +e
  [[ -n $SAMPLER_PID ]] && kill "$SAMPLER_PID" 2>/dev/null
  for pid in $ESPACE_PID $NGINX_PID $BARE_PID $VG_PID; do
    kill -TERM "$pid" 2>/dev/null
  done
  for pid in $ESPACE_PID $NGINX_PID $BARE_PID $VG_PID; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  orthanc_stop "$RUN/orthanc"
  [[ -n $PG_DATA ]] && "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null 2>&1
  if [[ ${KEEP_RUN_DIR:-0} == 1 ]]; then
    log "run directory kept: $RUN"
  else
    rm -rf "$RUN"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}
read -r ORTHANC_PORT ORTHANC_DICOM ESPACE_PORT ADMIN_PORT NGINX_PORT BARE_PORT PG_PORT <<<"$(free_ports 7)"

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

wait_http() { # URL: until it answers anything (bounded)
  for _ in $(seq 100); do
    curl -s -o /dev/null --max-time 1 "$1" && return 0
    sleep 0.1
  done
  return 1
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# CPU time of processes (every thread), in µs: the scheduler's own count
# (/proc/PID/task/*/schedstat, in ns), not the 10-ms ticks of
# /proc/PID/stat (a 10-s run of a proxy is about 40 ticks: one tick more or
# less moved a ratio by 2-3%). TICKS: units per second.
cpu_ticks() {
  local p
  for p in "$@"; do cat "/proc/$p/task/"*/schedstat; done 2>/dev/null | awk '{t += $1} END {printf "%d\n", t / 1000}'
}
TICKS=1000000

# --- 1. Orthanc and the demo studies ---------------------------------------
log "starting Orthanc on 127.0.0.1:$ORTHANC_PORT"
orthanc_start "$RUN/orthanc" "$ORTHANC_PORT" "$ORTHANC_DICOM" >/dev/null || die "Orthanc did not start"
ORTHANC_PID=$(<"$RUN/orthanc/orthanc.pid")
ORTHANC=http://127.0.0.1:$ORTHANC_PORT

log "demo records and $STUDIES studies"
"$DEMO_BIN" demo-data --records "sqlite://$RUN/records.sqlite" --orthanc "$ORTHANC" --studies "$STUDIES" >"$RUN/demo-data.log" 2>&1 ||
  { tail -c 2000 "$RUN/demo-data.log" >&2; die "demo-data"; }
grep '^demo-data:' "$RUN/demo-data.log" >&2 || true

# Two of Élise's studies that are in Orthanc: one for the request benchmark,
# one to grow to about 1 GB for the archive.
mapfile -t candidates < <(sqlite3 "$RUN/records.sqlite" \
  "SELECT DISTINCT e.study_instance_uid FROM rec_exams e JOIN rec_care_team c ON c.dossier_number = e.dossier_number
   WHERE c.national_id = '$DOCTOR' AND e.study_instance_uid IS NOT NULL ORDER BY e.exam_date DESC, e.study_instance_uid")
found=()
for uid in "${candidates[@]}"; do
  id=$(curl -fsS -X POST --data-binary "$uid" "$ORTHANC/tools/lookup" | json '" ".join(e["ID"] for e in d if e["Type"] == "Study")')
  [[ -n $id ]] && found+=("$uid $id")
  ((${#found[@]} == 2)) && break
done
NEEDED=2
((ARCHIVE)) || NEEDED=1 # no archive
((${#found[@]} >= NEEDED)) || die "fewer than $NEEDED of the doctor's studies are in Orthanc (load more with STUDIES)"
read -r STUDY_UID STUDY_ID <<<"${found[0]}"
BIG_UID="" BIG_ID=""
((ARCHIVE)) && read -r BIG_UID BIG_ID <<<"${found[1]}"
SERIES_ID=$(curl -fsS "$ORTHANC/studies/$STUDY_ID" | json 'd["Series"][0]')
SERIES_UID=$(curl -fsS "$ORTHANC/series/$SERIES_ID" | json 'd["MainDicomTags"]["SeriesInstanceUID"]')
INSTANCE_ID=$(curl -fsS "$ORTHANC/series/$SERIES_ID" | json 'd["Instances"][0]')
INSTANCE_UID=$(curl -fsS "$ORTHANC/instances/$INSTANCE_ID" | json 'd["MainDicomTags"]["SOPInstanceUID"]')
MODALITY=$(curl -fsS "$ORTHANC/series/$SERIES_ID" | json 'd["MainDicomTags"].get("Modality", "?")')
log "benchmarked study: $MODALITY, instance $INSTANCE_ID${BIG_ID:+; archived study: $BIG_ID}"

if ((ARCHIVE)); then
BIG_PATIENT=$(curl -fsS "$ORTHANC/studies/$BIG_ID" | json 'd["PatientMainDicomTags"]["PatientID"]')
log "adding $ARCHIVE_INSTANCES instances of ${ARCHIVE_ROWS}x${ARCHIVE_COLS} 16-bit to the archived study"
t0=$SECONDS
python3 "$HERE/gen_study.py" --orthanc "$ORTHANC" --study-uid "$BIG_UID" --patient-id "$BIG_PATIENT" \
  --count "$ARCHIVE_INSTANCES" --rows "$ARCHIVE_ROWS" --cols "$ARCHIVE_COLS" >"$RUN/uploaded"
BIG_STATS=$(curl -fsS "$ORTHANC/studies/$BIG_ID/statistics")
BIG_BYTES=$(json 'd["DiskSize"]' <<<"$BIG_STATS")
BIG_INSTANCES=$(json 'd["CountInstances"]' <<<"$BIG_STATS")
log "archived study: $BIG_INSTANCES instances, $BIG_BYTES bytes on disk (upload $((SECONDS - t0)) s)"
fi

# --- 2. espace-ps ----------------------------------------------------------
# A copy of the policies in which the doctor holds the download habilitation.
cp -r "$ROOT/policies" "$RUN/policies"
python3 - "$RUN/policies/groups.toml" "$DOCTOR" <<'EOF'
import re, sys
path, doctor = sys.argv[1], sys.argv[2]
text = open(path, encoding="utf-8").read()
head, sep, rest = text.partition("[groups.dicom-download]")
assert sep, "no [groups.dicom-download] in groups.toml"
rest = re.sub(r"(?m)^national_ids = \[\]", f'national_ids = ["{doctor}"]', rest, count=1)
open(path, "w", encoding="utf-8").write(head + sep + rest)
EOF
grep -q "\"$DOCTOR\"" "$RUN/policies/groups.toml" || die "could not grant the download habilitation in the copy"
"$BIN" policies check "$RUN/policies" >"$RUN/policies-check.log" 2>&1 || { cat "$RUN/policies-check.log" >&2; die "policies check"; }

# espace-ps's own database: SQLite beside it, or a throwaway PostgreSQL
# migrated by an owner role and used by an insert-only role (production's
# least privilege: the audit trail may only be appended to).
AS_PG=()
if [[ $AUDIT_DB == postgres ]]; then
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  mkdir -p "$RUN/pg"
  if [[ $(id -u) == 0 ]]; then
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
    chown postgres "$RUN/pg"
    chmod o+x "$RUN" # the server's user reaches its directory (traverse only)
    AS_PG=(runuser -u postgres --)
  fi
  "${AS_PG[@]}" "$PGBIN/initdb" -D "$RUN/pg/data" -U owner --auth=trust >/dev/null
  PG_DATA=$RUN/pg/data
  "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$PG_DATA" -l "$RUN/pg/pg.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $RUN/pg ${PG_SETTINGS:-}" start >/dev/null || die "PostgreSQL did not start"
  psql_owner() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U owner "$@"; }
  psql_owner -d postgres -c "CREATE DATABASE espace_ps" -c "CREATE ROLE espace_ps_app LOGIN"
  "$BIN" migrate --database-url "postgres://owner@127.0.0.1:$PG_PORT/espace_ps" >"$RUN/migrate.log" 2>&1 || { cat "$RUN/migrate.log" >&2; die "migrate"; }
  psql_owner -d espace_ps <<'SQL'
GRANT USAGE ON SCHEMA public TO espace_ps_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON accounts, seen_reports, dossier_grants,
    dossier_attempts, dossier_attempt_accounts, dossier_number_budgets,
    session_revocations TO espace_ps_app;
GRANT SELECT, INSERT ON audit_events TO espace_ps_app;
GRANT SELECT ON _sqlx_migrations TO espace_ps_app;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO espace_ps_app;
SQL
  DATABASE_TOML="url = \"postgres://espace_ps_app@127.0.0.1:$PG_PORT/espace_ps\"
migrate = false"
  audit_count() { psql_owner -d espace_ps -At -c "SELECT COUNT(*) FROM audit_events WHERE event = '$1'"; }
else
  DATABASE_TOML="url = \"sqlite://$RUN/espace-ps.sqlite?mode=rwc\""
  audit_count() { sqlite3 "$RUN/espace-ps.sqlite" "SELECT COUNT(*) FROM audit_events WHERE event = '$1'"; }
fi

# Hopital Manager SSO with a throw-away key: the simplest way to a session.
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$RUN/hm.key.pem" 2>/dev/null
openssl pkey -in "$RUN/hm.key.pem" -pubout -out "$RUN/hm.pub.pem"
cat >"$RUN/espace-ps.toml" <<EOF
[server]
listen = "127.0.0.1:$ESPACE_PORT"
admin_listen = "127.0.0.1:$ADMIN_PORT"
public_url = "http://127.0.0.1:$ESPACE_PORT"
threads = 2

[upstream]
address = "127.0.0.1:$ORTHANC_PORT"

[hm_sso]
issuer = "viewer-bench"
audience = "espace-ps"
public_keys = ["$RUN/hm.pub.pem"]
allowed_origins = ["http://hm.bench.invalid"]

[database]
$DATABASE_TOML

[records]
url = "sqlite://$RUN/records.sqlite?mode=ro"

[policies]
dir = "$RUN/policies"

[logging]
level = "warn"
EOF
"$BIN" check-config "$RUN/espace-ps.toml" >&2 || die "configuration"
log "starting espace-ps on 127.0.0.1:$ESPACE_PORT"
"$BIN" serve --config "$RUN/espace-ps.toml" </dev/null >"$RUN/espace-ps.out" 2>"$RUN/espace-ps.log" &
ESPACE_PID=$!
wait_http "http://127.0.0.1:$ADMIN_PORT/-/healthz" || { tail "$RUN/espace-ps.log" >&2; die "espace-ps did not start"; }

. "$ROOT/loadtest/lib/hm-sso.sh"
# open_session PORT: a session of the doctor on the espace-ps listening on
# PORT, through Hopital Manager's SSO; prints its Cookie header value.
open_session() { hm_sso_cookie "http://127.0.0.1:$1" "$RUN/hm.key.pem" viewer-bench "$DOCTOR" "$RUN"; }
COOKIE=$(open_session "$ESPACE_PORT") || die "no session"
log "session opened for $DOCTOR"

# --- 3. nginx --------------------------------------------------------------
if wanted nginx; then
mkdir -p "$RUN/nginx/tmp"
cat >"$RUN/nginx/nginx.conf" <<EOF
worker_processes 2;
daemon off;
pid $RUN/nginx/nginx.pid;
error_log $RUN/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $RUN/nginx/tmp/body;
  proxy_temp_path $RUN/nginx/tmp/proxy;
  fastcgi_temp_path $RUN/nginx/tmp/fastcgi;
  uwsgi_temp_path $RUN/nginx/tmp/uwsgi;
  scgi_temp_path $RUN/nginx/tmp/scgi;
  upstream orthanc {
    server 127.0.0.1:$ORTHANC_PORT;
    keepalive 32;
  }
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location / {
      proxy_pass http://orthanc;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
log "starting nginx on 127.0.0.1:$NGINX_PORT"
/usr/sbin/nginx -e "$RUN/nginx/error.log" -p "$RUN/nginx" -c "$RUN/nginx/nginx.conf" </dev/null >"$RUN/nginx/out.log" 2>&1 &
NGINX_PID=$!
wait_http "http://127.0.0.1:$NGINX_PORT/system" || { cat "$RUN/nginx/error.log" >&2; die "nginx did not start"; }
fi
# The floor: a Pingora proxy that only forwards (proxy/examples/bare_proxy.rs).
if wanted bare; then
log "starting the bare Pingora proxy on 127.0.0.1:$BARE_PORT"
"$BARE_BIN" "127.0.0.1:$BARE_PORT" "127.0.0.1:$ORTHANC_PORT" 2 </dev/null >"$RUN/bare.log" 2>&1 &
BARE_PID=$!
wait_http "http://127.0.0.1:$BARE_PORT/system" || { cat "$RUN/bare.log" >&2; die "bare proxy did not start"; }
fi
# shellcheck disable=SC2046
nginx_pids() { echo "$NGINX_PID" $(ps -o pid= --ppid "$NGINX_PID"); }

# --- 4. wrk ----------------------------------------------------------------
REQUESTS=()
wanted_req frame && REQUESTS+=("web-viewer frame (JSON, JPEG 95)|/web-viewer/instances/jpeg95-${INSTANCE_ID}_0")
wanted_req rendered && REQUESTS+=("DICOMweb rendered (JPEG)|/dicom-web/studies/$STUDY_UID/series/$SERIES_UID/instances/$INSTANCE_UID/rendered")
wanted_req preview && REQUESTS+=("Orthanc preview (PNG)|/instances/$INSTANCE_ID/preview")
wanted_req download && REQUESTS+=("DICOM file download (audited each time)|/instances/$INSTANCE_ID/file")
AUDIT_VIEWS_BEFORE=$(audit_count images_view) AUDIT_DOWNLOADS_BEFORE=$(audit_count dicom_download)
PATHS=()
wanted direct && PATHS+=("direct|http://127.0.0.1:$ORTHANC_PORT")
wanted nginx && PATHS+=("nginx|http://127.0.0.1:$NGINX_PORT")
wanted bare && PATHS+=("bare Pingora|http://127.0.0.1:$BARE_PORT")
wanted espace && PATHS+=("espace-ps|http://127.0.0.1:$ESPACE_PORT")
viewer_statuses() { # viewer answers of espace-ps so far, by status class: "3xx 4xx 5xx"
  curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" | awk '/^espace_requests_total\{/ && /route="viewer"/ {
      for (c = 3; c <= 5; c++) if ($0 ~ "status=\"" c "xx\"") n[c] += $NF
    } END {print n[3] + 0, n[4] + 0, n[5] + 0}'
}
aborted() { grep -c 'Fail to proxy: Downstream' "$RUN/espace-ps.log" || true; }
ROWS=()
mkdir -p "$RUN/wrk"
SATURATED_ROUNDS=$ROUNDS
[[ $ONLY == latency ]] && SATURATED_ROUNDS=0
for round in $(seq "$SATURATED_ROUNDS"); do
((ROUNDS > 1)) && log "saturated runs, round $round of $ROUNDS"
# Even rounds run the paths in reverse order. Orthanc slows down as a run
# goes on (direct alone, six 10-s runs: 3,940 frames/s in the first, 2,580
# in the sixth; not the machine: a CPU-bound loop keeps its pace; not work
# of Orthanc's after the uploads: it was idle before the first run), and a
# proxy's CPU per request rises as its request rate falls: in one fixed
# order the later path would always be measured in the slower phase.
# Reversed every other round, the drift falls on both alike.
ROUND_PATHS=("${PATHS[@]}")
if ((round % 2 == 0)); then
  ROUND_PATHS=()
  for ((i = ${#PATHS[@]} - 1; i >= 0; i--)); do ROUND_PATHS+=("${PATHS[i]}"); done
fi
for r in "${REQUESTS[@]}"; do
  rname=${r%%|*} rpath=${r#*|}
  for p in "${ROUND_PATHS[@]}"; do
    pname=${p%%|*} base=${p#*|}
    hdr=()
    [[ $pname == espace-ps ]] && hdr=(-H "Cookie: $COOKIE")
    # The exact request must be a 200 with a body (not a 302 to the login, not a 403).
    check=$(curl -s -o "$RUN/wrk/body" -w '%{http_code} %{content_type} %{size_download}' "${hdr[@]}" "$base$rpath")
    [[ $check == 200\ * ]] || die "$pname $rname: $check"
    wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" "${hdr[@]}" "$base$rpath" >/dev/null
    case $pname in
      espace-ps) pids=$ESPACE_PID ;;
      nginx) pids=$(nginx_pids) ;;
      bare*) pids=$BARE_PID ;;
      direct) pids="" ;;
    esac
    # shellcheck disable=SC2086
    c0=$(cpu_ticks $pids $ORTHANC_PID) o0=$(cpu_ticks "$ORTHANC_PID")
    read -r s30 s40 s50 <<<"$(viewer_statuses)"
    a0=$(aborted)
    out=$RUN/wrk/$round-$pname-${rpath//[^a-z]/_}.txt
    PERF_PID=""
    if [[ ${PERF:-0} == 1 && ($pname == espace-ps || $pname == bare*) ]]; then
      # shellcheck disable=SC2086
      perf record -F 999 ${PERF_ARGS:-} -p "$pids" -o "$out.perf" >/dev/null 2>&1 &
      PERF_PID=$!
    fi
    STRACE_PID=""
    if [[ ${STRACE:-0} == 1 && ($pname == espace-ps || $pname == bare*) ]]; then
      # shellcheck disable=SC2086
      strace -f -c -o "$out.strace" -p "$pids" 2>/dev/null &
      STRACE_PID=$!
    fi
    wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$HERE/stats.lua" "${hdr[@]}" "$base$rpath" >"$out"
    if [[ -n $PERF_PID ]]; then
      kill -INT "$PERF_PID"; wait "$PERF_PID" || true
      log "profile of $pname, $rname (top symbols):"
      perf report -i "$out.perf" --no-inline --no-children --percent-limit 1 --stdio 2>/dev/null | grep '%' | head -40 >&2 || true
    fi
    if [[ -n $STRACE_PID ]]; then
      kill -INT "$STRACE_PID"; wait "$STRACE_PID" || true
      log "system calls of $pname, $rname (strace -c; divide by the requests below):"
      head -25 "$out.strace" >&2 || true
    fi
    sleep 1 # connections wrk abandoned are logged and counted as they close
    # shellcheck disable=SC2086
    c1=$(cpu_ticks $pids $ORTHANC_PID) o1=$(cpu_ticks "$ORTHANC_PID")
    read -r s31 s41 s51 <<<"$(viewer_statuses)"
    a1=$(aborted)
    res=$(grep '^RESULT ' "$out") || die "no wrk result in $out"
    declare -A v=()
    for kv in ${res#RESULT }; do v[${kv%%=*}]=${kv#*=}; done
    proxy_cpu=$(((c1 - c0) - (o1 - o0)))
    [[ $pname == direct ]] && proxy_cpu=""
    espace_bad=""
    [[ $pname == espace-ps ]] && espace_bad="$((s31 - s30)) / $((s41 - s40)) / $((s51 - s50)) ($((a1 - a0)) aborted)"
    ROWS+=("$rname|$pname|${check#200 }|${v[requests]}|${v[duration_us]}|${v[p50]}|${v[p90]}|${v[p99]}|${v[max]}|${v[non200]}|${v[sockerr]}|$espace_bad|$proxy_cpu|$((o1 - o0))|$round")
    log "$rname via $pname: $(awk -v n="${v[requests]}" -v d="${v[duration_us]}" 'BEGIN {printf "%.0f req/s", n / d * 1e6}') p99 ${v[p99]} µs, non-200 ${v[non200]}${proxy_cpu:+, proxy CPU $(awk -v c="$proxy_cpu" -v n="${v[requests]}" -v tk="$TICKS" 'BEGIN {printf "%.0f µs", c / tk / n * 1e6}') per request}"
    unset v
  done
done
done

# --- 4a. paired: bare Pingora and espace-ps at the same time ---------------
# The saturated runs above measure one path after the other, and on this
# shared VM the same proxy's CPU per request moves by 10-15% from one 10-s
# window to the next (Orthanc's pace, the neighbours). PAIRED=N runs N
# rounds in which bare Pingora and espace-ps are loaded at once, each by
# its own wrk, against the same Orthanc: both see the same moment of the
# machine, and the ratio of their CPU per request is read from one window.
PAIRED_ROWS=()
if ((PAIRED > 0)) && wanted bare && wanted espace; then
  for round in $(seq "$PAIRED"); do
    for r in "${REQUESTS[@]}"; do
      rname=${r%%|*} rpath=${r#*|}
      bare_url=http://127.0.0.1:$BARE_PORT$rpath espace_url=http://127.0.0.1:$ESPACE_PORT$rpath
      wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" "$bare_url" >/dev/null &
      wb=$!
      wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" -H "Cookie: $COOKIE" "$espace_url" >/dev/null &
      we=$!
      wait "$wb" "$we"
      outb=$RUN/wrk/paired-$round-bare-${rpath//[^a-z]/_}.txt
      oute=$RUN/wrk/paired-$round-espace-${rpath//[^a-z]/_}.txt
      b0=$(cpu_ticks "$BARE_PID") e0=$(cpu_ticks "$ESPACE_PID")
      wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" -s "$HERE/stats.lua" "$bare_url" >"$outb" &
      wb=$!
      wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${DURATION}s" -s "$HERE/stats.lua" -H "Cookie: $COOKIE" "$espace_url" >"$oute" &
      we=$!
      wait "$wb" "$we"
      b1=$(cpu_ticks "$BARE_PID") e1=$(cpu_ticks "$ESPACE_PID")
      nb="" ne=""
      for kv in $(grep '^RESULT ' "$outb"); do [[ $kv == requests=* ]] && nb=${kv#requests=}; [[ $kv == non200=* && $kv != non200=0 ]] && die "paired bare $rname: $kv"; done
      for kv in $(grep '^RESULT ' "$oute"); do [[ $kv == requests=* ]] && ne=${kv#requests=}; [[ $kv == non200=* && $kv != non200=0 ]] && die "paired espace-ps $rname: $kv"; done
      [[ -n $nb && -n $ne ]] || die "paired $rname: no wrk result"
      PAIRED_ROWS+=("$rname|$round|$nb|$((b1 - b0))|$ne|$((e1 - e0))")
      log "$rname, paired round $round: bare Pingora $nb requests, $(awk -v c=$((b1 - b0)) -v n="$nb" 'BEGIN {printf "%.0f", c / n}') µs each; espace-ps $ne requests, $(awk -v c=$((e1 - e0)) -v n="$ne" 'BEGIN {printf "%.0f", c / n}') µs each"
    done
  done
fi

# --- 4c. instructions: both proxies under callgrind -----------------------
# CPU per request is read through a noisy machine (two runs of one build
# differ by up to 0.02 in the paired ratio). The instructions a proxy
# executes per request are not: callgrind counts them, the same for the same
# binary and input whatever the machine is doing. INSTRUCTIONS=N starts a
# second espace-ps (same configuration, other ports, a session of its own)
# and a second bare Pingora under callgrind, sends each request 100 times,
# zeroes the counts, sends it N times more on one connection and reads the
# count. User-space instructions only (the kernel's work is not counted),
# and not time: a cache miss or a contended lock costs no instruction.
# valgrind hides SHA-NI from the program: sha2's portable code then digests
# the session cookie, about 3,500 instructions more than on this machine.
INSTR_ROWS=()
if ((INSTRUCTIONS > 0)); then
  read -r VG_ESPACE VG_ADMIN VG_BARE <<<"$(free_ports 3)"
  mkdir -p "$RUN/callgrind"
  # Its listen, admin and public addresses (each followed by its closing
  # quote, so that no longer port starting with the same digits matches).
  sed -e "s/127\.0\.0\.1:$ESPACE_PORT\"/127.0.0.1:$VG_ESPACE\"/g" -e "s/127\.0\.0\.1:$ADMIN_PORT\"/127.0.0.1:$VG_ADMIN\"/g" \
    "$RUN/espace-ps.toml" >"$RUN/espace-ps-callgrind.toml"
  grep -q "127.0.0.1:$VG_ADMIN\"" "$RUN/espace-ps-callgrind.toml" || die "the callgrind configuration has no admin address of its own"
  # It writes to the same audit trail: its rows are left out of the report's count.
  vg_views0=$(audit_count images_view) vg_downloads0=$(audit_count dicom_download)
  # load_n PORT PATH COUNT COOKIE: COUNT requests on one connection, each a 200.
  load_n() {
    python3 - "$@" <<'EOF'
import http.client, sys
port, path, n, cookie = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
headers = {"Cookie": cookie} if cookie else {}
for _ in range(n):
    c.request("GET", path, headers=headers)
    r = c.getresponse()
    r.read()
    if r.status != 200:
        sys.exit(f"{path}: {r.status}")
EOF
  }
  # count PID PORT PATH COOKIE: instructions per request of PATH.
  count() {
    local pid=$1 port=$2 path=$3 cookie=$4 file
    load_n "$port" "$path" 100 "$cookie" || die "callgrind warm-up of $path"
    callgrind_control -z "$pid" >/dev/null 2>&1 || die "callgrind_control -z $pid"
    load_n "$port" "$path" "$INSTRUCTIONS" "$cookie" || die "callgrind run of $path"
    callgrind_control -d "$pid" >/dev/null 2>&1 || die "callgrind_control -d $pid"
    file=$(ls -t "$RUN/callgrind/"*".$pid."* | head -n1)
    awk -v n="$INSTRUCTIONS" '/^summary:/ {printf "%.0f\n", $2 / n; exit}' "$file"
  }
  wait_up() { # URL: valgrind starts slowly
    for _ in $(seq 600); do
      curl -s -o /dev/null --max-time 2 "$1" && return 0
      sleep 0.2
    done
    return 1
  }
  declare -A INSTR_ESPACE=() INSTR_BARE=()
  log "espace-ps under callgrind on 127.0.0.1:$VG_ESPACE"
  valgrind --tool=callgrind --dump-instr=no --callgrind-out-file="$RUN/callgrind/espace.%p" \
    "$BIN" serve --config "$RUN/espace-ps-callgrind.toml" </dev/null >"$RUN/callgrind/espace.out" 2>&1 &
  VG_PID=$!
  wait_up "http://127.0.0.1:$VG_ADMIN/-/healthz" || { tail "$RUN/callgrind/espace.out" >&2; die "espace-ps under callgrind did not start"; }
  vg_cookie=$(open_session "$VG_ESPACE") || die "no session under callgrind"
  for r in "${REQUESTS[@]}"; do
    INSTR_ESPACE[${r%%|*}]=$(count "$VG_PID" "$VG_ESPACE" "${r#*|}" "$vg_cookie")
  done
  # SIGINT: Pingora's fast shutdown (the counts are read; SIGTERM would
  # wait out espace-ps's drain, and bare Pingora's default of 5 minutes).
  kill -INT "$VG_PID"
  wait "$VG_PID" || true
  AUDIT_VIEWS_BEFORE=$((AUDIT_VIEWS_BEFORE + $(audit_count images_view) - vg_views0))
  AUDIT_DOWNLOADS_BEFORE=$((AUDIT_DOWNLOADS_BEFORE + $(audit_count dicom_download) - vg_downloads0))
  log "bare Pingora under callgrind on 127.0.0.1:$VG_BARE"
  valgrind --tool=callgrind --dump-instr=no --callgrind-out-file="$RUN/callgrind/bare.%p" \
    "$BARE_BIN" "127.0.0.1:$VG_BARE" "127.0.0.1:$ORTHANC_PORT" 2 </dev/null >"$RUN/callgrind/bare.out" 2>&1 &
  VG_PID=$!
  wait_up "http://127.0.0.1:$VG_BARE/system" || { tail "$RUN/callgrind/bare.out" >&2; die "bare Pingora under callgrind did not start"; }
  for r in "${REQUESTS[@]}"; do
    INSTR_BARE[${r%%|*}]=$(count "$VG_PID" "$VG_BARE" "${r#*|}" "")
  done
  kill -INT "$VG_PID"
  wait "$VG_PID" || true
  VG_PID=""
  for r in "${REQUESTS[@]}"; do
    rname=${r%%|*}
    INSTR_ROWS+=("$rname|${INSTR_BARE[$rname]}|${INSTR_ESPACE[$rname]}")
    log "$rname: ${INSTR_BARE[$rname]} instructions per request through bare Pingora, ${INSTR_ESPACE[$rname]} through espace-ps"
  done
fi

# --- 4b. one connection: the latency each proxy adds ----------------------
# With 8 connections the two cores are saturated and latencies mostly measure
# queueing; one connection at a time leaves the machine idle between
# requests, so the difference to "direct" is what a proxy adds to a request.
# The paths take turns in LAT_ROUNDS short runs, and each percentile is the
# median over the rounds: a hiccup of the machine (this is a shared VM) then
# lands in one round of one path rather than in that path's whole figure.
LAT_ROUNDS=${LAT_ROUNDS:-4}
LAT_SLICE=$((DURATION / LAT_ROUNDS))
((LAT_SLICE >= 5)) || LAT_SLICE=5
median() { tr ' ' '\n' | grep . | sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
declare -A LAT_N=() LAT_P50=() LAT_P99=()
LAT_KEYS=()
if [[ ${LATENCY:-1} == 1 ]]; then
  for r in "${REQUESTS[@]}"; do
    rname=${r%%|*} rpath=${r#*|}
    for p in "${PATHS[@]}"; do
      pname=${p%%|*} base=${p#*|}
      hdr=()
      [[ $pname == espace-ps ]] && hdr=(-H "Cookie: $COOKIE")
      wrk -t1 -c1 -d"${WARMUP}s" "${hdr[@]}" "$base$rpath" >/dev/null
      LAT_KEYS+=("$rname|$pname")
    done
    for round in $(seq "$LAT_ROUNDS"); do
      for p in "${PATHS[@]}"; do
        pname=${p%%|*} base=${p#*|}
        hdr=()
        [[ $pname == espace-ps ]] && hdr=(-H "Cookie: $COOKIE")
        out=$RUN/wrk/lat-$round-$pname-${rpath//[^a-z]/_}.txt
        wrk -t1 -c1 -d"${LAT_SLICE}s" --latency -s "$HERE/stats.lua" "${hdr[@]}" "$base$rpath" >"$out"
        res=$(grep '^RESULT ' "$out") || die "no wrk result in $out"
        declare -A v=()
        for kv in ${res#RESULT }; do v[${kv%%=*}]=${kv#*=}; done
        [[ ${v[non200]} == 0 ]] || die "$pname $rname: ${v[non200]} answers that were not 200 at one connection"
        k="$rname|$pname"
        LAT_N[$k]=$((${LAT_N[$k]:-0} + v[requests]))
        LAT_P50[$k]="${LAT_P50[$k]:-} ${v[p50]}"
        LAT_P99[$k]="${LAT_P99[$k]:-} ${v[p99]}"
        unset v
      done
    done
    log "$rname, one connection: $LAT_ROUNDS rounds of ${LAT_SLICE} s per path done"
  done
fi

# --- 5. archive through espace-ps: memory ----------------------------------
if ((ARCHIVE)); then
ARCHIVE_URL=/studies/$BIG_ID/archive
log "archive of $BIG_ID directly from Orthanc (reference)"
direct_dl=$(curl -s -o /dev/null --max-time 600 -w '%{http_code} %{size_download} %{time_total}' "$ORTHANC$ARCHIVE_URL")
sleep 1
RSS_BASE=$(rss_kb "$ESPACE_PID")
log "archive through espace-ps (RSS sampled every 100 ms; baseline $RSS_BASE kB)"
(
  while kill -0 "$ESPACE_PID" 2>/dev/null; do
    echo "$(date +%s.%N) $(rss_kb "$ESPACE_PID")"
    sleep 0.1
  done
) >"$RUN/rss.txt" &
SAMPLER_PID=$!
c0=$(cpu_ticks "$ESPACE_PID")
proxied_dl=$(curl -s -o /dev/null --max-time 600 -H "Cookie: $COOKIE" -w '%{http_code} %{size_download} %{time_total} %{content_type}' "http://127.0.0.1:$ESPACE_PORT$ARCHIVE_URL")
c1=$(cpu_ticks "$ESPACE_PID")
sleep 1
kill "$SAMPLER_PID" 2>/dev/null; wait "$SAMPLER_PID" 2>/dev/null || true; SAMPLER_PID=""
RSS_AFTER=$(rss_kb "$ESPACE_PID")
RSS_PEAK=$(awk '$2 > m {m = $2} END {print m + 0}' "$RUN/rss.txt")
RSS_SAMPLES=$(wc -l <"$RUN/rss.txt")
read -r p_code p_bytes p_time p_ctype <<<"$proxied_dl"
read -r d_code d_bytes d_time <<<"$direct_dl"
[[ $p_code == 200 ]] || log "WARNING: archive through espace-ps answered $p_code ($p_ctype)"
log "archive: $p_bytes bytes in $p_time s through espace-ps ($d_bytes in $d_time s direct); RSS $RSS_BASE → peak $RSS_PEAK kB"
fi

AUDIT_VIEWS=$(($(audit_count images_view) - AUDIT_VIEWS_BEFORE))
AUDIT_DOWNLOADS=$(($(audit_count dicom_download) - AUDIT_DOWNLOADS_BEFORE))

# --- 6. report -------------------------------------------------------------
mkdir -p "$HERE/results"
REPORT=$HERE/results/latest.md
mb() { awk -v b="$1" 'BEGIN {printf "%.0f", b / 1048576}'; }
{
  echo "# Viewer requests: espace-ps vs direct vs nginx vs bare Pingora"
  echo
  echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') by \`loadtest/viewer/run.sh\`."
  echo
  echo "## Machine"
  echo
  echo "- \`nproc\`: $(nproc); $(lscpu | grep 'Model name' | sed 's/  */ /g')"
  echo "- \`free -g\`: $(free -g | awk '/^Mem:/ {print $2 " GiB total, " $7 " GiB available"}'); swap $(free -g | awk '/^Swap:/ {print $2}') GiB"
  echo "- load average when the run started (1, 5, 15 min): $LOAD_BEFORE; at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- kernel $(uname -r); $(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "- $(dpkg-query -W -f '${Package} ${Version}, ' orthanc orthanc-dicomweb orthanc-webviewer 2>/dev/null)$(/usr/sbin/nginx -v 2>&1 | sed 's/.*: //'), $(wrk --version 2>&1 | head -n1 | awk '{print "wrk " $2}')"
  echo "- $("$BIN" --version) (\`$BIN\`), \`threads = 2\`, \`[logging] level = \"warn\"\`; nginx \`worker_processes 2\`, keepalive 32 to Orthanc, no access log"
  echo "- espace-ps's database (audit trail): $AUDIT_DB$([[ $AUDIT_DB == postgres ]] && echo ", a throwaway server on loopback, insert-only role${PG_SETTINGS:+, with $PG_SETTINGS}"); audit rows written during the runs: $AUDIT_DOWNLOADS downloads, $AUDIT_VIEWS image views (one per study per session and window)"
  echo
  if ((${#ROWS[@]})); then
  echo "## Requests"
  echo
  echo "wrk $WRK_THREADS threads, $CONNECTIONS connections, ${DURATION} s after a ${WARMUP} s warm-up, the same URL"
  echo "through each path (espace-ps: with the session cookie of Dr Élise Martin-Dupré, on the care team of the"
  echo "study; one $MODALITY instance, 128x128). wrk, Orthanc and the proxy share the 2 cores."
  echo "Latencies in ms. \"non-200\": responses that were not 200 (wrk's own count misses 3xx);"
  echo "\"espace-ps 3xx / 4xx / 5xx\": viewer answers by status class according to espace-ps's \`/metrics\`"
  echo "(a request wrk abandons when the run ends counts as 5xx there, with status 0; \"aborted\": Pingora's"
  echo "\"Fail to proxy: Downstream …\" log lines, the client closed the connection)."
  echo "CPU: proxy CPU seconds per second of run (nginx: master + workers), and Orthanc's."
  echo "\"bare Pingora\": \`proxy/examples/bare_proxy.rs\`, a Pingora proxy that only forwards (2 threads, mimalloc):"
  echo "the floor under espace-ps's own work."
  ((ROUNDS > 1)) && echo "$ROUNDS rounds in a row (every request through every path, then again): \"round\" says which."
  echo
  rcol="" rsep=""
  ((ROUNDS > 1)) && rcol=" round |" rsep="---:|"
  echo "|$rcol request | path | response | req/s | p50 | p90 | p99 | max | non-200 | socket errors | espace-ps 3xx / 4xx / 5xx | proxy CPU | proxy CPU per request | Orthanc CPU |"
  echo "|$rsep---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for row in "${ROWS[@]}"; do
    IFS='|' read -r rname pname resp n dur p50 p90 p99 max bad sockerr ebad pcpu ocpu round <<<"$row"
    ((ROUNDS > 1)) && printf '| %s ' "$round"
    awk -v rn="$rname" -v pn="$pname" -v resp="$resp" -v n="$n" -v d="$dur" -v p50="$p50" -v p90="$p90" -v p99="$p99" \
      -v max="$max" -v bad="$bad" -v se="$sockerr" -v eb="${ebad:--}" -v pc="$pcpu" -v oc="$ocpu" -v tk="$TICKS" 'BEGIN {
        s = d / 1e6
        printf "| %s | %s | %s | %.0f | %.2f | %.2f | %.2f | %.1f | %d | %d | %s | %s | %s | %.2f |\n",
          rn, pn, resp, n / s, p50 / 1000, p90 / 1000, p99 / 1000, max / 1000, bad, se, eb,
          (pc == "" ? "-" : sprintf("%.2f", pc / tk / s)),
          (pc == "" ? "-" : sprintf("%.0f µs", pc / tk / n * 1e6)), oc / tk / s
      }'
  done
  echo
  fi
  if wanted bare && wanted espace && ((${#ROWS[@]})); then
    echo "## espace-ps's CPU per request over bare Pingora's"
    echo
    echo "Per request and round: espace-ps's proxy CPU per request divided by bare Pingora's in the same round"
    echo "(the issue's target: at most 1.15). \"all\": total CPU over total requests of every run of that path."
    echo
    echo "| request | round | bare Pingora | espace-ps | ratio |"
    echo "|---|---:|---:|---:|---:|"
    for row in "${ROWS[@]}"; do
      IFS='|' read -r rname pname _ n _ _ _ _ _ _ _ _ pcpu _ round <<<"$row"
      case $pname in bare*) k=bare ;; espace-ps) k=espace ;; *) continue ;; esac
      printf '%s|%s|%s|%s|%s\n' "$rname" "$round" "$k" "$n" "$pcpu"
    done | awk -F'|' -v tk="$TICKS" '
      { key = $1 SUBSEP $2; n[key, $3] = $4; c[key, $3] = $5; if (!(key in seen)) { seen[key] = 1; order[++k] = key }
        tn[$3] += $4; tc[$3] += $5 }
      END {
        for (i = 1; i <= k; i++) {
          key = order[i]; split(key, parts, SUBSEP)
          b = c[key, "bare"] / tk / n[key, "bare"] * 1e6; e = c[key, "espace"] / tk / n[key, "espace"] * 1e6
          printf "| %s | %s | %.0f µs | %.0f µs | %.2f |\n", parts[1], parts[2], b, e, e / b
          if (lo == "" || e / b < lo) lo = e / b
          if (hi == "" || e / b > hi) hi = e / b
        }
        b = tc["bare"] / tk / tn["bare"] * 1e6; e = tc["espace"] / tk / tn["espace"] * 1e6
        printf "| all | | %.0f µs | %.0f µs | **%.2f** (%.2f–%.2f) |\n", b, e, e / b, lo, hi
      }'
    echo
  fi
  if ((${#PAIRED_ROWS[@]})); then
    echo "## Paired: bare Pingora and espace-ps loaded at the same time"
    echo
    echo "PAIRED=$PAIRED rounds; in each, for each request, bare Pingora and espace-ps were loaded at once for"
    echo "${DURATION} s (after ${WARMUP} s of warm-up), each by its own wrk ($WRK_THREADS threads, $CONNECTIONS connections), against"
    echo "the same Orthanc: both measured in the same window of the machine. CPU from the scheduler's count."
    echo "\"all\": total CPU over total requests of each proxy; \"median\": of the per-round ratios."
    echo
    echo "| request | round | bare Pingora | espace-ps | ratio |"
    echo "|---|---:|---:|---:|---:|"
    printf '%s\n' "${PAIRED_ROWS[@]}" | awk -F'|' -v tk="$TICKS" '
      { b = $4 / tk / $3 * 1e6; e = $6 / tk / $5 * 1e6; r[++k] = e / b
        printf "| %s | %s | %.0f µs | %.0f µs | %.2f |\n", $1, $2, b, e, e / b
        nb += $3; cb += $4; ne += $5; ce += $6 }
      END {
        for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (r[j] < r[i]) { t = r[i]; r[i] = r[j]; r[j] = t }
        med = (k % 2) ? r[(k + 1) / 2] : (r[k / 2] + r[k / 2 + 1]) / 2
        b = cb / tk / nb * 1e6; e = ce / tk / ne * 1e6
        printf "| all | | %.0f µs | %.0f µs | **%.2f** (median %.2f, %.2f–%.2f) |\n", b, e, e / b, med, r[1], r[k]
      }'
    echo
  fi
  if ((${#INSTR_ROWS[@]})); then
    echo "## Instructions per request (callgrind)"
    echo
    echo "User-space instructions each proxy executed per request: $INSTRUCTIONS requests on one connection"
    echo "after 100 of warm-up, one espace-ps session. Repeatable for one binary and input; not time (cache"
    echo "misses, contended locks and the kernel's work are not counted). Under valgrind the session"
    echo "cookie's SHA-256 runs sha2's portable code (SHA-NI hidden): about 3,500 instructions more than"
    echo "on the machine."
    echo
    echo "| request | bare Pingora | espace-ps | espace-ps − bare | ratio |"
    echo "|---|---:|---:|---:|---:|"
    printf '%s\n' "${INSTR_ROWS[@]}" | awk -F'|' '{ printf "| %s | %d | %d | %d | %.2f |\n", $1, $2, $3, $3 - $2, $3 / $2 }'
    echo
  fi
  if [[ ${#LAT_KEYS[@]} -gt 0 ]]; then
    echo "## One connection: the latency a proxy adds"
    echo
    echo "wrk 1 thread, 1 connection: one request at a time, so the machine is not saturated and the"
    echo "difference to \"direct\" is the time the proxy adds to each request. The four paths take turns in"
    echo "$LAT_ROUNDS rounds of ${LAT_SLICE} s (after a ${WARMUP} s warm-up each); p50 and p99 are the medians of the rounds'"
    echo "percentiles, with the lowest and highest round's p99. Latencies in ms; \"added\": this path's"
    echo "median minus direct's, same request, same run."
    echo
    echo "| request | path | requests | p50 | p99 | p99 of the rounds | added p50 | added p99 |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|"
    d50="" d99=""
    for k in "${LAT_KEYS[@]}"; do
      rname=${k%%|*} pname=${k#*|}
      p50=$(median <<<"${LAT_P50[$k]}") p99=$(median <<<"${LAT_P99[$k]}")
      lo=$(tr ' ' '\n' <<<"${LAT_P99[$k]}" | grep . | sort -n | head -n1)
      hi=$(tr ' ' '\n' <<<"${LAT_P99[$k]}" | grep . | sort -n | tail -n1)
      [[ $pname == direct ]] && d50=$p50 d99=$p99
      awk -v rn="$rname" -v pn="$pname" -v n="${LAT_N[$k]}" -v p50="$p50" -v p99="$p99" -v lo="$lo" -v hi="$hi" -v d50="$d50" -v d99="$d99" 'BEGIN {
          a50 = (pn == "direct") ? "-" : sprintf("%+.3f", (p50 - d50) / 1000)
          a99 = (pn == "direct") ? "-" : sprintf("%+.3f", (p99 - d99) / 1000)
          printf "| %s | %s | %d | %.3f | %.3f | %.3f–%.3f | %s | %s |\n", rn, pn, n, p50 / 1000, p99 / 1000, lo / 1000, hi / 1000, a50, a99
        }'
    done
    echo
  fi
  if ((ARCHIVE)); then
  echo "## Streaming a large archive through espace-ps"
  echo
  echo "\`GET /studies/{id}/archive\` of a study of $BIG_INSTANCES instances ($(mb "$BIG_BYTES") MiB on Orthanc's disk:"
  echo "$ARCHIVE_INSTANCES generated ${ARCHIVE_ROWS}x${ARCHIVE_COLS} 16-bit instances with random pixels added to a demo study),"
  echo "downloaded with curl by the same doctor, who holds the \`dicom-download\` habilitation in a copy of \`policies/\`."
  echo "espace-ps's VmRSS sampled every 100 ms ($RSS_SAMPLES samples)."
  echo
  echo "| path | status | bytes transferred | time | throughput | espace-ps RSS baseline | peak | after | espace-ps CPU |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
  awk -v c="$d_code" -v b="$d_bytes" -v t="$d_time" 'BEGIN {printf "| direct | %s | %d (%.0f MiB) | %.1f s | %.0f MiB/s | - | - | - | - |\n", c, b, b / 1048576, t, b / 1048576 / t}'
  awk -v c="$p_code" -v b="$p_bytes" -v t="$p_time" -v r0="$RSS_BASE" -v rp="$RSS_PEAK" -v ra="$RSS_AFTER" -v cpu=$((c1 - c0)) -v tk="$TICKS" \
    'BEGIN {printf "| espace-ps | %s | %d (%.0f MiB) | %.1f s | %.0f MiB/s | %.1f MiB | %.1f MiB | %.1f MiB | %.1f s |\n", c, b, b / 1048576, t, b / 1048576 / t, r0 / 1024, rp / 1024, ra / 1024, cpu / tk}'
  echo
  fi
  echo "## espace-ps log (level warn) during the run"
  echo
  echo "$(wc -l <"$RUN/espace-ps.log") lines."
  if [[ -s $RUN/espace-ps.log ]]; then
    echo
    echo '```'
    sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^[0-9T:.-]*Z *//' "$RUN/espace-ps.log" | sort | uniq -c | sort -rn | head -n 10
    echo '```'
  fi
} >"$REPORT"
((ARCHIVE)) && cp "$RUN/rss.txt" "$HERE/results/latest-rss.txt"
cat "$REPORT"
