#!/usr/bin/env python3
"""Write the bypass corpus (src/viewer/tests/bypass-corpus.toml) as fuzz seeds
in corpus/canonicalize_classify/ (one file per case: method, target, headers)."""
import os
import tomllib

here = os.path.dirname(os.path.abspath(__file__))
src = os.path.join(here, "..", "src", "viewer", "tests", "bypass-corpus.toml")
out = os.path.join(here, "corpus", "canonicalize_classify")
os.makedirs(out, exist_ok=True)
with open(src, "rb") as f:
    cases = tomllib.load(f)["case"]
for i, c in enumerate(cases):
    lines = [c.get("method", "GET"), c["target"]] + [f"{n}: {v}" for n, v in c.get("headers", [])]
    with open(os.path.join(out, f"seed-{i:03d}"), "w") as f:
        f.write("\n".join(lines))
print(f"{len(cases)} seeds in {out}")
