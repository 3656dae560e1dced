#!/usr/bin/env bash
# loadtest/series-download/run.sh: "Télécharger la série (DICOM)" (user
# guide 3.1.3) on a 1 GiB series, and espace-ps's memory while it streams
# it. See loadtest/series-download/README.md.
#
# Orthanc with a few demo studies; a series of ARCHIVE_INSTANCES x
# ARCHIVE_ROWS x ARCHIVE_COLS 16-bit instances with random pixels (512 x 2
# MiB = 1 GiB, incompressible) added to one of Dr Hervé Lefèvre's studies;
# `espace-ps serve` with a copy of policies/ in which he holds the
# dicom-download habilitation, signed in through Hopital Manager SSO (the
# worked example of docs/hm-sso.md signs the token). Then, as he would:
#   1. the viewer page of that series through espace-ps: its banner must
#      offer "Télécharger la série (DICOM)" with the series' link;
#   2. that link, downloaded through espace-ps (curl), espace-ps's VmRSS
#      sampled from /proc every 100 ms, and VmHWM (its peak since start)
#      read after; the same archive directly from Orthanc for reference;
#   3. the audit record of the download (series and study).
# Goal: peak RSS under 64 MiB. Results: results/latest.md (also printed).
#
# Knobs: ARCHIVE_INSTANCES (512), ARCHIVE_ROWS (1024), ARCHIVE_COLS (1024),
# STUDIES (demo studies loaded, 30), ESPACE_PS_BIN (default
# $CARGO_TARGET_DIR or target, /debug/espace-ps: say which build you
# measured), ESPACE_PS_DEMO_BIN (for demo-data; default beside it),
# KEEP_RUN_DIR=1 keeps the temporary directory. Loopback only.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/loadtest/series-download
ARCHIVE_INSTANCES=${ARCHIVE_INSTANCES:-512}
ARCHIVE_ROWS=${ARCHIVE_ROWS:-1024}
ARCHIVE_COLS=${ARCHIVE_COLS:-1024}
STUDIES=${STUDIES:-30}
BIN=${ESPACE_PS_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/espace-ps}
DEMO_BIN=${ESPACE_PS_DEMO_BIN:-$(dirname "$BIN")/espace-ps-demo}
DOCTOR=899700234562 # Dr Hervé Lefèvre, radiologue (demo records)
RSS_GOAL_KB=$((64 * 1024))

