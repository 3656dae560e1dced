#!/usr/bin/env bash
# deploy/observability/check.sh: checks the alert rules and the dashboard
# (run by scripts/test.sh; needs promtool, Debian's `prometheus` package,
# and node).
#   - promtool check rules alerts.yml, promtool test rules alerts.test.yml
#   - every PromQL expression of grafana-dashboard.json parses (promtool
#     checks them as recording rules, Grafana's variables replaced)
#   - every espace_* metric that proxy/src/metrics.rs registers is on the
#     dashboard, and the process metrics too
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$HERE"

promtool check rules alerts.yml
promtool test rules alerts.test.yml

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# The dashboard's expressions as recording rules, for promtool to parse.
node -e '
  const d = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const exprs = [];
  const walk = (ps) => ps.forEach((p) => {
    (p.targets || []).forEach((t) => exprs.push(t.expr));
    walk(p.panels || []);
  });
  walk(d.panels);
  if (exprs.length === 0) { console.error("no expression in the dashboard"); process.exit(1); }
  const lines = ["groups:", "  - name: dashboard", "    rules:"];
  exprs.forEach((e, i) => {
    const q = e.replaceAll("$__rate_interval", "5m").replaceAll("$instance", ".*");
    lines.push(`      - record: dashboard:expr_${i}`, `        expr: ${JSON.stringify(q)}`);
  });
  require("fs").writeFileSync(process.argv[2], lines.join("\n") + "\n");
  console.log(`    ${exprs.length} dashboard expressions`);
' grafana-dashboard.json "$tmp/dashboard-rules.yml"
promtool check rules "$tmp/dashboard-rules.yml"

missing=()
for m in $(grep -oE '"espace_[a-z_]+"' "$ROOT/proxy/src/metrics.rs" | tr -d '"' | sort -u) \
  process_cpu_seconds_total process_resident_memory_bytes process_open_fds; do
  grep -q "$m" grafana-dashboard.json || missing+=("$m")
done
((${#missing[@]} == 0)) || { echo "not on the dashboard: ${missing[*]}" >&2; exit 1; }
echo "    every metric of proxy/src/metrics.rs is on the dashboard"
