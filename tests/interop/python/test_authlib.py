"""xacthuc interoperability: the Python `authlib` relying party against a running gateway.

Environment (set by .ci/interop; see tests/interop/README.md):
  INTEROP_ISSUER                          e.g. http://localhost:8080
  INTEROP_CLIENT_ID, INTEROP_CLIENT_SECRET a confidential client (client_secret_post here)
  INTEROP_REDIRECT_URI                    registered redirect URI (never fetched)
  INTEROP_POST_LOGOUT_REDIRECT_URI        registered post-logout redirect URI (never fetched)
  INTEROP_USERNAME, INTEROP_PASSWORD      an AS-2 citizen
  INTEROP_ACR                             expected acr (default urn:xacthuc:loa:as2:1fa)
  INTEROP_ALG                             the client's ID token algorithm (default ES256)
  INTEROP_ACCESS_TOKEN_FORMAT             jwt or opaque (default), as the client is registered

The tests run in file order and share state. A step whose endpoint the discovery document does
not advertise FAILS with "not advertised": nothing is skipped.
"""

import base64
import html
import json
import os
import re
import secrets
import time
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from authlib.integrations.base_client import BaseApp, OAuth2Mixin, OAuthError, OpenIDMixin
from authlib.integrations.base_client.errors import MismatchingStateError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc6749.errors import MismatchingStateException, OAuth2Error
from joserfc import jwt
from joserfc.errors import BadSignatureError, InvalidClaimError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry


def env(name, default=None):
    value = os.environ.get(name, default)
    if not value:
        raise RuntimeError(f"{name} is not set (see tests/interop/README.md)")
    return value


ISSUER = env("INTEROP_ISSUER").rstrip("/")
CLIENT_ID = env("INTEROP_CLIENT_ID")
CLIENT_SECRET = env("INTEROP_CLIENT_SECRET")
REDIRECT_URI = env("INTEROP_REDIRECT_URI")
POST_LOGOUT_REDIRECT_URI = env("INTEROP_POST_LOGOUT_REDIRECT_URI", REDIRECT_URI + "/logged-out")
USERNAME = env("INTEROP_USERNAME")
PASSWORD = env("INTEROP_PASSWORD")
ACR = env("INTEROP_ACR", "urn:xacthuc:loa:as2:1fa")
ALG = env("INTEROP_ALG", "ES256")
# How the client is registered: "jwt" (RFC 9068 access tokens) or "opaque".
ACCESS_TOKEN_FORMAT = env("INTEROP_ACCESS_TOKEN_FORMAT", "opaque")
TIMEOUT = 15

# What authlib raises for an OAuth error response from the token endpoint.
TOKEN_ERRORS = (OAuth2Error, OAuthError)

S = {}  # state shared by the steps


class RelyingParty(OAuth2Mixin, OpenIDMixin, BaseApp):
    """authlib's framework-neutral OpenID Connect client (what its Flask/Django apps build on)."""

    client_cls = OAuth2Session


def new_rp(secret=CLIENT_SECRET):
    return RelyingParty(
        framework=None,
        name="xacthuc",
        client_id=CLIENT_ID,
        client_secret=secret,
        server_metadata_url=ISSUER + "/.well-known/openid-configuration",
        client_kwargs={
            "code_challenge_method": "S256",
            "token_endpoint_auth_method": "client_secret_post",
            "timeout": TIMEOUT,
        },
    )


def session(secret=CLIENT_SECRET):
    """A bare authlib OAuth2Session for refresh, introspection and revocation."""
    return OAuth2Session(
        CLIENT_ID,
        secret,
        token_endpoint_auth_method="client_secret_post",
        revocation_endpoint_auth_method="client_secret_post",
    )


def need(key, step):
    if key not in S:
        pytest.fail(f'needs {key} from the "{step}" step, which did not complete', pytrace=False)
    return S[key]


