//! The policy engine: one loaded policy set, atomically replaceable.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use cedar_policy::{
    Authorizer, Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, PolicySet, Request,
    RestrictedExpression, Schema,
};
use parking_lot::{Mutex, RwLock};

use crate::groups::GroupIndex;
use crate::load::{self, LoadError, Problem};
use crate::model::{AccessRequest, Action, Decision, Resource, Via};
use crate::testcases::{self, TestReport};

#[cfg(test)]
pub(crate) mod tests;

// === impl Names ===

/// Cedar names of the schema, parsed once.
struct Names {
    professional: EntityTypeName,
    group: EntityTypeName,
    login_method: EntityTypeName,
    access_path: EntityTypeName,
    patient: EntityTypeName,
    dossier: EntityTypeName,
    report: EntityTypeName,
    study: EntityTypeName,
    series: EntityTypeName,
    actions: [EntityUid; 6],
}

fn names() -> &'static Names {
    static NAMES: OnceLock<Names> = OnceLock::new();
    NAMES.get_or_init(|| {
        #[allow(clippy::expect_used)]
        let ty = |n: &str| {
            EntityTypeName::from_str(&format!("EspacePs::{n}")).expect("valid Cedar type name")
        };
        let action_ty = ty("Action");
        Names {
            professional: ty("Professional"),
            group: ty("Group"),
            login_method: ty("LoginMethod"),
            access_path: ty("AccessPath"),
            patient: ty("Patient"),
            dossier: ty("Dossier"),
            report: ty("Report"),
            study: ty("Study"),
            series: ty("Series"),
            actions: Action::ALL.map(|a| uid(&action_ty, a.as_str())),
        }
    })
}

fn uid(ty: &EntityTypeName, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(ty.clone(), EntityId::new(id))
}

// === impl PolicySnapshot ===

/// One loaded, validated and tested policy set. Immutable: a reload makes a
/// new one. Hold it across the decisions of one request to see one
/// consistent set.
pub struct PolicySnapshot {
    generation: u64,
    fingerprint: u64,
    schema: Schema,
    policies: PolicySet,
    policy_files: HashMap<String, PathBuf>,
    groups: GroupIndex,
    authorizer: Authorizer,
    /// Principal entities built with this snapshot's groups.
    principals: RwLock<HashMap<crate::model::Professional, Entity>>,
}

/// Professionals whose principal entity is kept; the cache is emptied when
/// full (a simple bound: it only saves building time).
const PRINCIPAL_CACHE_SIZE: usize = 4096;

impl PolicySnapshot {
    /// Decide one request. Deny by default: no matching permit, a matching
    /// forbid, an invalid request or any evaluation error is a deny.
    pub fn decide(&self, req: &AccessRequest) -> Decision {
        let (request, entities) = match self.build(req) {
            Ok(built) => built,
            Err(e) => return Decision::deny_with_error(e),
        };
        let response = self
            .authorizer
            .is_authorized(&request, &self.policies, &entities);
        let diagnostics = response.diagnostics();
        let errors: Vec<String> = diagnostics.errors().map(|e| e.to_string()).collect();
        let mut policy_ids: Vec<String> = diagnostics.reason().map(|id| id.to_string()).collect();
        policy_ids.sort();
        Decision {
            allowed: response.decision() == cedar_policy::Decision::Allow && errors.is_empty(),
            policy_ids,
            errors,
        }
    }

    /// The generation of this set: starts at 1, +1 on each successful reload.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The policy file an `@id` comes from.
    pub fn policy_file(&self, id: &str) -> Option<&Path> {
        self.policy_files.get(id).map(PathBuf::as_path)
    }

    /// Every policy `@id` in force, sorted.
    pub fn policy_ids(&self) -> Vec<&str> {
        let mut ids: Vec<&str> = self.policy_files.keys().map(String::as_str).collect();
        ids.sort_unstable();
        ids
    }

    /// The groups (from `groups.toml`) a professional belongs to.
    pub fn groups_of(&self, p: &crate::model::Professional) -> Vec<&str> {
        self.groups.groups_of(p)
    }

    /// Whether a professional belongs to one group (as `groups_of` would
    /// list it), without building their principal.
    pub fn in_group(&self, group: &str, p: &espace_ps_identity::Professional) -> bool {
        self.groups.in_group(group, p)
    }

