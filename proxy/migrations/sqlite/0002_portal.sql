-- Portal state: seen marks, dossier grants, dossier-number attempts.
CREATE TABLE seen_reports (
    account_id BIGINT NOT NULL,
    report_id TEXT NOT NULL,
    seen_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, report_id)
);

CREATE TABLE dossier_grants (
    account_id BIGINT NOT NULL,
    dossier_number TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (account_id, dossier_number)
);

CREATE TABLE dossier_attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id BIGINT NOT NULL,
    dossier_number TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    success BIGINT NOT NULL
);
CREATE INDEX dossier_attempts_account ON dossier_attempts (account_id, at_ms);
CREATE INDEX dossier_attempts_dossier ON dossier_attempts (dossier_number, at_ms);
