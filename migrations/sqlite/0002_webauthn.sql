-- Passkeys (WebAuthn). Keep in step with migrations/postgres/0002_webauthn.sql.

-- One registered WebAuthn credential. credential_id is unique across all accounts (W3C WebAuthn
-- Level 3 §7.1 step 25: a credential id registered to another user must be refused).
CREATE TABLE webauthn_credentials (
    id              BLOB PRIMARY KEY,
    account_id      BLOB NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    -- base64url (no padding) of the raw credential id.
    credential_id   TEXT NOT NULL UNIQUE,
    -- The user handle the authenticator keeps (discoverable sign-in returns it).
    user_handle     BLOB NOT NULL,
    name            TEXT NOT NULL,
    -- The webauthn-rs credential (public key, counter, flags, registration policy) as JSON.
    credential_json TEXT NOT NULL,
    -- Registered with user verification required: an assertion proves possession and inherence.
    user_verified   BOOLEAN NOT NULL,
    backup_eligible BOOLEAN NOT NULL,
    backed_up       BOOLEAN NOT NULL,
    -- The last signature counter accepted (0: the authenticator keeps none).
    sign_count      INTEGER NOT NULL,
    -- Authenticator model, when attestation was verified against the allow-list.
    aaguid          TEXT,
    created_at      INTEGER NOT NULL,
    last_used_at    INTEGER
);
CREATE INDEX webauthn_credentials_account ON webauthn_credentials(account_id);

-- A registration or authentication ceremony in progress: the webauthn-rs state (challenge,
-- allowed credentials, policy), kept server-side, spent once, short-lived. id_hash is the
-- SHA-256 of the random ceremony id the browser holds.
CREATE TABLE webauthn_ceremonies (
    id_hash    TEXT PRIMARY KEY,
    -- register | authenticate | discover
    kind       TEXT NOT NULL,
    -- The account the ceremony belongs to (NULL for a discoverable, username-less sign-in).
    account_id BLOB REFERENCES accounts(id) ON DELETE CASCADE,
    state_json TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
