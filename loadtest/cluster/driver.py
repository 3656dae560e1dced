#!/usr/bin/env python3
"""The load driver of loadtest/cluster/run.sh: professionals who keep logging
in (Hopital Manager SSO launches signed by a throwaway key) and browsing
through the cluster's gateway, every request recorded.

Commands:
  plan   build the driver's plan (what each professional may open) from a
         CSV of the records (national_id, dossier, patient, family name,
         study UID) and Orthanc's ids for those studies
  run    the load, until the stop file appears or --duration ends
  login  one session; prints its Cookie header and session id (the large
         download of run.sh uses it)

Each request is one line of JSON in --out: start and end (epoch seconds),
what it was (kind), status (0: no answer), the instance that answered
(HAProxy's X-Espace-Backend), the request id (X-Request-Id), the session
(a driver-side number, never the cookie), the audit row it must have
written (event and key), bytes read, error. A session is "lost" when a
request made with it is answered as by someone not signed in (a redirect
to the login page, or 401) after it had worked. Python standard library and
PyJWT only; loopback only; bounded by --duration.
"""

import argparse
import csv
import http.client
import json
import os
import random
import ssl
import sys
import threading
import time
import urllib.parse
import uuid

HM_ORIGIN = "https://hm.cluster.invalid"


def sign(key_pem, national_id):
    import jwt  # PyJWT (python3-jwt)

    now = int(time.time())
    claims = {
        "iss": "hopital-manager",
        "aud": "espace-ps",
        "iat": now,
        "nbf": now,
        "exp": now + 120,
        "jti": str(uuid.uuid4()),
        "national_id": national_id,
        "professions": ["10"],
        "return_to": "/",
    }
    return jwt.encode(claims, key_pem, algorithm="ES256")


class Client:
    def __init__(self, base, ca, out_path, key_pem):
        u = urllib.parse.urlsplit(base)
        self.host, self.port = u.hostname, u.port
        self.ctx = ssl.create_default_context(cafile=ca)
        self.key_pem = key_pem
        self.lock = threading.Lock()
        self.out = open(out_path, "a", buffering=1) if out_path else None

    def record(self, rec):
        if self.out:
            with self.lock:
                self.out.write(json.dumps(rec) + "\n")

    def request(self, method, path, *, cookies=None, body=None, headers=None,
                source=None, kind="", sid=None, audit=None, timeout=30, sink=False):
        """One request on a new connection; returns (status, headers, body)."""
        h = {"Host": f"{self.host}:{self.port}", "User-Agent": "espace-cluster-driver"}
        if cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        if headers:
            h.update(headers)
        t0 = time.time()
        status, hdrs, data, err, nbytes = 0, {}, b"", "", 0
        try:
            conn = http.client.HTTPSConnection(
                self.host, self.port, context=self.ctx, timeout=timeout,
                source_address=(source, 0) if source else None)
            conn.request(method, path, body=body, headers=h)
            r = conn.getresponse()
            status = r.status
            hdrs = r.getheaders()
            if sink:
                while True:
                    chunk = r.read(1 << 20)
                    if not chunk:
                        break
                    nbytes += len(chunk)
                expected = r.getheader("Content-Length")
                if expected is not None and int(expected) != nbytes:
                    err = f"cut at {nbytes} of {expected} bytes"
            else:
                data = r.read()
                nbytes = len(data)
            conn.close()
        except Exception as e:  # an answer that never came is a failure: status 0
            err = f"{type(e).__name__}: {e}"[:200]
        t1 = time.time()
        hd = {}
        for k, v in hdrs:
            hd.setdefault(k.lower(), []).append(v)
        self.record({
            "t0": round(t0, 4), "t1": round(t1, 4), "kind": kind, "method": method,
            "status": status, "backend": (hd.get("x-espace-backend") or [""])[0],
            "rid": (hd.get("x-request-id") or [""])[0], "sid": sid, "audit": audit,
            "bytes": nbytes, "err": err,
        })
        return status, hd, data, err

    def login(self, national_id, source, sid):
        """The Hopital Manager launch, then its confirmation: a session's
        cookies, or None."""
        token = sign(self.key_pem, national_id)
        body = urllib.parse.urlencode({"token": token})
        st, hd, _, _ = self.request(
            "POST", "/auth/hm-sso", body=body, source=source, sid=sid, kind="login-launch",
            headers={"Origin": HM_ORIGIN, "Content-Type": "application/x-www-form-urlencoded"})
        if st != 303 or "location" not in hd:
            return None
        cookies = parse_cookies(hd)
        loc = urllib.parse.urlsplit(hd["location"][0])
        path = loc.path + ("?" + loc.query if loc.query else "")
        st, hd, _, _ = self.request("GET", path, cookies=cookies, source=source, sid=sid,
                                    kind="login", audit={"event": "hm_sso", "actor": national_id})
        cookies.update(parse_cookies(hd))
        if st not in (302, 303) or not any("session" in k for k in cookies):
            return None
        return cookies