def advertised(field, value=None):
    md = need("metadata", "discovery")
    v = md.get(field)
    if value is None:
        if not v:
            pytest.fail(f"{field} is not advertised in the discovery document", pytrace=False)
        return v
    if not isinstance(v, list) or value not in v:
        pytest.fail(f"{field} does not advertise {value!r} (has {v!r})", pytrace=False)
    return v


def scope():
    wanted = ["openid", "profile"]
    if "offline_access" in S["metadata"].get("scopes_supported", []):
        wanted.append("offline_access")
    return " ".join(wanted)


# --- the citizen's browser: requests with a cookie jar, redirects followed by hand -------------


def text_of(page):
    t = re.sub(r"<style[\s\S]*?</style>", "", page)
    t = re.sub(r"<[^>]+>", " ", t)
    return re.sub(r"\s+", " ", t).strip()[:300]


def parse_form(page, base, action_pattern=None):
    """The first form whose action matches `action_pattern` (any form without one)."""

    def attr(tag, name):
        a = re.search(rf'\b{name}\s*=\s*"([^"]*)"', tag, re.I)
        return html.unescape(a.group(1)) if a else None

    forms = re.finditer(r"<form\b([^>]*)>([\s\S]*?)</form>", page, re.I)
    m = next((f for f in forms if not action_pattern or re.search(action_pattern, attr(f.group(1), "action") or "", re.I)), None)
    if not m:
        return None

    fields = {}
    for tag in re.findall(r"<input\b[^>]*>", m.group(2), re.I):
        name = attr(tag, "name")
        if name is not None:
            fields[name] = attr(tag, "value") or ""
    button = re.search(r"<button\b[^>]*>", m.group(2), re.I)
    if button and attr(button.group(0), "name") and attr(button.group(0), "name") not in fields:
        fields[attr(button.group(0), "name")] = attr(button.group(0), "value") or ""
    return {
        "method": (attr(m.group(1), "method") or "get").upper(),
        "action": urljoin(base, attr(m.group(1), "action") or base),
        "fields": fields,
    }


class Browser:
    def __init__(self):
        self.s = requests.Session()
        self.s.headers["Accept-Language"] = "en"
        self.trail = []

    def follow(self, url, stop, method="GET", data=None):
        """Follows redirects until one leaves for `stop` (returned, never fetched) or a page shows."""
        for _ in range(20):
            r = self.s.request(method, url, data=data, allow_redirects=False, timeout=TIMEOUT)
            self.trail.append(f"{method} {urlsplit(url).path} -> {r.status_code}")
            if not (300 <= r.status_code < 400):
                return None, r
            url = urljoin(url, r.headers["Location"])
            method, data = "GET", None
            if stop and url.startswith(stop):
                return url, None
        raise AssertionError(f"too many redirects: {self.trail}")

    def authorize(self, url):
        """Drives an authorization request back to REDIRECT_URI, signing in when asked."""
        done, page = self.follow(url, REDIRECT_URI)
        if done:
            return done
        assert page.status_code == 200 and urlsplit(page.url).path == "/login", (
            f"expected the sign-in page, got {page.status_code} at {page.url}: {text_of(page.text)}"
        )
        form = parse_form(page.text, page.url, r"/login")
        assert form and "csrf" in form["fields"] and "r" in form["fields"], text_of(page.text)
        data = {"csrf": form["fields"]["csrf"], "r": form["fields"]["r"], "username": USERNAME, "password": PASSWORD}
        done, page = self.follow(form["action"], REDIRECT_URI, method="POST", data=data)
        assert done, f"sign-in did not return to the client: {self.trail}: {text_of(page.text)}"
        return done


def authorize(rp, browser=None, **extra):
    browser = browser or Browser()
    params = {"scope": scope(), "acr_values": ACR, "prompt": "consent"}
    params.update(extra)
    req = rp.create_authorization_url(redirect_uri=REDIRECT_URI, **params)
    callback = browser.authorize(req["url"])
    return req, callback, browser


