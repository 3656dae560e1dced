-- espace-ps portal state (PostgreSQL). Accounts are created at first login;
-- the audit trail is append-only.
CREATE TABLE accounts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
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

CREATE FUNCTION audit_events_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_events_no_update BEFORE UPDATE OR DELETE ON audit_events
FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();
