-- Hardening (issue 9): throttling of online guessing, session activity. SQLite dialect; keep in
-- step with migrations/postgres/0004_hardening.sql (same tables, same columns).

-- Throttle counters keyed by text: `login:<keyed hash of a user name>` (known or not, so a lock
-- never tells whether an account exists), `addr:<keyed hash of a source address>`,
-- `register:…` and `send:…` per address. Shared by every instance on the database.
CREATE TABLE throttle (
    key          TEXT PRIMARY KEY,
    -- Failures (or events) counted in the window that started at window_start.
    failures     INTEGER NOT NULL,
    window_start INTEGER NOT NULL,
    -- Consecutive failures since the last success (never reset by time; NIST SP 800-63B §5.2.2).
    consecutive  INTEGER NOT NULL,
    -- No attempt is accepted before this time (progressive delay or lock).
    locked_until INTEGER,
    -- 1 after the hard limit of consecutive failures: only a second factor or staff unlock.
    hard_locked  INTEGER NOT NULL DEFAULT 0,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX throttle_updated ON throttle(updated_at);

-- Session activity, for the idle timeout and the citizen's list of sessions. 0 means "never
-- touched since the sign-in" (created_at counts).
ALTER TABLE sessions ADD COLUMN last_seen_at INTEGER NOT NULL DEFAULT 0;
-- A short device summary from the User-Agent ("Firefox on Android"), never the full header.
ALTER TABLE sessions ADD COLUMN device TEXT;
