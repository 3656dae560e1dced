//! The keys of the gate's per-session caches, and what it keeps of one
//! session on one study.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};

use espace_ps_access::Action;

/// One session and one study, as cached: the policy generation and the
/// grant epoch are part of the key, so a reload or a new grant is never
/// answered from the cache.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) struct StudyKey {
    pub(super) session: Arc<str>,
    pub(super) study: String,
    pub(super) generation: u64,
    pub(super) grant_epoch: u64,
}

/// A [`StudyKey`] borrowed, to look one up without allocating: its fields
/// hash as the key's do (`&str` as `String` and `Arc<str>`).
#[derive(Hash)]
pub(super) struct StudyKeyRef<'a> {
    pub(super) session: &'a str,
    pub(super) study: &'a str,
    pub(super) generation: u64,
    pub(super) grant_epoch: u64,
}

impl quick_cache::Equivalent<StudyKey> for StudyKeyRef<'_> {
    fn equivalent(&self, key: &StudyKey) -> bool {
        *self.session == *key.session
            && self.study == key.study
            && self.generation == key.generation
            && self.grant_epoch == key.grant_epoch
    }
}

/// A cached decision of one action (the key of what it enriched).
#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) struct DecisionKey {
    pub(super) study: StudyKey,
    pub(super) action: Action,
}

/// What is known of one session on one study, kept as one cache entry: a
/// viewer asks for every frame of a study, and each frame then costs one
/// lookup (view, download, and whether the view is on the trail), not three.
#[derive(Default)]
pub(super) struct StudyEntry {
    pub(super) view: OnceLock<bool>,
    pub(super) download: OnceLock<bool>,
    /// The end of the audit window of this session's image views of this
    /// study (milliseconds since the [`ViewWindow`](super::window::ViewWindow)'s epoch) once known; 0 before.
    /// The window's own cache stays the authority: this only spares its lookup.
    pub(super) view_audited_until: AtomicU64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::viewer::cache::TtlCache;
    use std::time::Duration;

    /// A borrowed key that hashed or compared otherwise than its owned key
    /// would miss every time: each frame would decide and resolve again.
    #[test]
    fn borrowed_study_keys_find_the_entries_of_owned_keys() {
        let decisions: TtlCache<StudyKey, u32> = TtlCache::new(100, Duration::from_secs(60));
        let session: Arc<str> = "digest-of-a-session".into();
        decisions.insert(
            StudyKey {
                session: session.clone(),
                study: "1.2.3".into(),
                generation: 7,
                grant_epoch: 2,
            },
            1,
        );
        let borrowed = |study, generation, grant_epoch| StudyKeyRef {
            session: &session,
            study,
            generation,
            grant_epoch,
        };
        assert_eq!(decisions.get(&borrowed("1.2.3", 7, 2)), Some(1));
        assert_eq!(decisions.get(&borrowed("1.2.4", 7, 2)), None);
        assert_eq!(decisions.get(&borrowed("1.2.3", 8, 2)), None, "a reload");
        assert_eq!(decisions.get(&borrowed("1.2.3", 7, 3)), None, "a grant");
        let other = StudyKeyRef {
            session: "digest-of-another",
            ..borrowed("1.2.3", 7, 2)
        };
        assert_eq!(decisions.get(&other), None);
    }
}
