//! The demo's policies: a copy of the policies directory given to
//! `espace-ps-demo demo`, with the demo's groups (`proxy/demo/demo-groups.toml`,
//! e.g. Dr Hervé Lefèvre's DICOM download habilitation) added to its
//! `groups.toml`. The directory given is never written to.

use std::path::Path;

/// The demo's groups, added to the copy's `groups.toml`.
pub const DEMO_GROUPS: &str = include_str!("../demo-groups.toml");

#[derive(Debug, thiserror::Error)]
pub enum DemoPoliciesError {
    #[error("cannot copy the policies to {0}: {1}")]
    Copy(String, std::io::Error),
    #[error("{0}: {1}")]
    Groups(String, String),
}

/// Copies `src` to `dest` (replacing it) and adds [`DEMO_GROUPS`] to its
/// `groups.toml`: each list of a demo group is appended to the same list of
/// the same group (created when missing).
pub fn prepare(src: &Path, dest: &Path) -> Result<(), DemoPoliciesError> {
    let copy_err = |e| DemoPoliciesError::Copy(dest.display().to_string(), e);
    if dest.exists() {
        std::fs::remove_dir_all(dest).map_err(copy_err)?;
    }
    copy_dir(src, dest).map_err(copy_err)?;
    let file = dest.join("groups.toml");
    let groups_err = |e: String| DemoPoliciesError::Groups(file.display().to_string(), e);
    let text = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(groups_err(e.to_string())),
    };
    let mut groups: toml::Table = toml::from_str(&text).map_err(|e| groups_err(e.to_string()))?;
    let demo: toml::Table = toml::from_str(DEMO_GROUPS).expect("demo-groups.toml is valid TOML");
    merge(&mut groups, &demo).map_err(groups_err)?;
    let out = format!(
        "# Written by espace-ps-demo: {}/groups.toml with the demo's groups\n\
         # (proxy/demo/demo-groups.toml) added. DEMO ONLY.\n\n{}",
        src.display(),
        toml::to_string(&groups).map_err(|e| groups_err(e.to_string()))?
    );
    std::fs::write(&file, out).map_err(|e| groups_err(e.to_string()))
}

fn merge(groups: &mut toml::Table, demo: &toml::Table) -> Result<(), String> {
    let Some(demo_groups) = demo.get("groups").and_then(|g| g.as_table()) else {
        return Ok(());
    };
    let all = groups
        .entry("groups")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .ok_or("`groups` is not a table")?;
    for (name, def) in demo_groups {
        let group = all
            .entry(name.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| format!("groups.{name} is not a table"))?;
        for (key, value) in def.as_table().into_iter().flatten() {
            match (group.get_mut(key), value) {
                (Some(toml::Value::Array(have)), toml::Value::Array(add)) => {
                    for v in add {
                        if !have.contains(v) {
                            have.push(v.clone());
                        }
                    }
                }
                (None, v) => {
                    group.insert(key.clone(), v.clone());
                }
                _ => return Err(format!("groups.{name}.{key}: cannot add the demo's value")),
            }
        }
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_habilitates_herve_lefevre_in_its_copy_only() {
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies");
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("policies");
        prepare(&shipped, &copy).unwrap();
        let groups: toml::Table =
            toml::from_str(&std::fs::read_to_string(copy.join("groups.toml")).unwrap()).unwrap();
        assert_eq!(
            groups["groups"]["dicom-download"]["rpps"],
            toml::Value::Array(vec!["99700234562".into()])
        );
        // The shipped groups keep everything else (the revoked sentinel).
        assert_eq!(
            groups["groups"]["revoked"]["national_ids"],
            toml::Value::Array(vec!["8-policy-test-only".into()])
        );
        // The shipped file is untouched: nobody holds the habilitation.
        let shipped_groups: toml::Table =
            toml::from_str(&std::fs::read_to_string(shipped.join("groups.toml")).unwrap()).unwrap();
        assert_eq!(
            shipped_groups["groups"]["dicom-download"]["rpps"],
            toml::Value::Array(vec![])
        );
        // The copy is a whole policy directory (route tables, tests too).
        assert!(copy.join("viewers/orthanc.toml").is_file());
        assert!(copy.join("schema.cedarschema").is_file());
        // Prepared again (a restart): the same, not appended twice.
        prepare(&shipped, &copy).unwrap();
        let again: toml::Table =
            toml::from_str(&std::fs::read_to_string(copy.join("groups.toml")).unwrap()).unwrap();
        assert_eq!(again, groups);
    }
}
