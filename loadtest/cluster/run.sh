#!/usr/bin/env bash
# loadtest/cluster/run.sh: the reference cluster (deploy/cluster/) under
# faults, issue 14 item 4. One command, loopback only, bounded; it stops by
# itself, kills only the processes it started and removes its directory.
#
#   loadtest/cluster/run.sh                      # debug build (functional)
#   ESPACE_PS_BIN=$CARGO_TARGET_DIR/deb/espace-ps loadtest/cluster/run.sh   # the figure of record
#
# Starts, in a temporary directory:
#   - two throwaway PostgreSQL clusters (initdb) on free ports: the portal
#     database (accounts, grants, audit trail) and the records (the demo
#     records, generated at a pinned date), so that "the records database
#     unreachable" is a fault of its own;
#   - Redis: a primary, two replicas, three Sentinels (docs/operations.md:
#     with one replica a lost node stops logins until it is back);
#   - Orthanc with the demo studies and one large series (LARGE_INSTANCES x
#     2 MiB: 1 GiB by default);
#   - three espace-ps instances on 127.0.0.11-13 behind HAProxy terminating
#     TLS (certificate of a throwaway CA) and checking /-/readyz.
# Then the load driver (driver.py: Hopital Manager SSO logins all along,
# portal pages, searches, viewer images, series downloads) runs while the
# faults are injected one after another, SETTLE seconds apart:
#   kill -9 of one instance (restarted 5 s later, as a supervisor would);
#   a rolling graceful restart of all three (SIGTERM, wait for the exit,
#     start again, wait until HAProxy has it back), the large download
#     started just before on the first instance restarted;
#   a binary upgrade of one (serve --upgrade, then SIGQUIT to the old one),
#     with another large download in flight on it;
#   the Redis primary killed (Sentinel failover; restarted 15 s later, it
#     comes back as a replica);
#   the portal PostgreSQL restarted (pg_ctl restart -m fast);
#   Orthanc restarted;
#   the records PostgreSQL stopped for RECORDS_OUTAGE_SECS (30) seconds.
# Last, report.py prints the Markdown report (per fault: in flight, failed
# by status, sessions lost, downloads cut, audit rows missing, time to
# recover) and exits non-zero if a threshold fails.
#
# Knobs: ESPACE_PS_BIN, ESPACE_PS_DEMO_BIN, LARGE_INSTANCES (512),
# STUDIES (60), WORKERS (8), SETTLE (25 s between faults), RECORDS_OUTAGE_SECS
# (30), KEEP_RUN_DIR=1. Needs: haproxy, redis-server, redis-sentinel,
# postgresql, orthanc, openssl, curl, python3-jwt (installed here if missing).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/loadtest/cluster
TPL=$ROOT/deploy/cluster
BIN=${ESPACE_PS_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/espace-ps}
DEMO_BIN=${ESPACE_PS_DEMO_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/espace-ps-demo}
LARGE_INSTANCES=${LARGE_INSTANCES:-512}
STUDIES=${STUDIES:-60}
WORKERS=${WORKERS:-8}
SETTLE=${SETTLE:-25}
RECORDS_OUTAGE_SECS=${RECORDS_OUTAGE_SECS:-30}
# The records and the instances live on this day (no figure depends on today).
PINNED=2026-03-02T10:00:00Z
DOWNLOADER=899700234562 # Dr Hervé Lefèvre, radiologue: the dicom-download habilitation
SERVICE=espace

