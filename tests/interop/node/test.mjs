// xacthuc interoperability: the node `openid-client` (v6) relying party against a running gateway.
//
// Environment (set by .ci/interop; see tests/interop/README.md):
//   INTEROP_ISSUER                      e.g. http://localhost:8080
//   INTEROP_CLIENT_ID, INTEROP_CLIENT_SECRET   a confidential client (client_secret_basic)
//   INTEROP_REDIRECT_URI                registered redirect URI (never fetched)
//   INTEROP_POST_LOGOUT_REDIRECT_URI    registered post-logout redirect URI (never fetched)
//   INTEROP_USERNAME, INTEROP_PASSWORD  an AS-2 citizen
//   INTEROP_ACR                         expected acr (default urn:xacthuc:loa:as2:1fa)
//   INTEROP_ALG                         the client's ID token algorithm (default PS256)
//
// The steps run in order and share state. A step whose endpoint the discovery document does not
// advertise FAILS with "not advertised": nothing is skipped.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as client from 'openid-client';
import { Browser, parseForm, snippet } from './browser.mjs';

function env(name, fallback) {
  const v = process.env[name] ?? fallback;
  if (v === undefined || v === '') throw new Error(`${name} is not set (see tests/interop/README.md)`);
  return v;
}

const ISSUER = env('INTEROP_ISSUER');
const CLIENT_ID = env('INTEROP_CLIENT_ID');
const CLIENT_SECRET = env('INTEROP_CLIENT_SECRET');
const REDIRECT_URI = env('INTEROP_REDIRECT_URI');
const POST_LOGOUT_REDIRECT_URI = env('INTEROP_POST_LOGOUT_REDIRECT_URI', `${REDIRECT_URI}/logged-out`);
const USERNAME = env('INTEROP_USERNAME');
const PASSWORD = env('INTEROP_PASSWORD');
const ACR = env('INTEROP_ACR', 'urn:xacthuc:loa:as2:1fa');
const ALG = env('INTEROP_ALG', 'PS256');

const s = {}; // state shared by the steps

/** The message of an error and of its cause (oauth4webapi puts the detail in the cause). */
function why(e) {
  return `${e?.message ?? e} ${e?.cause?.message ?? ''} ${e?.code ?? ''}`;
}

/**
 * Awaits a call that must fail with the OAuth `error` (from the JSON body or a WWW-Authenticate
 * challenge) and, when given, the HTTP status.
 */
async function rejectsWith(promise, error, status, what = '') {
  let e;
  try {
    await promise;
  } catch (x) {
    e = x;
  }
  assert.ok(e, `${what} succeeded; expected ${error}`);
  let code = e.error;
  if (code === undefined && Array.isArray(e.cause)) {
    code = e.cause.find((c) => c.parameters?.error)?.parameters.error;
  }
  if (code === undefined && e.response) {
    try {
      code = (await e.response.clone().json()).error;
    } catch {}
  }
  assert.equal(code, error, `${what}: expected ${error}, got ${why(e)}`);
  if (status !== undefined) assert.equal(e.status, status, `${what}: HTTP status`);
}

/** Fails the current step when an earlier one did not produce what it needs. */
function need(key, step) {
  if (s[key] === undefined) assert.fail(`needs ${key} from the "${step}" step, which did not complete`);
  return s[key];
}

/** Fails with "not advertised" when discovery lacks an endpoint or value. */
function advertised(field, value) {
  const md = need('metadata', 'discovery');
  const v = md[field];
  if (value === undefined) {
    if (!v) assert.fail(`${field} is not advertised in the discovery document`);
    return v;
  }
  if (!Array.isArray(v) || !v.includes(value)) {
    assert.fail(`${field} does not advertise ${JSON.stringify(value)} (has ${JSON.stringify(v)})`);
  }
  return v;
}

async function newConfig(secret = CLIENT_SECRET) {
  return client.discovery(
    new URL(ISSUER),
    CLIENT_ID,
    { client_secret: secret, id_token_signed_response_alg: ALG },
    client.ClientSecretBasic(secret),
    { execute: [client.allowInsecureRequests, client.enableNonRepudiationChecks] },
  );
}

function scopes() {
  const md = s.metadata;
  const wanted = ['openid', 'profile'];
  // Refresh tokens come with offline_access (OIDC Core §11) once the gateway supports it.
  if ((md.scopes_supported ?? []).includes('offline_access')) wanted.push('offline_access');
  return wanted.join(' ');
}

