#!/usr/bin/env bash
# xacthuc interoperability: Apache mod_auth_openidc (Debian libapache2-mod-auth-openidc) protecting
# /protected/ on loopback, driven by curl with a cookie jar (no browser).
#
# Environment (set by .ci/interop; see tests/interop/README.md):
#   INTEROP_ISSUER                          e.g. http://localhost:8080 (the gateway)
#   INTEROP_CLIENT_ID, INTEROP_CLIENT_SECRET a confidential client registered with the redirect URI
#                                           http://127.0.0.1:$INTEROP_APACHE_PORT/protected/redirect_uri
#   INTEROP_APACHE_PORT                     free loopback port for Apache
#   INTEROP_USERNAME, INTEROP_PASSWORD      an AS-2 citizen
#   INTEROP_ACR                             expected acr (default urn:xacthuc:loa:as2:1fa)
#   INTEROP_ALG                             the client's ID token algorithm (default RS256)
#   INTEROP_KEEP=1                          keep Apache's work directory (logs) afterwards
#
# Prints "ok N - name" / "not ok N - name" per step and a closing "N passed, N failed" line;
# exits non-zero if any step failed. A step whose endpoint the discovery document does not
# advertise FAILS with "not advertised": nothing is skipped.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

need_env() {
  local v
  for v in "$@"; do
    [[ -n "${!v:-}" ]] || { echo "apache: $v is not set (see tests/interop/README.md)" >&2; exit 2; }
  done
}
need_env INTEROP_ISSUER INTEROP_CLIENT_ID INTEROP_CLIENT_SECRET INTEROP_APACHE_PORT INTEROP_USERNAME INTEROP_PASSWORD
ISSUER="${INTEROP_ISSUER%/}"
ACR="${INTEROP_ACR:-urn:xacthuc:loa:as2:1fa}"
ALG="${INTEROP_ALG:-RS256}"
APORT="$INTEROP_APACHE_PORT"
APACHE="http://127.0.0.1:$APORT"
REDIRECT_URI="$APACHE/protected/redirect_uri"
LOGGED_OUT="$APACHE/loggedout.html"
APACHE_BIN="${APACHE_BIN:-$(command -v apache2 || echo /usr/sbin/apache2)}"

for tool in curl jq "$APACHE_BIN"; do
  command -v "$tool" >/dev/null || { echo "apache: $tool not found (apt-get install apache2 libapache2-mod-auth-openidc curl jq)" >&2; exit 2; }
