-- espace-ps portal state (SQLite). Accounts are created at first login; the
-- audit trail is append-only.
CREATE TABLE accounts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    national_id TEXT NOT NULL UNIQUE,
    rpps TEXT,
    given_name TEXT NOT NULL,
    family_name TEXT NOT NULL,
    last_login_method TEXT NOT NULL,
    first_login_at BIGINT NOT NULL,
    last_login_at BIGINT NOT NULL,
    login_count BIGINT NOT NULL
);

CREATE TABLE audit_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms BIGINT NOT NULL,
    actor TEXT,
    event TEXT NOT NULL,
    method TEXT,
    outcome TEXT NOT NULL,
    client_addr TEXT,
    resource TEXT,
    detail TEXT
);
CREATE INDEX audit_events_actor_at ON audit_events (actor, at_ms);

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END;