/** A fresh authorization: new browser unless one is given; returns the callback URL and checks. */
async function authorize(config, { browser = new Browser(), extra = {} } = {}) {
  const codeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const params = {
    redirect_uri: REDIRECT_URI,
    scope: scopes(),
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    acr_values: ACR,
    prompt: 'consent',
    ...extra,
  };
  const url = client.buildAuthorizationUrl(config, params);
  const callback = await browser.authorize(url, REDIRECT_URI, USERNAME, PASSWORD);
  return { callback, codeVerifier, state, nonce, browser };
}

test('discovery', async () => {
  s.config = await newConfig();
  const md = s.config.serverMetadata();
  s.metadata = md;
  assert.equal(md.issuer, ISSUER.replace(/\/$/, ''));
  for (const f of ['authorization_endpoint', 'token_endpoint', 'userinfo_endpoint', 'jwks_uri']) {
    assert.ok(md[f], `${f} missing`);
  }
  assert.ok(md.code_challenge_methods_supported?.includes('S256'), 'S256 PKCE not advertised');
  assert.ok(md.id_token_signing_alg_values_supported?.includes(ALG), `${ALG} not advertised`);
});

test('authorization code + PKCE (sign-in form posted with a cookie jar)', async () => {
  const config = need('config', 'discovery');
  const a = await authorize(config);
  assert.equal(a.callback.searchParams.get('state'), a.state);
  assert.equal(a.callback.searchParams.get('iss'), s.metadata.issuer, 'RFC 9207 iss missing');
  assert.ok(a.callback.searchParams.get('code'), `no code in ${a.callback}`);
  s.auth = a;
  s.browser = a.browser;
});

test('token exchange and ID token validation (signature checked: enableNonRepudiationChecks)', async () => {
  const config = need('config', 'discovery');
  const a = need('auth', 'authorization code + PKCE');
  const tokens = await client.authorizationCodeGrant(config, a.callback, {
    pkceCodeVerifier: a.codeVerifier,
    expectedState: a.state,
    expectedNonce: a.nonce,
    idTokenExpected: true,
  });
  assert.equal(tokens.token_type.toLowerCase(), 'bearer');
  assert.ok(tokens.access_token);
  const claims = tokens.claims();
  const header = JSON.parse(Buffer.from(tokens.id_token.split('.')[0], 'base64url').toString());
  assert.equal(header.alg, ALG, 'ID token signed with the wrong algorithm');
  assert.ok(header.kid, 'ID token header has no kid');
  assert.equal(claims.iss, s.metadata.issuer);
  assert.deepEqual([claims.aud].flat(), [CLIENT_ID]);
  assert.equal(claims.nonce, a.nonce);
  assert.equal(claims.acr, ACR);
  assert.ok(Array.isArray(claims.amr) && claims.amr.includes('pwd'), `amr ${JSON.stringify(claims.amr)}`);
  assert.equal(typeof claims.auth_time, 'number');
  assert.ok(claims.sid, 'no sid in the ID token');
  assert.ok(claims.at_hash, 'no at_hash in the ID token');
  s.tokens = tokens;
  s.claims = claims;
});

test('userinfo', async () => {
  const config = need('config', 'discovery');
  const tokens = need('tokens', 'token exchange');
  const info = await client.fetchUserInfo(config, tokens.access_token, s.claims.sub);
  assert.equal(info.sub, s.claims.sub);
  assert.equal(info.as_level, 2);
  assert.equal(info.preferred_username, USERNAME);
  assert.ok(info.name, 'profile scope released no name');
});

test('negative: a tampered ID token signature is rejected', async () => {
  const config = await newConfig();
  const a = await authorize(config);
  let tampered = false;
  config[client.customFetch] = async (url, options) => {
    const res = await fetch(url, options);
    if (new URL(url).href !== s.metadata.token_endpoint || !res.ok) return res;
    const body = await res.json();
    const [h, p, sig] = body.id_token.split('.');
    const raw = Buffer.from(sig, 'base64url');
    raw[raw.length >> 1] ^= 0x01;
    body.id_token = [h, p, raw.toString('base64url')].join('.');
    tampered = true;
    return new Response(JSON.stringify(body), { status: res.status, headers: res.headers });
  };
  await assert.rejects(
    client.authorizationCodeGrant(config, a.callback, {
      pkceCodeVerifier: a.codeVerifier,
      expectedState: a.state,
      expectedNonce: a.nonce,
      idTokenExpected: true,
    }),
    (e) => /signature verification failed/i.test(why(e)),
  );
  assert.ok(tampered, 'the token response was not intercepted');
});