    /// Number of groups defined in `groups.toml`.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// The principal entity of a professional, from the cache or built.
    fn principal_entity(
        &self,
        p: &crate::model::Professional,
        principal: &EntityUid,
    ) -> Result<Entity, String> {
        if let Some(e) = self.principals.read().get(p) {
            return Ok(e.clone());
        }
        let n = names();
        let mut attrs: HashMap<String, RestrictedExpression> = HashMap::with_capacity(5);
        attrs.insert(
            "national_id".into(),
            RestrictedExpression::new_string(p.national_id.clone()),
        );
        if let Some(rpps) = p.rpps.as_ref().filter(|r| !r.is_empty()) {
            attrs.insert(
                "rpps".into(),
                RestrictedExpression::new_string(rpps.clone()),
            );
        }
        attrs.insert("professions".into(), string_set(&p.professions));
        attrs.insert("savoir_faire".into(), string_set(&p.savoir_faire));
        attrs.insert(
            "login_method".into(),
            RestrictedExpression::new_entity_uid(uid(&n.login_method, p.login_method.as_str())),
        );
        let parents: HashSet<EntityUid> = self
            .groups
            .groups_of(p)
            .into_iter()
            .map(|g| uid(&n.group, g))
            .collect();
        let entity = Entity::new(principal.clone(), attrs, parents)
            .map_err(|e| format!("cannot build the principal: {e}"))?;
        let mut cache = self.principals.write();
        if cache.len() >= PRINCIPAL_CACHE_SIZE {
            cache.clear();
        }
        cache.insert(p.clone(), entity.clone());
        Ok(entity)
    }

    /// Build the Cedar request and entities.
    fn build(&self, req: &AccessRequest) -> Result<(Request, Entities), String> {
        let n = names();
        let p = &req.professional;
        if p.national_id.is_empty() {
            return Err("professional has an empty national id".to_string());
        }

        // Principal (cached per professional: a session makes many requests)
        let principal = uid(&n.professional, &p.national_id);
        let mut entities = Vec::with_capacity(2);
        entities.push(self.principal_entity(p, &principal)?);

        // Resource and its parents
        let resource = resource_entity(req.action, &req.resource, &mut entities)?;

        // Context
        let ctx = &req.context;
        let dossier = req.resource.dossier_id();
        let mut roles = BTreeSet::new();
        let mut patient_roles = BTreeSet::new();
        for entry in &ctx.care_team {
            for role in &entry.roles {
                patient_roles.insert(role.as_str());
                if dossier.is_none() || dossier == Some(entry.dossier_id.as_str()) {
                    roles.insert(role.as_str());
                }
            }
        }
        let (access, granted) = match &ctx.via {
            Via::CareTeam => ("care_team", None),
            Via::Grant { dossier_id } => {
                non_empty("granted dossier id", dossier_id)?;
                ("grant", Some(uid(&n.dossier, dossier_id)))
            }
        };
        let context = Context::from_pairs([
            (
                "access".to_string(),
                RestrictedExpression::new_entity_uid(uid(&n.access_path, access)),
            ),
            ("roles".to_string(), string_set(roles)),
            ("patient_roles".to_string(), string_set(patient_roles)),
            (
                "granted_dossiers".to_string(),
                RestrictedExpression::new_set(
                    granted
                        .into_iter()
                        .map(RestrictedExpression::new_entity_uid),
                ),
            ),
            (
                "birth_date_verified".to_string(),
                RestrictedExpression::new_bool(ctx.birth_date_verified),
            ),
            ("now".to_string(), RestrictedExpression::new_long(ctx.now)),
        ])
        .map_err(|e| format!("cannot build the context: {e}"))?;

        // `Action::ALL` lists the variants in declaration order.
        let action = n.actions[req.action as usize].clone();
        // The request and entities are built above from typed input only, so
        // they conform to the schema by construction (the policies were
        // validated strictly at load). Checking them against the schema again
        // on every decision costs more than the decision itself, so it is
        // done in debug builds (all the tests) only. Any mismatch would be a
        // Cedar evaluation error, hence a deny, in release builds too.
        let schema = cfg!(debug_assertions).then_some(&self.schema);
        let request = Request::new(principal, action, resource, context, schema)
            .map_err(|e| format!("invalid request: {e}"))?;
        let entities = Entities::from_entities(entities, schema)
            .map_err(|e| format!("invalid entities: {e}"))?;
        Ok((request, entities))
    }
}