def exchange(rp, req, callback):
    return rp.fetch_access_token(
        redirect_uri=REDIRECT_URI,
        authorization_response=callback,
        state=req["state"],
        code_verifier=req["code_verifier"],
    )


def oauth_error(exc):
    """The OAuth `error` of a failed authlib or requests call."""
    if isinstance(exc, TOKEN_ERRORS):
        return exc.error
    resp = getattr(exc, "response", None)
    if resp is not None:
        try:
            return resp.json().get("error")
        except ValueError:
            return None
    return None


# --- the steps -----------------------------------------------------------------------------------


def test_discovery():
    rp = new_rp()
    md = rp.load_server_metadata()
    assert md["issuer"] == ISSUER
    for f in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri"):
        assert md.get(f), f"{f} missing"
    assert "S256" in md.get("code_challenge_methods_supported", [])
    assert "client_secret_post" in md.get("token_endpoint_auth_methods_supported", [])
    assert ALG in md.get("id_token_signing_alg_values_supported", [])
    S["rp"], S["metadata"] = rp, md


def test_authorization_code_with_pkce():
    rp = need("rp", "discovery")
    req, callback, browser = authorize(rp)
    q = parse_qs(urlsplit(callback).query)
    assert q["state"] == [req["state"]]
    assert q["iss"] == [S["metadata"]["issuer"]], "RFC 9207 iss missing or wrong"
    assert "code_challenge=" in req["url"] and "code_challenge_method=S256" in req["url"]
    S["req"], S["callback"], S["browser"] = req, callback, browser


def test_token_and_id_token_signature():
    rp = need("rp", "discovery")
    req, callback = need("req", "authorization code"), S["callback"]
    token = exchange(rp, req, callback)
    assert token["token_type"].lower() == "bearer"
    # authlib's own validation: signature against the JWKS (joserfc), iss, aud, exp, nonce, at_hash.
    claims = rp.parse_id_token(token, nonce=req["nonce"])
    header = json.loads(base64.urlsafe_b64decode(token["id_token"].split(".")[0] + "=="))
    assert header["alg"] == ALG and header.get("kid")
    # And once more by hand, pinned to the client's algorithm only.
    jwks = KeySet.import_key_set(requests.get(S["metadata"]["jwks_uri"], timeout=TIMEOUT).json())
    raw = jwt.decode(token["id_token"], jwks, algorithms=[ALG], registry=JWSRegistry(algorithms=[ALG]))
    assert raw.claims["sub"] == claims["sub"]
    assert claims["iss"] == ISSUER
    assert claims["aud"] in (CLIENT_ID, [CLIENT_ID])
    assert claims["acr"] == ACR
    assert "pwd" in claims["amr"]
    assert isinstance(claims["auth_time"], int)
    assert claims.get("sid"), "no sid"
    S["token"], S["claims"] = token, claims


def test_userinfo():
    rp = need("rp", "discovery")
    token = need("token", "token")
    info = rp.userinfo(token=token)
    assert info["sub"] == S["claims"]["sub"]
    assert info["as_level"] == 2
    assert info["preferred_username"] == USERNAME
    assert info.get("name")


