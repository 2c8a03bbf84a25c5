-- Documents: JSON objects grouped in collections, owned by the identity that wrote them.
-- Keyset pagination walks (owner, collection, id); ULID ids sort by creation time.
CREATE TABLE IF NOT EXISTS documents (
  owner      TEXT    NOT NULL,
  collection TEXT    NOT NULL,
  id         TEXT    NOT NULL,
  data       TEXT    NOT NULL,
  version    INTEGER NOT NULL,
  created_at TEXT    NOT NULL,
  updated_at TEXT    NOT NULL,
  PRIMARY KEY (owner, collection, id)
) WITHOUT ROWID;

-- Admin listings across owners page by (collection, id, owner).
CREATE INDEX IF NOT EXISTS documents_any_owner ON documents (collection, id, owner);