fn string_set<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> RestrictedExpression {
    RestrictedExpression::new_set(
        items
            .into_iter()
            .map(|s| RestrictedExpression::new_string(s.as_ref().to_string())),
    )
}

fn non_empty(what: &str, id: &str) -> Result<(), String> {
    if id.is_empty() {
        Err(format!("{what} is empty"))
    } else {
        Ok(())
    }
}

/// Push the resource entity, with all its ancestors as direct parents (so
/// the store needs no entity for them and no transitive closure work);
/// return the resource uid. Checks that the action applies to the resource
/// type: in release builds the request is not checked against the schema.
fn resource_entity(
    action: Action,
    r: &Resource,
    out: &mut Vec<Entity>,
) -> Result<EntityUid, String> {
    let n = names();
    let applies = match r {
        Resource::Patient { .. } => matches!(action, Action::SearchPatients),
        Resource::Dossier { .. } => matches!(
            action,
            Action::ViewDossier
                | Action::ViewImages
                | Action::DownloadDicom
                | Action::OpenDossierByNumber
        ),
        Resource::Report { .. } => matches!(action, Action::ViewReport),
        Resource::Study { .. } | Resource::Series { .. } => {
            matches!(action, Action::ViewImages | Action::DownloadDicom)
        }
    };
    if !applies {
        return Err(format!(
            "action {} does not apply to this resource type",
            action.as_str()
        ));
    }
    let (resource, parents): (EntityUid, Vec<EntityUid>) = match r {
        Resource::Patient { id } => {
            non_empty("patient id", id)?;
            (uid(&n.patient, id), vec![])
        }
        Resource::Dossier { id, patient_id } => {
            non_empty("dossier id", id)?;
            non_empty("patient id", patient_id)?;
            (uid(&n.dossier, id), vec![uid(&n.patient, patient_id)])
        }
        Resource::Report { id, dossier_id } => {
            non_empty("report id", id)?;
            non_empty("dossier id", dossier_id)?;
            (uid(&n.report, id), vec![uid(&n.dossier, dossier_id)])
        }
        Resource::Study { uid: s, dossier_id } => {
            non_empty("study uid", s)?;
            non_empty("dossier id", dossier_id)?;
            (uid(&n.study, s), vec![uid(&n.dossier, dossier_id)])
        }
        Resource::Series {
            uid: se,
            study_uid,
            dossier_id,
        } => {
            non_empty("series uid", se)?;
            non_empty("study uid", study_uid)?;
            non_empty("dossier id", dossier_id)?;
            (
                uid(&n.series, se),
                vec![uid(&n.study, study_uid), uid(&n.dossier, dossier_id)],
            )
        }
    };
    out.push(Entity::new_no_attrs(
        resource.clone(),
        parents.into_iter().collect(),
    ));
    Ok(resource)
}

/// Load, validate and (optionally) test a directory into a snapshot.
pub(crate) fn build_snapshot(
    dir: &Path,
    generation: u64,
    run_tests: bool,
) -> Result<(PolicySnapshot, TestReport, Vec<Problem>), Vec<Problem>> {
    let parsed = load::read_dir(dir)?;
    let snapshot = PolicySnapshot {
        generation,
        fingerprint: parsed.fingerprint,
        schema: parsed.schema,
        policies: parsed.policies,
        policy_files: parsed.policy_files,
        groups: parsed.groups,
        authorizer: Authorizer::new(),
        principals: RwLock::new(HashMap::new()),
    };
    let report = if run_tests {
        testcases::run(&parsed.tests, |r| snapshot.decide(r))
    } else {
        TestReport::default()
    };
    if !report.failures.is_empty() {
        return Err(report.failures);
    }
    Ok((snapshot, report, parsed.warnings))
}

// === impl Engine ===

/// The policy engine shared by the whole proxy. Cheap to clone (an `Arc`);
/// `Send + Sync`.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    current: ArcSwap<PolicySnapshot>,
    /// Serializes reloads (file watch and SIGHUP may race).
    reload_lock: Mutex<()>,
    reloaded: AtomicU64,
    unchanged: AtomicU64,
    rejected: AtomicU64,
}

/// What a reload did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// A new, fully valid set is in force.
    Reloaded {
        generation: u64,
        policies: usize,
        tests_passed: usize,
    },
    /// The files are byte-for-byte what is already in force; nothing changed.
    Unchanged { generation: u64 },
    /// The new set was refused; the set of `generation` stays in force.
    Rejected {
        generation: u64,
        problems: Vec<Problem>,
    },
}

