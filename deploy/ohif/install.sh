#!/usr/bin/env bash
# Installs the prebuilt OHIF v3 application (@ohif/app, pinned) for espace-ps
# to serve under /visionneuse/ ([upstream] ohif_dir; docs/viewer-ohif.md).
#
#   deploy/ohif/install.sh DEST [CACHE_DIR]
#
# DEST receives the rewritten dist/ (about 200 MB; never commit it). The
# npm tarball is kept in CACHE_DIR (default: ~/.cache/espace-ps) so that a
# second install does not download it again. Idempotent: an existing DEST
# with the same version stamp is left as it is.
set -euo pipefail

VERSION=3.13.2
PREFIX=/visionneuse/
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dest="${1:?usage: install.sh DEST [CACHE_DIR]}"
cache="${2:-${XDG_CACHE_HOME:-$HOME/.cache}/espace-ps}"
stamp="ohif-$VERSION $(cat "$here/app-config.js" "$here/espace-ps-ohif.js" "$here/install.sh" | sha256sum | cut -c1-16)"

if [[ -f "$dest/.espace-ps-ohif" && "$(cat "$dest/.espace-ps-ohif")" == "$stamp" ]]; then
  exit 0
fi
mkdir -p "$cache"
tarball="$cache/ohif-app-$VERSION.tgz"
if [[ ! -s "$tarball" ]]; then
  # npm checks the tarball against the registry's integrity hash.
  (cd "$cache" && npm pack --silent "@ohif/app@$VERSION" >/dev/null)
fi

work="$(mktemp -d "${dest%/}.tmp.XXXXXX")"
trap 'rm -rf "$work"' EXIT
tar xzf "$tarball" -C "$work" package/dist
site="$work/package/dist"

# Chunks, workers and WASM are loaded from webpack's public path, hard-coded
# to "/" in the bundles (window.PUBLIC_URL does not change it).
n=$(grep -l '__webpack_require__.p = "/";' "$site"/*.js | wc -l)
[[ "$n" -ge 1 ]] || { echo "install.sh: no public path found in @ohif/app $VERSION" >&2; exit 1; }
sed -i "s#__webpack_require__.p = \"/\";#__webpack_require__.p = \"$PREFIX\";#" "$site"/*.js
sed -i "s#url(/\\([0-9a-f]*\\.woff2\\))#url($PREFIX\\1)#g" "$site"/*.css

# index.html: the inline scripts go to a file (strict CSP), no service
# worker, no manifest of OHIF's (the portal's is injected), every root URL
# under the prefix.
html="$site/index.html"
grep -q 'window.PUBLIC_URL="/"</script>' "$html" || { echo "install.sh: unexpected index.html" >&2; exit 1; }
sed -i \
  -e 's#<script>console.time("scriptToView"),window.PUBLIC_URL="/"</script>#<script src="/espace-ps-ohif.js"></script>#' \
  -e 's#<script>function browserImportFunction(n){return import(n)}window.PUBLIC_URL="/"</script>##' \
  -e 's#<script rel="preload" as="script" type="module" src="/init-service-worker.js"></script>##' \
  -e 's#<link rel="manifest" href="/manifest.json">##' \
  -e "s#\\(href\\|src\\|content\\)=\"/#\\1=\"$PREFIX#g" \
  "$html"
if grep -q '<script>' "$html"; then
  echo "install.sh: an inline script is left in index.html" >&2
  exit 1
fi
rm -f "$site/sw.js" "$site/init-service-worker.js" "$site/_redirects" "$site/serve.json" "$site/google.js"
cp "$here/app-config.js" "$here/espace-ps-ohif.js" "$here/init-service-worker.js" "$site/"
echo "$stamp" >"$site/.espace-ps-ohif"

rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
mv "$site" "$dest"