def test_access_token_format():
    token = need("token", "token")
    at = token["access_token"]
    looks_like_jwt = re.fullmatch(r"[\w-]+\.[\w-]+\.[\w-]+", at) is not None
    if ACCESS_TOKEN_FORMAT != "jwt":
        assert not looks_like_jwt, "an opaque access token was expected"
        return
    assert looks_like_jwt, f"the client is registered for JWT access tokens, got {at[:20]}…"
    # RFC 9068: typ at+jwt, signed with a JWKS key; iss, aud, exp, sub, client_id, iat, jti, and the
    # authentication information (acr, amr, auth_time).
    jwks = KeySet.import_key_set(requests.get(S["metadata"]["jwks_uri"], timeout=TIMEOUT).json())
    algs = S["metadata"]["id_token_signing_alg_values_supported"]
    decoded = jwt.decode(at, jwks, algorithms=algs, registry=JWSRegistry(algorithms=algs))
    assert decoded.header.get("typ", "").lower() in ("at+jwt", "application/at+jwt"), decoded.header
    c = decoded.claims
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": ISSUER},
        exp={"essential": True},
        iat={"essential": True},
        jti={"essential": True},
        sub={"essential": True, "value": S["claims"]["sub"]},
        client_id={"essential": True, "value": CLIENT_ID},
    ).validate(c)
    assert c.get("aud"), "no aud"
    assert c.get("acr") == ACR and c.get("auth_time") == S["claims"]["auth_time"] and "pwd" in c.get("amr", [])
    # A tampered JWT access token is refused by the gateway's userinfo.
    h, p, sig = at.split(".")
    forged = dict(c, as_level=4)
    body = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    r = requests.get(S["metadata"]["userinfo_endpoint"], headers={"Authorization": f"Bearer {h}.{body}.{sig}"}, timeout=TIMEOUT)
    assert r.status_code == 401, f"userinfo accepted a forged JWT access token: {r.status_code}"


