// The citizen's browser without a browser: fetch with a cookie jar, redirects followed by hand,
// and the gateway's sign-in form read from its HTML and posted back.

/** Decodes the HTML entities the gateway's templates emit in attribute values. */
export function unescapeHtml(s) {
  return s
    .replace(/&#x([0-9a-f]+);/gi, (_, h) => String.fromCodePoint(parseInt(h, 16)))
    .replace(/&#([0-9]+);/g, (_, d) => String.fromCodePoint(parseInt(d, 10)))
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

/**
 * The first <form> of a page whose action matches `actionPattern` (any form without one): its
 * method, action and every named input with its value.
 */
export function parseForm(html, baseUrl, actionPattern) {
  const attr = (tag, name) => {
    const m = new RegExp(`\\b${name}\\s*=\\s*"([^"]*)"`, 'i').exec(tag);
    return m ? unescapeHtml(m[1]) : undefined;
  };
  const form = [...html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)].find(
    (f) => !actionPattern || actionPattern.test(attr(f[1], 'action') ?? ''),
  );
  if (!form) return null;
  const fields = {};
  for (const m of form[2].matchAll(/<input\b[^>]*>/gi)) {
    const name = attr(m[0], 'name');
    if (name !== undefined) fields[name] = attr(m[0], 'value') ?? '';
  }
  // The first named submit button counts as pressed (a confirmation page's "yes").
  const button = /<button\b[^>]*>/i.exec(form[2]);
  if (button) {
    const name = attr(button[0], 'name');
    if (name !== undefined && fields[name] === undefined) fields[name] = attr(button[0], 'value') ?? '';
  }
  return {
    method: (attr(form[1], 'method') ?? 'get').toUpperCase(),
    action: new URL(attr(form[1], 'action') ?? baseUrl, baseUrl),
    fields,
  };
}

export class Browser {
  constructor() {
    /** host → name → value; enough for one gateway on loopback. */
    this.jar = new Map();
    this.trail = [];
  }

  cookieHeader(url) {
    const cookies = this.jar.get(url.host);
    if (!cookies || cookies.size === 0) return undefined;
    return [...cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }

  store(url, res) {
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';');
      const eq = pair.indexOf('=');
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      if (!this.jar.has(url.host)) this.jar.set(url.host, new Map());
      const expired = attrs.some((a) => /^\s*max-age\s*=\s*0\s*$/i.test(a)) || value === '';
      if (expired) this.jar.get(url.host).delete(name);
      else this.jar.get(url.host).set(name, value);
    }
  }

  /** One request, no redirect followed. */
  async request(url, { method = 'GET', form } = {}) {
    url = new URL(url);
    const headers = { 'accept-language': 'en' };
    const cookie = this.cookieHeader(url);
    if (cookie) headers.cookie = cookie;
    let body;
    if (form) {
      body = new URLSearchParams(form).toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
    }
    const res = await fetch(url, { method, headers, body, redirect: 'manual' });
    this.store(url, res);
    const text = await res.text();
    this.trail.push(`${method} ${url.pathname} → ${res.status}`);
    const location = res.headers.get('location');
    return { status: res.status, location: location ? new URL(location, url) : null, text, url };
  }

  /**
   * GETs `url` and follows redirects until one leaves for `stopPrefix` (the client's redirect
   * URI, never fetched) or a page is shown. Returns the final URL or the page.
   */
  async follow(url, stopPrefix, { method = 'GET', form } = {}) {
    let next = await this.request(url, { method, form });
    for (let hops = 0; hops < 20; hops++) {
      if (next.status < 300 || next.status >= 400) return { page: next };
      if (!next.location) throw new Error(`redirect without Location from ${next.url}`);
      if (stopPrefix && next.location.href.startsWith(stopPrefix)) return { redirect: next.location };
      next = await this.request(next.location);
    }
    throw new Error(`too many redirects: ${this.trail.join(', ')}`);
  }

  /**
   * Drives an authorization request to the client's redirect URI, signing in on the gateway's
   * form when it is shown. Returns the URL the gateway sent the browser to.
   */
  async authorize(authorizationUrl, redirectUri, username, password) {
    let step = await this.follow(authorizationUrl, redirectUri);
    if (step.redirect) return step.redirect;
    const page = step.page;
    if (page.status !== 200 || !page.url.pathname.startsWith('/login')) {
      throw new Error(
        `expected the sign-in page, got ${page.status} at ${page.url.pathname}: ${snippet(page.text)}`,
      );
    }
    const form = parseForm(page.text, page.url, /\/login/);
    if (!form || form.fields.csrf === undefined || form.fields.r === undefined) {
      throw new Error(`the sign-in page has no form with csrf and r: ${snippet(page.text)}`);
    }
    step = await this.follow(form.action, redirectUri, {
      method: 'POST',
      form: { csrf: form.fields.csrf, r: form.fields.r, username, password },
    });
    if (step.redirect) return step.redirect;
    throw new Error(
      `sign-in did not return to the client: ${step.page.status} at ${step.page.url.pathname} ` +
        `(${this.trail.join(', ')}): ${snippet(step.page.text)}`,
    );
  }
}

export function snippet(html) {
  return html
    .replace(/<style[\s\S]*?<\/style>/gi, '')
    .replace(/<[^>]+>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 300);
}
