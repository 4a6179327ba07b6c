-- Identity proofing (issue 8): evidence of every change of an account's registration level,
-- staff members, activation letters. Keep in step with migrations/postgres/0005_proofing.sql.

-- One change of an account's level, immutable (no UPDATE or DELETE anywhere in the code).
CREATE TABLE identity_evidence (
    id          BLOB PRIMARY KEY,
    account_id  BLOB NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    at          INTEGER NOT NULL,
    from_level  INTEGER,
    to_level    INTEGER NOT NULL CHECK (to_level BETWEEN 1 AND 4),
    -- self_declared | in_person | lowered | development_demo
    method      TEXT NOT NULL,
    -- Where the data came from: web_form | cli | counter
    source      TEXT NOT NULL,
    -- system | self | operator | staff:<account id>
    verifier    TEXT NOT NULL,
    -- The staff member's office, when verified at a counter.
    office      TEXT,
    -- Documents presented (JSON list: type, masked number, issuing authority, expiry).
    documents   TEXT NOT NULL DEFAULT '[]',
    reason      TEXT
);
CREATE INDEX identity_evidence_account ON identity_evidence(account_id, at);
CREATE INDEX identity_evidence_at ON identity_evidence(at);

-- Accounts that may use the staff console.
CREATE TABLE staff_members (
    account_id BLOB PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    -- counter_officer | supervisor
    role       TEXT NOT NULL,
    office     TEXT,
    created_at INTEGER NOT NULL
);

-- One-time activation codes printed on a letter, stored hashed; single use, 7 days.
CREATE TABLE activation_codes (
    code_hash  TEXT PRIMARY KEY,
    account_id BLOB NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    -- staff:<account id>
    issued_by  TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX activation_codes_account ON activation_codes(account_id);
