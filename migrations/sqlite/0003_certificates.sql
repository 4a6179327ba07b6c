-- Digital certificates (issue 6, docs/certificates.md). SQLite dialect; keep in step with
-- migrations/postgres/0003_certificates.sql (same tables, same columns).

-- Certificates enrolled on an account (signed a challenge while signed in). The SHA-256
-- fingerprint of the DER is unique: one certificate belongs to one account.
CREATE TABLE certificates (
    id           BLOB PRIMARY KEY,
    account_id   BLOB NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    fingerprint  TEXT NOT NULL UNIQUE,
    -- The certificate itself, DER, base64.
    der          TEXT NOT NULL,
    subject_cn   TEXT NOT NULL,
    issuer       TEXT NOT NULL,
    -- Serial number, lower-case hex.
    serial       TEXT NOT NULL,
    not_before   INTEGER NOT NULL,
    not_after    INTEGER NOT NULL,
    -- The subject's UID values (CCCD:…, CMND:…, MST:…) as a JSON array of strings.
    uids         TEXT NOT NULL,
    -- The trust profile the certificate chained to at enrolment (public | government | …).
    profile      TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER
);
CREATE INDEX certificates_account ON certificates(account_id);

-- One-time challenges to sign, stored by the hash of their id; the exact bytes shown to the
-- citizen are kept, and a signature is checked against them. Single use.
CREATE TABLE certificate_challenges (
    id_hash     TEXT PRIMARY KEY,
    -- The signed-in account the challenge was issued to (NULL: sign-in with a certificate alone).
    account_id  BLOB REFERENCES accounts(id) ON DELETE CASCADE,
    -- sign-in | second-factor | enrol | transaction
    purpose     TEXT NOT NULL,
    -- The canonical JSON document, exactly as signed.
    bytes       TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    consumed_at INTEGER
);
CREATE INDEX certificate_challenges_expiry ON certificate_challenges(expires_at);
