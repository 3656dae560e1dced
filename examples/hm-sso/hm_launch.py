#!/usr/bin/env python3
"""Hopital Manager -> espace-ps single sign-on: a worked example.

What Hopital Manager does when a hospital user opens a dossier in
espace-ps (docs/hm-sso.md): sign a short-lived launch token (a JWT, RS256 or
ES256) with its private key, and have the user's browser POST it to
espace-ps's /auth/hm-sso as a form field named "token".

Needs PyJWT with its cryptography backend:
  Debian/Ubuntu: apt-get install python3-jwt python3-cryptography
  pip:           pip install "pyjwt[crypto]"

Commands:
  token  print a signed launch token (one line)
  form   print the HTML page Hopital Manager serves to launch espace-ps
         (an auto-submitting form POST from Hopital Manager's origin)
  jwks   print the JWKS to publish for espace-ps's hm_sso.jwks_url

Examples:
  hm_launch.py token --key hm-2026.key.pem --kid hm-2026 \\
      --issuer hopital-manager --audience espace-ps \\
      --national-id 899700234562 --given-name Hervé --family-name Lefèvre \\
      --profession 10 --savoir-faire SM44 --dossier 20190000003
  hm_launch.py form --portal https://espace-ps.chu.example ...(same options)
  hm_launch.py jwks --public-key hm-2026.pub.pem --kid hm-2026 \\
      [--public-key hm-2025.pub.pem --kid hm-2025]
"""

import argparse
import html
import json
import sys
import time
import uuid

import jwt  # PyJWT
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

# espace-ps refuses a token whose exp - iat exceeds hm_sso.max_lifetime_secs
# (300 s by default): keep launches short; a launch is used at once.
LIFETIME_SECONDS = 120


def load_private_key(path):
    """The signing key and its algorithm: RS256 for RSA, ES256 for EC P-256."""
    with open(path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    if isinstance(key, rsa.RSAPrivateKey):
        return key, "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return key, "ES256"
    sys.exit(f"{path}: an RSA or EC P-256 private key is needed")


def launch_token(args):
    """A signed launch token for one professional and, optionally, a dossier."""
    key, alg = load_private_key(args.key)
    now = int(time.time())
    claims = {
        "iss": args.issuer,
        "aud": args.audience,
        "iat": now,
        "nbf": now,
        "exp": now + LIFETIME_SECONDS,
        # Single use: espace-ps refuses a jti it has seen before.
        "jti": str(uuid.uuid4()),
        # 8 + RPPS (11 digits), or 0 + ADELI (9 characters).
        "national_id": args.national_id,
        "given_name": args.given_name,
        "family_name": args.family_name,
        "professions": args.profession,
        "savoir_faire": args.savoir_faire,
    }
    # What to open: a dossier number, else a patient id, else a portal path.
    if args.dossier:
        claims["dossier"] = args.dossier
    elif args.patient:
        claims["patient"] = args.patient
    elif args.return_to:
        claims["return_to"] = args.return_to
    headers = {"kid": args.kid} if args.kid else None
    return jwt.encode(claims, key, algorithm=alg, headers=headers)


def launch_form(args):
    """The page Hopital Manager serves: it POSTs the token to espace-ps at once.

    Served from Hopital Manager's own origin (listed in espace-ps's
    hm_sso.allowed_origins), the launch goes straight to the dossier; from
    anywhere else, espace-ps first asks the user to confirm who signs in.
    Give it a Content-Security-Policy that allows this one inline script.
    """
    action = args.portal.rstrip("/") + "/auth/hm-sso"
    token = launch_token(args)
    return f"""<!doctype html>
<html lang="fr"><head><meta charset="utf-8"><title>Ouverture de l'espace professionnel de santé</title></head>
<body>
<form id="lancement" method="post" action="{html.escape(action)}">
  <input type="hidden" name="token" value="{html.escape(token)}">
  <button type="submit">Ouvrir le dossier dans l'espace professionnel de santé</button>
</form>
<script>document.getElementById('lancement').submit();</script>
</body></html>
"""


def jwks(args):
    """The JWKS espace-ps reads at hm_sso.jwks_url: one key per --public-key."""
    if len(args.public_key) != len(args.kid or []):
        sys.exit("give one --kid per --public-key")
    keys = []
    for path, kid in zip(args.public_key, args.kid):
        with open(path, "rb") as f:
            public = serialization.load_pem_public_key(f.read())
        if isinstance(public, rsa.RSAPublicKey):
            jwk, alg = jwt.algorithms.RSAAlgorithm.to_jwk(public), "RS256"
        else:
            jwk, alg = jwt.algorithms.ECAlgorithm.to_jwk(public), "ES256"
        jwk = json.loads(jwk)
        jwk.update({"kid": kid, "alg": alg, "use": "sig"})
        keys.append(jwk)
    return json.dumps({"keys": keys}, indent=2)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    for name in ("token", "form"):
        s = sub.add_parser(name)
        s.add_argument("--key", required=True, help="Hopital Manager's private key (PEM)")
        s.add_argument("--kid", help="the key's id in the published JWKS")
        s.add_argument("--issuer", required=True, help="espace-ps's hm_sso.issuer")
        s.add_argument("--audience", required=True, help="espace-ps's hm_sso.audience")
        s.add_argument("--national-id", required=True)
        s.add_argument("--given-name", default="")
        s.add_argument("--family-name", default="")
        s.add_argument("--profession", action="append", default=[], help="profession code, e.g. 10 (médecin)")
        s.add_argument("--savoir-faire", action="append", default=[], help="e.g. SM44")
        s.add_argument("--dossier", help="the dossier number to open")
        s.add_argument("--patient", help="the patient id to open (when no dossier)")
        s.add_argument("--return-to", help="a portal path to open (when neither)")
        if name == "form":
            s.add_argument("--portal", required=True, help="espace-ps's public URL")
    s = sub.add_parser("jwks")
    s.add_argument("--public-key", action="append", required=True)
    s.add_argument("--kid", action="append")
    args = p.parse_args()
    out = {"token": launch_token, "form": launch_form, "jwks": jwks}[args.command](args)
    print(out)


if __name__ == "__main__":
    main()
