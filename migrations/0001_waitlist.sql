-- Waitlist sign-ups for unmatched domains (the api's own database).
CREATE TABLE IF NOT EXISTS waitlist_signups (
  domain     TEXT NOT NULL,
  email      TEXT NOT NULL,
  ip_hash    TEXT,
  created_at TEXT NOT NULL,
  PRIMARY KEY (domain, email)
) WITHOUT ROWID;
