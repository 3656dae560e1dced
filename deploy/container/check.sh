#!/usr/bin/env bash
# deploy/container/check.sh: renders the Kubernetes manifests with
# `kubectl kustomize` (run by scripts/test.sh when kubectl is there: Debian's
# package kubernetes-client brings it) and checks what the docs promise of
# them: probes on the admin port, a PodDisruptionBudget, the secrets taken
# from a Secret, a non-root read-only container. Nothing is applied to a
# cluster, and the Dockerfile is not built (no container engine here).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
kubectl kustomize "$HERE/kubernetes" >"$out"
fail() { printf 'error: kubernetes manifests: %s\n' "$*" >&2; exit 1; }
for kind in Namespace ConfigMap Service Deployment PodDisruptionBudget; do
  grep -qx "kind: $kind" "$out" || fail "no $kind rendered"
done
for want in 'path: /-/healthz' 'path: /-/readyz' 'port: admin' 'containerPort: 9090' \
  'readOnlyRootFilesystem: true' 'runAsNonRoot: true' 'allowPrivilegeEscalation: false' \
  'secretName: espace-ps-secrets' 'minAvailable: 1' 'name: ESPACE_PSC_CLIENT_SECRET_FILE'; do
  grep -qF -- "$want" "$out" || fail "no '$want' in the rendered manifests"
done
# Readiness and liveness both probe the admin port, never the public one.
if grep -A3 -E 'livenessProbe|readinessProbe' "$out" | grep -q 'port: http'; then
  fail "a probe targets the public port"
fi
echo "    rendered: $(grep -c '^kind:' "$out") objects; probes on the admin port, PodDisruptionBudget, Secret references, non-root read-only container"
