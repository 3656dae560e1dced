#!/usr/bin/env bash
# Hand check of the PSC look-alike provider with curl: discovery, dynamic
# registration, authorization code + PKCE through redirects with a cookie jar,
# token exchange (client_secret_basic), userinfo, an injected fault, logout.
# Usage: ./smoke.sh [BASE]   (BASE defaults to http://127.0.0.1:18090, a
# running `node server.mjs --port 18090`)
set -euo pipefail

BASE=${1:-http://127.0.0.1:18090}
ISSUER="$BASE/auth/realms/esante-wallet"
REDIRECT=http://127.0.0.1:9/callback   # never contacted: curl stops at it
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
# Prints a JWT's header and its claims (SubjectRefPro elided).
jwt_payload() { python3 -c "
import sys, base64, json
h, p = [json.loads(base64.urlsafe_b64decode(x + '=' * (-len(x) % 4))) for x in sys.argv[1].split('.')[:2]]
p.pop('SubjectRefPro', None)
print('header', json.dumps(h)); print('claims', json.dumps(p))" "$1"; }

echo "== discovery"
curl -fsS "$ISSUER/.well-known/wallet-openid-configuration" >"$WORK/disco.json"
AUTHZ=$(json 'd["authorization_endpoint"]' <"$WORK/disco.json")
TOKEN=$(json 'd["token_endpoint"]' <"$WORK/disco.json")
USERINFO=$(json 'd["userinfo_endpoint"]' <"$WORK/disco.json")
REG=$(json 'd["registration_endpoint"]' <"$WORK/disco.json")
LOGOUT=$(json 'd["end_session_endpoint"]' <"$WORK/disco.json")
echo "authorize=$AUTHZ token=$TOKEN"

echo "== register a client"
curl -fsS "$REG" -H 'content-type: application/json' -d "{
  \"redirect_uris\": [\"$REDIRECT\"],
  \"post_logout_redirect_uris\": [\"http://127.0.0.1:9/bye\"],
  \"token_endpoint_auth_method\": \"client_secret_basic\",
  \"id_token_signed_response_alg\": \"RS256\",
  \"userinfo_signed_response_alg\": \"HS256\"
}" >"$WORK/client.json"
CLIENT_ID=$(json 'd["client_id"]' <"$WORK/client.json")
CLIENT_SECRET=$(json 'd["client_secret"]' <"$WORK/client.json")
echo "client_id=$CLIENT_ID"

echo "== authorize (PKCE S256), following redirects with a cookie jar"
VERIFIER=$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
CHALLENGE=$(printf %s "$VERIFIER" | openssl dgst -sha256 -binary | base64 | tr '+/' '-_' | tr -d '=')
# -L follows: /auth -> /interaction/<uid> -> /auth/<uid> (resume) -> redirect_uri.
# The last hop (port 9) fails to connect; %{url_effective} still names it.
FINAL=$(curl -sS -L -c "$WORK/jar" -b "$WORK/jar" -o /dev/null -w '%{url_effective}' \
  -G "$AUTHZ" --data-urlencode response_type=code --data-urlencode client_id="$CLIENT_ID" \
  --data-urlencode redirect_uri="$REDIRECT" --data-urlencode 'scope=openid scope_all' \
  --data-urlencode acr_values=eidas1 --data-urlencode state=st4te --data-urlencode nonce=n0nce \
  --data-urlencode code_challenge="$CHALLENGE" --data-urlencode code_challenge_method=S256 \
  --data-urlencode login_hint=899700000021 || true)
echo "landed on $FINAL"
CODE=$(python3 -c "import sys,urllib.parse as u; q=u.parse_qs(u.urlparse(sys.argv[1]).query); assert q['state']==['st4te'], q; print(q['code'][0])" "$FINAL")

echo "== token (client_secret_basic)"
curl -fsS -u "$CLIENT_ID:$CLIENT_SECRET" "$TOKEN" -d grant_type=authorization_code \
  --data-urlencode code="$CODE" --data-urlencode redirect_uri="$REDIRECT" \
  --data-urlencode code_verifier="$VERIFIER" >"$WORK/token.json"
ID_TOKEN=$(json 'd["id_token"]' <"$WORK/token.json")
ACCESS_TOKEN=$(json 'd["access_token"]' <"$WORK/token.json")
jwt_payload "$ID_TOKEN"

echo "== userinfo (signed HS256 with the client secret for this client)"
UI=$(curl -fsS -H "authorization: Bearer $ACCESS_TOKEN" "$USERINFO")
jwt_payload "$UI"

echo "== fault: next ID token with a wrong iss and no acr"
curl -fsS "$BASE/__test/faults" -H 'content-type: application/json' \
  -d "{\"client_id\":\"$CLIENT_ID\",\"id_token\":{\"claims\":{\"iss\":\"https://evil.example\",\"acr\":null}}}"
FINAL=$(curl -sS -L -c "$WORK/jar" -b "$WORK/jar" -o /dev/null -w '%{url_effective}' \
  -G "$AUTHZ" --data-urlencode response_type=code --data-urlencode client_id="$CLIENT_ID" \
  --data-urlencode redirect_uri="$REDIRECT" --data-urlencode 'scope=openid scope_all' \
  --data-urlencode state=s2 --data-urlencode nonce=n2 \
  --data-urlencode code_challenge="$CHALLENGE" --data-urlencode code_challenge_method=S256 || true)
CODE=$(python3 -c "import sys,urllib.parse as u; print(u.parse_qs(u.urlparse(sys.argv[1]).query)['code'][0])" "$FINAL")
curl -fsS -u "$CLIENT_ID:$CLIENT_SECRET" "$TOKEN" -d grant_type=authorization_code \
  --data-urlencode code="$CODE" --data-urlencode redirect_uri="$REDIRECT" \
  --data-urlencode code_verifier="$VERIFIER" >"$WORK/token2.json"
jwt_payload "$(json 'd["id_token"]' <"$WORK/token2.json")"

echo "== logout (no confirmation page, straight back to post_logout_redirect_uri)"
curl -sS -o /dev/null -w '%{http_code} %{redirect_url}\n' -b "$WORK/jar" -G "$LOGOUT" \
  --data-urlencode id_token_hint="$ID_TOKEN" \
  --data-urlencode post_logout_redirect_uri=http://127.0.0.1:9/bye --data-urlencode state=bye