def parse_cookies(hd):
    out = {}
    for line in hd.get("set-cookie", []):
        name, _, rest = line.partition("=")
        value = rest.split(";", 1)[0]
        if value:
            out[name.strip()] = value
        else:
            out.pop(name.strip(), None)
    return out


def signed_out(status, hd):
    if status == 401:
        return True
    if status in (302, 303):
        loc = (hd.get("location") or [""])[0]
        return "/auth/" in loc
    return False


class Session:
    def __init__(self, sid, pro, cookies, source):
        self.sid, self.pro, self.cookies, self.source = sid, pro, cookies, source
        self.lost = False
        self.busy = threading.Lock()


def run(args):
    plan = json.load(open(args.plan))
    key_pem = open(args.key, "rb").read()
    client = Client(args.base, args.ca, args.out, key_pem)
    deadline = time.time() + args.duration
    sessions, slock = [], threading.Lock()
    counter = [0]
    rnd = random.Random(args.seed)
    pros = [p for p in plan["professionals"] if p["dossiers"]]

    def stop():
        return time.time() > deadline or os.path.exists(args.stop_file)

    def new_session(r):
        with slock:
            counter[0] += 1
            sid = counter[0]
        pro = r.choice(pros)
        source = f"127.0.1.{1 + sid % 60}"
        cookies = client.login(pro["national_id"], source, sid)
        if cookies is None:
            return None
        s = Session(sid, pro, cookies, source)
        with slock:
            sessions.append(s)
        return s

    def act(r, s):
        pro = s.pro
        n = r.random()
        if n < 0.15:
            path, kind, audit = "/", "home", None
        elif n < 0.30 and pro["names"]:
            q = r.choice(pro["names"])[:4]
            path = "/portail/recherche?" + urllib.parse.urlencode({"q": q})
            kind, audit = "search", {"event": "patient_search", "actor": pro["national_id"]}
        elif n < 0.50:
            d = r.choice(pro["dossiers"])
            path, kind = f"/portail/dossiers/{d}", "dossier"
            audit = {"event": "dossier_view", "actor": pro["national_id"], "key": d}
        elif n < 0.60 and pro["patients"]:
            p = r.choice(pro["patients"])
            path, kind = f"/portail/patients/{urllib.parse.quote(p)}", "patient"
            audit = {"event": "patient_view", "actor": pro["national_id"], "key": p}
        elif n < 0.97 and pro["images"]:
            path, kind, audit = f"/instances/{r.choice(pro['images'])}/preview", "image", None
        elif pro.get("series"):
            path, kind = f"/series/{r.choice(pro['series'])}/archive", "download"
            audit = {"event": "dicom_download", "actor": pro["national_id"]}
        else:
            path, kind, audit = "/", "home", None
        st, hd, _, err = client.request("GET", path, cookies=s.cookies, source=s.source,
                                        sid=s.sid, kind=kind, audit=audit,
                                        sink=kind in ("download", "image"), timeout=120)
        if signed_out(st, hd) and not s.lost:
            s.lost = True
            client.record({"t0": time.time(), "kind": "session-lost", "sid": s.sid,
                           "status": st, "backend": (hd.get("x-espace-backend") or [""])[0]})

    def worker(i):
        r = random.Random(args.seed * 1000 + i)
        while not stop():
            try:
                step(r)
            except Exception as e:  # a bug of the driver: said, never hidden
                print(f"driver: worker {i}: {type(e).__name__}: {e}", file=sys.stderr)
                time.sleep(1)
            time.sleep(args.think * r.random())

    def step(r):
        with slock:
            live = [s for s in sessions if not s.lost]
        # New sessions all along (every fault sees logins), the others
        # reused at random (sessions made before a fault used after it).
        if not live or r.random() < args.login_share:
            new_session(r)
        else:
            s = r.choice(live)
            if s.busy.acquire(blocking=False):
                try:
                    act(r, s)
                finally:
                    s.busy.release()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(args.workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"driver: {counter[0]} logins tried, {len(sessions)} sessions", file=sys.stderr)


