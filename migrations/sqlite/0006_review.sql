-- AS-3 by review (issue 8): the citizen uploads photos of the ID card, a staff member approves
-- or rejects. Keep in step with migrations/postgres/0006_review.sql.

CREATE TABLE review_requests (
    id                 BLOB PRIMARY KEY,
    account_id         BLOB NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    status             TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    created_at         INTEGER NOT NULL,
    -- The identity declared when the photos were sent (what the reviewer compares them with);
    -- approval requires the account still to hold this ID number.
    full_name          TEXT NOT NULL,
    birth_date         TEXT NOT NULL,
    sex                TEXT NOT NULL,
    national_id_masked TEXT NOT NULL,
    national_id_hash   TEXT NOT NULL,
    -- staff:<account id>
    decided_by         TEXT,
    decided_at         INTEGER,
    -- Mandatory on rejection, shown to the citizen.
    reason             TEXT
);
-- At most one pending request per account.
CREATE UNIQUE INDEX review_requests_one_pending ON review_requests(account_id) WHERE status = 'pending';
CREATE INDEX review_requests_status ON review_requests(status, created_at);
CREATE INDEX review_requests_account ON review_requests(account_id, created_at);

-- The uploaded files, sealed with the data key (AAD binds file, request and account).
CREATE TABLE review_files (
    id           BLOB PRIMARY KEY,
    request_id   BLOB NOT NULL REFERENCES review_requests(id) ON DELETE CASCADE,
    side         TEXT NOT NULL CHECK (side IN ('front', 'back')),
    -- Sniffed from the content: image/jpeg | image/png | application/pdf
    content_type TEXT NOT NULL,
    size         INTEGER NOT NULL,
    sealed       TEXT NOT NULL,
    UNIQUE (request_id, side)
);
