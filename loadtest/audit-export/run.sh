#!/usr/bin/env bash
# The patient export on a large audit trail (issue 13): `espace-ps audit
# export --patient` timed with a cold cache, on a PostgreSQL of its own
# (started here in a temporary directory, on a free loopback port, so it can
# be restarted and the OS page cache dropped between runs).
#
#   ROWS=50000000 loadtest/audit-export/run.sh          # the figure of record (~1 h, ~15 GB)
#   ROWS=200000 TARGET_ROWS=10000 loadtest/audit-export/run.sh   # a sanity run
#
# Variables: ROWS (total rows, default 50,000,000), TARGET_ROWS (rows of the
# exported patient, default 10,000), PATIENTS (other patients, default
# 2,000,000), RUNS (cold runs, default 3), ESPACE_PS (the binary, default the
# release build under CARGO_TARGET_DIR or target/), KEEP=1 keeps the data
# directory. Needs root to drop the page cache (skipped otherwise, and said).
set -euo pipefail

ROWS=${ROWS:-50000000}
TARGET_ROWS=${TARGET_ROWS:-10000}
PATIENTS=${PATIENTS:-2000000}
RUNS=${RUNS:-3}
TARGET_DIR=${CARGO_TARGET_DIR:-$(cd "$(dirname "$0")/../.." && pwd)/target}
ESPACE_PS=${ESPACE_PS:-$TARGET_DIR/release/espace-ps}
[ -x "$ESPACE_PS" ] || { echo "no $ESPACE_PS: cargo build --release -p espace-ps --bin espace-ps (or set ESPACE_PS)" >&2; exit 2; }
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
[ -x "$PGBIN/initdb" ] || { echo "PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 2; }

RUN=$(mktemp -d /tmp/audit-export.XXXXXX)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
AS_PG=()
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
  chown postgres "$RUN"
  AS_PG=(runuser -u postgres --)
fi
DATA=$RUN/data
cleanup() {
  "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$DATA" -m fast stop >/dev/null 2>&1 || true
  [ "${KEEP:-0}" = 1 ] || rm -rf "$RUN"
}
trap cleanup EXIT

"${AS_PG[@]}" "$PGBIN/initdb" -D "$DATA" -U bench --auth=trust >/dev/null
pg_start() {
  "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$DATA" -l "$RUN/pg.log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $PORT -k $RUN -c shared_buffers=256MB -c max_wal_size=8GB -c checkpoint_timeout=30min" start >/dev/null
}
pg_stop() { "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null; }
pg_start
PSQL=("$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U bench)
"${PSQL[@]}" -d postgres -c "CREATE DATABASE audit"
URL="postgres://bench@127.0.0.1:$PORT/audit"

# The schema, by the binary itself (its migrations).
"$ESPACE_PS" migrate --database-url "$URL" >/dev/null

echo "filling $ROWS rows ($TARGET_ROWS of the exported patient) ..."
START=$(date +%s)
# Two years of events, every row of the shape the portal and the viewer
# write; the exported patient's rows are spread over the same two years.
# The time column is pinned (no row depends on today's date).
"${PSQL[@]}" -d audit <<SQL
INSERT INTO accounts (national_id, rpps, given_name, family_name, last_login_method, first_login_at, last_login_at, login_count)
SELECT '8' || lpad(g::text, 11, '0'), lpad(g::text, 11, '0'), 'Prénom' || g, 'NOM' || g, 'psc_card', 0, 0, 1
FROM generate_series(1, 5000) g;
INSERT INTO audit_events (at_ms, actor, event, method, outcome, client_addr, resource, patient_id, dossier, study_uid, access_path, policy)
SELECT 1735689600000 + (g::bigint * 63072000000 / $ROWS),
       '8' || lpad((1 + g % 5000)::text, 11, '0'),
       (ARRAY['images_view','report_view','dossier_view','patient_view','dicom_download'])[1 + g % 5],
       'psc_card', 'success', '10.20.' || (g % 250) || '.' || (g % 200),
       'r' || g,
       CASE WHEN g % ($ROWS / $TARGET_ROWS) = 0 THEN 'BENCH-TARGET' ELSE 'P' || (g % $PATIENTS) END,
       'D' || (g % ($PATIENTS * 3)),
       '1.2.250.1.59.' || g,
       'care_team', 'care-team'
FROM generate_series(1, $ROWS) g;
ANALYZE audit_events;
ANALYZE accounts;
SQL
echo "filled in $(( $(date +%s) - START )) s"
"${PSQL[@]}" -d audit -At -c "SELECT 'rows: ' || COUNT(*) FROM audit_events" 
"${PSQL[@]}" -d audit -At -c "SELECT 'target rows: ' || COUNT(*) FROM audit_events WHERE patient_id = 'BENCH-TARGET'"
"${PSQL[@]}" -d audit -At -c "SELECT 'table + indexes: ' || pg_size_pretty(pg_total_relation_size('audit_events'))"
"${PSQL[@]}" -d audit -At -c "EXPLAIN SELECT * FROM audit_events a WHERE a.patient_id = 'BENCH-TARGET' AND a.at_ms >= 0 AND a.at_ms < 9000000000000 ORDER BY a.at_ms, a.id" | head -5

cold() {
  pg_stop
  sync
  if [ "$(id -u)" = 0 ]; then echo 3 > /proc/sys/vm/drop_caches; else echo "(not root: page cache not dropped)"; fi
  pg_start
}
timed() {
  local t0 t1
  t0=$(date +%s%N)
  "$ESPACE_PS" audit export --database-url "$URL" --patient BENCH-TARGET --format csv > "$RUN/export.csv"
  t1=$(date +%s%N)
  echo $(( (t1 - t0) / 1000000 ))
}
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {print int($2/1024/1024) " GiB"}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "binary: $ESPACE_PS"
for i in $(seq 1 "$RUNS"); do
  cold
  ms=$(timed)
  echo "cold run $i: ${ms} ms, $(( $(wc -l < "$RUN/export.csv") - 1 )) lines exported"
done
for i in 1 2 3; do
  echo "warm run $i: $(timed) ms"
done
