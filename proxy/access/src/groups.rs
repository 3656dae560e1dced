//! The administrator's groups file (`groups.toml`): named groups of
//! professionals, used by policies as `principal in EspacePs::Group::"name"`.
//!
//! A professional is a member of a group when their RPPS, national id, one
//! of their profession codes or one of their savoir-faire codes is listed,
//! or when they are a member of one of the group's `member_groups`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::Deserialize;

use crate::load::Problem;
use crate::model::Professional;

/// The file as the administrator writes it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupsFile {
    #[serde(default)]
    groups: BTreeMap<String, GroupDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupDef {
    #[serde(default)]
    #[allow(dead_code)]
    description: Option<String>,
    #[serde(default)]
    rpps: Vec<String>,
    #[serde(default)]
    national_ids: Vec<String>,
    #[serde(default)]
    professions: Vec<String>,
    #[serde(default)]
    savoir_faire: Vec<String>,
    /// Groups whose members are also members of this group.
    #[serde(default)]
    member_groups: Vec<toml::Spanned<String>>,
}

/// Groups resolved for fast lookup on each decision.
#[derive(Debug, Default)]
pub(crate) struct GroupIndex {
    names: Vec<String>,
    /// For each group, itself and every group that contains it, transitively.
    closure: Vec<Vec<usize>>,
    by_rpps: MemberIndex,
    by_national_id: MemberIndex,
    by_profession: MemberIndex,
    by_savoir_faire: MemberIndex,
}

/// Groups by member key. Built from the administrator's file and read on
/// every request (the `revoked` group): foldhash, as no client chooses a
/// key that goes in.
type MemberIndex = HashMap<String, Vec<usize>, foldhash::fast::RandomState>;

impl GroupIndex {
    /// Parse and resolve a groups file. `text` is the file's content.
    pub(crate) fn parse(path: &Path, text: &str) -> Result<GroupIndex, Vec<Problem>> {
        let file: GroupsFile = toml::from_str(text).map_err(|e| {
            vec![Problem::at_offset(
                path,
                text,
                e.span().map(|s| s.start),
                format!("invalid groups file: {}", e.message()),
            )]
        })?;
        let names: Vec<String> = file.groups.keys().cloned().collect();
        let index_of: HashMap<&str, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i))
            .collect();

        let mut problems = Vec::new();
        // parents[child] = groups that list `child` in member_groups.
        let mut parents: Vec<Vec<usize>> = vec![Vec::new(); names.len()];
        let mut idx = GroupIndex {
            names: names.clone(),
            ..GroupIndex::default()
        };
        for (gi, (name, def)) in file.groups.iter().enumerate() {
            if name.is_empty() || name.contains('"') || name.contains('\\') {
                problems.push(Problem::at_offset(
                    path,
                    text,
                    None,
                    format!("invalid group name {name:?}"),
                ));
            }
            for member in &def.member_groups {
                match index_of.get(member.get_ref().as_str()) {
                    Some(&child) => parents[child].push(gi),
                    None => problems.push(Problem::at_offset(
                        path,
                        text,
                        Some(member.span().start),
                        format!(
                            "group {name:?} lists unknown member group {:?}",
                            member.get_ref()
                        ),
                    )),
                }
            }
            for (map, keys) in [
                (&mut idx.by_rpps, &def.rpps),
                (&mut idx.by_national_id, &def.national_ids),
                (&mut idx.by_profession, &def.professions),
                (&mut idx.by_savoir_faire, &def.savoir_faire),
            ] {
                for key in keys {
                    map.entry(key.clone()).or_default().push(gi);
                }
            }
        }

        // Transitive closure of "is contained in", with cycle detection.
        for start in 0..names.len() {
            let mut seen = vec![false; names.len()];
            let mut stack = vec![start];
            let mut closure = Vec::new();
            while let Some(g) = stack.pop() {
                if seen[g] {
                    continue;
                }
                seen[g] = true;
                closure.push(g);
                for &p in &parents[g] {
                    if p == start {
                        problems.push(Problem::at_offset(
                            path,
                            text,
                            None,
                            format!("group {:?} contains itself (cycle)", names[start]),
                        ));
                    }
                    stack.push(p);
                }
            }
            closure.sort_unstable();
            idx.closure.push(closure);
        }

        if problems.is_empty() {
            Ok(idx)
        } else {
            Err(problems)
        }
    }

    /// Every group the professional belongs to, directly or through nesting,
    /// sorted and without duplicates.
    pub(crate) fn groups_of(&self, p: &Professional) -> Vec<&str> {
        if self.names.is_empty() {
            return Vec::new();
        }
        let mut member = vec![false; self.names.len()];
        let mut mark = |hits: Option<&Vec<usize>>| {
            for &g in hits.into_iter().flatten() {
                for &a in &self.closure[g] {
                    member[a] = true;
                }
            }
        };
        if let Some(rpps) = &p.rpps {
            mark(self.by_rpps.get(rpps));
        }
        mark(self.by_national_id.get(&p.national_id));
        for code in &p.professions {
            mark(self.by_profession.get(code));
        }
        for code in &p.savoir_faire {
            mark(self.by_savoir_faire.get(code));
        }
        member
            .iter()
            .zip(&self.names)
            .filter(|(m, _)| **m)
            .map(|(_, n)| n.as_str())
            .collect()
    }

    /// Whether the professional belongs to `group`, directly or through
    /// nesting: what [`GroupIndex::groups_of`] says of that one group,
    /// without building the list (it is asked on every request).
    pub(crate) fn in_group(&self, group: &str, p: &espace_ps_identity::Professional) -> bool {
        let Some(target) = self.names.iter().position(|n| n == group) else {
            return false;
        };
        let reaches = |hits: Option<&Vec<usize>>| {
            hits.into_iter()
                .flatten()
                .any(|&g| self.closure[g].binary_search(&target).is_ok())
        };
        p.rpps
            .as_ref()
            .is_some_and(|r| reaches(self.by_rpps.get(r)))
            || reaches(self.by_national_id.get(p.national_id.as_str()))
            || p.professions
                .iter()
                .any(|c| reaches(self.by_profession.get(c)))
            || p.savoir_faire
                .iter()
                .any(|c| reaches(self.by_savoir_faire.get(c)))
    }

    /// Number of groups defined.
    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }
}
