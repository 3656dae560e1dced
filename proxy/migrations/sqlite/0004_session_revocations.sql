-- `espace-ps sessions revoke`: a professional's sessions opened before
-- revoked_at_ms end on every instance (checked at each session load).
CREATE TABLE session_revocations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    national_id TEXT NOT NULL,
    revoked_at_ms BIGINT NOT NULL
);
CREATE INDEX session_revocations_at ON session_revocations (revoked_at_ms);
