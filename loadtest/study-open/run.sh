#!/usr/bin/env bash
# loadtest/study-open/run.sh: the wait a doctor feels when OHIF opens a
# study. The request sequence OHIF v3 issues (QIDO study and series queries,
# series metadata, every frame of a 300-instance CT series over the
# browser's 6 connections) replayed directly against Orthanc's DICOMweb
# plugin, through a plain nginx reverse proxy and through espace-ps (OHIF
# route table, DICOMweb resolver, a real session), in one run on one
# generated study; then OHIF itself in Chromium, navigation to first rendered
# image, through espace-ps and through nginx serving the same OHIF site.
# See loadtest/study-open/README.md.
#
# Everything runs on loopback in a temporary directory and is stopped on
# exit. Results: loadtest/study-open/results/latest.md (also printed).
#
# Knobs (environment): ROUNDS (replay rounds, default 9), INSTANCES (300),
# CONNS (6), BROWSER_RUNS (timed OHIF runs per path, 5; 0 skips the
# browser), ESPACE_PS_BIN (default $CARGO_TARGET_DIR or target,
# /deb/espace-ps, else /release/espace-ps), ESPACE_PS_DEMO_BIN (any build
# of the demo binary: only its demo-data command is used; default
# .../debug/espace-ps-demo), OHIF_DIR (the site deploy/ohif/install.sh
# made; default ~/.cache/espace-ps/ohif-site, installed if missing),
# KEEP_RUN_DIR=1 keeps the temporary directory, HOLD=1 keeps the stack up
# for a look by hand instead of measuring (see below), PERF=1 profiles
# espace-ps during its replays (perf record; PERF_ARGS adds to it) and
# writes results/perf-first.txt and results/perf-again.txt.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/loadtest/study-open
ROUNDS=${ROUNDS:-9}
INSTANCES=${INSTANCES:-300}
CONNS=${CONNS:-6}
BROWSER_RUNS=${BROWSER_RUNS:-5}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
if [[ -n ${ESPACE_PS_BIN:-} ]]; then BIN=$ESPACE_PS_BIN
elif [[ -x $TARGET/deb/espace-ps ]]; then BIN=$TARGET/deb/espace-ps
else BIN=$TARGET/release/espace-ps; fi
DEMO_BIN=${ESPACE_PS_DEMO_BIN:-$TARGET/debug/espace-ps-demo}
OHIF_DIR=${OHIF_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/espace-ps/ohif-site}
DOCTOR=899700123450 # Dr Élise Martin-Dupré (demo records)
[[ $ROUNDS =~ ^[0-9]+$ && $INSTANCES =~ ^[1-9][0-9]*$ && $CONNS =~ ^[1-9][0-9]*$ && $BROWSER_RUNS =~ ^[0-9]+$ ]] ||
  { echo "INSTANCES, CONNS: positive integers; ROUNDS, BROWSER_RUNS: integers (0 skips that part)" >&2; exit 2; }

