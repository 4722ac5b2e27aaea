-- People who sign in to the console (as opposed to API keys), their invitations and sessions.
-- Passwords are stored as argon2id PHC strings; invitation tokens and session ids, random
-- 256-bit secrets, as their SHA-256 (like API keys). Times are Unix microseconds.
CREATE TABLE people (
    id            TEXT PRIMARY KEY,
    -- Lower-cased: one person per address, however it is typed.
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL,
    financier_id  TEXT REFERENCES financiers(id),
    -- NULL until the invitation is accepted.
    password_hash TEXT,
    invited_by    TEXT NOT NULL,
    created_us    INTEGER NOT NULL,
    disabled_us   INTEGER
);
CREATE INDEX people_by_financier ON people (financier_id);

CREATE TABLE invitations (
    token_hash  BLOB PRIMARY KEY,
    person_id   TEXT NOT NULL REFERENCES people(id),
    created_us  INTEGER NOT NULL,
    expires_us  INTEGER NOT NULL,
    accepted_us INTEGER
);
CREATE INDEX invitations_by_person ON invitations (person_id);

CREATE TABLE sessions (
    id_hash      BLOB PRIMARY KEY,
    person_id    TEXT NOT NULL REFERENCES people(id),
    -- The token every form of the session carries (CSRF).
    csrf         TEXT NOT NULL,
    created_us   INTEGER NOT NULL,
    last_seen_us INTEGER NOT NULL,
    -- The absolute end, whatever the activity.
    expires_us   INTEGER NOT NULL,
    revoked_us   INTEGER
);
CREATE INDEX sessions_by_person ON sessions (person_id);
