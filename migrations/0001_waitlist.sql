-- Waitlist sign-ups for unmatched domains (the api's own database, binding WAITLIST_DB).
-- One row per (domain, normalised email): a repeat sign-up is an INSERT ... ON CONFLICT DO
-- NOTHING that changes no row. The client IP is stored only as a salted HMAC (ip_hash).
CREATE TABLE IF NOT EXISTS waitlist_signups (
  domain     TEXT NOT NULL CHECK (length(domain) BETWEEN 1 AND 253),
  email      TEXT NOT NULL CHECK (length(email) BETWEEN 3 AND 254),
  ip_hash    TEXT,
  created_at TEXT NOT NULL,
  PRIMARY KEY (domain, email)
) WITHOUT ROWID;

-- The admin listing reads one domain in sign-up order.
CREATE INDEX IF NOT EXISTS waitlist_signups_by_time ON waitlist_signups (domain, created_at);
