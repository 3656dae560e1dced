# shellcheck shell=bash
# Sourced by the load tests: a doctor's session opened the way Hopital
# Manager opens one (docs/hm-sso.md). A launch token (RS256 JWT, 120 s,
# the demo records' Élise Martin-Dupré) signed by openssl with the
# benchmark's throw-away key, POSTed from the allowed origin
# http://hm.bench.invalid, then its confirmation.
#
#   hm_sso_cookie BASE KEY_PEM ISSUER NATIONAL_ID WORKDIR
#
# Prints the `espace-session=…` Cookie value. When the launch does not send
# on to its confirmation, or the confirmation sets no session cookie, it
# prints the answer's headers on stderr and returns non-zero. WORKDIR keeps
# the headers and the cookie jar (one set per BASE).

hm_sso_b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }

hm_sso_cookie() {
  local base=$1 key=$2 iss=$3 national_id=$4 dir=$5
  local tag now header payload sig confirm cookie
  tag=$(printf '%s' "${base#http://}" | tr -c 'A-Za-z0-9' '_')
  now=$(date +%s)
  header=$(printf '{"alg":"RS256","typ":"JWT"}' | hm_sso_b64url)
  payload=$(printf '{"iss":"%s","aud":"espace-ps","iat":%d,"nbf":%d,"exp":%d,"jti":"bench-%s","national_id":"%s","given_name":"Élise","family_name":"Martin-Dupré"}' \
    "$iss" "$now" "$now" $((now + 120)) "$(openssl rand -hex 8)" "$national_id" | hm_sso_b64url)
  sig=$(printf '%s.%s' "$header" "$payload" | openssl dgst -sha256 -sign "$key" | hm_sso_b64url)
  curl -s -o /dev/null -D "$dir/sso-launch-$tag.headers" -c "$dir/sso-$tag.jar" \
    -H "Origin: http://hm.bench.invalid" --data-urlencode "token=$header.$payload.$sig" \
    "$base/auth/hm-sso"
  confirm=$(sed -n 's/^[Ll]ocation: \(.*\)/\1/p' "$dir/sso-launch-$tag.headers" | tr -d '\r' | head -n1)
  if [[ $confirm != /auth/hm-sso/confirm* ]]; then
    echo "the SSO launch did not send on to its confirmation:" >&2
    cat "$dir/sso-launch-$tag.headers" >&2
    return 1
  fi
  curl -s -o /dev/null -D "$dir/sso-$tag.headers" -b "$dir/sso-$tag.jar" "$base$confirm"
  cookie=$(sed -n 's/^[Ss]et-[Cc]ookie: \(espace-session=[^;]*\).*/\1/p' "$dir/sso-$tag.headers" | tr -d '\r' | head -n1)
  if [[ -z $cookie ]]; then
    echo "no session cookie from the SSO launch:" >&2
    cat "$dir/sso-$tag.headers" >&2
    return 1
  fi
  printf '%s' "$cookie"
}
