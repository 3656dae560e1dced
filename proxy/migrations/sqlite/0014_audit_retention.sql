-- Retention of the audit trail (issue 13, item 5). `espace-ps audit purge`
-- deletes the oldest rows of a chain only after it stored a signed
-- checkpoint: the chain, the last purged sequence number and that row's
-- hash (HMAC-SHA-256 with the checkpoint key, kept outside the database).
-- `audit verify` starts each chain from its newest checkpoint.
CREATE TABLE audit_checkpoints (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- '' for the rows older than the chains (before migration 0013).
    chain TEXT NOT NULL,
    seq BIGINT NOT NULL,
    row_hash TEXT NOT NULL,
    -- The purge's limit: the rows purged were all older than this.
    before_ms BIGINT NOT NULL,
    purged_rows BIGINT NOT NULL,
    purged_at_ms BIGINT NOT NULL,
    signature TEXT NOT NULL
);
CREATE INDEX audit_checkpoints_chain_seq ON audit_checkpoints (chain, seq);

CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'audit_checkpoints is append-only'); END;

-- A row may be deleted only under a checkpoint of its chain (or, for the
-- rows older than the chains, under the '' checkpoint of a later limit).
DROP TRIGGER audit_events_no_delete;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
WHEN NOT EXISTS (
    SELECT 1 FROM audit_checkpoints c
    WHERE (OLD.chain IS NOT NULL AND c.chain = OLD.chain AND c.seq >= OLD.seq)
       OR (OLD.chain IS NULL AND c.chain = '' AND c.before_ms > OLD.at_ms)
)
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only: only rows under a purge checkpoint may be deleted'); END;
