-- espace-ps records schema, SQLite (embedded demo).
-- The same tables as postgres.sql; see docs/records.md for the meaning of
-- every column. All identifiers and dates are TEXT; dates are 'YYYY-MM-DD'.
-- espace-ps only reads these tables.

CREATE TABLE IF NOT EXISTS rec_patients (
    patient_id  TEXT NOT NULL PRIMARY KEY,
    family_name TEXT NOT NULL,
    given_name  TEXT NOT NULL,
    sex         TEXT NOT NULL CHECK (sex IN ('F', 'M', 'U')),
    birth_date  TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS rec_patient_tokens (
    token      TEXT NOT NULL,
    patient_id TEXT NOT NULL
);

-- name-search index: (professional on the patient's care team, name token,
-- patient); in production a materialized view (postgres-search-tokens-view.sql)
CREATE TABLE IF NOT EXISTS rec_search_tokens (
    rpps       TEXT NOT NULL,
    token      TEXT NOT NULL,
    patient_id TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS rec_dossiers (
    dossier_number TEXT NOT NULL PRIMARY KEY,
    patient_id     TEXT NOT NULL,
    dossier_date   TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS rec_care_team (
    dossier_number TEXT NOT NULL,
    national_id    TEXT NOT NULL,
    rpps           TEXT,
    role_code      TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS rec_exams (
    exam_id            TEXT NOT NULL PRIMARY KEY,
    dossier_number     TEXT NOT NULL,
    act_label          TEXT NOT NULL,
    exam_date          TEXT NOT NULL,
    study_instance_uid TEXT,
    accession_number   TEXT,
    modality           TEXT
);

CREATE TABLE IF NOT EXISTS rec_reports (
    report_id        TEXT NOT NULL PRIMARY KEY,
    dossier_number   TEXT NOT NULL,
    exam_id          TEXT,
    title            TEXT NOT NULL,
    report_date      TEXT NOT NULL,
    content          TEXT,
    content_location TEXT
);

-- @indexes (the demo loader creates them after loading the rows)

-- name search: the candidates, a prefix range per professional and token
CREATE UNIQUE INDEX IF NOT EXISTS rec_search_tokens_rpps ON rec_search_tokens (rpps, token, patient_id);
-- rec_search_tokens is built from rec_patient_tokens joined per patient (the
-- materialized view in production; the demo generator in the embedded demo)
CREATE INDEX IF NOT EXISTS rec_patient_tokens_patient ON rec_patient_tokens (patient_id, token);
-- a patient's dossiers, newest first
CREATE INDEX IF NOT EXISTS rec_dossiers_patient ON rec_dossiers (patient_id, dossier_date);
-- recent results start from the professional's care-team rows
CREATE INDEX IF NOT EXISTS rec_care_team_rpps ON rec_care_team (rpps, dossier_number, role_code);
-- roles of one professional on one dossier (and on a name-search candidate's dossiers)
CREATE INDEX IF NOT EXISTS rec_care_team_dossier ON rec_care_team (dossier_number, rpps, role_code);
CREATE INDEX IF NOT EXISTS rec_exams_dossier ON rec_exams (dossier_number, exam_date);
CREATE INDEX IF NOT EXISTS rec_exams_study ON rec_exams (study_instance_uid);
CREATE INDEX IF NOT EXISTS rec_reports_dossier ON rec_reports (dossier_number, report_date);