test('negative: wrong state, wrong client secret, code replay, wrong PKCE verifier', async () => {
  const config = need('config', 'discovery');
  // A callback whose state is not ours never reaches the token endpoint.
  const a = await authorize(config);
  await assert.rejects(
    client.authorizationCodeGrant(config, a.callback, {
      pkceCodeVerifier: a.codeVerifier,
      expectedState: client.randomState(),
      expectedNonce: a.nonce,
    }),
    (e) => /"state"/.test(why(e)),
  );
  // The same code with a wrong secret: invalid_client, 401.
  const wrong = await newConfig('x'.repeat(43));
  await rejectsWith(
    client.authorizationCodeGrant(wrong, a.callback, {
      pkceCodeVerifier: a.codeVerifier,
      expectedState: a.state,
      expectedNonce: a.nonce,
    }),
    'invalid_client', 401,
  );
  // A wrong PKCE verifier: invalid_grant.
  const b = await authorize(config);
  await rejectsWith(
    client.authorizationCodeGrant(config, b.callback, {
      pkceCodeVerifier: client.randomPKCECodeVerifier(),
      expectedState: b.state,
      expectedNonce: b.nonce,
    }),
    'invalid_grant', 400,
  );
  // The code was consumed by that attempt or is now spent: replay is invalid_grant.
  await rejectsWith(
    client.authorizationCodeGrant(config, b.callback, {
      pkceCodeVerifier: b.codeVerifier,
      expectedState: b.state,
      expectedNonce: b.nonce,
    }),
    'invalid_grant', 400,
  );
});

test('pushed authorization request (RFC 9126) with buildAuthorizationUrlWithPAR', async () => {
  const config = need('config', 'discovery');
  advertised('pushed_authorization_request_endpoint');
  const codeVerifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const url = await client.buildAuthorizationUrlWithPAR(config, {
    redirect_uri: REDIRECT_URI,
    scope: 'openid',
    code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    acr_values: ACR,
  });
  assert.ok(url.searchParams.get('request_uri')?.startsWith('urn:ietf:params:oauth:request_uri:'), `${url}`);
  assert.deepEqual([...url.searchParams.keys()].sort(), ['client_id', 'request_uri']);
  const browser = new Browser();
  const callback = await browser.authorize(url, REDIRECT_URI, USERNAME, PASSWORD);
  const tokens = await client.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: codeVerifier,
    expectedState: state,
    expectedNonce: nonce,
    idTokenExpected: true,
  });
  assert.equal(tokens.claims().acr, ACR);
  // A request_uri is single-use: the same URL again yields no code.
  const again = await browser.follow(url, REDIRECT_URI);
  assert.ok(!again.redirect?.searchParams.get('code'), `a used request_uri gave a code again: ${again.redirect}`);
});

test('refresh (rotation; auth_time, acr, amr kept)', async () => {
  const config = need('config', 'discovery');
  advertised('grant_types_supported', 'refresh_token');
  const tokens = need('tokens', 'token exchange');
  assert.ok(
    tokens.refresh_token,
    `no refresh_token in the token response (scope asked: "${scopes()}", granted: "${tokens.scope}")`,
  );
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
  assert.ok(refreshed.access_token);
  assert.notEqual(refreshed.access_token, tokens.access_token);
  assert.ok(refreshed.refresh_token, 'no rotated refresh_token');
  assert.notEqual(refreshed.refresh_token, tokens.refresh_token, 'refresh token was not rotated');
  if (refreshed.id_token) {
    const c = refreshed.claims();
    assert.equal(c.sub, s.claims.sub);
    assert.equal(c.auth_time, s.claims.auth_time);
    assert.equal(c.acr, s.claims.acr);
    assert.deepEqual(c.amr, s.claims.amr);
  }
  s.oldRefresh = tokens.refresh_token;
  s.refreshed = refreshed;
  // The new access token works.
  const info = await client.fetchUserInfo(config, refreshed.access_token, s.claims.sub);
  assert.equal(info.sub, s.claims.sub);
});

test('introspection (RFC 7662)', async () => {
  const config = need('config', 'discovery');
  advertised('introspection_endpoint');
  const tokens = s.refreshed ?? need('tokens', 'token exchange');
  const r = await client.tokenIntrospection(config, tokens.access_token);
  assert.equal(r.active, true, `active access token reported ${JSON.stringify(r)}`);
  assert.equal(r.sub, s.claims.sub);
  assert.equal(r.client_id, CLIENT_ID);
  assert.ok(typeof r.scope === 'string' && r.scope.split(' ').includes('openid'), `scope ${r.scope}`);
  assert.equal(typeof r.exp, 'number');
  assert.equal(r.acr, ACR);
  assert.equal(r.auth_time, s.claims.auth_time);
  // An unknown token is simply inactive.
  const unknown = await client.tokenIntrospection(config, 'not-a-token-' + client.randomState());
  assert.deepEqual(unknown, { active: false });
});

