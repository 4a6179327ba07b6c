#!/bin/sh
# The protected page: what mod_auth_openidc passed on from the ID token and userinfo.
printf 'Content-Type: text/plain; charset=utf-8\r\n\r\n'
printf 'protected page\n'
printf 'REMOTE_USER=%s\n' "$REMOTE_USER"
printf 'acr=%s\n' "$OIDC_CLAIM_acr"
env | grep -E '^OIDC_(CLAIM_|userinfo_json|id_token)' | grep -v -E 'access_token|refresh_token' | LC_ALL=C sort
