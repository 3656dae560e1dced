#!/usr/bin/env bash
# The home page benchmark (issue 11 §3): "Derniers résultats non vus" of a
# professional with 2,000 unseen reports in the 1M-patient records, on
# PostgreSQL. See README.md.
#
#   PG=postgres://espace@127.0.0.1:PORT loadtest/home/run.sh            # release figures
#   PG=… PATIENTS=20000 REQUESTS=50 PROFILE=debug loadtest/home/run.sh  # a sanity run
#
# PG: a PostgreSQL server URL without the database (the role may create
# databases); the script creates records_home_<patients> (kept, reused when
# it exists: generating 1M patients takes minutes) and a fresh portal
# database portal_home_bench.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${PG:?PG=postgres://user@host:port (no database)}"
PATIENTS="${PATIENTS:-1000000}"
REQUESTS="${REQUESTS:-500}"
UNSEEN="${UNSEEN:-2000}"
PROFILE="${PROFILE:-release}"
TODAY="${TODAY:-2025-06-15}"   # pinned: the data never depends on the real date
TARGET="${CARGO_TARGET_DIR:-target}"
flag=""; [ "$PROFILE" = release ] && flag="--release"
cargo build $flag -p espace-ps-search-bench -p espace-ps-home-bench
search="$TARGET/$PROFILE/espace-ps-search-bench"
home="$TARGET/$PROFILE/espace-ps-home-bench"

records_db="records_home_${PATIENTS}"
psql_admin() { psql "$PG/postgres" -v ON_ERROR_STOP=1 -qAt -c "$1"; }
if [ -z "$(psql_admin "SELECT 1 FROM pg_database WHERE datname = '$records_db'")" ]; then
  psql_admin "CREATE DATABASE $records_db"
  "$search" generate --url "$PG/$records_db" --patients "$PATIENTS" --today "$TODAY"
fi
psql_admin "DROP DATABASE IF EXISTS portal_home_bench"
psql_admin "CREATE DATABASE portal_home_bench"

"$home" seed --url "$PG/$records_db" --unseen "$UNSEEN" --today "$TODAY"
echo "machine: $(nproc) cores, $(lscpu | sed -n 's/^Model name: *//p'); load $(cut -d' ' -f1-3 /proc/loadavg)"
"$home" run --records "$PG/$records_db" --portal-db "$PG/portal_home_bench" \
  --policies policies --today "$TODAY" --requests "$REQUESTS"
echo "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
psql_admin "DROP DATABASE IF EXISTS portal_home_bench"