done
[[ -f /usr/lib/apache2/modules/mod_auth_openidc.so ]] || { echo "apache: mod_auth_openidc is not installed (apt-get install libapache2-mod-auth-openidc)" >&2; exit 2; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/xacthuc-apache.XXXXXX")"
chmod 755 "$WORK"
cp -r "$HERE/htdocs" "$WORK/htdocs"
chmod -R a+rX "$WORK/htdocs"
HTTPD_PID=""

stop_apache() {
  if [[ -n "$HTTPD_PID" ]] && kill -0 "$HTTPD_PID" 2>/dev/null; then
    kill -TERM "$HTTPD_PID" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$HTTPD_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$HTTPD_PID" 2>/dev/null || true
    wait "$HTTPD_PID" 2>/dev/null || true
  fi
  HTTPD_PID=""
}
cleanup() {
  stop_apache
  if [[ "${INTEROP_KEEP:-0}" == 1 ]]; then echo "apache: work directory kept at $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

# --- HTTP with a cookie jar, redirects followed by hand ---------------------------------------
JAR="$WORK/cookies.txt"
BODY="$WORK/body"
STATUS=""
LOCATION=""
TRAIL=()

# req METHOD URL [curl args…]: one request, no redirect followed; sets STATUS, LOCATION, $BODY.
req() {
  local method="$1" url="$2" out
  shift 2
  out="$(curl -sS -o "$BODY" -w '%{http_code} %{redirect_url}' -b "$JAR" -c "$JAR" \
    -H 'Accept-Language: en' --max-time 20 -X "$method" "$@" "$url")" || { STATUS=000; LOCATION=""; return 1; }
  STATUS="${out%% *}"
  LOCATION="${out#* }"
  TRAIL+=("$method ${url%%\?*} -> $STATUS")
}

# follow URL [STOP_PREFIX]: GET and follow redirects until a page (non-3xx) is shown, or the next
# redirect starts with STOP_PREFIX (not fetched; left in LOCATION, STATUS stays 3xx).
follow() {
  local url="$1" stop="${2:-}" hops=0
  req GET "$url" || return 1
  while [[ "$STATUS" == 3* ]]; do
    [[ -n "$LOCATION" ]] || return 1
    [[ -n "$stop" && "$LOCATION" == "$stop"* ]] && return 0
    (( hops++ < 20 )) || return 1
    req GET "$LOCATION" || return 1
  done
}

html_unescape() { sed -e 's/&#x2f;/\//gi; s/&#x3d;/=/gi; s/&#x2b;/+/gi; s/&quot;/"/g; s/&lt;/</g; s/&gt;/>/g; s/&amp;/\&/g'; }
hidden() { grep -o "name=\"$1\" value=\"[^\"]*\"" "$BODY" | head -n1 | sed -e 's/.*value="//; s/"$//' | html_unescape; }
page_text() { sed -e 's/<[^>]*>/ /g' "$BODY" | tr -s ' \n' ' ' | cut -c1-300; }
urlenc() { python3 -c 'import sys, urllib.parse as u; print(u.quote(sys.argv[1], safe=""))' "$1"; }
query_param() { # query_param URL NAME
  python3 -c 'import sys, urllib.parse as u; print(u.parse_qs(u.urlsplit(sys.argv[1]).query).get(sys.argv[2], [""])[0])' "$1" "$2"
}

# sign_in: on the gateway's sign-in page (in $BODY, at $1), post the form and follow everything.
sign_in() {
  local page_url="$1" csrf r
  csrf="$(hidden csrf)"
  r="$(hidden r)"
  [[ -n "$csrf" && -n "$r" ]] || { echo "no csrf/r on the sign-in page at $page_url: $(page_text)"; return 1; }
  req POST "$ISSUER/login" --data-urlencode "csrf=$csrf" --data-urlencode "r=$r" \
    --data-urlencode "username=$INTEROP_USERNAME" --data-urlencode "password=$INTEROP_PASSWORD" || return 1
  [[ "$STATUS" == 303 ]] || { echo "POST /login answered $STATUS: $(page_text)"; return 1; }
  follow "$LOCATION"
}

# login_through_apache: a full sign-in from /protected/ to the protected page.
login_through_apache() {
  follow "$APACHE/protected/" "$ISSUER/login" || { echo "no way to the sign-in page: ${TRAIL[*]}"; return 1; }
  if [[ "$STATUS" == 3* ]]; then
    local login="$LOCATION"
    follow "$login" || return 1
    [[ "$STATUS" == 200 ]] || { echo "sign-in page answered $STATUS: $(page_text)"; return 1; }
    sign_in "$login" || return 1
  fi
  [[ "$STATUS" == 200 ]] && grep -q '^protected page$' "$BODY" || {
    echo "did not reach the protected page: ${TRAIL[*]}: $(page_text)"
    tail -n 5 "$WORK/error.log" 2>/dev/null
    return 1
  }
}

info_json() { # the session as mod_auth_openidc's info hook reports it
  req GET "$REDIRECT_URI?info=json" || return 1
  [[ "$STATUS" == 200 ]] || { echo "info hook answered $STATUS: $(page_text)"; return 1; }
  cp "$BODY" "$WORK/info.json"
}

# --- discovery (read once to configure Apache) ------------------------------------------------
DISCOVERY="$WORK/discovery.json"
if ! curl -fsS --max-time 10 "$ISSUER/.well-known/openid-configuration" -o "$DISCOVERY"; then
  echo "apache: discovery document unreachable at $ISSUER" >&2
  exit 1
fi
md() { jq -r "$1 // empty" "$DISCOVERY"; }
advertised() { # advertised FIELD [VALUE]: fails the step with "not advertised"
  if [[ $# -eq 1 ]]; then
    [[ -n "$(md ".$1")" && "$(md ".$1")" != false ]] || { echo "$1 is not advertised in the discovery document"; return 1; }
  else
    jq -e --arg v "$2" ".$1 // [] | index(\$v)" "$DISCOVERY" >/dev/null \
      || { echo "$1 does not advertise \"$2\" (has $(jq -c ".$1" "$DISCOVERY"))"; return 1; }
  fi
}

SCOPE="openid profile"
PROMPT_PARAM=""
if jq -e '.scopes_supported // [] | index("offline_access")' "$DISCOVERY" >/dev/null; then
  SCOPE="openid profile offline_access"
  PROMPT_PARAM="&prompt=consent"
fi
ACR_ENC="$(urlenc "$ACR")"
DEFINES=()
[[ "$(id -u)" == 0 ]] && DEFINES+=(-D RUN_AS_WWW_DATA)
INTROSPECTION="$(md .introspection_endpoint)"
[[ -n "$INTROSPECTION" ]] && DEFINES+=(-D HAVE_INTROSPECTION)

# fill TEMPLATE NAME=VALUE…: replaces each @NAME@ (values may hold any character).
fill() {
  local template="$1"
  shift
  python3 - "$template" "$@" <<'PY'
import sys
text = open(sys.argv[1]).read()
for pair in sys.argv[2:]:
    name, value = pair.split("=", 1)
    text = text.replace("@" + name + "@", value)
if "@" in text.replace("@@", ""):
    import re
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        sys.exit("unfilled placeholders: " + " ".join(sorted(set(left))))
sys.stdout.write(text)
PY
}
fill "$HERE/httpd.conf.in" \
  "APACHE_PORT=$APORT" "WORK=$WORK" "ISSUER=$ISSUER" \
  "CLIENT_ID=$INTEROP_CLIENT_ID" "CLIENT_SECRET=$INTEROP_CLIENT_SECRET" \
  "PASSPHRASE=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')" \
  "SCOPE=$SCOPE" "ALG=$ALG" "AUTH_PARAMS=acr_values=$ACR_ENC$PROMPT_PARAM" \
  "OIDC_LOG_LEVEL=${INTEROP_APACHE_OIDC_LOG:-warn}" >"$WORK/httpd.conf" || exit 1

"$APACHE_BIN" -t -f "$WORK/httpd.conf" "${DEFINES[@]}" >"$WORK/configtest.log" 2>&1 \
  || { echo "apache: configuration rejected:" >&2; cat "$WORK/configtest.log" >&2; exit 1; }
# Its own session and process group: prefork Apache signals its whole process group on shutdown.
setsid "$APACHE_BIN" -f "$WORK/httpd.conf" -DFOREGROUND "${DEFINES[@]}" >"$WORK/stdout.log" 2>&1 &
HTTPD_PID=$!
for _ in $(seq 1 100); do
  curl -s -o /dev/null --max-time 1 "$APACHE/loggedout.html" && break
  kill -0 "$HTTPD_PID" 2>/dev/null || break
  sleep 0.1
done
if ! curl -fs -o /dev/null --max-time 2 "$APACHE/loggedout.html"; then
  echo "apache: did not start on $APACHE" >&2
  cat "$WORK/stdout.log" "$WORK/error.log" >&2 2>/dev/null
  exit 1
fi
echo "apache: $("$APACHE_BIN" -v | head -n1 | sed 's/Server version: //'), mod_auth_openidc $(dpkg-query -W -f '${Version}' libapache2-mod-auth-openidc 2>/dev/null || echo '?') on $APACHE, ID tokens $ALG"

# --- the steps ------------------------------------------------------------------------------------
PASSED=0
FAILED=0
N=0
# step "name" function: runs in this shell (steps share state in S), output shown on failure.
step() {
  local name="$1" fn="$2" rc
  N=$((N + 1))
  TRAIL=()
  : >"$WORK/step.out"
  "$fn" >"$WORK/step.out" 2>&1
  rc=$?
  if [[ $rc -eq 0 ]]; then
    PASSED=$((PASSED + 1))
    echo "ok $N - $name"
  else
    FAILED=$((FAILED + 1))
    echo "not ok $N - $name"
    sed 's/^/#   /' "$WORK/step.out"
  fi
  return 0
}

declare -A S=()

t_unauthenticated() {
  req GET "$APACHE/protected/" || return 1
  [[ "$STATUS" == 302 || "$STATUS" == 303 ]] || { echo "expected a redirect to the gateway, got $STATUS: $(page_text)"; return 1; }
  [[ "$LOCATION" == "$(md .authorization_endpoint)?"* ]] || { echo "redirected to $LOCATION, not the authorization endpoint"; return 1; }
  local p
  for p in client_id:"$INTEROP_CLIENT_ID" response_type:code code_challenge_method:S256 redirect_uri:"$REDIRECT_URI" acr_values:"$ACR"; do
    [[ "$(query_param "$LOCATION" "${p%%:*}")" == "${p#*:}" ]] || { echo "authorization request lacks ${p%%:*}=${p#*:}: $LOCATION"; return 1; }
  done
  [[ -n "$(query_param "$LOCATION" nonce)" && -n "$(query_param "$LOCATION" state)" ]] || { echo "no nonce/state: $LOCATION"; return 1; }
}

t_login() {
  login_through_apache || return 1
  grep -qx "acr=$ACR" "$BODY" || { echo "the protected page does not show acr=$ACR:"; cat "$BODY"; return 1; }
  grep -q '^OIDC_CLAIM_amr=.*pwd' "$BODY" || { echo "no amr with pwd:"; cat "$BODY"; return 1; }
  grep -q '^OIDC_CLAIM_sid=.' "$BODY" || { echo "no sid claim:"; cat "$BODY"; return 1; }
  S[sub]="$(sed -n 's/^REMOTE_USER=//p' "$BODY")"
  [[ -n "${S[sub]}" ]] || { echo "no REMOTE_USER"; return 1; }
}

t_userinfo() {
  follow "$APACHE/protected/" || return 1
  [[ "$STATUS" == 200 ]] || { echo "protected page answered $STATUS"; return 1; }
  grep -qx "OIDC_CLAIM_preferred_username=$INTEROP_USERNAME" "$BODY" \
    || { echo "userinfo's preferred_username did not reach the page:"; cat "$BODY"; return 1; }
  grep -q '^OIDC_userinfo_json=.*"as_level":2' "$BODY" || { echo "no userinfo JSON with as_level 2:"; cat "$BODY"; return 1; }
}

t_negative_forged_callback() {
  # In a fresh browser, a callback with a state mod_auth_openidc never issued must not create a
  # session: the next request to /protected/ is still sent to the gateway.
  local main_jar="$JAR" st
  JAR="$WORK/cookies-forged.txt"
  req GET "$REDIRECT_URI?code=forged-code&state=forged-state&iss=$(urlenc "$ISSUER")" || { JAR="$main_jar"; return 1; }
  st="$STATUS"
  req GET "$APACHE/protected/"
  JAR="$main_jar"
  [[ "$st" != 200 ]] || { echo "the forged callback was answered 200"; return 1; }
  [[ "$STATUS" == 302 || "$STATUS" == 303 ]] || { echo "after a forged callback ($st) /protected/ answered $STATUS"; return 1; }
}

t_info_hook_tokens() {
  info_json || return 1
  S[at]="$(jq -r '.access_token // empty' "$WORK/info.json")"
  S[rt]="$(jq -r '.refresh_token // empty' "$WORK/info.json")"
  S[idt_acr]="$(jq -r '.id_token.acr // empty' "$WORK/info.json")"
  [[ -n "${S[at]}" ]] || { echo "no access_token in the session: $(jq -c 'del(.id_token)' "$WORK/info.json")"; return 1; }
  [[ "${S[idt_acr]}" == "$ACR" ]] || { echo "session ID token acr is ${S[idt_acr]}"; return 1; }
}

t_refresh() {
  advertised grant_types_supported refresh_token || return 1
  [[ -n "${S[at]:-}" ]] || { echo "needs the session's access token (earlier step failed)"; return 1; }
  [[ -n "${S[rt]:-}" ]] || { echo "mod_auth_openidc got no refresh_token (scope \"$SCOPE\")"; return 1; }
  local enc_ret
  enc_ret="$(urlenc "$APACHE/protected/")"
  req GET "$REDIRECT_URI?refresh=$enc_ret&access_token=${S[at]}" || return 1
  [[ "$STATUS" == 302 || "$STATUS" == 303 ]] && [[ "$LOCATION" == "$APACHE/protected/"* ]] \
    || { echo "refresh answered $STATUS $LOCATION: $(page_text)"; tail -n 5 "$WORK/error.log"; return 1; }
  [[ "$LOCATION" != *error* ]] || { echo "refresh failed: $LOCATION"; tail -n 5 "$WORK/error.log"; return 1; }
  info_json || return 1
  local at2 rt2
  at2="$(jq -r '.access_token // empty' "$WORK/info.json")"
  rt2="$(jq -r '.refresh_token // empty' "$WORK/info.json")"
  [[ -n "$at2" && "$at2" != "${S[at]}" ]] || { echo "access token not renewed by the refresh"; return 1; }
  [[ -n "$rt2" && "$rt2" != "${S[rt]}" ]] || { echo "refresh token not rotated"; return 1; }
  S[old_at]="${S[at]}"
  S[at]="$at2"
  S[rt]="$rt2"
}

t_introspection() {
  advertised introspection_endpoint || return 1
  [[ -n "${S[at]:-}" ]] || { echo "needs the session's access token (earlier step failed)"; return 1; }
  req GET "$APACHE/api/" -H "Authorization: Bearer ${S[at]}" || return 1
  [[ "$STATUS" == 200 ]] || { echo "the API refused the access token: $STATUS"; tail -n 5 "$WORK/error.log"; return 1; }
  grep -qx "REMOTE_USER=${S[sub]}" "$BODY" || { echo "introspection sub differs:"; cat "$BODY"; return 1; }
  grep -qx "OIDC_CLAIM_acr=$ACR" "$BODY" || { echo "introspection gave no acr=$ACR:"; cat "$BODY"; return 1; }
  grep -qx "OIDC_CLAIM_client_id=$INTEROP_CLIENT_ID" "$BODY" || { echo "introspection gave no client_id:"; cat "$BODY"; return 1; }
  req GET "$APACHE/api/" -H "Authorization: Bearer not-a-token-$RANDOM$RANDOM" || return 1
  [[ "$STATUS" == 401 ]] || { echo "the API accepted an unknown token: $STATUS"; return 1; }
}

t_logout() {
  advertised end_session_endpoint || return 1
  local enc_out
  enc_out="$(urlenc "$LOGGED_OUT")"
  req GET "$REDIRECT_URI?logout=$enc_out" || return 1
  S[logged_out]=1
  [[ "$STATUS" == 302 || "$STATUS" == 303 ]] && [[ "$LOCATION" == "$(md .end_session_endpoint)"* ]] \
    || { echo "mod_auth_openidc did not send the browser to end_session_endpoint: $STATUS $LOCATION"; return 1; }
  [[ -n "$(query_param "$LOCATION" id_token_hint)" ]] || { echo "no id_token_hint: $LOCATION"; return 1; }
  follow "$LOCATION" "$LOGGED_OUT" || { echo "logout went astray: ${TRAIL[*]}"; return 1; }
  if [[ "$STATUS" == 200 ]] && grep -qi '<form' "$BODY"; then
    # A confirmation page is allowed (RP-Initiated Logout 1.0 §2): confirm.
    submit_logout_form "$LOGGED_OUT" || return 1
  fi
  [[ "$STATUS" == 3* && "$LOCATION" == "$LOGGED_OUT"* ]] || { echo "did not return to $LOGGED_OUT: ${TRAIL[*]} $(page_text)"; return 1; }
  # Apache's session is gone and so is the gateway's: /protected/ leads to the sign-in page.
  follow "$APACHE/protected/" "$ISSUER/login" || return 1
  [[ "$STATUS" == 3* && "$LOCATION" == "$ISSUER/login"* ]] || { echo "still signed in after logout: ${TRAIL[*]}"; return 1; }
}

t_revocation() {
  advertised revocation_endpoint || return 1
  [[ -n "${S[at]:-}" ]] || { echo "needs the session's access token (earlier step failed)"; return 1; }
  # mod_auth_openidc revokes the session's tokens at revocation_endpoint when it logs out.
  if [[ -z "${S[logged_out]:-}" ]]; then
    echo "(the logout step did not ask mod_auth_openidc to log out; asking it now)"
    req GET "$REDIRECT_URI?logout=$(urlenc "$LOGGED_OUT")" || return 1
    S[logged_out]=1
  fi
  if [[ -n "$INTROSPECTION" ]]; then
    req GET "$APACHE/api/" -H "Authorization: Bearer ${S[at]}" || return 1
    [[ "$STATUS" == 401 ]] || { echo "the access token still works after logout: $STATUS"; return 1; }
  fi
  curl -sS --max-time 10 -u "$INTEROP_CLIENT_ID:$INTEROP_CLIENT_SECRET" --data-urlencode "token=${S[at]}" \
    "$(md .introspection_endpoint)" -o "$WORK/introspect.json" 2>/dev/null
  if [[ -n "$INTROSPECTION" ]]; then
    [[ "$(jq -r .active "$WORK/introspect.json")" == false ]] || { echo "introspection says active: $(cat "$WORK/introspect.json")"; return 1; }
  fi
  if [[ -n "${S[rt]:-}" ]]; then
    req POST "$(md .token_endpoint)" -u "$INTEROP_CLIENT_ID:$INTEROP_CLIENT_SECRET" \
      --data-urlencode grant_type=refresh_token --data-urlencode "refresh_token=${S[rt]}" || return 1
    [[ "$STATUS" == 400 && "$(jq -r .error "$BODY")" == invalid_grant ]] || { echo "revoked refresh token answered $STATUS $(cat "$BODY")"; return 1; }
  fi
}

# submit_logout_form PAGE_URL: on a gateway page (in $BODY) that asks to confirm the logout,
# posts the form whose action mentions logout or end_session; fails when there is none.
submit_logout_form() {
  local form action fields=()
  form="$(tr '\n' ' ' <"$BODY" | grep -o '<form[^>]*action="[^"]*\(logout\|end\)[^"]*"[^>]*>.*</form>' | head -n1 | sed 's|</form>.*||')"
  [[ -n "$form" ]] || { echo "the gateway showed a page without a logout form: $(page_text)"; return 1; }
  action="$(grep -o 'action="[^"]*"' <<<"$form" | head -n1 | sed 's/action="//; s/"$//' | html_unescape)"
  while read -r input; do
    local name value
    name="$(grep -o 'name="[^"]*"' <<<"$input" | sed 's/name="//; s/"$//')"
    value="$(grep -o 'value="[^"]*"' <<<"$input" | sed 's/value="//; s/"$//' | html_unescape)"
    [[ -n "$name" ]] && fields+=(--data-urlencode "$name=$value")
  done < <(grep -o '<\(input\|button\)[^>]*name="[^"]*"[^>]*>' <<<"$form")
  [[ "$action" == http* ]] || action="$ISSUER$action"
  req POST "$action" "${fields[@]}" || return 1
  if [[ "$STATUS" == 3* ]]; then follow "$LOCATION" "${1:-}"; fi
}

t_backchannel() {
  advertised backchannel_logout_supported || return 1
  local url idt
  url="$(md .end_session_endpoint)"
  [[ -n "$url" ]] || { echo "end_session_endpoint is not advertised (needed to end the gateway session)"; return 1; }
  rm -f "$JAR"
  login_through_apache || return 1
  idt="$(sed -n 's/^OIDC_id_token=//p' "$BODY")"
  [[ -n "$idt" ]] || { echo "the protected page got no serialized ID token"; return 1; }
  # End the gateway session from the browser, not through Apache: only a back-channel logout
  # token from the gateway can end Apache's session now.
  follow "$url?id_token_hint=$idt&client_id=$(urlenc "$INTEROP_CLIENT_ID")" || return 1
  if [[ "$STATUS" == 200 ]] && grep -qi '<form' "$BODY"; then
    submit_logout_form || return 1
  fi
  [[ "$STATUS" == 200 || "$STATUS" == 3* ]] || { echo "end_session_endpoint answered $STATUS: $(page_text)"; return 1; }
  # Delivery may be asynchronous (and retried): allow ten seconds.
  local i
  for i in $(seq 1 20); do
    req GET "$APACHE/protected/" || return 1
    [[ "$STATUS" == 3* ]] && return 0
    sleep 0.5
  done
  echo "Apache's session survived the gateway logout: no back-channel logout token arrived (status $STATUS)"
  grep -i backchannel "$WORK/error.log" | tail -n 3
  return 1
}

step "negative: /protected/ without a session redirects to the gateway's authorization endpoint (PKCE, acr_values)" t_unauthenticated
step "sign-in through mod_auth_openidc reaches the protected page, which sees acr=$ACR" t_login
step "userinfo claims reach the protected page" t_userinfo
step "negative: a forged callback (unknown state) creates no session" t_negative_forged_callback
step "the session holds the tokens (info hook)" t_info_hook_tokens
step "refresh (mod_auth_openidc ?refresh=)" t_refresh
step "introspection (RFC 7662): AuthType oauth20 accepts the access token, refuses an unknown one" t_introspection
step "RP-initiated logout through mod_auth_openidc (end_session_endpoint)" t_logout
step "revocation (RFC 7009): tokens revoked by mod_auth_openidc at logout are dead" t_revocation
step "back-channel logout: ending the gateway session ends Apache's" t_backchannel

echo "apache: $PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
