-- Users, sessions and API keys. Secrets are never stored: passwords as PBKDF2 records
-- (pbkdf2$iterations$salt$hash), session ids and API keys as SHA-256 hashes.
CREATE TABLE IF NOT EXISTS users (
  id            TEXT PRIMARY KEY,
  email         TEXT NOT NULL,
  name          TEXT,
  password_hash TEXT NOT NULL,
  role          TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
  created_at    TEXT NOT NULL,
  updated_at    TEXT NOT NULL
);
-- Emails are stored lower-cased, so this index makes them unique case-insensitively.
CREATE UNIQUE INDEX IF NOT EXISTS users_email ON users (email);

-- handle = SHA-256 (hex) of the 256-bit session id in the cookie. expires_at is unix seconds.
CREATE TABLE IF NOT EXISTS sessions (
  handle     TEXT PRIMARY KEY,
  user_id    TEXT NOT NULL REFERENCES users (id),
  created_at TEXT NOT NULL,
  expires_at INTEGER NOT NULL,
  revoked_at TEXT
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user_id);

-- id is the lookup id inside the key (sk_{id}_{secret}), key_hash the SHA-256 of the whole key.
-- last_used_at is written at most once a minute per key.
CREATE TABLE IF NOT EXISTS api_keys (
  id           TEXT PRIMARY KEY,
  user_id      TEXT NOT NULL REFERENCES users (id),
  name         TEXT NOT NULL,
  prefix       TEXT NOT NULL,
  key_hash     TEXT NOT NULL,
  created_at   TEXT NOT NULL,
  last_used_at TEXT,
  revoked_at   TEXT
);
CREATE INDEX IF NOT EXISTS api_keys_user ON api_keys (user_id, created_at);
