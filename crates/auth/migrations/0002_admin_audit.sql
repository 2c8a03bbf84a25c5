-- The audit trail of admins' changes to other users: role changes, ended sessions, revoked
-- keys. A change and its row are written in one D1 batch (one transaction), and `before` is
-- read inside that batch, so the trail never misses or invents a change. id is a ULID (time
-- order: newest first is id DESC); actor is the admin's user id (`admin` for ADMIN_API_KEY);
-- before/after are JSON objects or NULL.
CREATE TABLE IF NOT EXISTS audit (
  id         TEXT PRIMARY KEY,
  at         TEXT NOT NULL,
  actor      TEXT NOT NULL,
  action     TEXT NOT NULL CHECK (action IN ('setRole', 'endSessions', 'revokeKey')),
  user_id    TEXT NOT NULL,
  key_id     TEXT,
  before     TEXT,
  after      TEXT,
  request_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_user ON audit (user_id, id);
CREATE INDEX IF NOT EXISTS audit_actor ON audit (actor, id);
