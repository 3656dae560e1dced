// Read-only look-ups in the demo's records database (TMP/records.sqlite),
// with the sqlite3 command-line tool, so that the tests do not hard-code
// what the demo generator decides.

import { execFileSync } from 'node:child_process';
import path from 'node:path';

export function recordsQuery(dataDir, sql) {
  if (!dataDir) throw new Error('records database unknown: ESPACE_BROWSER_DATA_DIR is not set');
  const db = path.join(dataDir, 'records.sqlite');
  const out = execFileSync('sqlite3', ['-readonly', '-separator', '|', db, sql], { encoding: 'utf8', timeout: 10_000 });
  return out.split('\n').filter(Boolean).map((l) => l.split('|'));
}

/** The dossier number of a patient's venue with that act ("FEMUR"). */
export function dossierNumberOf(dataDir, family, given, birthIso, act) {
  const q = (s) => `'${String(s).replace(/'/g, "''")}'`;
  const rows = recordsQuery(dataDir, `
    SELECT DISTINCT d.dossier_number
    FROM rec_patients p
    JOIN rec_dossiers d ON d.patient_id = p.patient_id
    JOIN rec_exams e ON e.dossier_number = d.dossier_number
    WHERE p.family_name = ${q(family)} AND p.given_name = ${q(given)}
      AND p.birth_date = ${q(birthIso)} AND e.act_label = ${q(act)}`);
  if (rows.length !== 1) throw new Error(`expected one ${act} dossier for ${family} ${given}, found ${rows.length}`);
  return rows[0][0];
}
