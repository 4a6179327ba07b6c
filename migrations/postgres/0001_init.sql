-- xacthuc schema, PostgreSQL dialect. Times are unix seconds (BIGINT); ids are native UUIDs.
-- Keep in step with migrations/sqlite/0001_init.sql (same tables, same columns).

CREATE TABLE accounts (
    id                 UUID PRIMARY KEY,
    username           TEXT NOT NULL UNIQUE,
    password_hash      TEXT,
    as_level           BIGINT NOT NULL CHECK (as_level BETWEEN 1 AND 4),
    email              TEXT,
    phone              TEXT,
    full_name          TEXT,
    birth_date         TEXT,
    sex                TEXT,
    national_id_enc    TEXT,
    national_id_hash   TEXT UNIQUE,
    national_id_masked TEXT,
    status             TEXT NOT NULL DEFAULT 'active',
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);

CREATE TABLE clients (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL,
    secret_hash   TEXT,
    redirect_uris TEXT NOT NULL,
    id_token_alg  TEXT NOT NULL,
    created_at    BIGINT NOT NULL
);

CREATE TABLE signing_keys (
    kid             TEXT PRIMARY KEY,
    alg             TEXT NOT NULL,
    private_key_enc TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
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

CREATE TABLE grants (
    id         UUID PRIMARY KEY,
    client_id  TEXT NOT NULL REFERENCES clients(id) ON DELETE CASCADE,
    account_id UUID NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    session_id UUID NOT NULL,
    scope      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
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
