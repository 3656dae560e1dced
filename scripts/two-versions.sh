#!/usr/bin/env bash
# scripts/two-versions.sh: the two-version migration test (issue 14 item
# 5), run by scripts/test.sh. A rolling upgrade runs the previous release
# and the new one against one portal database; migrations must be
# expand-only (docs/operations.md, "Upgrading across versions").
#
# "The previous release" is PREV_RELEASE below: there are no release tags,
# so it is the commit pinned here, the last one before the migrations of
# the current round (0013, structured and chained audit rows). At each
# release, move it to the commit of the release being replaced.
#
# The previous release is built from a `git worktree` of that commit with
# the same CARGO_TARGET_DIR (dependencies with the same features are
# reused; the workspace crates and the dependencies whose features changed
# build once), then kept as $TARGET_DIR/prev-release/espace-ps-<commit>.
#
# Then, on PostgreSQL and on SQLite, with the new `espace-ps` already built:
#   1. the previous release serves (and migrates the empty database to its
#      schema); a professional signs in (Hopital Manager SSO) and opens a
#      dossier: audit rows;
#   2. the new binary migrates (`espace-ps migrate`) while it serves;
#   3. the previous release keeps serving on the migrated schema: the
#      session opened before works, a new sign-in and a dossier view write
#      their audit rows;
#   4. the new binary serves beside it (`migrate = false`): sign-in and
#      dossier view;
#   5. the previous release writes again after the new one did;
#   6. `espace-ps audit verify` (new) accepts the trail after 4, and after 5
#      (the two versions' rows interleaved) when the previous release
#      chains its rows too; when it predates the chains (today's pinned
#      one), verify must flag its rows written after the first chained row;
#   7. a previous-release instance that *starts* on the migrated schema
#      refuses to start (sqlx finds a migration it does not know): the
#      documented "roll forward, never back".
#
#   scripts/two-versions.sh            (needs the new debug build, PostgreSQL,
#                                       python3-jwt; loopback only)
# Environment: CARGO_TARGET_DIR, ESPACE_PS_BIN (the new binary),
# ESPACE_PS_DEMO_BIN, PREV_RELEASE_BIN (a previous-release binary already
# built: skips the build).
set -euo pipefail

