#!/usr/bin/env python3
"""The Markdown report of loadtest/cluster/run.sh, and its thresholds (exit
status 1 when one fails).

Each fault's window runs from its injection to the next one's. Per fault:
requests in flight when it struck (started before, ended after) and how
many of them failed; requests started in the window, and the failed ones by
status ("0": no answer: connection refused, reset, timeout); sessions lost
(a session answered as signed out after it had worked); downloads cut;
audit rows missing (each successful request that must write a row, matched
to its row by X-Request-Id when the rows carry it, else by professional,
event, resource and time); time until the component was back, and until
the last failed request.

Thresholds (issue 14): no session lost; no audit row missing; no large
download cut; every fault recovered; no failed request during the rolling
restart and the binary upgrade; on kill -9, failures only among the
requests in flight on the killed instance.
"""

import argparse
import collections
import csv
import json
import sys

OK = {200, 204, 302, 303, 304}


def failed(r):
    return r["status"] not in OK or bool(r.get("err"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", required=True)
    ap.add_argument("--faults", required=True)
    ap.add_argument("--audit", required=True)
    ap.add_argument("--machine", required=True)
    ap.add_argument("--binary", required=True)
    ap.add_argument("--large-bytes", type=int, required=True)
    ap.add_argument("--verify", default="")
    ap.add_argument("--clock-offset", type=float, default=0.0,
                    help="seconds added to the wall clock by [testing] clock_offset_secs")
    a = ap.parse_args()

    reqs = [json.loads(l) for l in open(a.requests) if l.strip()]
    lost = [r for r in reqs if r.get("kind") == "session-lost"]
    reqs = [r for r in reqs if r.get("kind") != "session-lost"]
    faults = [json.loads(l) for l in open(a.faults) if l.strip()]
    end = [f for f in faults if f["fault"] == "end"]
    faults = [f for f in faults if f["fault"] != "end"]
    t_end = end[0]["at"] if end else max(r["t1"] for r in reqs)
    rows = list(csv.reader(open(a.audit)))

    # --- audit matching ---------------------------------------------------
    by_rid = {}
    for row in rows:
        if row[6]:
            by_rid.setdefault(row[6], []).append(row)
    use_rid = bool(by_rid)
    pool = collections.defaultdict(list)  # (actor, event) -> [(wall ms, resource, used)]
    for row in rows:
        if row[4] == "success":
            pool[(row[2], row[3])].append([int(row[1]) - a.clock_offset * 1000, row[5], False])
    for v in pool.values():
        v.sort()

    def has_row(r):
        spec = r["audit"]
        if use_rid:
            return any(x[3] == spec["event"] and x[2] == spec["actor"] for x in by_rid.get(r["rid"], []))
        for cand in pool.get((spec["actor"], spec["event"]), []):
            if cand[2]:
                continue
            if not (r["t0"] * 1000 - 2000 <= cand[0] <= r["t1"] * 1000 + 2000):
                continue
            if "key" in spec and cand[1] != spec["key"]:
                continue
            cand[2] = True
            return True
        return False

    audited = [r for r in sorted(reqs, key=lambda r: r["t0"]) if r.get("audit") and not failed(r)]
    missing = [r for r in audited if not has_row(r)]

    # --- windows ----------------------------------------------------------
    bounds = [(f, f["at"], faults[i + 1]["at"] if i + 1 < len(faults) else t_end)
              for i, f in enumerate(faults)]
    first = faults[0]["at"] if faults else t_end
    out = []
    problems = []
    sessions = {r["sid"] for r in reqs if r["kind"] == "login" and not failed(r)}
    out.append("Machine: " + a.machine + ".")
    out.append(f"espace-ps binary: `{a.binary}`.")
    out.append("")
    out.append(f"{len(reqs)} requests, {len(sessions)} sessions opened (Hopital Manager SSO), "
               f"{sum(1 for r in reqs if r['kind'] == 'login' and r['t0'] >= first)} of them during the faults; "
               f"{len(audited)} successful audited requests; audit rows matched by "
               + ("`X-Request-Id` (`audit_events.request_id`)." if use_rid else
                  "professional, event, resource and time (the rows do not carry the request id on this build)."))
    base = [r for r in reqs if r["t0"] < first]
    out.append(f"Before the first fault: {len(base)} requests, {sum(1 for r in base if failed(r))} failed.")
    out.append("")
    out.append("| fault | in flight when it struck (failed) | requests in the window | failed, by status | new sessions (tried) | sessions lost | downloads cut | audit rows missing | component back after | last failure after |")
    out.append("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for f, t0, t1 in bounds:
        inflight = [r for r in reqs if r["t0"] < t0 < r["t1"]]
        inflight_failed = [r for r in inflight if failed(r)]
        window = [r for r in reqs if t0 <= r["t0"] < t1]
        fails = [r for r in window if failed(r)] + inflight_failed
        by_status = collections.Counter(str(r["status"]) for r in fails)
        lost_here = [x for x in lost if t0 <= x["t0"] < t1]
        downloads = [r for r in inflight + window if r["kind"] in ("download", "large-download")]
        cut = [r for r in downloads if failed(r)
               or (r["kind"] == "large-download" and r["bytes"] < a.large_bytes)]
        miss = [r for r in missing if r in window or r in inflight]
        back = f["recovered"] - f["at"]
        # (A request started in this window that failed once the next
        # fault had struck belongs to that fault's recovery, not this one's.)
        last_fail = max((r["t1"] for r in fails if r["t1"] < t1), default=None)
        last = f"{last_fail - t0:.1f} s" if last_fail else "none failed"
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(by_status.items())) or "none"
        tried = [r for r in window if r["kind"] == "login-launch"]
        opened = [r for r in window if r["kind"] == "login" and not failed(r)]
        out.append(f"| {f['fault']} | {len(inflight)} ({len(inflight_failed)}) | {len(window)} | {statuses} | "
                   f"{len(opened)} ({len(tried)}) | "
                   f"{len(lost_here)} | {len(cut)} of {len(downloads)} | {len(miss)} | {back:.1f} s | {last} |")
        name = f["fault"]
        if lost_here:
            problems.append(f"{name}: {len(lost_here)} sessions lost")
        if miss:
            problems.append(f"{name}: {len(miss)} audit rows missing")
        if any(r["kind"] == "large-download" for r in cut):
            problems.append(f"{name}: the large download was cut")
        if name.startswith("rolling") or name.startswith("binary upgrade"):
            if fails:
                problems.append(f"{name}: {len(fails)} requests failed")
        if name.startswith("kill -9"):
            victim = name.rsplit(" ", 1)[-1]
            bad = [r for r in fails if not (r in inflight and r["backend"] == f"espace-{victim}")]
            if bad:
                problems.append(f"{name}: {len(bad)} failed requests other than those in flight on the killed instance")
    large = [r for r in reqs if r["kind"] == "large-download"]
    out.append("")
    for r in large:
        out.append(f"Large download ({a.large_bytes / 1048576:.0f} MiB series) on {r['backend'] or '?'}: "
                   f"status {r['status']}, {r['bytes']} bytes in {r['t1'] - r['t0']:.1f} s{' — ' + r['err'] if r['err'] else ''}.")
    if a.verify:
        out.append("")
        out.append(f"`espace-ps audit verify` after the run: `{a.verify.strip()}`")
    if missing:
        out.append("")
        out.append("Audit rows missing (kind, status, instance, request id): " + "; ".join(
            f"{r['kind']} {r['status']} {r['backend']} {r['rid']}" for r in missing[:20]))
    if lost:
        out.append("")
        out.append("Sessions lost (session, status, instance): " + "; ".join(
            f"{x['sid']} {x['status']} {x['backend']}" for x in lost[:20]))
    out.append("")
    out.append("Thresholds: " + ("**all met**." if not problems else "**NOT met**: " + "; ".join(problems) + "."))
    print("\n".join(out))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
