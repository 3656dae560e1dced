-- rec_search_tokens as a PostgreSQL materialized view: the name-search
-- index. One row per (RPPS of a professional on the care team of one of the
-- patient's dossiers, name token of the patient), distinct. Built from
-- rec_care_team, rec_dossiers and rec_patient_tokens (itself a materialized
-- view: postgres-tokens-view.sql), so refresh that one first.
-- Produces exactly what the demo generator writes.
--
-- The index only proposes candidates: espace-ps reads the care-team rows it
-- hands to the policy engine live from rec_care_team. A stale view can hide a
-- patient (a professional added to a care team since the last refresh) or
-- propose one that the live care team then drops; it never grants access.
-- Refresh it after care-team or patient changes (e.g. every few minutes from
-- cron, after rec_patient_tokens):
--   REFRESH MATERIALIZED VIEW CONCURRENTLY rec_search_tokens

CREATE MATERIALIZED VIEW rec_search_tokens AS
SELECT DISTINCT c.rpps, t.token COLLATE "C" AS token, t.patient_id
FROM rec_care_team c
JOIN rec_dossiers d ON d.dossier_number = c.dossier_number
JOIN rec_patient_tokens t ON t.patient_id = d.patient_id
WHERE c.rpps IS NOT NULL;

-- needed by REFRESH ... CONCURRENTLY, and the index the name search reads
CREATE UNIQUE INDEX rec_search_tokens_rpps ON rec_search_tokens (rpps, token, patient_id);