# The previous release: the commit before migration 0013 (see above).
PREV_RELEASE=5cc142d6cb2715641e28fe97f321566fc67a33cf

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
[[ $TARGET_DIR == /* ]] || TARGET_DIR=$ROOT/$TARGET_DIR
NEW=${ESPACE_PS_BIN:-$TARGET_DIR/debug/espace-ps}
DEMO=${ESPACE_PS_DEMO_BIN:-$TARGET_DIR/debug/espace-ps-demo}
PINNED=2026-03-02T10:00:00Z
DOCTOR=899700234562 # Dr Hervé Lefèvre (demo records)

log() { printf '    [two-versions %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }
[[ -x $NEW ]] || die "no $NEW (cargo build -p espace-ps)"
[[ -x $DEMO ]] || die "no $DEMO (cargo build -p espace-ps-demo)"
/usr/bin/python3 -c 'import jwt' 2>/dev/null || die "python3-jwt is needed"

# --- the previous release's binary and policies ----------------------------
# (A release ships its policies/: the previous release runs on its own.)
PREV_DIR=$TARGET_DIR/prev-release/${PREV_RELEASE:0:12}
PREV=${PREV_RELEASE_BIN:-$PREV_DIR/espace-ps}
if [[ ! -x $PREV || ! -d $PREV_DIR/policies ]]; then
  cd "$ROOT"
  if ! git cat-file -e "$PREV_RELEASE^{commit}" 2>/dev/null; then
    # A shallow clone: fetch the one commit (and its tree) from origin.
    log "fetching $PREV_RELEASE (not in this clone)"
    git fetch -q --depth=1 origin "$PREV_RELEASE" || die "commit $PREV_RELEASE is not reachable: clone with history"
  fi
  mkdir -p "$PREV_DIR"
  rm -rf "$PREV_DIR/policies.tmp" && mkdir "$PREV_DIR/policies.tmp"
  git archive "$PREV_RELEASE" policies | tar -x -C "$PREV_DIR/policies.tmp" --strip-components=1
  rm -rf "$PREV_DIR/policies" && mv "$PREV_DIR/policies.tmp" "$PREV_DIR/policies"
fi
if [[ ! -x $PREV ]]; then
  src=$TARGET_DIR/prev-release/src
  git worktree remove --force "$src" 2>/dev/null || rm -rf "$src"
  git worktree prune
  git worktree add -q --detach "$src" "$PREV_RELEASE"
  log "building the previous release ${PREV_RELEASE:0:12} (shared target directory)"
  t0=$SECONDS
  (cd "$src" && CARGO_TARGET_DIR=$TARGET_DIR nice -n 5 cargo build -q --locked -p espace-ps --bin espace-ps)
  cp "$TARGET_DIR/debug/espace-ps" "$PREV.tmp" && mv "$PREV.tmp" "$PREV"
  git worktree remove --force "$src"
  # The shared target's debug/espace-ps is the previous release's now: the
  # new one back (its units are fresh: only the copy is redone).
  (cd "$ROOT" && nice -n 5 cargo build -q -p espace-ps --bin espace-ps)
  log "previous release built in $((SECONDS - t0)) s"
fi
"$NEW" --version >/dev/null
cmp -s "$PREV" "$NEW" && die "the previous release's binary is the new one"
# Does the previous release chain its audit rows (migration 0013 on)?
PREV_CHAINS=0
"$PREV" audit --help >/dev/null 2>&1 && PREV_CHAINS=1

# --- a run directory, a PostgreSQL of its own --------------------------------
RUN=$(mktemp -d /tmp/espace-two-versions.XXXXXX)
chmod 755 "$RUN"
PIDS=()
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
AS_PG=()
if [[ $(id -u) == 0 ]]; then
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
  chown postgres "$RUN"
  AS_PG=(runuser -u postgres --)
fi
cleanup() {
  local rc=$? pid
  set +e
  for pid in "${PIDS[@]}"; do
    kill -INT "$pid" 2>/dev/null   # SIGINT: stop at once (SIGTERM would drain)
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  [[ -d $RUN/pg ]] && "${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$RUN/pg" -m immediate -w stop >/dev/null 2>&1
  if ((rc != 0)); then
    for f in "$RUN"/*.log; do [[ -f $f ]] && { echo "--- $f" >&2; tail -n 15 "$f" >&2; }; done
  fi
  rm -rf "$RUN"
  exit "$rc"
}
trap cleanup EXIT
free_ports() {
  python3 -c 'import socket,sys
s=[socket.socket() for _ in range(int(sys.argv[1]))]
[x.bind(("127.0.0.1",0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))' "$1"
}
read -r PG_PORT <<<"$(free_ports 1)"
"${AS_PG[@]}" "$PGBIN/initdb" -D "$RUN/pg" -U espace --auth=trust >/dev/null
"${AS_PG[@]}" "$PGBIN/pg_ctl" -D "$RUN/pg" -l "$RUN/pg.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $RUN" start >/dev/null

# The demo records (the previous release reads them too), at a pinned date.
"$DEMO" demo-data --now "$PINNED" --records "sqlite://$RUN/records.sqlite" --patients 50 >"$RUN/demo-data.log" 2>&1 ||
  die "demo-data"
DOSSIER=$(sqlite3 "$RUN/records.sqlite" "SELECT dossier_number FROM rec_care_team WHERE national_id = '$DOCTOR' AND role_code IN ('MR','MT','CO','PR','AD') ORDER BY 1 LIMIT 1")
[[ -n $DOSSIER ]] || die "no dossier of the doctor in the demo records"
OFFSET=$(python3 -c "import datetime,time; print(int(datetime.datetime.fromisoformat('${PINNED/Z/+00:00}').timestamp() - time.time()))")
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$RUN/hm.key.pem" 2>/dev/null
openssl pkey -in "$RUN/hm.key.pem" -pubout -out "$RUN/hm.pub.pem"

# config NAME PORT ADMIN DB_URL EXTRA_DATABASE_LINES POLICIES: an instance's file.
config() {
  cat >"$RUN/$1.toml" <<TOML
[server]
listen = "127.0.0.1:$2"
admin_listen = "127.0.0.1:$3"

[hm_sso]
issuer = "hopital-manager"
audience = "espace-ps"
public_keys = ["$RUN/hm.pub.pem"]
allowed_origins = ["http://hm.two-versions.invalid"]

[database]
url = "$4"
$5

[records]
url = "sqlite://$RUN/records.sqlite?mode=ro"

[policies]
dir = "$6"

[logging]
level = "warn"

[testing]
clock_offset_secs = $OFFSET
TOML
}
# start BIN NAME PORT ADMIN: serve; waits until /-/healthz answers.
start() {
  "$1" serve --config "$RUN/$2.toml" </dev/null >"$RUN/$2.log" 2>&1 &
  PIDS+=($!)
  local pid=$! deadline=$((SECONDS + 60))
  until curl -fs -o /dev/null --max-time 1 "http://127.0.0.1:$4/-/healthz"; do
    kill -0 "$pid" 2>/dev/null || die "$2 exited at start"
    ((SECONDS < deadline)) || die "$2 did not start"
    sleep 0.1
  done
}
# login PORT: a Hopital Manager launch; prints the session's Cookie header.
login() {
  local base=http://127.0.0.1:$1 token confirm
  token=$(/usr/bin/python3 "$ROOT/examples/hm-sso/hm_launch.py" token --key "$RUN/hm.key.pem" \
    --issuer hopital-manager --audience espace-ps --national-id "$DOCTOR" \
    --given-name Hervé --family-name Lefèvre --profession 10)
  curl -s -o /dev/null -D "$RUN/launch.h" -c "$RUN/jar" -H "Origin: http://hm.two-versions.invalid" \
    --data-urlencode "token=$token" "$base/auth/hm-sso"
  confirm=$(sed -n 's/^[Ll]ocation: \(.*\)/\1/p' "$RUN/launch.h" | tr -d '\r' | head -n1)
  [[ -n $confirm ]] || die "no launch redirect from :$1"
  curl -s -o /dev/null -D "$RUN/session.h" -b "$RUN/jar" "$base$confirm"
  sed -n 's/^[Ss]et-[Cc]ookie: \(espace-session=[^;]*\).*/\1/p' "$RUN/session.h" | tr -d '\r' | head -n1
}
# dossier PORT COOKIE WHO: the dossier page answers 200 with the dossier.
dossier() {
  local code
  code=$(curl -s -o "$RUN/page.html" -w '%{http_code}' -H "Cookie: $2" "http://127.0.0.1:$1/portail/dossiers/$DOSSIER")
  [[ $code == 200 ]] && grep -q "$DOSSIER" "$RUN/page.html" || die "$3: the dossier page answered $code"
}

# run_backend NAME DB_URL COUNT_SQL...: the whole sequence on one database.
run_backend() {
  local name=$1 url=$2
  shift 2
  local count=("$@")
  read -r PO AO PN AN PO2 AO2 <<<"$(free_ports 6)"
  config "old-$name" "$PO" "$AO" "$url" "" "$PREV_DIR/policies"
  config "new-$name" "$PN" "$AN" "$url" "migrate = false
allow_audit_rewrite = true" "$ROOT/policies"
  config "old2-$name" "$PO2" "$AO2" "$url" "" "$PREV_DIR/policies"
  rows() { "${count[@]}" "SELECT COUNT(*) FROM audit_events"; }

  # 1. the previous release alone
  start "$PREV" "old-$name" "$PO" "$AO"
  local c1 c2
  c1=$(login "$PO"); [[ -n $c1 ]] || die "$name: no session from the previous release"
  dossier "$PO" "$c1" "$name: previous release before the migration"
  local before; before=$(rows)
  ((before >= 2)) || die "$name: $before audit rows from the previous release"
  # 2. the new binary migrates under it
  "$NEW" migrate --database-url "$url" >"$RUN/migrate-$name.log" 2>&1 || die "$name: espace-ps migrate"
  # 3. the previous release on the migrated schema
  dossier "$PO" "$c1" "$name: previous release, session opened before the migration"
  c2=$(login "$PO"); [[ -n $c2 ]] || die "$name: no new session from the previous release after the migration"
  dossier "$PO" "$c2" "$name: previous release after the migration"
  local after_old; after_old=$(rows)
  ((after_old >= before + 3)) || die "$name: the previous release wrote $((after_old - before)) rows after the migration (3 expected)"
  # 4. the new binary beside it
  start "$NEW" "new-$name" "$PN" "$AN"
  local c3; c3=$(login "$PN"); [[ -n $c3 ]] || die "$name: no session from the new binary"
  dossier "$PN" "$c3" "$name: new binary"
  # 6a. the trail so far verifies: the previous release's rows, then the
  # new binary's
  "$NEW" audit verify --database-url "$url" >"$RUN/verify-$name.log" 2>&1 ||
    die "$name: audit verify refused the trail: $(cat "$RUN/verify-$name.log")"
  # 5. the previous release again, after the new one wrote
  dossier "$PO" "$c2" "$name: previous release after the new binary"
  local total; total=$(rows)
  ((total >= after_old + 3)) || die "$name: $((total - after_old)) rows from the new binary and the previous release (3 expected)"
  # 6b. the whole trail verifies, rows of both versions interleaved; unless
  # the previous release predates the hash chains (it writes rows outside
  # any chain): then verify must flag its rows written after the first
  # chained one (it cannot tell them from inserted rows), and the upgrade
  # across the chains' migration is not rolling (docs/operations.md).
  if ((PREV_CHAINS)); then
    "$NEW" audit verify --database-url "$url" >"$RUN/verify-$name.log" 2>&1 ||
      die "$name: audit verify refused the interleaved trail: $(cat "$RUN/verify-$name.log")"
  else
    if "$NEW" audit verify --database-url "$url" >"$RUN/verify-b-$name.log" 2>&1; then
      die "$name: verify accepted unchained rows among chained ones (update the test and docs/operations.md)"
    fi
    grep -q 'outside any chain' "$RUN/verify-b-$name.log" ||
      die "$name: audit verify failed for another reason: $(cat "$RUN/verify-b-$name.log")"
    log "$name: notice: the previous release predates the hash chains; its rows written after the new binary's are flagged by audit verify (expected across migration 0013)"
  fi
  # 7. a previous-release instance starting now refuses (roll forward only)
  if timeout 30 "$PREV" serve --config "$RUN/old2-$name.toml" </dev/null >"$RUN/old2-$name.log" 2>&1; then
    die "$name: the previous release started on the new schema"
  fi
  grep -qi 'migrat' "$RUN/old2-$name.log" || die "$name: the previous release refused to start for another reason: $(tail -n 3 "$RUN/old2-$name.log")"
  log "$name: $total audit rows from both versions, verified: $(tail -n 1 "$RUN/verify-$name.log")"
  # Stop this backend's instances.
  local pid
  for pid in "${PIDS[@]}"; do kill -INT "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
  PIDS=()
}

PG_URL=postgres://espace@127.0.0.1:$PG_PORT/postgres
run_backend postgres "$PG_URL" "$PGBIN/psql" -X -q -At -h 127.0.0.1 -p "$PG_PORT" -U espace -d postgres -c
run_backend sqlite "sqlite://$RUN/portal.sqlite?mode=rwc" sqlite3 "$RUN/portal.sqlite"
log "ok: the previous release ${PREV_RELEASE:0:12} and this build share one database (PostgreSQL, SQLite)"
