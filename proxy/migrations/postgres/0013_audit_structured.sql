-- Structured audit records and their hash chains (issue 13). Existing rows
-- are kept as they are: their new columns stay empty, and `audit verify`
-- counts them as "unchained" (older than the chains).
ALTER TABLE audit_events ADD COLUMN patient_id TEXT;
ALTER TABLE audit_events ADD COLUMN dossier TEXT;
ALTER TABLE audit_events ADD COLUMN study_uid TEXT;
ALTER TABLE audit_events ADD COLUMN report_id TEXT;
-- care_team, dossier_grant, hm_sso
ALTER TABLE audit_events ADD COLUMN access_path TEXT;
-- The @id of the Cedar policy that decided.
ALTER TABLE audit_events ADD COLUMN policy TEXT;
ALTER TABLE audit_events ADD COLUMN request_id TEXT;
-- A name search: a keyed hash of the typed text, and how many were listed.
ALTER TABLE audit_events ADD COLUMN search_hash TEXT;
ALTER TABLE audit_events ADD COLUMN result_count BIGINT;
-- The hash chain: which chain (one of a process's), the row's place in it,
-- the previous row's hash and this row's.
ALTER TABLE audit_events ADD COLUMN chain TEXT;
ALTER TABLE audit_events ADD COLUMN seq BIGINT;
ALTER TABLE audit_events ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_events ADD COLUMN row_hash TEXT;

CREATE UNIQUE INDEX audit_events_chain_seq ON audit_events (chain, seq);
-- `audit export --patient`: one patient's rows in time order.
CREATE INDEX audit_events_patient_at ON audit_events (patient_id, at_ms) WHERE patient_id IS NOT NULL;
