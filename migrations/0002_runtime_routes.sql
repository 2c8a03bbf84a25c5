-- Runtime domain routes (`/api/routes`), merged over assets/domain-routes.json (runtime wins).
-- `entry` is the route in the file's format, exactly as validated (a broken one is never
-- stored); `{"domain": ..., "disabled": true}` masks a file entry.
CREATE TABLE IF NOT EXISTS runtime_routes (
  domain     TEXT PRIMARY KEY CHECK (length(domain) BETWEEN 1 AND 255),
  entry      TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  updated_by TEXT NOT NULL
) WITHOUT ROWID;

-- Every change: who, when, what (before and after, as stored), and the request that made it.
CREATE TABLE IF NOT EXISTS runtime_routes_audit (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  at         TEXT NOT NULL,
  actor      TEXT NOT NULL,
  action     TEXT NOT NULL CHECK (action IN ('put', 'delete')),
  domain     TEXT NOT NULL,
  before     TEXT,
  after      TEXT,
  request_id TEXT
);

CREATE INDEX IF NOT EXISTS runtime_routes_audit_by_domain ON runtime_routes_audit (domain, id);
