// Passkeys (WebAuthn) for xacthuc's pages. Plain JavaScript, no dependencies, served by the
// gateway itself (CSP script-src 'self'). Each page section marked data-passkey="login",
// "second" or "register" gets a button that runs one ceremony:
//   POST /passkey/<mode>/start  -> { ceremony, options }   (the server keeps the challenge)
//   navigator.credentials.create()/get() with options converted from base64url
//   POST /passkey/<mode>/finish -> { redirect }             (or { error, message })
// The page's CSRF token goes in the X-CSRF-Token header. Texts come from data-msg-* attributes
// rendered in the citizen's language.
(function () {
  "use strict";

  function b64urlToBuffer(s) {
    var b64 = s.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) b64 += "=";
    var bin = atob(b64);
    var out = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }

  function bufferToB64url(buf) {
    if (!buf) return null;
    var bytes = new Uint8Array(buf);
    var bin = "";
    for (var i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function creationOptions(o) {
    var pk = o.publicKey;
    pk.challenge = b64urlToBuffer(pk.challenge);
    pk.user.id = b64urlToBuffer(pk.user.id);
    (pk.excludeCredentials || []).forEach(function (c) { c.id = b64urlToBuffer(c.id); });
    return { publicKey: pk };
  }

  function requestOptions(o) {
    var pk = o.publicKey;
    pk.challenge = b64urlToBuffer(pk.challenge);
    (pk.allowCredentials || []).forEach(function (c) { c.id = b64urlToBuffer(c.id); });
    // A button press runs a modal ceremony, never the autofill ("conditional") one.
    return { publicKey: pk };
  }

  function registrationJson(cred) {
    var r = cred.response;
    return {
      id: cred.id,
      rawId: bufferToB64url(cred.rawId),
      type: cred.type,
      response: {
        attestationObject: bufferToB64url(r.attestationObject),
        clientDataJSON: bufferToB64url(r.clientDataJSON),
        transports: typeof r.getTransports === "function" ? r.getTransports() : undefined
      },
      extensions: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {}
    };
  }

  function assertionJson(cred) {
    var r = cred.response;
    return {
      id: cred.id,
      rawId: bufferToB64url(cred.rawId),
      type: cred.type,
      response: {
        authenticatorData: bufferToB64url(r.authenticatorData),
        clientDataJSON: bufferToB64url(r.clientDataJSON),
        signature: bufferToB64url(r.signature),
        userHandle: bufferToB64url(r.userHandle)
      },
      extensions: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {}
    };
  }

  function post(url, csrf, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {})
    }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (data) {
        if (!res.ok) {
          var e = new Error(data.message || res.statusText);
          e.server = true;
          throw e;
        }
        return data;
      });
    });
  }

  function setup(section) {
    var mode = section.getAttribute("data-passkey");
    var csrf = section.getAttribute("data-csrf") || "";
    var pending = section.getAttribute("data-r") || "";
    var button = section.querySelector("[data-passkey-start]");
    var status = section.querySelector("[data-passkey-status]");
    // A security key ("security_key") or a passkey (default) for registrations.
    var kind = section.getAttribute("data-kind") || "passkey";
    var nameInput = section.querySelector("[data-passkey-name]") || document.querySelector("[data-passkey-name]");
    var msg = function (k) { return section.getAttribute("data-msg-" + k) || ""; };
    function say(text, isError) {
      if (!status) return;
      status.textContent = text;
      status.className = isError ? "alert" : "muted";
      status.hidden = !text;
    }
    if (!button) return;
    if (!window.PublicKeyCredential || !navigator.credentials) {
      button.disabled = true;
      say(msg("unsupported"), true);
      return;
    }
    button.hidden = false;
    button.disabled = false;

    function go(done) {
      say(msg("done"), false);
      var to = new URL(done.redirect || "/account", window.location.href);
      if (to.pathname === window.location.pathname && to.search === window.location.search) {
        // Only the fragment differs: assign() would not reload the page.
        window.location.hash = to.hash;
        window.location.reload();
      } else {
        window.location.assign(to.href);
      }
    }

    button.addEventListener("click", function () {
      button.disabled = true;
      say(msg("working"), false);
      // data-base: another pair of endpoints (the staff console enrols for a citizen).
      var base = section.getAttribute("data-base") || "/passkey/" + mode;
      var ceremony;
      post(base + "/start", csrf, mode === "register" ? { kind: kind } : {})
        .then(function (started) {
          ceremony = started.ceremony;
          if (mode === "register") {
            return navigator.credentials.create(creationOptions(started.options)).then(function (c) {
              return post(base + "/finish", csrf, {
                ceremony: ceremony,
                name: nameInput ? nameInput.value : "",
                credential: registrationJson(c)
              });
            });
          }
          return navigator.credentials.get(requestOptions(started.options)).then(function (c) {
            return post(base + "/finish", csrf, { ceremony: ceremony, r: pending, credential: assertionJson(c) });
          });
        })
        .then(go)
        .catch(function (e) {
          button.disabled = false;
          if (e && e.server) {
            say(e.message || msg("failed"), true);
          } else if (e && (e.name === "NotAllowedError" || e.name === "AbortError")) {
            say(msg("cancelled"), true);
          } else {
            say(msg("failed"), true);
          }
        });
    });
  }

  function init() {
    var sections = document.querySelectorAll("[data-passkey]");
    for (var i = 0; i < sections.length; i++) setup(sections[i]);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