log() { printf '[study-open %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

# --- tools -----------------------------------------------------------------
need_apt=()
[[ -x /usr/sbin/nginx ]] || need_apt+=(nginx-light)
command -v sqlite3 >/dev/null || need_apt+=(sqlite3)
command -v curl >/dev/null || need_apt+=(curl)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v node >/dev/null || need_apt+=(nodejs npm)
((BROWSER_RUNS == 0)) || [[ -x ${CHROMIUM_PATH:-/usr/bin/chromium} ]] || need_apt+=(chromium)
if ((${#need_apt[@]})); then
  log "installing ${need_apt[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_apt[@]}" >&2
fi
command -v python3 >/dev/null || die "python3 is needed (standard library only)"
[[ ${PERF:-0} != 1 ]] || command -v perf >/dev/null || die "PERF=1 needs perf (Debian's linux-perf)"
# shellcheck source=../../scripts/lib/orthanc.sh
. "$ROOT/scripts/lib/orthanc.sh"
orthanc_install
[[ -x $BIN ]] || die "no $BIN: build it (cargo build --profile deb -p espace-ps --bin espace-ps)"
if [[ ! -x $DEMO_BIN ]]; then
  log "no $DEMO_BIN: building it (cargo build -p espace-ps-demo)"
  (cd "$ROOT" && cargo build -p espace-ps-demo) >&2
fi
"$ROOT/deploy/ohif/install.sh" "$OHIF_DIR" >&2 || die "OHIF install"
if ((BROWSER_RUNS > 0)) && [[ ! -d $ROOT/proxy/tests/browser/node_modules/playwright-core ]]; then
  (cd "$ROOT/proxy/tests/browser" && npm ci --no-audit --no-fund) >&2
fi

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
# --- run directory, cleanup ------------------------------------------------
RUN=$(mktemp -d /tmp/espace-study-open.XXXXXX)
ESPACE_PID="" NGINX_PID=""
stop_espace() {
  [[ -n $ESPACE_PID ]] || return 0
  kill -TERM "$ESPACE_PID" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$ESPACE_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$ESPACE_PID" 2>/dev/null || true
  wait "$ESPACE_PID" 2>/dev/null || true
  ESPACE_PID=""
}
cleanup() {
  local rc=$?
  set +e
  stop_espace
  if [[ -n $NGINX_PID ]]; then
    kill -TERM "$NGINX_PID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$NGINX_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$NGINX_PID" 2>/dev/null
    wait "$NGINX_PID" 2>/dev/null
  fi
  orthanc_stop "$RUN/orthanc"
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
read -r ORTHANC_PORT ORTHANC_DICOM ESPACE_PORT ADMIN_PORT NGINX_PORT <<<"$(free_ports 5)"
ORTHANC=http://127.0.0.1:$ORTHANC_PORT
ESPACE=http://127.0.0.1:$ESPACE_PORT
NGINX=http://127.0.0.1:$NGINX_PORT

wait_http() { # URL: until it answers anything (bounded)
  for _ in $(seq 100); do
    curl -s -o /dev/null --max-time 1 "$1" && return 0
    sleep 0.1
  done
  return 1
}

# --- 1. Orthanc, the records, the CT study -----------------------------------
log "starting Orthanc on 127.0.0.1:$ORTHANC_PORT"
orthanc_start "$RUN/orthanc" "$ORTHANC_PORT" "$ORTHANC_DICOM" >/dev/null || die "Orthanc did not start"
log "demo records (no demo study in Orthanc)"
"$DEMO_BIN" demo-data --records "sqlite://$RUN/records.sqlite" --studies 0 >"$RUN/demo-data.log" 2>&1 ||
  { tail -c 2000 "$RUN/demo-data.log" >&2; die "demo-data"; }
# One study of Élise's patients (on her care team): its UID in the records
# decides access; the archive gets a CT series of INSTANCES slices in it.
IFS='|' read -r STUDY_UID PATIENT_ID EXAM_DATE < <(sqlite3 "$RUN/records.sqlite" \
  "SELECT e.study_instance_uid, d.patient_id, replace(e.exam_date, '-', '')
   FROM rec_exams e JOIN rec_care_team c ON c.dossier_number = e.dossier_number
   JOIN rec_dossiers d ON d.dossier_number = e.dossier_number
   WHERE c.national_id = '$DOCTOR' AND e.study_instance_uid IS NOT NULL
   ORDER BY e.exam_date DESC, e.study_instance_uid LIMIT 1") || true
[[ -n ${STUDY_UID:-} ]] || die "no study of the doctor in the records"
log "generating $INSTANCES CT slices (512x512, 16-bit) into study $STUDY_UID"
t0=$SECONDS
read -r SERIES_UID GEN_BYTES < <(python3 "$HERE/gen_ct.py" --orthanc "$ORTHANC" --study-uid "$STUDY_UID" \
  --patient-id "$PATIENT_ID" --study-date "$EXAM_DATE" --count "$INSTANCES")
log "uploaded $GEN_BYTES bytes in $((SECONDS - t0)) s (series $SERIES_UID)"

# --- 2. espace-ps (OHIF route table, DICOMweb resolver) ----------------------
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
viewer = "ohif"
ohif_dir = "$OHIF_DIR"

[hm_sso]
issuer = "study-open-bench"
audience = "espace-ps"
public_keys = ["$RUN/hm.pub.pem"]
allowed_origins = ["http://hm.bench.invalid"]

[database]
url = "sqlite://$RUN/espace-ps.sqlite?mode=rwc"

[records]
url = "sqlite://$RUN/records.sqlite?mode=ro"

[policies]
dir = "$ROOT/policies"

[logging]
level = "warn"
EOF
"$BIN" check-config "$RUN/espace-ps.toml" >&2 || die "configuration"

. "$ROOT/loadtest/lib/hm-sso.sh"
# Starts espace-ps (a fresh process: empty caches) and opens a session for
# the doctor with a Hopital Manager JWT signed by openssl; sets COOKIE.
start_espace() {
  "$BIN" serve --config "$RUN/espace-ps.toml" </dev/null >>"$RUN/espace-ps.out" 2>>"$RUN/espace-ps.log" &
  ESPACE_PID=$!
  wait_http "http://127.0.0.1:$ADMIN_PORT/-/readyz" || { tail "$RUN/espace-ps.log" >&2; die "espace-ps did not start"; }
  COOKIE=$(hm_sso_cookie "$ESPACE" "$RUN/hm.key.pem" study-open-bench "$DOCTOR" "$RUN") ||
    die "no session cookie from the SSO launch"
}
log "starting espace-ps on 127.0.0.1:$ESPACE_PORT ($BIN)"
start_espace

# --- 3. nginx: the same DICOMweb, the same OHIF site --------------------------
mkdir -p "$RUN/nginx/tmp"
cat >"$RUN/nginx/nginx.conf" <<EOF
worker_processes 2;
daemon off;
$( ((EUID == 0)) && echo "user root; # the workers read OHIF_DIR, which may be under /root")
pid $RUN/nginx/nginx.pid;
error_log $RUN/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  include /etc/nginx/mime.types;
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
    location /dicom-web/ {
      proxy_pass http://orthanc;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
    # OHIF's site as espace-ps serves it: hashed files cached, the rest
    # revalidated, the single-page fallback to index.html.
    location /visionneuse/ {
      alias $OHIF_DIR/;
      add_header Cache-Control "no-cache";
      location ~ "\.[0-9a-f]{8,}\.(js|css)\$" { add_header Cache-Control "public, max-age=3600"; }
      location ~ \.wasm\$ { add_header Cache-Control "public, max-age=3600"; }
      try_files \$uri /visionneuse/index.html;
    }
  }
}
EOF
log "starting nginx on 127.0.0.1:$NGINX_PORT"
/usr/sbin/nginx -e "$RUN/nginx/error.log" -p "$RUN/nginx" -c "$RUN/nginx/nginx.conf" </dev/null >"$RUN/nginx/out.log" 2>&1 &
NGINX_PID=$!
wait_http "$NGINX/dicom-web/studies?StudyInstanceUID=$STUDY_UID" || { cat "$RUN/nginx/error.log" >&2; die "nginx did not start"; }

# HOLD=1: keep the stack up for a look by hand (at most 30 minutes, until
# RUN/hold is removed); its addresses, session cookie and UIDs in RUN/hold.env.
if [[ ${HOLD:-0} == 1 ]]; then
  printf 'ORTHANC=%s\nNGINX=%s\nESPACE=%s\nCOOKIE=%s\nSTUDY_UID=%s\nSERIES_UID=%s\n' \
    "$ORTHANC" "$NGINX" "$ESPACE" "$COOKIE" "$STUDY_UID" "$SERIES_UID" >"$RUN/hold.env"
  touch "$RUN/hold"
  log "holding: $RUN/hold.env; rm $RUN/hold to stop"
  for _ in $(seq 1800); do [[ -e $RUN/hold ]] || break; sleep 1; done
  exit 0
fi

# --- 4. the replay -------------------------------------------------------------
# Every round: each path in turn (the order rotates), a fresh espace-ps
# process before its turn (the study is opened for the first time: nothing
# resolved, nothing decided yet, as for a doctor opening a new study).
: >"$RUN/replay.jsonl"
echo '{}' >"$RUN/check.json"
if ((ROUNDS > 0)); then
log "replay: $ROUNDS rounds, $CONNS connections"
node "$HERE/replay.mjs" --check --study "$STUDY_UID" --conns "$CONNS" \
  --path "direct=$ORTHANC" --path "nginx=$NGINX" --path "espace-ps=$ESPACE" --cookie "espace-ps=$COOKIE" \
  >"$RUN/check.json" || die "the replay's check (every answer a 200 with the same bytes on every path)"
# CPU time (user + system, ms) and minor page faults of the processes,
# from /proc/PID/stat: its fields 14, 15 and 10 (proc(5)); f[11], f[12] and
# f[7] once the line is cut after "pid (comm) ".
proc_usage() {
  local t=0 n=0 s pid
  local -a f
  for pid in "$@"; do
    s=$(<"/proc/$pid/stat") || continue
    read -r -a f <<<"${s##*) }"
    t=$((t + f[11] + f[12])) n=$((n + f[7]))
  done
  echo "$((t * 1000 / $(getconf CLK_TCK))) $n"
}
# Runs one replay and adds to its JSON line the CPU time the proxy of its
# path (espace-ps, or nginx's workers) and Orthanc spent during it, and the
# proxy's minor page faults.
replay_timed() { # PATH BASE COOKIE ROUND
  local proxy=() p0 f0 o0 p1 f1 o1 line
  case $1 in
    espace-ps) proxy=("$ESPACE_PID") ;;
    nginx) mapfile -t proxy < <(pgrep -P "$NGINX_PID") ;;
  esac
  read -r p0 f0 <<<"$(proc_usage "${proxy[@]}")"
  read -r o0 _ <<<"$(proc_usage "$ORTHANC_PID")"
  local perf=""
  if [[ ${PERF:-0} == 1 && $1 == espace-ps ]]; then
    # One profile per replay, kept by kind (first opening or again).
    mkdir -p "$RUN/perf"
    perf record -F 4999 ${PERF_ARGS:-} -p "$ESPACE_PID" -o "$RUN/perf/$4.data" >/dev/null 2>&1 &
    perf=$!
    # perf has attached once its file holds its header.
    for _ in $(seq 100); do [[ -s $RUN/perf/$4.data ]] && break; sleep 0.05; done
  fi
  line=$(node "$HERE/replay.mjs" --study "$STUDY_UID" --conns "$CONNS" --round "$4" \
    --path "$1=$2" ${3:+--cookie "$1=$3"}) || return 1
  if [[ -n $perf ]]; then kill -INT "$perf"; wait "$perf" || true; fi
  read -r p1 f1 <<<"$(proc_usage "${proxy[@]}")"
  read -r o1 _ <<<"$(proc_usage "$ORTHANC_PID")"
  printf '%s,"proxy_cpu_ms":%d,"orthanc_cpu_ms":%d,"proxy_minflt":%d}\n' "${line%\}}" \
    $((p1 - p0)) $((o1 - o0)) $((f1 - f0))
}
ORDER=(direct nginx espace-ps)
for round in $(seq "$ROUNDS"); do
  for i in 0 1 2; do
    p=${ORDER[$(((round + i) % 3))]}
    case $p in
      direct) base=$ORTHANC cookie="" ;;
      nginx) base=$NGINX cookie="" ;;
      espace-ps) stop_espace; start_espace; base=$ESPACE cookie=$COOKIE ;;
    esac
    replay_timed "$p" "$base" "$cookie" "$round" >>"$RUN/replay.jsonl" || die "replay $p round $round"
    # Right after its first opening: the same session opens the study again
    # (resolutions and decisions cached), in the same round.
    if [[ $p == espace-ps ]]; then
      replay_timed espace-ps "$ESPACE" "$COOKIE" "warm-$round" >>"$RUN/replay.jsonl" || die "replay espace-ps warm round $round"
    fi
  done
  log "round $round: $(tail -n 4 "$RUN/replay.jsonl" | node -e '
    const ls = require("fs").readFileSync(0, "utf8").trim().split("\n").map(JSON.parse);
    console.log(ls.map((r) => `${r.path}${String(r.round).startsWith("warm") ? " again" : ""} ${r.first_frame_ms.toFixed(0)}/${r.last_frame_ms.toFixed(0)} ms`).join(", "));')"