def login(args):
    key_pem = open(args.key, "rb").read()
    client = Client(args.base, args.ca, args.out, key_pem)
    cookies = client.login(args.national_id, args.source, args.sid)
    if cookies is None:
        sys.exit("driver: the login failed")
    print("; ".join(f"{k}={v}" for k, v in cookies.items()))


def plan(args):
    """CSV rows national_id,dossier,patient,family_name,study_uid -> plan."""
    pros = {}
    studies = set()
    for row in csv.reader(open(args.csv)):
        nid, dossier, patient, family, study = row
        p = pros.setdefault(nid, {"national_id": nid, "dossiers": set(), "patients": set(),
                                  "names": set(), "studies": set()})
        p["dossiers"].add(dossier)
        p["patients"].add(patient)
        p["names"].add(family)
        if study:
            p["studies"].add(study)
            studies.add(study)
    ids = {}
    base = args.orthanc.rstrip("/")
    import urllib.request

    for uid in sorted(studies):
        req = urllib.request.Request(f"{base}/tools/lookup", data=uid.encode(), method="POST")
        found = [e["ID"] for e in json.load(urllib.request.urlopen(req)) if e["Type"] == "Study"]
        if not found:
            continue
        study = json.load(urllib.request.urlopen(f"{base}/studies/{found[0]}"))
        series = study["Series"]
        instances = []
        for s in series[:2]:
            instances += json.load(urllib.request.urlopen(f"{base}/series/{s}"))["Instances"][:3]
        ids[uid] = {"series": series, "instances": instances}
    out = []
    for p in pros.values():
        mine = [ids[u] for u in sorted(p["studies"]) if u in ids]
        entry = {
            "national_id": p["national_id"],
            "dossiers": sorted(p["dossiers"]),
            "patients": sorted(p["patients"]),
            "names": sorted(p["names"]),
            "images": [i for m in mine for i in m["instances"]],
        }
        if p["national_id"] in args.downloader:
            # Small series only: the large one is run.sh's own download.
            entry["series"] = [s for m in mine for s in m["series"] if s not in args.exclude_series]
        out.append(entry)
    json.dump({"professionals": out}, open(args.out, "w"), indent=1)
    print(f"plan: {len(out)} professionals, {len(ids)} studies in the viewer", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("plan")
    p.add_argument("--csv", required=True)
    p.add_argument("--orthanc", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--downloader", action="append", default=[])
    p.add_argument("--exclude-series", action="append", default=[])
    for name in ("run", "login"):
        p = sub.add_parser(name)
        p.add_argument("--base", required=True)
        p.add_argument("--ca", required=True)
        p.add_argument("--key", required=True)
        p.add_argument("--out")
    r = sub.choices["run"]
    r.add_argument("--plan", required=True)
    r.add_argument("--duration", type=float, default=600)
    r.add_argument("--stop-file", required=True)
    r.add_argument("--workers", type=int, default=8)
    r.add_argument("--think", type=float, default=0.3)
    r.add_argument("--login-share", type=float, default=0.08)
    r.add_argument("--seed", type=int, default=14)
    lg = sub.choices["login"]
    lg.add_argument("--national-id", required=True)
    lg.add_argument("--source", default="127.0.2.1")
    lg.add_argument("--sid", default="0")
    args = ap.parse_args()
    {"plan": plan, "run": run, "login": login}[args.cmd](args)


if __name__ == "__main__":
    main()
