// Passkeys in a real browser: headless Chromium (Debian's /usr/bin/chromium) driven by
// playwright-core, with Chromium's virtual WebAuthn authenticator (CDP WebAuthn domain) standing
// in for a phone's fingerprint reader. Starts the real gateway binary ($XACTHUC_BIN) on
// http://localhost:<free port> (Chromium refuses an IP address as RP ID) with a fresh data
// directory, then:
//   1. a citizen registers (AS-2), adds a passkey on the account page, signs out;
//   2. signs in at the demo portal with the passkey alone: the portal shows …:mfa, amr hwk,user;
//   3. with the authenticator no longer verifying the user, the same attempt does not sign in,
//      and a password sign-in does not reach mfa;
//   4. a password followed by the passkey as second step reaches mfa.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const BIN = process.env.XACTHUC_BIN;
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const PASSWORD = 'hoa sen nở giữa đầm 2024';

let gateway;
let gatewayLog = '';
let base;
let dataDir;
let profileDir;
let context;

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

async function waitHealthy(url, ms) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (gateway.exitCode !== null) break;
    try {
      const res = await fetch(`${url}/healthz`);
      if (res.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the gateway did not start:\n${gatewayLog.slice(-3000)}`);
}

before(async () => {
  assert.ok(BIN, 'XACTHUC_BIN must name the gateway binary');
  const port = await freePort();
  base = `http://localhost:${port}`;
  dataDir = mkdtempSync(join(tmpdir(), 'xacthuc-browser-'));
  profileDir = mkdtempSync(join(tmpdir(), 'xacthuc-chromium-'));
  // Only this test's settings: every XACTHUC_* variable is configuration to the gateway.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('XACTHUC_')));
  Object.assign(env, {
    XACTHUC_PASSWORD__MEMORY_KIB: '1024',
    XACTHUC_PASSWORD__ITERATIONS: '1',
    RUST_LOG: 'info,sqlx=warn',
    NO_COLOR: '1',
  });
  gateway = spawn(BIN, ['--data-dir', dataDir, '--issuer', base, '--listen', `127.0.0.1:${port}`, 'serve'], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  gateway.stdout.on('data', (d) => (gatewayLog += d));
  gateway.stderr.on('data', (d) => (gatewayLog += d));
  await waitHealthy(base, 30_000);
  context = await chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    locale: 'vi-VN',
  });
});

after(async () => {
  await context?.close();
  if (gateway && gateway.exitCode === null) {
    gateway.kill('SIGTERM');
    await new Promise((r) => gateway.once('exit', r));
  }
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  if (profileDir) rmSync(profileDir, { recursive: true, force: true });
});

/** A page with Chromium's virtual platform authenticator (fingerprint reader) attached. */
async function pageWithAuthenticator(isUserVerified) {
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('WebAuthn.enable');
  const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
    options: {
      protocol: 'ctap2',
      transport: 'internal',
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified,
      automaticPresenceSimulation: true,
    },
  });
  return { page, cdp, authenticatorId };
}

async function register(page, username, nationalId) {
  await page.goto(`${base}/register`);
  await page.check('#level-as2');
  await page.fill('#username', username);
  await page.fill('#password', PASSWORD);
  await page.fill('#password_confirm', PASSWORD);
  await page.fill('#national_id', nationalId);
  await page.fill('#full_name', 'Nguyễn Thị Mai');
  await page.fill('#birth_date', '1990-03-08');
  await page.check('#sex-female');
  await Promise.all([page.waitForURL(/\/account/), page.click('form[action="/register"] button[type="submit"]')]);
}

async function signOut(page) {
  await Promise.all([page.waitForLoadState('load'), page.click('header form[action="/logout"] button')]);
}

/** From the demo portal's first button to the gateway's sign-in page. */
async function startAtDemo(page) {
  await page.goto(`${base}/demo`);
  await Promise.all([page.waitForURL(/\/login\?r=/), page.click('ul.buttons a.button.primary >> nth=0')]);
}