def test_negative_tampered_id_token_and_wrong_nonce():
    rp = need("rp", "discovery")
    req, callback, _ = authorize(rp)
    token = exchange(rp, req, callback)
    h, p, sig = token["id_token"].split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=="))
    raw[len(raw) // 2] ^= 1
    bad = dict(token, id_token=".".join([h, p, base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()]))
    with pytest.raises(BadSignatureError):
        rp.parse_id_token(bad, nonce=req["nonce"])
    # A payload edited under the original signature fails too.
    payload = json.loads(base64.urlsafe_b64decode(p + "=="))
    payload["acr"] = "urn:xacthuc:loa:as4:mfa"
    edited = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    with pytest.raises(BadSignatureError):
        rp.parse_id_token(dict(token, id_token=f"{h}.{edited}.{sig}"), nonce=req["nonce"])
    with pytest.raises(InvalidClaimError):
        rp.parse_id_token(token, nonce="not-the-nonce-we-sent")


def test_negative_state_secret_replay():
    rp = need("rp", "discovery")
    req, callback, _ = authorize(rp)
    # A callback carrying another state is refused before the token endpoint is called.
    with pytest.raises((MismatchingStateException, MismatchingStateError)):
        rp.fetch_access_token(
            redirect_uri=REDIRECT_URI,
            authorization_response=callback,
            state="not-our-state",
            code_verifier=req["code_verifier"],
        )
    # Wrong client secret: invalid_client.
    with pytest.raises(TOKEN_ERRORS) as e:
        exchange(new_rp("y" * 43), req, callback)
    assert oauth_error(e.value) == "invalid_client"
    # The real exchange works once; the replay is invalid_grant.
    exchange(rp, req, callback)
    with pytest.raises(TOKEN_ERRORS) as e:
        exchange(rp, req, callback)
    assert oauth_error(e.value) == "invalid_grant"
    # An unregistered redirect_uri is never redirected to.
    bad = rp.create_authorization_url(redirect_uri="https://evil.example/cb", scope="openid")
    done, page = Browser().follow(bad["url"], "https://evil.example/")
    assert done is None and page.status_code == 400, f"{page.status_code}"
    # prompt=none without a session: login_required at the redirect URI.
    none = rp.create_authorization_url(redirect_uri=REDIRECT_URI, scope="openid", prompt="none")
    done, _ = Browser().follow(none["url"], REDIRECT_URI)
    assert done and parse_qs(urlsplit(done).query)["error"] == ["login_required"]


def test_refresh():
    advertised("grant_types_supported", "refresh_token")
    token = need("token", "token")
    assert token.get("refresh_token"), f"no refresh_token (asked scope {scope()!r}, got {token.get('scope')!r})"
    rp = S["rp"]
    refreshed = session().refresh_token(S["metadata"]["token_endpoint"], refresh_token=token["refresh_token"])
    assert refreshed["access_token"] != token["access_token"]
    assert refreshed.get("refresh_token") and refreshed["refresh_token"] != token["refresh_token"], "not rotated"
    if refreshed.get("id_token"):
        c = rp.parse_id_token(refreshed, nonce=None)
        for k in ("sub", "auth_time", "acr", "amr"):
            assert c[k] == S["claims"][k], k
    assert rp.userinfo(token=refreshed)["sub"] == S["claims"]["sub"]
    S["refreshed"] = refreshed


def test_introspection():
    url = advertised("introspection_endpoint")
    token = S.get("refreshed") or need("token", "token")
    r = session().introspect_token(url, token=token["access_token"])
    r.raise_for_status()
    body = r.json()
    assert body["active"] is True, body
    assert body["sub"] == S["claims"]["sub"]
    assert body["client_id"] == CLIENT_ID
    assert "openid" in body["scope"].split()
    assert isinstance(body["exp"], int) and body["exp"] > time.time()
    assert body["acr"] == ACR
    assert body["auth_time"] == S["claims"]["auth_time"]
    unknown = session().introspect_token(url, token="not-a-token-" + secrets.token_urlsafe(8))
    assert unknown.status_code == 200 and unknown.json() == {"active": False}
    # Introspection needs client authentication.
    anon = requests.post(url, data={"token": token["access_token"]}, timeout=TIMEOUT)
    assert anon.status_code == 401 and anon.json().get("error") == "invalid_client"


def test_revocation():
    url = advertised("revocation_endpoint")
    rp = S["rp"]
    token = S.get("refreshed") or need("token", "token")
    r = session().revoke_token(url, token=token["access_token"], token_type_hint="access_token")
    assert r.status_code == 200, r.text
    with pytest.raises(Exception) as e:
        rp.userinfo(token=token)
    assert getattr(e.value, "response", None) is not None and e.value.response.status_code == 401
    if S["metadata"].get("introspection_endpoint"):
        body = session().introspect_token(S["metadata"]["introspection_endpoint"], token=token["access_token"]).json()
        assert body["active"] is False
    r = session().revoke_token(url, token="not-a-token-" + secrets.token_urlsafe(8))
    assert r.status_code == 200, "revoking an unknown token must succeed (RFC 7009 §2.2)"
    if token.get("refresh_token"):
        session().revoke_token(url, token=token["refresh_token"], token_type_hint="refresh_token")
        with pytest.raises(TOKEN_ERRORS) as e:
            session().refresh_token(S["metadata"]["token_endpoint"], refresh_token=token["refresh_token"])
        assert oauth_error(e.value) == "invalid_grant"


def test_logout():
    advertised("end_session_endpoint")
    rp = S["rp"]
    token = need("token", "token")
    browser = need("browser", "authorization code")
    out = rp.create_logout_url(
        post_logout_redirect_uri=POST_LOGOUT_REDIRECT_URI, id_token_hint=token["id_token"]
    )
    done, page = browser.follow(out["url"], POST_LOGOUT_REDIRECT_URI)
    if page is not None:
        form = parse_form(page.text, page.url, r"logout|end")
        assert form, f"logout showed {page.status_code} without a logout form: {text_of(page.text)}"
        done, page = browser.follow(form["action"], POST_LOGOUT_REDIRECT_URI, method=form["method"], data=form["fields"])
    assert done, f"logout did not return to post_logout_redirect_uri: {browser.trail}"
    assert done.split("?")[0] == POST_LOGOUT_REDIRECT_URI
    assert parse_qs(urlsplit(done).query)["state"] == [out["state"]]
    # The browser is signed out: prompt=none now answers login_required.
    again = rp.create_authorization_url(redirect_uri=REDIRECT_URI, scope="openid", prompt="none")
    done, _ = browser.follow(again["url"], REDIRECT_URI)
    assert done and parse_qs(urlsplit(done).query).get("error") == ["login_required"], done
