-- rec_patient_tokens as a PostgreSQL materialized view over rec_patients
-- (itself usually a view over the hospital's patient table).
-- One row per word of the family name and of the given name, upper case,
-- accents removed, split on anything that is not a letter or a digit, plus
-- the words joined for a name of several words ("LE GALL" -> LEGALL).
-- Produces exactly what espace_ps_records::patient_tokens computes.
-- Refresh it after patient changes (e.g. every few minutes from cron):
--   REFRESH MATERIALIZED VIEW CONCURRENTLY rec_patient_tokens

CREATE EXTENSION IF NOT EXISTS unaccent;

CREATE MATERIALIZED VIEW rec_patient_tokens AS
SELECT DISTINCT t.token COLLATE "C" AS token, t.patient_id
FROM (
    SELECT patient_id, regexp_split_to_table(upper(unaccent(family_name)), '[^A-Z0-9]+') AS token
    FROM rec_patients
    UNION ALL
    SELECT patient_id, regexp_split_to_table(upper(unaccent(given_name)), '[^A-Z0-9]+')
    FROM rec_patients
    UNION ALL
    SELECT patient_id, regexp_replace(upper(unaccent(family_name)), '[^A-Z0-9]+', '', 'g')
    FROM rec_patients
    WHERE upper(unaccent(family_name)) ~ '[A-Z0-9][^A-Z0-9]+[A-Z0-9]'
    UNION ALL
    SELECT patient_id, regexp_replace(upper(unaccent(given_name)), '[^A-Z0-9]+', '', 'g')
    FROM rec_patients
    WHERE upper(unaccent(given_name)) ~ '[A-Z0-9][^A-Z0-9]+[A-Z0-9]'
) t
WHERE t.token <> '';

-- needed by REFRESH ... CONCURRENTLY, and by the join that builds rec_search_tokens
CREATE UNIQUE INDEX rec_patient_tokens_patient ON rec_patient_tokens (patient_id, token);