test('a citizen enrols a passkey and signs in with it alone: the demo portal shows mfa', async () => {
  const { page, cdp, authenticatorId } = await pageWithAuthenticator(true);
  await register(page, 'mai.passkey', '001190000123');

  // Enrol from the account page.
  await page.goto(`${base}/account`);
  await page.fill('#passkey-name', 'Điện thoại của Mai');
  const add = page.getByRole('button', { name: 'Thêm khóa truy cập' });
  await add.waitFor();
  await add.click();
  await page.locator('ul.factors li', { hasText: 'Điện thoại của Mai' }).waitFor({ timeout: 15_000 });
  const list = await page.textContent('main');
  assert.match(list, /Điện thoại của Mai/);
  assert.match(list, /có xác minh người dùng/);
  const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
  assert.equal(credentials.length, 1);
  assert.equal(credentials[0].isResidentCredential, true, 'a discoverable credential (resident key)');

  await signOut(page);

  // Passwordless: no user name, no password.
  await startAtDemo(page);
  const button = page.getByRole('button', { name: 'Đăng nhập bằng khóa truy cập' });
  await button.waitFor();
  await Promise.all([page.waitForURL(/\/demo/, { timeout: 15_000 }), button.click()]);
  await page.waitForSelector('#acr');
  const acr = (await page.textContent('#acr')).trim();
  const amr = (await page.textContent('#amr')).trim();
  console.log(`passwordless passkey sign-in: acr ${acr}, amr ${amr}`);
  assert.match(acr, /^urn:xacthuc:loa:as[1-4]:mfa$/, `acr ${acr}`);
  assert.match(amr, /hwk/);
  assert.match(amr, /user/);
  assert.doesNotMatch(amr, /fpt|face/, 'never claims which biometric');
  await page.close();
});

test('without user verification the same attempt does not reach mfa', async () => {
  const { page, cdp, authenticatorId } = await pageWithAuthenticator(true);
  await register(page, 'lan.nouv', '079190000456');
  await page.goto(`${base}/account`);
  const add = page.getByRole('button', { name: 'Thêm khóa truy cập' });
  await add.waitFor();
  await add.click();
  await page.locator('ul.factors li', { hasText: 'Khóa truy cập' }).waitFor({ timeout: 15_000 });
  await signOut(page);

  // The fingerprint no longer matches: the authenticator cannot verify the user.
  await cdp.send('WebAuthn.setUserVerified', { authenticatorId, isUserVerified: false });
  await startAtDemo(page);
  const button = page.getByRole('button', { name: 'Đăng nhập bằng khóa truy cập' });
  await button.waitFor();
  await button.click();
  const status = page.locator('[data-passkey-status]');
  await status.waitFor({ state: 'visible' });
  await page.waitForFunction(
    () => document.querySelector('[data-passkey-status]')?.className === 'alert',
    null,
    { timeout: 15_000 },
  );
  console.log(`passkey without user verification: ${await status.textContent()}`);
  assert.match(page.url(), /\/login\?r=/, 'still at the sign-in page');
  const res = await page.request.get(`${base}/account`, { maxRedirects: 0 });
  assert.equal(res.status(), 303, 'not signed in');

  // The password alone still works, and the portal sees no mfa.
  await page.fill('#username', 'lan.nouv');
  await page.fill('#password', PASSWORD);
  await Promise.all([page.waitForLoadState('load'), page.click('form[action="/login"] button[type="submit"]')]);
  if (page.url().includes('/demo')) {
    const acr = (await page.textContent('#acr')).trim();
    console.log(`password after a refused passkey: acr ${acr}`);
    assert.doesNotMatch(acr, /:mfa$/, `acr ${acr}`);
  } else {
    // The portal wants more than the password: a second step is asked, mfa is not given.
    console.log(`password after a refused passkey: asked for more at ${page.url()}`);
    assert.doesNotMatch(page.url(), /\/demo/);
  }
  await page.close();
});

test('a passkey as the second step after the password reaches mfa', async () => {
  const { page } = await pageWithAuthenticator(true);
  await register(page, 'hoa.second', '048190000789');
  await page.goto(`${base}/account`);
  const add = page.getByRole('button', { name: 'Thêm khóa truy cập' });
  await add.waitFor();
  await add.click();
  await page.locator('ul.factors li', { hasText: 'Khóa truy cập' }).waitFor({ timeout: 15_000 });
  await signOut(page);

  // The portal asks for mfa; the citizen types the password, then confirms with the passkey.
  const acrValues = encodeURIComponent('urn:xacthuc:loa:as2:mfa');
  await Promise.all([page.waitForURL(/\/login\?r=/), page.goto(`${base}/demo/login?acr=${acrValues}`)]);
  await page.fill('#username', 'hoa.second');
  await page.fill('#password', PASSWORD);
  await Promise.all([page.waitForURL(/\/login\/second/), page.click('form[action="/login"] button[type="submit"]')]);
  const confirm = page.getByRole('button', { name: 'Xác nhận bằng khóa truy cập' });
  await confirm.waitFor();
  await Promise.all([page.waitForURL(/\/demo/, { timeout: 15_000 }), confirm.click()]);
  await page.waitForSelector('#acr');
  const acr = (await page.textContent('#acr')).trim();
  const amr = (await page.textContent('#amr')).trim();
  console.log(`password then passkey: acr ${acr}, amr ${amr}`);
  assert.equal(acr, 'urn:xacthuc:loa:as2:mfa');
  assert.match(amr, /pwd/);
  assert.match(amr, /hwk/);
  assert.match(amr, /user/);
  await page.close();
});