done
fi

# --- 5. OHIF in Chromium -------------------------------------------------------
if ((BROWSER_RUNS > 0)); then
  log "OHIF in Chromium: $BROWSER_RUNS runs per path"
  stop_espace; start_espace
  # browser.mjs asks for a fresh espace-ps before each of its espace-ps runs
  # ("RESTART espace-ps" on its stdout; the new session cookie on its stdin).
  mkfifo "$RUN/browser.in" "$RUN/browser.out"
  exec {BR_IN}<>"$RUN/browser.in"
  node "$HERE/browser.mjs" --study "$STUDY_UID" --runs "$BROWSER_RUNS" --instances "$INSTANCES" \
    --path "nginx=$NGINX" --path "espace-ps=$ESPACE" --cookie "espace-ps=$COOKIE" --from "espace-ps=/" \
    <"$RUN/browser.in" >"$RUN/browser.out" 2>"$RUN/browser.log" &
  BROWSER_NODE=$!
  exec {BR_OUT}<"$RUN/browser.out"
  while IFS= read -r line <&"$BR_OUT"; do
    case $line in
      "RESTART espace-ps") stop_espace; start_espace; printf '%s\n' "$COOKIE" >&"$BR_IN" ;;
      RESULT\ *) printf '%s\n' "${line#RESULT }" >>"$RUN/browser.jsonl" ;;
      *) log "browser: $line" ;;
    esac
  done
  wait "$BROWSER_NODE" || { tail -n 30 "$RUN/browser.log" >&2; die "browser"; }
  exec {BR_OUT}<&- {BR_IN}>&-