impl ReloadOutcome {
    /// `false` only for a refused set.
    pub fn is_ok(&self) -> bool {
        !matches!(self, ReloadOutcome::Rejected { .. })
    }
}

/// Reload counters since the engine was loaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReloadStats {
    pub reloaded: u64,
    pub unchanged: u64,
    pub rejected: u64,
}

impl Engine {
    /// Load a policy directory: parse, validate strictly against the schema,
    /// and run its test cases. Any problem refuses the whole directory.
    pub fn load(dir: impl AsRef<Path>) -> Result<Engine, LoadError> {
        let dir = dir.as_ref().to_path_buf();
        let (snapshot, _, _) = build_snapshot(&dir, 1, true).map_err(|problems| LoadError {
            dir: dir.clone(),
            problems,
        })?;
        Ok(Engine {
            inner: Arc::new(Inner {
                dir,
                current: ArcSwap::from_pointee(snapshot),
                reload_lock: Mutex::new(()),
                reloaded: AtomicU64::new(0),
                unchanged: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
            }),
        })
    }

    /// Decide one request against the set in force.
    pub fn decide(&self, req: &AccessRequest) -> Decision {
        self.inner.current.load().decide(req)
    }

    /// The set in force, to make several decisions against one consistent set.
    pub fn snapshot(&self) -> Arc<PolicySnapshot> {
        self.inner.current.load_full()
    }

    /// Whether the professional belongs to `group` in the set in force
    /// (asked on every viewer request: no copy of the set's handle).
    pub fn in_group(&self, group: &str, p: &espace_ps_identity::Professional) -> bool {
        self.inner.current.load().in_group(group, p)
    }

    /// Generation of the set in force; changes on each successful reload.
    pub fn generation(&self) -> u64 {
        self.inner.current.load().generation
    }

    /// The policy directory this engine reads.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Reload counters since [`Engine::load`].
    pub fn reload_stats(&self) -> ReloadStats {
        ReloadStats {
            reloaded: self.inner.reloaded.load(Ordering::Relaxed),
            unchanged: self.inner.unchanged.load(Ordering::Relaxed),
            rejected: self.inner.rejected.load(Ordering::Relaxed),
        }
    }

    /// Re-read the directory. Only a fully valid set (parsed, strictly
    /// validated, every test case passing) replaces the one in force, in one
    /// atomic swap; a bad set is refused, logged and counted, and the last
    /// good set stays.
    pub fn reload(&self) -> ReloadOutcome {
        let _guard = self.inner.reload_lock.lock();
        let current = self.inner.current.load_full();
        let next_generation = current.generation + 1;
        let outcome = match build_snapshot(&self.inner.dir, next_generation, true) {
            Ok((snapshot, _, _)) if snapshot.fingerprint == current.fingerprint => {
                self.inner.unchanged.fetch_add(1, Ordering::Relaxed);
                ReloadOutcome::Unchanged {
                    generation: current.generation,
                }
            }
            Ok((snapshot, report, _)) => {
                let policies = snapshot.policy_files.len();
                self.inner.current.store(Arc::new(snapshot));
                self.inner.reloaded.fetch_add(1, Ordering::Relaxed);
                ReloadOutcome::Reloaded {
                    generation: next_generation,
                    policies,
                    tests_passed: report.passed,
                }
            }
            Err(problems) => {
                self.inner.rejected.fetch_add(1, Ordering::Relaxed);
                ReloadOutcome::Rejected {
                    generation: current.generation,
                    problems,
                }
            }
        };
        match &outcome {
            ReloadOutcome::Reloaded {
                generation,
                policies,
                tests_passed,
            } => tracing::info!(
                dir = %self.inner.dir.display(),
                generation,
                policies,
                tests_passed,
                "policy set reloaded"
            ),
            ReloadOutcome::Unchanged { generation } => tracing::debug!(
                dir = %self.inner.dir.display(),
                generation,
                "policy set unchanged"
            ),
            ReloadOutcome::Rejected {
                generation,
                problems,
            } => {
                for p in problems {
                    tracing::warn!(problem = %p, "policy problem");
                }
                tracing::warn!(
                    dir = %self.inner.dir.display(),
                    generation,
                    problems = problems.len(),
                    "policy set refused; the previous set stays in force"
                );
            }
        }
        outcome
    }
}
