-- AS-3 by review (issue 8): the citizen uploads photos of the ID card, a staff member approves
-- or rejects. Keep in step with migrations/sqlite/0006_review.sql.

CREATE TABLE review_requests (
    id                 UUID PRIMARY KEY,
    account_id         UUID NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    status             TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    created_at         BIGINT NOT NULL,
    -- The identity declared when the photos were sent (what the reviewer compares them with);
    -- approval requires the account still to hold this ID number.
    full_name          TEXT NOT NULL,
    birth_date         TEXT NOT NULL,
    sex                TEXT NOT NULL,
    national_id_masked TEXT NOT NULL,
    national_id_hash   TEXT NOT NULL,
    -- staff:<account id>
    decided_by         TEXT,
    decided_at         BIGINT,
    -- Mandatory on rejection, shown to the citizen.
    reason             TEXT
);
-- At most one pending request per account.
CREATE UNIQUE INDEX review_requests_one_pending ON review_requests(account_id) WHERE status = 'pending';
CREATE INDEX review_requests_status ON review_requests(status, created_at);
CREATE INDEX review_requests_account ON review_requests(account_id, created_at);

-- The uploaded files, sealed with the data key (AAD binds file, request and account).
CREATE TABLE review_files (
    id           UUID PRIMARY KEY,
    request_id   UUID NOT NULL REFERENCES review_requests(id) ON DELETE CASCADE,
    side         TEXT NOT NULL CHECK (side IN ('front', 'back')),
    -- Sniffed from the content: image/jpeg | image/png | application/pdf
    content_type TEXT NOT NULL,
    size         BIGINT NOT NULL,
    sealed       TEXT NOT NULL,
    UNIQUE (request_id, side)
);