fi
touch "$RUN/browser.jsonl"
# PERF=1: espace-ps's profile over all first openings, then over all
# openings again (symbols above 0.5%).
if [[ ${PERF:-0} == 1 ]] && compgen -G "$RUN/perf/*.data" >/dev/null; then
  mkdir -p "$HERE/results"
  for kind in first again; do
    case $kind in first) files=("$RUN"/perf/[0-9]*.data) ;; again) files=("$RUN"/perf/warm-*.data) ;; esac
    for f in "${files[@]}"; do
      perf report -i "$f" --no-inline --no-children --sort dso,symbol --stdio -F period,dso,symbol 2>/dev/null |
        awk '$1 ~ /^[0-9]+$/ {p=$1; $1=""; sub(/^ /, ""); sub(/( -)+$/, ""); print p "\t" $0}'
    done | awk -F'\t' '{s[$2]+=$1; t+=$1} END {for (k in s) if (s[k] > t/200) printf "%6.2f%%  %s\n", 100*s[k]/t, k}' |
      sort -rn | head -40 >"$HERE/results/perf-$kind.txt" || true
    log "perf ($kind openings): results/perf-$kind.txt"
  done
fi
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# --- 6. report -------------------------------------------------------------------
mkdir -p "$HERE/results"
REPORT=$HERE/results/latest.md
{
  echo "# Study open: OHIF's requests, direct vs nginx vs espace-ps"
  echo
  echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') by \`loadtest/study-open/run.sh\`."
  echo
  echo "## Machine"
  echo
  echo "- \`nproc\`: $(nproc); $(lscpu | grep 'Model name' | sed 's/  */ /g')"
  echo "- load average (1, 5, 15 min) when the run started: $LOAD_BEFORE; at the end: $LOAD_AFTER"
  echo "- kernel $(uname -r); $(. /etc/os-release && echo "$PRETTY_NAME")"
  echo "- $(dpkg-query -W -f '${Package} ${Version}, ' orthanc orthanc-dicomweb 2>/dev/null)$(/usr/sbin/nginx -v 2>&1 | sed 's/.*: //'), node $(node --version)$( ((BROWSER_RUNS > 0)) && echo ", $(/usr/bin/chromium --version 2>/dev/null | head -n1)")"
  echo "- $("$BIN" --version) (\`$BIN\`), \`threads = 2\`, \`[logging] level = \"warn\"\`; nginx \`worker_processes 2\`, keepalive 32 to Orthanc"
  echo
  node "$HERE/report.mjs" "$RUN/check.json" "$RUN/replay.jsonl" "$RUN/browser.jsonl" "$INSTANCES" "$CONNS"
} >"$REPORT"
cat "$REPORT"