log() { printf '[series-download %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

for tool in curl sqlite3 openssl; do command -v "$tool" >/dev/null || die "$tool is needed"; done
[[ -x /usr/bin/python3 ]] && /usr/bin/python3 -c 'import jwt' 2>/dev/null ||
  die "Debian's python3 with python3-jwt is needed (apt-get install python3-jwt python3-cryptography)"
[[ -x $BIN ]] || die "no $BIN (cargo build -p espace-ps)"
[[ -x $DEMO_BIN ]] || die "no $DEMO_BIN (cargo build -p espace-ps-demo)"
# shellcheck source=../../scripts/lib/orthanc.sh
. "$ROOT/scripts/lib/orthanc.sh"
orthanc_install

json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
# RssAnon: what espace-ps allocated (VmRSS = RssAnon + RssFile + RssShmem;
# RssFile is mostly its own executable's pages, large in a debug build).
anon_kb() { awk '/^RssAnon:/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
wait_http() {
  for _ in $(seq 100); do
    curl -s -o /dev/null --max-time 1 "$1" && return 0
    sleep 0.1
  done
  return 1
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
RUN=$(mktemp -d /tmp/espace-series-download.XXXXXX)
ESPACE_PID="" SAMPLER_PID=""
cleanup() {
  local rc=$?
  set +e
  [[ -n $SAMPLER_PID ]] && kill "$SAMPLER_PID" 2>/dev/null
  if [[ -n $ESPACE_PID ]]; then
    kill -TERM "$ESPACE_PID" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$ESPACE_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$ESPACE_PID" 2>/dev/null
    wait "$ESPACE_PID" 2>/dev/null
  fi
  orthanc_stop "$RUN/orthanc"
  if [[ ${KEEP_RUN_DIR:-0} == 1 ]]; then log "run directory kept: $RUN"; else rm -rf "$RUN"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

read -r ORTHANC_PORT ORTHANC_DICOM ESPACE_PORT ADMIN_PORT <<<"$(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(4)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
)"

# --- Orthanc, the demo studies, the 1 GiB series ---------------------------
log "starting Orthanc on 127.0.0.1:$ORTHANC_PORT"
orthanc_start "$RUN/orthanc" "$ORTHANC_PORT" "$ORTHANC_DICOM" >/dev/null || die "Orthanc did not start"
ORTHANC=http://127.0.0.1:$ORTHANC_PORT
"$DEMO_BIN" demo-data --records "sqlite://$RUN/records.sqlite" --orthanc "$ORTHANC" --studies "$STUDIES" >"$RUN/demo-data.log" 2>&1 ||
  { tail -c 2000 "$RUN/demo-data.log" >&2; die "demo-data"; }

# One of his studies that is in Orthanc, on a dossier whose care team lists him.
STUDY_UID="" STUDY_ID=""
while read -r uid; do
  id=$(curl -fsS -X POST --data-binary "$uid" "$ORTHANC/tools/lookup" | json '" ".join(e["ID"] for e in d if e["Type"] == "Study")')
  if [[ -n $id ]]; then STUDY_UID=$uid STUDY_ID=$id; break; fi
done < <(sqlite3 "$RUN/records.sqlite" \
  "SELECT DISTINCT e.study_instance_uid FROM rec_exams e JOIN rec_care_team c ON c.dossier_number = e.dossier_number
   WHERE c.national_id = '$DOCTOR' AND c.role_code IN ('MR','MT','CO','PR','AD') AND e.study_instance_uid IS NOT NULL
   ORDER BY e.exam_date DESC, e.study_instance_uid")
[[ -n $STUDY_ID ]] || die "none of the doctor's studies is in Orthanc (load more with STUDIES)"
PATIENT=$(curl -fsS "$ORTHANC/studies/$STUDY_ID" | json 'd["PatientMainDicomTags"]["PatientID"]')
log "adding $ARCHIVE_INSTANCES instances of ${ARCHIVE_ROWS}x${ARCHIVE_COLS} 16-bit to study $STUDY_ID as a new series"
t0=$SECONDS
python3 "$ROOT/loadtest/viewer/gen_study.py" --orthanc "$ORTHANC" --study-uid "$STUDY_UID" --patient-id "$PATIENT" \
  --count "$ARCHIVE_INSTANCES" --rows "$ARCHIVE_ROWS" --cols "$ARCHIVE_COLS" >"$RUN/uploaded"
SERIES_ID=$(curl -fsS "$ORTHANC/studies/$STUDY_ID/series" |
  json '[s["ID"] for s in d if s["MainDicomTags"].get("SeriesDescription") == "BENCHMARK LARGE SERIES"][0]')
SERIES_UID=$(curl -fsS "$ORTHANC/series/$SERIES_ID" | json 'd["MainDicomTags"]["SeriesInstanceUID"]')
SERIES_STATS=$(curl -fsS "$ORTHANC/series/$SERIES_ID/statistics")
SERIES_BYTES=$(json 'd["DiskSize"]' <<<"$SERIES_STATS")
SERIES_INSTANCES=$(json 'd["CountInstances"]' <<<"$SERIES_STATS")
log "series $SERIES_ID: $SERIES_INSTANCES instances, $SERIES_BYTES bytes on disk (upload $((SECONDS - t0)) s)"

# --- espace-ps -------------------------------------------------------------
cp -r "$ROOT/policies" "$RUN/policies"
python3 - "$RUN/policies/groups.toml" "$DOCTOR" <<'PY'
import re, sys
path, doctor = sys.argv[1], sys.argv[2]
text = open(path, encoding="utf-8").read()
head, sep, rest = text.partition("[groups.dicom-download]")
assert sep, "no [groups.dicom-download] in groups.toml"
rest = re.sub(r"(?m)^national_ids = \[\]", f'national_ids = ["{doctor}"]', rest, count=1)
open(path, "w", encoding="utf-8").write(head + sep + rest)
PY
grep -q "\"$DOCTOR\"" "$RUN/policies/groups.toml" || die "could not grant the download habilitation in the copy"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$RUN/hm.key.pem" 2>/dev/null
openssl pkey -in "$RUN/hm.key.pem" -pubout -out "$RUN/hm.pub.pem"
cat >"$RUN/espace-ps.toml" <<TOML
[server]
listen = "127.0.0.1:$ESPACE_PORT"
admin_listen = "127.0.0.1:$ADMIN_PORT"
public_url = "http://127.0.0.1:$ESPACE_PORT"
threads = 2

[upstream]
address = "127.0.0.1:$ORTHANC_PORT"

[hm_sso]
issuer = "series-download-bench"
audience = "espace-ps"
public_keys = ["$RUN/hm.pub.pem"]
allowed_origins = ["http://hm.bench.invalid"]

[database]
url = "sqlite://$RUN/espace-ps.sqlite?mode=rwc"

[records]
url = "sqlite://$RUN/records.sqlite?mode=ro"

[policies]
dir = "$RUN/policies"

[logging]
level = "warn"
TOML
"$BIN" serve --config "$RUN/espace-ps.toml" </dev/null >"$RUN/espace-ps.out" 2>"$RUN/espace-ps.log" &
ESPACE_PID=$!
wait_http "http://127.0.0.1:$ADMIN_PORT/-/healthz" || { tail "$RUN/espace-ps.log" >&2; die "espace-ps did not start"; }
BASE=http://127.0.0.1:$ESPACE_PORT

TOKEN=$(/usr/bin/python3 "$ROOT/examples/hm-sso/hm_launch.py" token --key "$RUN/hm.key.pem" \
  --issuer series-download-bench --audience espace-ps --national-id "$DOCTOR" \
  --given-name Hervé --family-name Lefèvre --profession 10 --savoir-faire SM44)
curl -s -o /dev/null -D "$RUN/launch.headers" -c "$RUN/jar" -H "Origin: http://hm.bench.invalid" \
  --data-urlencode "token=$TOKEN" "$BASE/auth/hm-sso"
confirm=$(sed -n 's/^[Ll]ocation: \(.*\)/\1/p' "$RUN/launch.headers" | tr -d '\r' | head -n1)
curl -s -o /dev/null -D "$RUN/session.headers" -b "$RUN/jar" "$BASE$confirm"
COOKIE=$(sed -n 's/^[Ss]et-[Cc]ookie: \(espace-session=[^;]*\).*/\1/p' "$RUN/session.headers" | tr -d '\r' | head -n1)
[[ -n $COOKIE ]] || { cat "$RUN/launch.headers" "$RUN/session.headers" >&2; die "no session from the SSO launch"; }
log "session opened for Dr Hervé Lefèvre"

# --- 1. the banner offers the series ----------------------------------------
curl -fsS -H "Cookie: $COOKIE" "$BASE/web-viewer/app/viewer.html?series=$SERIES_ID" >"$RUN/viewer.html" ||
  die "the viewer page through espace-ps"
HREF=/series/$SERIES_ID/archive
grep -q "href=\"$HREF\"" "$RUN/viewer.html" && grep -q "Télécharger la série (DICOM)" "$RUN/viewer.html" ||
  { grep -o '<div id="espace-ps-bandeau".*</div>' "$RUN/viewer.html" | head -c 2000 >&2; die "the banner does not offer $HREF"; }
log "the banner offers $HREF"

# --- 2. the download: memory -----------------------------------------------
log "the series directly from Orthanc (reference)"
direct=$(curl -s -o /dev/null --max-time 900 -w '%{http_code} %{size_download} %{time_total}' "$ORTHANC$HREF")
RSS_BASE=$(rss_kb "$ESPACE_PID")
ANON_BASE=$(anon_kb "$ESPACE_PID")
HWM_BEFORE=$(hwm_kb "$ESPACE_PID")
log "the series through espace-ps (VmRSS sampled every 100 ms; baseline $RSS_BASE kB)"
(
  while kill -0 "$ESPACE_PID" 2>/dev/null; do
    echo "$(date +%s.%N) $(rss_kb "$ESPACE_PID") $(anon_kb "$ESPACE_PID")"
    sleep 0.1
  done
) >"$RUN/rss.txt" &
SAMPLER_PID=$!
proxied=$(curl -s -o "$RUN/series.zip" --max-time 900 -H "Cookie: $COOKIE" \
  -w '%{http_code} %{size_download} %{time_total} %{content_type}' "$BASE$HREF")
kill "$SAMPLER_PID" 2>/dev/null; wait "$SAMPLER_PID" 2>/dev/null || true; SAMPLER_PID=""
RSS_AFTER=$(rss_kb "$ESPACE_PID")
HWM=$(hwm_kb "$ESPACE_PID")
RSS_PEAK=$(awk '$2 > m {m = $2} END {print m + 0}' "$RUN/rss.txt")
ANON_PEAK=$(awk '$3 > m {m = $3} END {print m + 0}' "$RUN/rss.txt")
ANON_AFTER=$(anon_kb "$ESPACE_PID")
SAMPLES=$(wc -l <"$RUN/rss.txt")
read -r p_code p_bytes p_time p_ctype <<<"$proxied"
read -r d_code d_bytes d_time <<<"$direct"
[[ $p_code == 200 && $p_bytes == "$d_bytes" ]] || die "through espace-ps: $p_code, $p_bytes bytes ($d_bytes direct)"
ZIP_ENTRIES=$(python3 -c "import zipfile,sys; z=zipfile.ZipFile(sys.argv[1]); print(sum(1 for i in z.infolist() if not i.is_dir()))" "$RUN/series.zip")
rm -f "$RUN/series.zip"

# --- 3. the audit record ---------------------------------------------------
AUDIT=$(sqlite3 -separator ' | ' "$RUN/espace-ps.sqlite" \
  "SELECT event, outcome, actor, resource, detail FROM audit_events WHERE event = 'dicom_download' ORDER BY id DESC LIMIT 1")
[[ $AUDIT == "dicom_download | success | $DOCTOR | $STUDY_UID | rest-archive series=$SERIES_UID" ]] ||
  die "audit record: $AUDIT"

# --- report ------------------------------------------------------------------
mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
MIB_S=$(awk -v b="$p_bytes" -v t="$p_time" 'BEGIN {printf "%.0f", b / 1048576 / t}')
if ((HWM < RSS_GOAL_KB)); then VERDICT="met"; else VERDICT="NOT met"; fi
mkdir -p "$HERE/results"
{
  echo "# Series download through espace-ps ($(date -u +%Y-%m-%dT%H:%MZ))"
  echo
  echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(. /etc/os-release; echo "$PRETTY_NAME"), kernel $(uname -r); load average before: $LOAD_BEFORE."
  echo "espace-ps: \`$BIN\` ($(file -b "$BIN" | grep -q 'with debug_info' && echo 'debug build' || echo 'build: see path')), \`threads = 2\`."
  echo
  echo "Series: $SERIES_INSTANCES instances of ${ARCHIVE_ROWS}x${ARCHIVE_COLS} 16-bit random pixels, $(mib $((SERIES_BYTES / 1024))) MiB on Orthanc's disk;"
  echo "the banner of its viewer page offered \`$HREF\`; downloaded by Dr Hervé Lefèvre (habilitated)."
  echo
  echo "| path | status | bytes | time | ZIP entries |"
  echo "|---|---|---:|---:|---:|"
  echo "| direct (Orthanc) | $d_code | $d_bytes | ${d_time} s | |"
  echo "| espace-ps | $p_code | $p_bytes | ${p_time} s ($MIB_S MiB/s) | $ZIP_ENTRIES |"
  echo
  echo "espace-ps memory: VmRSS $(mib "$RSS_BASE") MiB before → $(mib "$RSS_PEAK") MiB peak while streaming ($SAMPLES samples) → $(mib "$RSS_AFTER") MiB after;"
  echo "VmHWM (peak since start) $(mib "$HWM_BEFORE") MiB before, $(mib "$HWM") MiB after."
  echo "Of which allocated (RssAnon): $(mib "$ANON_BASE") → $(mib "$ANON_PEAK") → $(mib "$ANON_AFTER") MiB; the rest is mapped files (the executable)."
  echo "Streaming added $(mib $((RSS_PEAK - RSS_BASE))) MiB to VmRSS."
  echo "Goal: peak under 64 MiB: **$VERDICT**."
  echo
  echo "Audit: \`$AUDIT\`"
} | tee "$HERE/results/latest.md"
[[ $VERDICT == met ]]
