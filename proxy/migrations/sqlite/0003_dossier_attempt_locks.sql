-- Dossier-number attempts are counted and reserved under a row lock, so
-- that concurrent attempts (from any instance) cannot all pass the count.

-- One row per account that has made an attempt: the row each attempt of
-- that account locks while it counts and reserves its slot.
CREATE TABLE dossier_attempt_accounts (
    account_id BIGINT PRIMARY KEY,
    touched_at BIGINT NOT NULL
);

-- One row per dossier number that was tried: locked the same way, and the
-- daily failure budget of that number.
CREATE TABLE dossier_number_budgets (
    dossier_number TEXT PRIMARY KEY,
    -- Failures before this instant do not count (an unlock moves it).
    budget_since BIGINT NOT NULL DEFAULT 0,
    -- Set when the daily budget ran out; cleared only by an administrator.
    locked_at BIGINT
);
