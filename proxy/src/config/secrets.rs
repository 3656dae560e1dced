//! Secrets and connection strings from the environment, or from files:
//! for each variable below, in this order,
//!
//! 1. the variable itself (`ESPACE_PSC_CLIENT_SECRET=…`);
//! 2. `<VARIABLE>_FILE`: the path of a file holding the value
//!    (`ESPACE_PSC_CLIENT_SECRET_FILE=/run/secrets/psc`);
//! 3. a systemd credential named after the variable in lower case
//!    (`espace_psc_client_secret` in `$CREDENTIALS_DIRECTORY`, which the
//!    packaged unit fills from `/etc/espace-ps/credentials/` with
//!    `LoadCredential=espace:/etc/espace-ps/credentials`).
//!
//! A file's value loses one trailing newline (`echo secret > file`). A
//! variable and its `_FILE` both set, or a named file that cannot be read,
//! is a configuration error naming the variable: never a silent fallback
//! to the configuration file's value.

use std::collections::HashMap;
use std::path::Path;

use super::{
    ConfigIssue, ENV_AUDIT_CHECKPOINT_KEY, ENV_DATABASE_URL, ENV_PSC_CLIENT_SECRET,
    ENV_RECORDS_URL, ENV_REDIS_URL,
};

/// The variables that may also come from a file or a credential.
pub const FILE_VARIABLES: [&str; 5] = [
    ENV_PSC_CLIENT_SECRET,
    ENV_REDIS_URL,
    ENV_DATABASE_URL,
    ENV_RECORDS_URL,
    ENV_AUDIT_CHECKPOINT_KEY,
];

/// The value of each of [`FILE_VARIABLES`] that is set, with `env` the
/// process environment.
pub fn resolve(
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<HashMap<&'static str, String>, Vec<ConfigIssue>> {
    let mut values = HashMap::new();
    let mut issues = Vec::new();
    let credentials = env("CREDENTIALS_DIRECTORY").filter(|d| !d.is_empty());
    for var in FILE_VARIABLES {
        let file_var = format!("{var}_FILE");
        let issue = |message: String| ConfigIssue {
            key: file_var.clone(),
            line: None,
            message,
        };
        match (env(var), env(&file_var)) {
            (Some(_), Some(_)) => issues.push(issue(format!(
                "{var} and {file_var} are both set: keep one"
            ))),
            (Some(v), None) => {
                values.insert(var, v);
            }
            (None, Some(path)) => match read_value(Path::new(&path)) {
                Ok(v) => {
                    values.insert(var, v);
                }
                Err(e) => issues.push(issue(format!("{path}: {e}"))),
            },
            (None, None) => {
                let Some(dir) = &credentials else { continue };
                let path = Path::new(dir).join(var.to_ascii_lowercase());
                if !path.exists() {
                    continue;
                }
                match read_value(&path) {
                    Ok(v) => {
                        values.insert(var, v);
                    }
                    Err(e) => issues.push(ConfigIssue {
                        key: var.to_ascii_lowercase(),
                        line: None,
                        message: format!("systemd credential {}: {e}", path.display()),
                    }),
                }
            }
        }
    }
    if issues.is_empty() {
        Ok(values)
    } else {
        Err(issues)
    }
}

/// A file's content, without one trailing newline; an error when it cannot
/// be read, is not UTF-8 or is empty.
fn read_value(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot be read: {e}"))?;
    let value = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    if value.is_empty() {
        return Err("is empty".into());
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, String)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn a_variable_a_file_or_a_systemd_credential() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("psc");
        std::fs::write(&secret, "from-a-file\n").unwrap();
        let creds = dir.path().join("creds");
        std::fs::create_dir(&creds).unwrap();
        std::fs::write(creds.join("espace_database_url"), "postgres://db/espace").unwrap();
        let env = env_of(&[
            ("ESPACE_REDIS_URL", "redis://r/0".into()),
            (
                "ESPACE_PSC_CLIENT_SECRET_FILE",
                secret.display().to_string(),
            ),
            ("CREDENTIALS_DIRECTORY", creds.display().to_string()),
        ]);
        let v = resolve(&env).unwrap();
        assert_eq!(v[ENV_REDIS_URL], "redis://r/0");
        assert_eq!(
            v[ENV_PSC_CLIENT_SECRET], "from-a-file",
            "one newline dropped"
        );
        assert_eq!(v[ENV_DATABASE_URL], "postgres://db/espace");
        assert!(!v.contains_key(ENV_RECORDS_URL));
    }

    #[test]
    fn both_set_or_an_unreadable_file_is_an_error_naming_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let env = env_of(&[
            ("ESPACE_PSC_CLIENT_SECRET", "x".into()),
            ("ESPACE_PSC_CLIENT_SECRET_FILE", "/nowhere".into()),
            (
                "ESPACE_REDIS_URL_FILE",
                dir.path().join("absent").display().to_string(),
            ),
            ("ESPACE_RECORDS_URL_FILE", empty.display().to_string()),
        ]);
        let issues = resolve(&env).unwrap_err();
        let keys: Vec<&str> = issues.iter().map(|i| i.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "ESPACE_PSC_CLIENT_SECRET_FILE",
                "ESPACE_REDIS_URL_FILE",
                "ESPACE_RECORDS_URL_FILE"
            ]
        );
        assert!(issues[0].message.contains("both set"), "{}", issues[0]);
        assert!(
            issues[1].message.contains("cannot be read"),
            "{}",
            issues[1]
        );
        assert!(issues[2].message.contains("is empty"), "{}", issues[2]);
    }

    #[test]
    fn the_variable_wins_over_a_credential() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("espace_redis_url"), "redis://cred/0").unwrap();
        let env = env_of(&[
            ("ESPACE_REDIS_URL", "redis://env/0".into()),
            ("CREDENTIALS_DIRECTORY", dir.path().display().to_string()),
        ]);
        assert_eq!(resolve(&env).unwrap()[ENV_REDIS_URL], "redis://env/0");
    }
}
