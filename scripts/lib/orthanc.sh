# shellcheck shell=bash
# scripts/lib/orthanc.sh: Orthanc (viewer/PACS stand-in) for tests and the demo.
#
# Source it from bash, then:
#
#   . scripts/lib/orthanc.sh
#   orthanc_install                        # apt-get installs orthanc, orthanc-dicomweb,
#                                          # orthanc-webviewer, unless all three are
#                                          # installed (needs root; runs apt-get update once)
#   orthanc_start DIR HTTP_PORT DICOM_PORT # writes DIR/orthanc.json from
#                                          # deploy/orthanc/orthanc.json.in, starts
#                                          # /usr/sbin/Orthanc in the background (log in
#                                          # DIR/orthanc.log, pid in DIR/orthanc.pid),
#                                          # waits until GET /system answers (bounded by
#                                          # ORTHANC_START_TIMEOUT seconds, default 30),
#                                          # prints the pid on stdout; returns non-zero
#                                          # (and shows the log tail on stderr) on failure
#   orthanc_stop [DIR]                     # SIGTERM, bounded wait, then SIGKILL; DIR
#                                          # defaults to the one of the last orthanc_start
#                                          # in this shell
#
# Called directly (not inside $(...)), orthanc_start also sets ORTHANC_PID,
# ORTHANC_DIR and ORTHANC_URL (http://127.0.0.1:HTTP_PORT) in the caller's
# shell. Inside $(...) only the printed pid comes back: pass DIR to
# orthanc_stop then.
#
# Example (a test script):
#   dir=$(mktemp -d); . scripts/lib/orthanc.sh
#   orthanc_install && orthanc_start "$dir" 18042 14242 >/dev/null || exit 1
#   export ESPACE_TEST_ORTHANC_URL=$ORTHANC_URL
#   ...; orthanc_stop "$dir"; rm -rf "$dir"
#
# Orthanc answers on 127.0.0.1 only (RemoteAccessAllowed false, no
# authentication: it must only ever be reachable behind espace-ps). The
# DICOM (DIMSE) server is disabled; DICOM_PORT is still written to the
# config. DIR must be an absolute path without '"', '\' or '|'.

ORTHANC_BIN=${ORTHANC_BIN:-/usr/sbin/Orthanc}
ORTHANC_TEMPLATE=${ORTHANC_TEMPLATE:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/deploy/orthanc/orthanc.json.in}

orthanc_install() {
  local p all=1
  for p in orthanc orthanc-dicomweb orthanc-webviewer; do
    # (`dpkg -s` also succeeds for a removed but not purged package)
    [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == "install ok installed" ]] || all=0
  done
  [[ -x $ORTHANC_BIN ]] && ((all)) && return 0
  echo "orthanc: installing orthanc, orthanc-dicomweb, orthanc-webviewer" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2 || return 1
  apt-get install -y -q --no-install-recommends orthanc orthanc-dicomweb orthanc-webviewer >&2 || return 1
  [[ -x $ORTHANC_BIN ]] || { echo "orthanc: $ORTHANC_BIN still missing after install" >&2; return 1; }
}

# _orthanc_http_ok URL: true when URL answers 2xx.
_orthanc_http_ok() {
  if command -v curl >/dev/null 2>&1; then
    curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null
  else
    wget -q -O /dev/null --timeout=2 "$1" 2>/dev/null
  fi
}

orthanc_start() {
  local dir=${1:?usage: orthanc_start DIR HTTP_PORT DICOM_PORT} http_port=${2:?HTTP_PORT} dicom_port=${3:?DICOM_PORT}
  local timeout=${ORTHANC_START_TIMEOUT:-30}
  [[ -x $ORTHANC_BIN ]] || { echo "orthanc: $ORTHANC_BIN not found (call orthanc_install)" >&2; return 1; }
  [[ -r $ORTHANC_TEMPLATE ]] || { echo "orthanc: template $ORTHANC_TEMPLATE not found" >&2; return 1; }
  [[ $dir == /* && $dir != *[\"\\\|]* ]] || { printf 'orthanc: DIR must be absolute, without %s: %s\n' "'\"', '\\' or '|'" "$dir" >&2; return 1; }
  [[ $http_port =~ ^[0-9]+$ && $dicom_port =~ ^[0-9]+$ ]] || { echo "orthanc: ports must be numbers" >&2; return 1; }
  dir=${dir%/}
  if _orthanc_http_ok "http://127.0.0.1:$http_port/system" || (: <"/dev/tcp/127.0.0.1/$http_port") 2>/dev/null; then
    echo "orthanc: port $http_port is already in use" >&2
    return 1
  fi
  mkdir -p "$dir" || return 1
  sed -e "s|@DATA_DIR@|$dir|g" -e "s|@HTTP_PORT@|$http_port|g" -e "s|@DICOM_PORT@|$dicom_port|g" \
    "$ORTHANC_TEMPLATE" >"$dir/orthanc.json" || return 1

  # stdout/stderr go to the log so that $(orthanc_start ...) does not hang.
  "$ORTHANC_BIN" "$dir/orthanc.json" </dev/null >"$dir/orthanc.log" 2>&1 &
  local pid=$!
  echo "$pid" >"$dir/orthanc.pid"
  # For the caller (see the header): not used in this file.
  # shellcheck disable=SC2034
  ORTHANC_PID=$pid ORTHANC_DIR=$dir ORTHANC_URL=http://127.0.0.1:$http_port

  local deadline=$((SECONDS + timeout))
  # Ready when OUR process logged that it listens on the port and /system
  # answers (the log check keeps another server on that port from fooling us).
  until grep -q "HTTP server listening on port: $http_port " "$dir/orthanc.log" 2>/dev/null &&
    _orthanc_http_ok "http://127.0.0.1:$http_port/system"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "orthanc: exited during start-up; end of $dir/orthanc.log:" >&2
      tail -n 30 "$dir/orthanc.log" >&2
      return 1
    fi
    if ((SECONDS >= deadline)); then
      echo "orthanc: no answer on GET /system after ${timeout}s; end of $dir/orthanc.log:" >&2
      tail -n 30 "$dir/orthanc.log" >&2
      orthanc_stop "$dir"
      return 1
    fi
    sleep 0.1
  done
  echo "$pid"
}

orthanc_stop() {
  local dir=${1:-${ORTHANC_DIR:-}} pid
  [[ -n $dir && -f $dir/orthanc.pid ]] || return 0
  pid=$(<"$dir/orthanc.pid")
  rm -f "$dir/orthanc.pid"
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  local deadline=$((SECONDS + 10))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  return 0
}
