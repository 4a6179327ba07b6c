-- xacthuc schema, PostgreSQL dialect. Times are unix seconds (BIGINT); ids are native UUIDs.
-- Keep in step with migrations/sqlite/0001_init.sql (same tables, same columns).

CREATE TABLE accounts (
    id                 UUID PRIMARY KEY,
    username           TEXT NOT NULL UNIQUE,
    password_hash      TEXT,
    as_level           BIGINT NOT NULL CHECK (as_level BETWEEN 1 AND 4),
    email              TEXT,
    phone              TEXT,
    -- When the current email / phone was proven with a one-time code (NULL: not verified).
    email_verified_at  BIGINT,
    phone_verified_at  BIGINT,
    full_name          TEXT,
    birth_date         TEXT,
    sex                TEXT,
    national_id_enc    TEXT,
    national_id_hash   TEXT UNIQUE,
    national_id_masked TEXT,
    status             TEXT NOT NULL DEFAULT 'active',
    -- Ask for a second factor at every sign-in, whatever the client asked for.
    always_second_factor BOOLEAN NOT NULL DEFAULT FALSE,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);

-- TOTP authenticators (RFC 6238). An enrolment counts once confirmed with a first code;
-- unconfirmed ones are purged after a day. last_step is the last time step accepted (replay guard).
CREATE TABLE totp_credentials (
    id           UUID PRIMARY KEY,
    account_id   UUID NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    -- The shared secret, sealed with the data key.
    secret_enc   TEXT NOT NULL,
    last_step    BIGINT,
    created_at   BIGINT NOT NULL,
    confirmed_at BIGINT,
    last_used_at BIGINT
);
CREATE INDEX totp_credentials_account ON totp_credentials(account_id);

-- One-time codes sent by email or SMS (sign-in, proving a contact), stored hashed. Kept two
-- days past expiry so the per-day sending cap still sees them.
CREATE TABLE otp_challenges (
    id          UUID PRIMARY KEY,
    account_id  UUID NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    -- login | verify_email | verify_phone
    purpose     TEXT NOT NULL,
    -- email | sms
    channel     TEXT NOT NULL,
    destination TEXT NOT NULL,
    code_hash   TEXT NOT NULL,
    attempts    BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    consumed_at BIGINT
);
CREATE INDEX otp_challenges_account ON otp_challenges(account_id, purpose, created_at);

-- Single-use recovery codes, stored hashed; a new set replaces the old one.
CREATE TABLE recovery_codes (
    account_id UUID NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    code_hash  TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    used_at    BIGINT,
    PRIMARY KEY (account_id, code_hash)
);

CREATE TABLE clients (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL,
    secret_hash   TEXT,
    redirect_uris TEXT NOT NULL,
    id_token_alg  TEXT NOT NULL,
    -- Per-client settings (JSON): grant types, scopes, lifetimes, token format, logout URIs,
    -- the JWKS for private_key_jwt, PAR. Our own data, never queried inside.
    settings      TEXT NOT NULL DEFAULT '{}',
    created_at    BIGINT NOT NULL
);

CREATE TABLE signing_keys (
    kid             TEXT PRIMARY KEY,
    alg             TEXT NOT NULL,
    private_key_enc TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    -- Published from created_at; signs from activates_at (rotation publishes first).
    activates_at    BIGINT NOT NULL,
    retired_at      BIGINT
);

CREATE TABLE sessions (
    id         UUID PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    account_id UUID NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    factors    TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_account ON sessions(account_id);
CREATE INDEX sessions_expires ON sessions(expires_at);

CREATE TABLE pending_authorizations (
    id_hash      TEXT PRIMARY KEY,
    request_json TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX pending_authorizations_expires ON pending_authorizations(expires_at);

-- A grant: client × (account, session) for the code flow, client alone for client_credentials.
CREATE TABLE grants (
    id         UUID PRIMARY KEY,
    client_id  TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    account_id UUID REFERENCES accounts(id) ON DELETE CASCADE,
    session_id UUID,
    scope      TEXT NOT NULL,
    -- What the authentication proved (JSON: acr, amr, auth_time, as_level, mechanism).
    auth       TEXT,
    created_at BIGINT NOT NULL,
    -- Absolute end of the grant (refresh tokens stop here whatever their sliding expiry).
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX grants_account ON grants(account_id);
CREATE INDEX grants_session ON grants(session_id);

CREATE TABLE auth_codes (
    code_hash  TEXT PRIMARY KEY,
    grant_id   UUID NOT NULL REFERENCES grants(id) ON DELETE CASCADE,
    data       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX auth_codes_grant ON auth_codes(grant_id);

CREATE TABLE access_tokens (
    token_hash TEXT PRIMARY KEY,
    grant_id   UUID NOT NULL REFERENCES grants(id) ON DELETE CASCADE,
    scope      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX access_tokens_grant ON access_tokens(grant_id);

-- Refresh tokens rotate on every use; a used one presented again revokes its grant.
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    grant_id   UUID NOT NULL REFERENCES grants(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX refresh_tokens_grant ON refresh_tokens(grant_id);

-- private_key_jwt assertions seen (RFC 7523 §3: jti single use), kept until they expire.
CREATE TABLE client_assertions (
    client_id  TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);

-- Pushed authorization requests (RFC 9126), single use.
CREATE TABLE pushed_requests (
    uri_hash     TEXT PRIMARY KEY,
    client_id    TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    request_json TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);

-- Back-channel logout tokens waiting to be delivered (retried with back-off).
CREATE TABLE logout_deliveries (
    id              UUID PRIMARY KEY,
    client_id       TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    uri             TEXT NOT NULL,
    token           TEXT NOT NULL,
    attempts        BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    delivered_at    BIGINT,
    last_error      TEXT
);
CREATE INDEX logout_deliveries_due ON logout_deliveries(delivered_at, next_attempt_at);

-- Hash-chained audit log. audit_head is a single row updated first in every audited
-- transaction: that takes the write lock at once and serialises appends to the chain.
CREATE TABLE audit_head (
    id   SMALLINT PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE audit_events (
    seq        BIGINT PRIMARY KEY,
    at         BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    actor      TEXT NOT NULL,
    account_id UUID,
    client_id  TEXT,
    details    JSONB NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
CREATE INDEX audit_events_account ON audit_events(account_id);

-- Failed attempts per account and factor, counted in the database so that several instances
-- agree; a factor locks for a while after too many failures in a window.
CREATE TABLE failed_attempts (
    account_id   UUID NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    factor       TEXT NOT NULL,
    failures     BIGINT NOT NULL,
    window_start BIGINT NOT NULL,
    locked_until BIGINT,
    PRIMARY KEY (account_id, factor)
);

-- Development outbox: codes kept instead of sent (development mode only), readable at
-- /dev/outbox by any instance.
CREATE TABLE dev_outbox (
    id         UUID PRIMARY KEY,
    channel    TEXT NOT NULL,
    recipient  TEXT NOT NULL,
    subject    TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX dev_outbox_created ON dev_outbox(created_at);