test('revocation (RFC 7009): the access token stops working', async () => {
  const config = need('config', 'discovery');
  advertised('revocation_endpoint');
  const tokens = s.refreshed ?? need('tokens', 'token exchange');
  await client.tokenRevocation(config, tokens.access_token, { token_type_hint: 'access_token' });
  await rejectsWith(client.fetchUserInfo(config, tokens.access_token, s.claims.sub), 'invalid_token', 401);
  if (s.metadata.introspection_endpoint) {
    const r = await client.tokenIntrospection(config, tokens.access_token);
    assert.equal(r.active, false, 'introspection says a revoked token is active');
  }
  // Revoking an unknown token is not an error (RFC 7009 §2.2).
  await client.tokenRevocation(config, 'not-a-token-' + client.randomState());
  if (tokens.refresh_token) {
    await client.tokenRevocation(config, tokens.refresh_token, { token_type_hint: 'refresh_token' });
    await rejectsWith(client.refreshTokenGrant(config, tokens.refresh_token), 'invalid_grant');
  }
});

test('negative: reusing a rotated refresh token is refused and kills the grant', async () => {
  const config = need('config', 'discovery');
  advertised('grant_types_supported', 'refresh_token');
  const a = await authorize(config);
  const t = await client.authorizationCodeGrant(config, a.callback, {
    pkceCodeVerifier: a.codeVerifier,
    expectedState: a.state,
    expectedNonce: a.nonce,
  });
  assert.ok(t.refresh_token, 'no refresh_token issued');
  const r1 = await client.refreshTokenGrant(config, t.refresh_token);
  await rejectsWith(client.refreshTokenGrant(config, t.refresh_token), 'invalid_grant');
  // The whole grant is revoked: the rotated refresh token and its access token die too.
  await rejectsWith(client.refreshTokenGrant(config, r1.refresh_token), 'invalid_grant');
  await rejectsWith(client.fetchUserInfo(config, r1.access_token, client.skipSubjectCheck), 'invalid_token', 401);
});

test('RP-initiated logout (end_session_endpoint) ends the gateway session', async () => {
  const config = need('config', 'discovery');
  advertised('end_session_endpoint');
  const tokens = need('tokens', 'token exchange');
  const browser = need('browser', 'authorization code + PKCE');
  const state = client.randomState();
  const url = client.buildEndSessionUrl(config, {
    id_token_hint: tokens.id_token,
    post_logout_redirect_uri: POST_LOGOUT_REDIRECT_URI,
    state,
  });
  let step = await browser.follow(url, POST_LOGOUT_REDIRECT_URI);
  if (step.page) {
    // A confirmation page is allowed (RP-Initiated Logout §2): submit its form.
    const form = parseForm(step.page.text, step.page.url, /logout|end/i);
    assert.ok(form, `logout showed ${step.page.status} without a logout form: ${snippet(step.page.text)}`);
    step = await browser.follow(form.action, POST_LOGOUT_REDIRECT_URI, { method: form.method, form: form.fields });
  }
  assert.ok(step.redirect, `logout did not return to post_logout_redirect_uri: ${browser.trail.join(', ')}`);
  assert.equal(step.redirect.origin + step.redirect.pathname, POST_LOGOUT_REDIRECT_URI);
  assert.equal(step.redirect.searchParams.get('state'), state);
  // The same browser is signed out: prompt=none now answers login_required.
  const again = client.buildAuthorizationUrl(config, {
    redirect_uri: REDIRECT_URI,
    scope: 'openid',
    code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()),
    code_challenge_method: 'S256',
    state: 'after-logout',
    nonce: client.randomNonce(),
    prompt: 'none',
  });
  const after = await browser.follow(again, REDIRECT_URI);
  assert.ok(after.redirect, `prompt=none after logout did not redirect: ${browser.trail.join(', ')}`);
  assert.equal(after.redirect.searchParams.get('error'), 'login_required');
});

test('negative: logout with an unregistered post_logout_redirect_uri does not redirect there', async () => {
  const config = need('config', 'discovery');
  advertised('end_session_endpoint');
  const tokens = need('tokens', 'token exchange');
  const evil = 'https://evil.example/logged-out';
  const url = client.buildEndSessionUrl(config, {
    id_token_hint: tokens.id_token,
    post_logout_redirect_uri: evil,
  });
  const step = await new Browser().follow(url, evil);
  assert.ok(!step.redirect, `redirected to an unregistered post_logout_redirect_uri: ${step.redirect}`);
});
