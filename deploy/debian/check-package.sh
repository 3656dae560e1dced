#!/usr/bin/env bash
# deploy/debian/check-package.sh DEB: installs the espace-ps package on this
# machine (as root) and checks it as an operator would (run by
# scripts/test.sh after `cargo deb`):
#   - the files are where the docs say, /etc ones are conffiles, the
#     credentials directory is root-only;
#   - the installed binary checks the installed configuration and policies
#     (`espace-ps check-config`, `espace-ps policies check`), with secrets from
#     an ESPACE_*_FILE variable and from a systemd credentials directory;
#   - `systemd-analyze verify` accepts the unit, which carries the hardening
#     docs/operations.md promises;
#   - purging removes it again (when this script installed it).
set -euo pipefail
DEB=${1:?usage: check-package.sh DEB}
SUDO=()
[[ $(id -u) -eq 0 ]] || SUDO=(sudo)
fail() { printf 'error: %s\n' "$*" >&2; exit 1; }

was_installed=0
[[ $(dpkg-query -W -f='${Status}' espace-ps 2>/dev/null) == "install ok installed" ]] && was_installed=1
tmp=$(mktemp -d)
cleanup() {
  rm -rf "$tmp"
  if ((!was_installed)) && dpkg-query -W espace-ps >/dev/null 2>&1; then
    "${SUDO[@]}" dpkg --purge espace-ps >/dev/null || true
  fi
}
trap cleanup EXIT

echo "    dpkg -i $(basename "$DEB")"
# The unit is enabled, not started (the package's maintainer scripts never
# start or restart the service: the operator configures it first).
"${SUDO[@]}" dpkg -i "$DEB" >/dev/null

UNIT=/lib/systemd/system/espace-ps.service
[[ -e $UNIT ]] || UNIT=/usr/lib/systemd/system/espace-ps.service
for f in /usr/bin/espace-ps /etc/espace-ps/espace-ps.toml \
  /etc/espace-ps/policies/schema.cedarschema /etc/espace-ps/policies/groups.toml \
  /etc/espace-ps/policies/viewers/orthanc.toml "$UNIT" \
  /usr/share/espace-ps/portal-pages/templates/base.hbs \
  /usr/share/espace-ps/portal-pages/static/style.css \
  /usr/share/doc/espace-ps/examples/espace-ps.example.toml \
  /usr/share/doc/espace-ps/observability/alerts.yml \
  /usr/share/doc/espace-ps/operations.md; do
  [[ -e $f ]] || fail "$f is not installed"
done
ls /etc/espace-ps/policies/tests/*.toml >/dev/null || fail "the policy tests are not installed"
[[ $(stat -c '%a %U' /etc/espace-ps/credentials) == "700 root" ]] \
  || fail "/etc/espace-ps/credentials is not root-only: $(stat -c '%a %U' /etc/espace-ps/credentials)"
conffiles=$(dpkg-query --control-show espace-ps conffiles)
for f in /etc/espace-ps/espace-ps.toml /etc/espace-ps/policies/groups.toml; do
  grep -qx "$f" <<<"$conffiles" || fail "$f is not a conffile"
done
version=$(dpkg-query -W -f='${Version}' espace-ps)
/usr/bin/espace-ps --version | grep -q "espace-ps ${version%%-*}" \
  || fail "the installed binary is not version $version: $(/usr/bin/espace-ps --version)"
echo "    files, conffiles, credentials directory: ok ($version)"

echo "    espace-ps check-config /etc/espace-ps/espace-ps.toml"
env -i PATH=/usr/bin:/bin /usr/bin/espace-ps check-config /etc/espace-ps/espace-ps.toml
# Secrets from a file named by ESPACE_*_FILE, and from a systemd credential.
printf 'postgres://espace@db.example.org/espace_ps\n' >"$tmp/database_url"
out=$(env -i PATH=/usr/bin:/bin ESPACE_DATABASE_URL_FILE="$tmp/database_url" \
  /usr/bin/espace-ps check-config /etc/espace-ps/espace-ps.toml)
grep -q "portal database PostgreSQL" <<<"$out" || fail "ESPACE_DATABASE_URL_FILE not read: $out"
mkdir "$tmp/credentials"
cp "$tmp/database_url" "$tmp/credentials/espace_database_url"
out=$(env -i PATH=/usr/bin:/bin CREDENTIALS_DIRECTORY="$tmp/credentials" \
  /usr/bin/espace-ps check-config /etc/espace-ps/espace-ps.toml)
grep -q "portal database PostgreSQL" <<<"$out" || fail "the systemd credential was not read: $out"
if env -i PATH=/usr/bin:/bin ESPACE_DATABASE_URL_FILE="$tmp/absent" \
  /usr/bin/espace-ps check-config /etc/espace-ps/espace-ps.toml 2>"$tmp/err"; then
  fail "an unreadable ESPACE_DATABASE_URL_FILE was accepted"
fi
grep -q "ESPACE_DATABASE_URL_FILE" "$tmp/err" || fail "the error does not name the variable: $(cat "$tmp/err")"
echo "    secrets from ESPACE_*_FILE and systemd credentials: ok"

echo "    espace-ps policies check /etc/espace-ps/policies"
/usr/bin/espace-ps policies check /etc/espace-ps/policies

echo "    systemd-analyze verify $UNIT"
systemd-analyze verify "$UNIT"
for line in DynamicUser=yes ProtectSystem=strict NoNewPrivileges=yes CapabilityBoundingSet= \
  ReadWritePaths=/var/lib/espace-ps LoadCredential=espace:/etc/espace-ps/credentials \
  'ExecReload=/bin/kill -HUP $MAINPID'; do
  grep -qxF "$line" "$UNIT" || fail "$UNIT has no $line"
done
echo "    unit: verified, hardened"

if ((!was_installed)); then
  "${SUDO[@]}" dpkg --purge espace-ps >/dev/null
  [[ ! -e /usr/bin/espace-ps && ! -e /etc/espace-ps/espace-ps.toml ]] || fail "purge left files behind"
  echo "    purged"
fi