log() { printf '[cluster %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

# --- what it needs (as loadtest/viewer/run.sh installs its tools) ----------
need_apt=()
command -v haproxy >/dev/null || need_apt+=(haproxy)
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v redis-sentinel >/dev/null || need_apt+=(redis-sentinel)
command -v redis-cli >/dev/null || need_apt+=(redis-tools)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v curl >/dev/null || need_apt+=(curl)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
[[ -x /usr/bin/python3 ]] && /usr/bin/python3 -c 'import jwt, cryptography' 2>/dev/null || need_apt+=(python3-jwt python3-cryptography)
if ((${#need_apt[@]})); then
  [[ $(id -u) == 0 ]] || die "missing ${need_apt[*]}: install them (apt-get install ${need_apt[*]})"
  log "installing ${need_apt[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need_apt[@]}" >&2
  # Debian starts the packaged services: this run uses its own.
  if [[ " ${need_apt[*]} " == *" haproxy "* ]]; then systemctl disable --now haproxy >/dev/null 2>&1 || service haproxy stop >/dev/null 2>&1 || true; fi
fi
[[ -x $BIN ]] || die "no $BIN (cargo build -p espace-ps)"
[[ -x $DEMO_BIN ]] || die "no $DEMO_BIN (cargo build -p espace-ps-demo)"
# shellcheck source=../../scripts/lib/orthanc.sh
. "$ROOT/scripts/lib/orthanc.sh"
orthanc_install
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
RUN=$(mktemp -d /tmp/espace-cluster.XXXXXX)
chmod 755 "$RUN"
declare -A PIDS=()   # name -> pid of every process this script started
DRIVER_PID=""
AS_PG=()
if [[ $(id -u) == 0 ]]; then
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
  chown postgres "$RUN"
  AS_PG=(runuser -u postgres --)
fi

stop_pid() { # stop_pid PID [SIGNAL]: signal, bounded wait, then SIGKILL
  local pid=$1 sig=${2:-TERM}
  [[ -n $pid ]] || return 0
  kill "-$sig" "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  touch "$RUN/stop"
  [[ -n $DRIVER_PID ]] && stop_pid "$DRIVER_PID"
  local name
  for name in "${!PIDS[@]}"; do
    [[ $name == orthanc ]] || stop_pid "${PIDS[$name]}"
  done
  orthanc_stop "$RUN/orthanc"
  for db in portal records; do
    [[ -d $RUN/$db ]] && "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$RUN/$db" -m immediate -w stop >/dev/null 2>&1
  done
  if [[ ${KEEP_RUN_DIR:-0} == 1 ]]; then log "run directory kept: $RUN"; else rm -rf "$RUN"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

read -r PG_PORT REC_PORT R0 R1 R2 S0 S1 S2 ORTHANC_PORT ORTHANC_DICOM FRONT STATS P1 P2 P3 A1 A2 A3 <<<"$(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(18)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
)"
INSTANCES=(1 2 3)
declare -A ADDR=([1]=127.0.0.11 [2]=127.0.0.12 [3]=127.0.0.13)
declare -A PORT=([1]=$P1 [2]=$P2 [3]=$P3)
declare -A ADMIN=([1]=$A1 [2]=$A2 [3]=$A3)

# --- PostgreSQL: the portal database and the records, two clusters ----------
pg_ctl_do() { # pg_ctl_do NAME ARGS...
  local name=$1; shift
  "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$RUN/$name" -l "$RUN/$name.log" "$@"
}
pg_start() { # pg_start NAME PORT
  pg_ctl_do "$1" -w -o "-c listen_addresses=127.0.0.1 -p $2 -k $RUN -c max_connections=200" start >/dev/null
}
for db in portal:$PG_PORT records:$REC_PORT; do
  name=${db%%:*} port=${db#*:}
  "${AS_PG[@]}" "$PGBIN/initdb" -D "$RUN/$name" -U bench --auth=trust >/dev/null
  pg_start "$name" "$port"
  "$PGBIN/psql" -X -q -h 127.0.0.1 -p "$port" -U bench -d postgres -c "CREATE DATABASE $name"
done
DATABASE_URL=postgres://bench@127.0.0.1:$PG_PORT/portal
RECORDS_URL=postgres://bench@127.0.0.1:$REC_PORT/records
log "PostgreSQL: portal database on $PG_PORT, records on $REC_PORT"

# --- Redis: primary, two replicas, three Sentinels --------------------------
redis_start() { # redis_start NAME PORT [PRIMARY_PORT]
  mkdir -p "$RUN/$1"
  local extra=()
  [[ -n ${3:-} ]] && extra=(--replicaof 127.0.0.1 "$3")
  redis-server --bind 127.0.0.1 --port "$2" --save "" --appendonly no --dir "$RUN/$1" "${extra[@]}" \
    </dev/null >>"$RUN/$1.log" 2>&1 &
  PIDS[$1]=$!
}
redis_cmd() { redis-cli -h 127.0.0.1 -p "$1" "${@:2}" 2>/dev/null; }
wait_until() { # wait_until SECONDS WHAT COMMAND...: polls every 0.2 s
  local deadline=$((SECONDS + $1)) what=$2; shift 2
  until "$@"; do
    ((SECONDS < deadline)) || die "timed out after ${deadline}s waiting for $what"
    sleep 0.2
  done
}
redis_start redis-0 "$R0"
redis_start redis-1 "$R1" "$R0"
redis_start redis-2 "$R2" "$R0"
declare -A REDIS_PORT=([redis-0]=$R0 [redis-1]=$R1 [redis-2]=$R2)
replicas_synced() { [[ $(redis_cmd "$R0" info replication | grep -c 'state=online') == 2 ]]; }
wait_until 30 "the Redis replicas in sync" replicas_synced
i=0
for port in $S0 $S1 $S2; do
  mkdir -p "$RUN/sentinel-$i"
  sed -e "s|@PORT@|$port|" -e "s|@DIR@|$RUN/sentinel-$i|" -e "s|@SERVICE@|$SERVICE|" -e "s|@PRIMARY_PORT@|$R0|" \
    "$TPL/sentinel.conf.in" >"$RUN/sentinel-$i/sentinel.conf"
  redis-sentinel "$RUN/sentinel-$i/sentinel.conf" </dev/null >"$RUN/sentinel-$i.log" 2>&1 &
  PIDS[sentinel-$i]=$!
  i=$((i + 1))
done
sentinels_know() { grep -q '+slave slave.*'"$R2" "$RUN/sentinel-2.log" && grep -q '+slave slave.*'"$R1" "$RUN/sentinel-2.log"; }
wait_until 30 "the Sentinels knowing both replicas" sentinels_know
primary_port() { redis_cmd "$S0" SENTINEL get-master-addr-by-name "$SERVICE" | tail -n1; }
log "Redis: primary $R0, replicas $R1 $R2, Sentinels $S0 $S1 $S2"

# --- Orthanc and the demo records ------------------------------------------
orthanc_start "$RUN/orthanc" "$ORTHANC_PORT" "$ORTHANC_DICOM" >/dev/null || die "Orthanc did not start"
PIDS[orthanc]=$ORTHANC_PID
ORTHANC=http://127.0.0.1:$ORTHANC_PORT
log "demo records (at $PINNED) and $STUDIES studies into Orthanc"
"$DEMO_BIN" demo-data --now "$PINNED" --records "$RECORDS_URL" --orthanc "$ORTHANC" --studies "$STUDIES" \
  >"$RUN/demo-data.log" 2>&1 || { tail -c 2000 "$RUN/demo-data.log" >&2; die "demo-data"; }
PSQL_REC=("$PGBIN/psql" -X -q -At -h 127.0.0.1 -p "$REC_PORT" -U bench -d records)
# One of the downloader's studies in Orthanc gets the large series.
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
STUDY_UID="" STUDY_ID=""
while read -r uid; do
  id=$(curl -fsS -X POST --data-binary "$uid" "$ORTHANC/tools/lookup" | json '" ".join(e["ID"] for e in d if e["Type"] == "Study")')
  if [[ -n $id ]]; then STUDY_UID=$uid STUDY_ID=$id; break; fi
done < <("${PSQL_REC[@]}" -c "SELECT DISTINCT e.study_instance_uid FROM rec_exams e JOIN rec_care_team c ON c.dossier_number = e.dossier_number
   WHERE c.national_id = '$DOWNLOADER' AND c.role_code IN ('MR','MT','CO','PR','AD') AND e.study_instance_uid IS NOT NULL
   ORDER BY 1")
[[ -n $STUDY_ID ]] || die "none of the downloader's studies is in Orthanc (STUDIES)"
PATIENT=$(curl -fsS "$ORTHANC/studies/$STUDY_ID" | json 'd["PatientMainDicomTags"]["PatientID"]')
log "adding the large series ($LARGE_INSTANCES x 2 MiB) to study $STUDY_ID"
python3 "$ROOT/loadtest/viewer/gen_study.py" --orthanc "$ORTHANC" --study-uid "$STUDY_UID" --patient-id "$PATIENT" \
  --count "$LARGE_INSTANCES" --rows 1024 --cols 1024 >"$RUN/uploaded"
LARGE_SERIES=$(curl -fsS "$ORTHANC/studies/$STUDY_ID/series" |
  json '[s["ID"] for s in d if s["MainDicomTags"].get("SeriesDescription") == "BENCHMARK LARGE SERIES"][0]')
LARGE_BYTES=$(curl -fsS "$ORTHANC/series/$LARGE_SERIES/statistics" | json 'd["DiskSize"]')
# What each professional may open: care teams in the records, ids in Orthanc.
"${PSQL_REC[@]}" -F, -c "SELECT DISTINCT c.national_id, d.dossier_number, d.patient_id, p.family_name, COALESCE(e.study_instance_uid, '')
  FROM rec_care_team c JOIN rec_dossiers d ON d.dossier_number = c.dossier_number
  JOIN rec_patients p ON p.patient_id = d.patient_id
  LEFT JOIN rec_exams e ON e.dossier_number = d.dossier_number
  WHERE c.role_code IN ('MR','MT','CO','PR','AD')
    AND c.national_id IN (SELECT national_id FROM rec_care_team GROUP BY national_id ORDER BY COUNT(*) DESC LIMIT 5)" >"$RUN/plan.csv"
/usr/bin/python3 "$HERE/driver.py" plan --csv "$RUN/plan.csv" --orthanc "$ORTHANC" --out "$RUN/plan.json" \
  --downloader "$DOWNLOADER" --exclude-series "$LARGE_SERIES"

# --- TLS for the gateway: a throwaway CA -------------------------------------
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=espace-ps cluster test CA" \
  -keyout "$RUN/ca.key" -out "$RUN/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$RUN/gw.key" -out "$RUN/gw.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\n' >"$RUN/gw.ext"
openssl x509 -req -in "$RUN/gw.csr" -CA "$RUN/ca.pem" -CAkey "$RUN/ca.key" -CAcreateserial -days 2 \
  -extfile "$RUN/gw.ext" -out "$RUN/gw.crt" 2>/dev/null
cat "$RUN/gw.crt" "$RUN/gw.key" >"$RUN/gw.pem"
# Hopital Manager's signing key (throwaway) for the SSO launches.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$RUN/hm.key.pem" 2>/dev/null
openssl pkey -in "$RUN/hm.key.pem" -pubout -out "$RUN/hm.pub.pem"

# --- espace-ps: three instances ---------------------------------------------
cp -r "$ROOT/policies" "$RUN/policies"
python3 - "$RUN/policies/groups.toml" "$DOWNLOADER" <<'PY'
import re, sys
path, doctor = sys.argv[1], sys.argv[2]
text = open(path, encoding="utf-8").read()
head, sep, rest = text.partition("[groups.dicom-download]")
assert sep, "no [groups.dicom-download] in groups.toml"
rest = re.sub(r"(?m)^national_ids = \[\]", f'national_ids = ["{doctor}"]', rest, count=1)
open(path, "w", encoding="utf-8").write(head + sep + rest)
PY
head -c 32 /dev/urandom | base64 >"$RUN/audit-search.key"
OFFSET=$(python3 -c "import datetime,time; print(int(datetime.datetime.fromisoformat('${PINNED/Z/+00:00}').timestamp() - time.time()))")
PUBLIC=https://127.0.0.1:$FRONT
for n in "${INSTANCES[@]}"; do
  sed -e "s|@LISTEN@|${ADDR[$n]}:${PORT[$n]}|" -e "s|@ADMIN_LISTEN@|127.0.0.1:${ADMIN[$n]}|" \
    -e "s|@PUBLIC_URL@|$PUBLIC|" -e "s|@UPGRADE_SOCK@|$RUN/upgrade-$n.sock|" -e "s|@GATEWAY@|127.0.0.1|" \
    -e "s|@ORTHANC@|127.0.0.1:$ORTHANC_PORT|" -e "s|@HM_PUBLIC_KEY@|$RUN/hm.pub.pem|" \
    -e "s|@HM_ORIGIN@|https://hm.cluster.invalid|" \
    -e "s|@SENTINELS@|\"127.0.0.1:$S0\", \"127.0.0.1:$S1\", \"127.0.0.1:$S2\"|" -e "s|@REDIS_SERVICE@|$SERVICE|" \
    -e "s|@DATABASE_URL@|$DATABASE_URL|" -e "s|@RECORDS_URL@|$RECORDS_URL|" -e "s|@POLICIES@|$RUN/policies|" \
    -e "s|@ALLOW_AUDIT_REWRITE@|# The throwaway cluster's role owns the tables (a real one: INSERT and SELECT only).\nallow_audit_rewrite = true|" \
    -e "s|@AUDIT_SEARCH_KEY@|$RUN/audit-search.key|" \
    -e "s|@TESTING@|[testing]\nclock_offset_secs = $OFFSET|" \
    "$TPL/espace-ps.toml.in" >"$RUN/espace-ps-$n.toml"
done
"$BIN" check-config "$RUN/espace-ps-1.toml" >&2
"$BIN" migrate --config "$RUN/espace-ps-1.toml" >&2

ready() { curl -fs -o /dev/null --max-time 2 "http://127.0.0.1:${ADMIN[$1]}/-/readyz"; }
start_instance() { # start_instance N [--upgrade]
  "$BIN" serve --config "$RUN/espace-ps-$1.toml" "${@:2}" </dev/null >>"$RUN/espace-ps-$1.log" 2>&1 &
  PIDS[espace-$1]=$!
}
for n in "${INSTANCES[@]}"; do start_instance "$n"; done
for n in "${INSTANCES[@]}"; do wait_until 60 "espace-ps $n ready" ready "$n"; done
log "espace-ps: ${ADDR[1]}:$P1 ${ADDR[2]}:$P2 ${ADDR[3]}:$P3"

# --- HAProxy ------------------------------------------------------------------
servers="" backups=""
for n in "${INSTANCES[@]}"; do
  servers+="    server espace-$n ${ADDR[$n]}:${PORT[$n]} check"$'\n'
  backups+="    server espace-$n ${ADDR[$n]}:${PORT[$n]} check"$'\n'
done
python3 - "$TPL/haproxy.cfg.in" "$RUN/haproxy.cfg" "$RUN" "127.0.0.1:$FRONT" "$RUN/gw.pem" "127.0.0.1:$STATS" "$servers" "$backups" <<'PY'
import sys
src, dst, run, front, cert, stats, servers, backups = sys.argv[1:]
t = open(src).read()
for k, v in {"@RUN@": run, "@FRONT@": front, "@CERT@": cert, "@STATS@": stats,
             "@SERVERS@": servers.rstrip("\n"), "@LIVE_SERVERS@": backups.rstrip("\n")}.items():
    t = t.replace(k, v)
open(dst, "w").write(t)
PY
haproxy -c -f "$RUN/haproxy.cfg" >/dev/null || die "haproxy.cfg"
haproxy -W -db -f "$RUN/haproxy.cfg" </dev/null >"$RUN/haproxy.log" 2>&1 &
PIDS[haproxy]=$!
# up_count: instances HAProxy sends traffic to (not the backups).
up_count() {
  curl -fsS --max-time 2 "http://127.0.0.1:$STATS/stats;csv" 2>/dev/null |
    awk -F, '$1 == "espace_ps" && $2 ~ /^espace-[0-9]$/ && $18 == "UP" {n++} END {print n + 0}'
}
all_up() { [[ $(up_count) == 3 ]]; }
wait_until 60 "HAProxy seeing three instances up" all_up
log "HAProxy: $PUBLIC (stats on 127.0.0.1:$STATS)"

# --- the load ---------------------------------------------------------------
DRIVER=(/usr/bin/python3 "$HERE/driver.py")
COMMON=(--base "$PUBLIC" --ca "$RUN/ca.pem" --key "$RUN/hm.key.pem" --out "$RUN/requests.jsonl")
"${DRIVER[@]}" run "${COMMON[@]}" --plan "$RUN/plan.json" --stop-file "$RUN/stop" \
  --duration 1500 --workers "$WORKERS" 2>"$RUN/driver.log" &
DRIVER_PID=$!
: >"$RUN/faults.jsonl"
now() { date +%s.%N; }
fault() { # fault NAME: a fault starts now
  FAULT=$1 FAULT_AT=$(now)
  log "fault: $FAULT"
}
recovered() { # recovered [NOTE]: the fault's component is back
  local at
  at=$(now)
  printf '{"fault": "%s", "at": %s, "recovered": %s, "note": "%s"}\n' "$FAULT" "$FAULT_AT" "$at" "${1:-}" >>"$RUN/faults.jsonl"
  log "  recovered after $(awk -v a="$FAULT_AT" -v b="$at" 'BEGIN {printf "%.1f", b - a}') s"
}
# The large download, by the downloader's own session (curl), through the
# gateway; prints the instance that serves it once its headers are in.
large_download() { # large_download TAG: sets LARGE_PID and LARGE_ON (the instance)
  local cookie tag=$1
  cookie=$("${DRIVER[@]}" login "${COMMON[@]}" --national-id "$DOWNLOADER" --sid="large-$tag")
  (
    t0=$(now)
    out=$(curl -s -o /dev/null --max-time 900 --cacert "$RUN/ca.pem" -H "Cookie: $cookie" \
      -D "$RUN/large-$tag.headers" -w '%{http_code} %{size_download} %{exitcode}' "$PUBLIC/series/$LARGE_SERIES/archive")
    t1=$(now)
    read -r code size cexit <<<"$out"
    err=""
    [[ ${cexit:-0} == 0 ]] || err="curl exit $cexit"
    rid=$(sed -n 's/^[Xx]-[Rr]equest-[Ii]d: *//p' "$RUN/large-$tag.headers" | tr -d '\r')
    be=$(sed -n 's/^[Xx]-[Ee]space-[Bb]ackend: *//p' "$RUN/large-$tag.headers" | tr -d '\r')
    printf '{"t0": %s, "t1": %s, "kind": "large-download", "status": %s, "backend": "%s", "rid": "%s", "sid": "large-%s", "bytes": %s, "audit": {"event": "dicom_download", "actor": "%s"}, "err": "%s"}\n' \
      "$t0" "$t1" "${code:-0}" "$be" "$rid" "$tag" "${size:-0}" "$DOWNLOADER" "$err" >>"$RUN/large.jsonl"
  ) </dev/null >/dev/null 2>&1 &
  LARGE_PID=$!
  local deadline=$((SECONDS + 60))
  until grep -qi '^x-espace-backend' "$RUN/large-$tag.headers" 2>/dev/null; do
    ((SECONDS < deadline)) || die "the large download did not start"
    kill -0 "$LARGE_PID" 2>/dev/null || die "the large download ended before its headers: $(tail -n1 "$RUN/large.jsonl" 2>/dev/null)"
    sleep 0.1
  done
  LARGE_ON=$(sed -n 's/^[Xx]-[Ee]space-[Bb]ackend: *espace-//p' "$RUN/large-$tag.headers" | tr -d '\r')
}
log "load running ($WORKERS workers); warming up for $SETTLE s"
sleep "$SETTLE"

# 1. kill -9 of one instance
fault "kill -9 of instance 2"
kill -KILL "${PIDS[espace-2]}"; wait "${PIDS[espace-2]}" 2>/dev/null || true
sleep 5
start_instance 2
wait_until 60 "instance 2 back" all_up
recovered "restarted 5 s after the kill"
sleep "$SETTLE"

# 2. rolling graceful restart, the large download in flight on the first one
large_download rolling
first=$LARGE_ON
log "large download served by instance $first"
fault "rolling graceful restart (large download on instance $first)"
for n in "$first" $(printf '%s\n' "${INSTANCES[@]}" | grep -vx "$first"); do
  pid=${PIDS[espace-$n]}
  t=$(now)
  kill -TERM "$pid"
  wait_until 200 "instance $n to exit after SIGTERM" bash -c "! kill -0 $pid 2>/dev/null"
  wait "$pid" 2>/dev/null || true
  log "  instance $n drained and exited in $(awk -v a="$t" -v b="$(now)" 'BEGIN {printf "%.1f", b - a}') s"
  start_instance "$n"
  wait_until 60 "instance $n back" all_up
done
recovered "three instances restarted one after another"
wait "$LARGE_PID" 2>/dev/null || true
sleep "$SETTLE"

# 3. binary upgrade of the instance serving another large download
large_download upgrade
target=$LARGE_ON
log "large download served by instance $target"
fault "binary upgrade of instance $target (large download on it)"
old=${PIDS[espace-$target]}
rm -f "$RUN/upgrade-$target.sock"
start_instance "$target" --upgrade
wait_until 60 "the new process on its upgrade socket" test -S "$RUN/upgrade-$target.sock"
kill -QUIT "$old"
wait_until 200 "the old instance $target to exit after SIGQUIT" bash -c "! kill -0 $old 2>/dev/null"
wait "$old" 2>/dev/null || true
ready "$target" || die "the upgraded instance $target is not ready"
wait_until 60 "instance $target up" all_up
recovered "the old process exited after its requests"
wait "$LARGE_PID" 2>/dev/null || true
sleep "$SETTLE"

# 4. the Redis primary killed
fault "Redis primary killed (Sentinel failover)"
old_primary=$(primary_port)
for name in redis-0 redis-1 redis-2; do [[ ${REDIS_PORT[$name]} == "$old_primary" ]] && killed=$name; done
kill -KILL "${PIDS[$killed]}"; wait "${PIDS[$killed]}" 2>/dev/null || true
new_primary() { local p; p=$(primary_port); [[ -n $p && $p != "$old_primary" ]]; }
wait_until 60 "a new primary" new_primary
wait_until 60 "every instance ready" all_up
recovered "new primary $(primary_port)"
sleep 15
redis_start "$killed" "$old_primary"   # it comes back; Sentinel makes it a replica
sleep "$SETTLE"

# 5. the portal PostgreSQL restarted
fault "portal PostgreSQL restarted"
pg_ctl_do portal -m fast -w restart -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $RUN -c max_connections=200" >/dev/null
wait_until 60 "every instance ready" all_up
recovered "pg_ctl restart -m fast"
sleep "$SETTLE"

# 6. Orthanc restarted
fault "Orthanc restarted"
orthanc_stop "$RUN/orthanc"
orthanc_start "$RUN/orthanc" "$ORTHANC_PORT" "$ORTHANC_DICOM" >/dev/null || die "Orthanc did not start again"
PIDS[orthanc]=$ORTHANC_PID
recovered "Orthanc answers again"
sleep "$SETTLE"

# 7. the records database unreachable
fault "records PostgreSQL unreachable for $RECORDS_OUTAGE_SECS s"
pg_ctl_do records -m fast -w stop >/dev/null
sleep "$RECORDS_OUTAGE_SECS"
pg_start records "$REC_PORT"
wait_until 60 "every instance ready" all_up
recovered "records database back after $RECORDS_OUTAGE_SECS s"
sleep "$SETTLE"
FAULT="end" FAULT_AT=$(now)
recovered ""

touch "$RUN/stop"
wait "$DRIVER_PID" 2>/dev/null || true
DRIVER_PID=""
cat "$RUN/driver.log" >&2
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# --- audit rows --------------------------------------------------------------
"$PGBIN/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U bench -d portal -c \
  "\\copy (SELECT id, at_ms, actor, event, outcome, resource, COALESCE(request_id, '') FROM audit_events) TO '$RUN/audit.csv' CSV"
VERIFY=$("$BIN" audit verify --database-url "$DATABASE_URL" 2>&1 | tail -n 3 | tr '\n' ' ') || VERIFY="FAILED: $VERIFY"
cat "$RUN/large.jsonl" >>"$RUN/requests.jsonl"

MACHINE="$(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(. /etc/os-release; echo "$PRETTY_NAME"); shared with other builds: load average $LOAD_BEFORE at start, $LOAD_AFTER at the end"
mkdir -p "$HERE/results"
python3 "$HERE/report.py" --requests "$RUN/requests.jsonl" --faults "$RUN/faults.jsonl" --audit "$RUN/audit.csv" \
  --machine "$MACHINE" --binary "$BIN" --large-bytes "$LARGE_BYTES" --verify "$VERIFY" --clock-offset "$OFFSET" | tee "$HERE/results/latest.md"
