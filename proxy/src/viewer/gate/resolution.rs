//! Which studies a resource of the viewer belongs to: asked of the archive
//! through a [`StudyResolver`] (never taken from the client's parent ids),
//! and kept for [`RESOLVE_TTL`].

use std::sync::Arc;
use std::time::Duration;

use espace_ps_access::viewer::{Candidate, IdKind, Level, ResourceRef};

use super::CACHE_CAP;
use crate::viewer::cache::TtlCache;
use crate::viewer::resolver::{ResolveError, StudyResolver};

/// How long what the archive said about an id is kept.
const RESOLVE_TTL: Duration = Duration::from_secs(300);

/// What a resource id resolves from: (level, kind, id).
#[derive(Clone, PartialEq, Eq, Hash)]
struct ResolvedKey {
    level: Level,
    kind: IdKind,
    id: String,
}

/// A [`ResolvedKey`] borrowed (hashes as the key does).
#[derive(Hash)]
struct ResolvedKeyRef<'a> {
    level: Level,
    kind: IdKind,
    id: &'a str,
}

impl quick_cache::Equivalent<ResolvedKey> for ResolvedKeyRef<'_> {
    fn equivalent(&self, key: &ResolvedKey) -> bool {
        self.level == key.level && self.kind == key.kind && self.id == key.id
    }
}

/// The studies of viewer resources, through the archive's resolver.
pub(super) struct Studies {
    resolver: Arc<dyn StudyResolver>,
    /// (level, kind, id) → the StudyInstanceUIDs it belongs to.
    cache: TtlCache<ResolvedKey, Arc<Vec<String>>>,
}

impl Studies {
    pub(super) fn new(resolver: Arc<dyn StudyResolver>) -> Studies {
        Studies {
            resolver,
            cache: TtlCache::new(CACHE_CAP, RESOLVE_TTL),
        }
    }

    /// The archive's resolver, for what is not cached here.
    pub(super) fn resolver(&self) -> &dyn StudyResolver {
        &*self.resolver
    }

    /// Every study a candidate touches; unscoped, system-wide and
    /// body-listed resources cannot be checked here and are refused.
    pub(super) async fn of_candidate(
        &self,
        c: &Candidate,
    ) -> Result<Arc<Vec<String>>, ResolveError> {
        let mut out = Vec::new();
        // Listed resources (`/tools/create-archive?resources=…`) are studies,
        // whether one id or several is listed.
        let level = if c.level == Level::Listed {
            Level::Study
        } else {
            c.level
        };
        match &c.resource {
            // Sorted and deduplicated already, shared with the cache.
            ResourceRef::One { kind, id } => return self.of_resource(level, *kind, id).await,
            ResourceRef::List { kind, ids } => {
                for id in ids {
                    out.extend(self.of_resource(level, *kind, id).await?.iter().cloned());
                }
            }
            ResourceRef::None => {}
            ResourceRef::System | ResourceRef::Unscoped { .. } => {
                return Err(ResolveError::Unresolvable("unscoped search"))
            }
            ResourceRef::Body { .. } => return Err(ResolveError::Unresolvable("ids in the body")),
        }
        out.sort();
        out.dedup();
        Ok(Arc::new(out))
    }

    /// The StudyInstanceUIDs one resource really belongs to.
    pub(super) async fn of_resource(
        &self,
        level: Level,
        kind: IdKind,
        id: &str,
    ) -> Result<Arc<Vec<String>>, ResolveError> {
        if let Some(hit) = self.cache.get(&ResolvedKeyRef { level, kind, id }) {
            return Ok(hit);
        }
        let mut studies = match (kind, level) {
            (IdKind::DicomUid, Level::Study) => vec![id.to_owned()],
            (IdKind::DicomUid, Level::Series) => vec![self.resolver.study_of_series(id).await?],
            (IdKind::DicomUid, Level::Instance) => {
                vec![self.resolver.study_of_instance(id).await?]
            }
            (IdKind::DicomUid, _) => return Err(ResolveError::Unresolvable("level")),
            (IdKind::OrthancId, _) => self.resolver.studies_of_archive_id(level, id).await?,
            (IdKind::PatientId, _) => return Err(ResolveError::Unresolvable("patient id")),
        };
        studies.sort();
        studies.dedup();
        let studies = Arc::new(studies);
        // The parents of a study, series or instance never change, but a
        // patient gains studies: a cached list would let a new study of the
        // patient through undecided (its id listed by /patients/{id}).
        if level != Level::Patient {
            let key = ResolvedKey {
                level,
                kind,
                id: id.to_owned(),
            };
            self.cache.insert(key, studies.clone());
        }
        Ok(studies)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A borrowed key that hashed or compared otherwise than its owned key
    /// would miss every time: each frame would resolve again.
    #[test]
    fn borrowed_resolved_keys_find_the_entries_of_owned_keys() {
        let resolved: TtlCache<ResolvedKey, u32> = TtlCache::new(100, Duration::from_secs(60));
        resolved.insert(
            ResolvedKey {
                level: Level::Series,
                kind: IdKind::DicomUid,
                id: "1.2.3.4".into(),
            },
            2,
        );
        let look = |level, kind, id| resolved.get(&ResolvedKeyRef { level, kind, id });
        assert_eq!(look(Level::Series, IdKind::DicomUid, "1.2.3.4"), Some(2));
        assert_eq!(look(Level::Instance, IdKind::DicomUid, "1.2.3.4"), None);
        assert_eq!(look(Level::Series, IdKind::OrthancId, "1.2.3.4"), None);
        assert_eq!(look(Level::Series, IdKind::DicomUid, "1.2.3.5"), None);
    }
}
