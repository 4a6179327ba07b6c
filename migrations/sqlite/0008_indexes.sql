-- Indexes for every look-up (issue 10). SQLite dialect; keep in step with
-- migrations/postgres/0008_indexes.sql (same index names, same columns).
--
-- Every Store query filters on a primary key, a UNIQUE column or an index; these are the ones
-- that did not: the periodic purges of expired rows (`DELETE … WHERE expires_at <= $1` would
-- otherwise scan the whole table, and the token tables grow with every sign-in), and the
-- foreign keys whose ON DELETE CASCADE must find the children of a deleted client or account.

-- Purges (Store::purge_expired and friends).
CREATE INDEX auth_codes_expires ON auth_codes(expires_at);
CREATE INDEX access_tokens_expires ON access_tokens(expires_at);
CREATE INDEX refresh_tokens_expires ON refresh_tokens(expires_at);
CREATE INDEX grants_expires ON grants(expires_at);
CREATE INDEX client_assertions_expires ON client_assertions(expires_at);
CREATE INDEX pushed_requests_expires ON pushed_requests(expires_at);
CREATE INDEX otp_challenges_expires ON otp_challenges(expires_at);
CREATE INDEX webauthn_ceremonies_expires ON webauthn_ceremonies(expires_at);
CREATE INDEX logout_deliveries_created ON logout_deliveries(created_at);
CREATE INDEX totp_credentials_unconfirmed ON totp_credentials(created_at) WHERE confirmed_at IS NULL;

-- Cascades: deleting a client (grants, pushed requests, logout deliveries) or an account
-- (ceremonies and challenges not yet expired).
CREATE INDEX grants_client ON grants(client_id);
CREATE INDEX pushed_requests_client ON pushed_requests(client_id);
CREATE INDEX logout_deliveries_client ON logout_deliveries(client_id);
CREATE INDEX webauthn_ceremonies_account ON webauthn_ceremonies(account_id);
CREATE INDEX certificate_challenges_account ON certificate_challenges(account_id);

-- (PostgreSQL also replaces audit_events_account with (account_id, seq); here the index on
-- account_id already ends with the rowid, which is seq.)
