#!/usr/bin/env bash
# The cost of WAIT on a session write (docs/operations.md, "Redis high
# availability"): a Redis primary and one replica on loopback ports, then
# 5000 SETs of a 300-byte value (about a session record) alone, and 5000
# followed by WAIT 1 500 in the same round trip, one at a time; prints the
# latency percentiles of each. Loopback only; stops its servers itself.
set -euo pipefail
DIR=$(mktemp -d /tmp/espace-wait-cost.XXXXXX)
P1=${P1:-27801} P2=${P2:-27802}
redis-server --bind 127.0.0.1 --port "$P1" --save "" --appendonly no --dir "$DIR" >"$DIR/p.log" 2>&1 &
PRIMARY=$!
redis-server --bind 127.0.0.1 --port "$P2" --save "" --appendonly no --dir "$DIR" \
  --replicaof 127.0.0.1 "$P1" >"$DIR/r.log" 2>&1 &
REPLICA=$!
trap 'kill $PRIMARY $REPLICA 2>/dev/null; wait 2>/dev/null; rm -rf "$DIR"' EXIT
for _ in $(seq 100); do
  redis-cli -p "$P2" info replication 2>/dev/null | grep -q master_link_status:up && break
  sleep 0.1
done
python3 - "$P1" <<'PY'
import socket, statistics, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
f = s.makefile("rb")
def cmd(*a):
    return b"*%d\r\n" % len(a) + b"".join(b"$%d\r\n%s\r\n" % (len(x), x) for x in a)
def reply():
    line = f.readline()
    if line[:1] == b"$" and int(line[1:]) >= 0:
        f.read(int(line[1:]) + 2)
    return line
val = b"x" * 300
for label, wait in (("SET", False), ("SET + WAIT 1 500", True)):
    lat = []
    for i in range(5000):
        req = cmd(b"SET", b"k%d" % i, val, b"PX", b"60000")
        if wait:
            req += cmd(b"WAIT", b"1", b"500")
        t = time.perf_counter()
        s.sendall(req)
        reply()
        if wait:
            assert reply().startswith(b":1")
        lat.append((time.perf_counter() - t) * 1e6)
    lat.sort()
    print(f"{label:17} p50 {lat[2500]:.0f} us  p99 {lat[4950]:.0f} us  mean {statistics.mean(lat):.0f} us")
PY
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2), load $(cut -d' ' -f1-3 /proc/loadavg)"
