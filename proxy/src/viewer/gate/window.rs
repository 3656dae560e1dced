//! The audit window: a viewer asks for every frame of a study, and the
//! trail gets one image view (or one refused view) of a study per session
//! per [`AUDIT_WINDOW`], not one per frame.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::keys::StudyEntry;
use super::CACHE_CAP;
use crate::viewer::cache::TtlCache;

/// Image views of one study are audited once per session per this window.
pub const AUDIT_WINDOW: Duration = Duration::from_secs(600);

pub(super) struct ViewWindow {
    /// (session, study) → when the window of its audited image view
    /// opened (milliseconds since `epoch`); (session, "refused " + study)
    /// for a refused view.
    audited: TtlCache<(Arc<str>, String), u64>,
    /// The origin of the window's millisecond clock.
    epoch: Instant,
}

impl ViewWindow {
    pub(super) fn new() -> ViewWindow {
        ViewWindow {
            audited: TtlCache::new(CACHE_CAP, AUDIT_WINDOW),
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether an image view of this study by this session is on the trail
    /// within the current window.
    pub(super) fn view_on_trail(
        &self,
        entry: &StudyEntry,
        session_key: &Arc<str>,
        study: &str,
    ) -> bool {
        let now = self.now_ms();
        if now < entry.view_audited_until.load(Ordering::Relaxed) {
            return true;
        }
        let key = (session_key.clone(), study.to_owned());
        match self.audited.get(&key) {
            Some(opened) => {
                let until = opened.saturating_add(AUDIT_WINDOW.as_millis() as u64);
                entry.view_audited_until.store(until, Ordering::Relaxed);
                now < until
            }
            None => false,
        }
    }

    /// An image view's record is stored: its window opens.
    pub(super) fn view_recorded(&self, entry: &StudyEntry, session_key: &Arc<str>, study: &str) {
        let now = self.now_ms();
        self.audited
            .insert((session_key.clone(), study.to_owned()), now);
        entry.view_audited_until.store(
            now.saturating_add(AUDIT_WINDOW.as_millis() as u64),
            Ordering::Relaxed,
        );
    }

    /// Whether a refused view of this study by this session is on the
    /// trail within the current window.
    pub(super) fn refusal_on_trail(&self, session_key: &Arc<str>, study: &str) -> bool {
        self.audited.contains_key(&refusal_key(session_key, study))
    }

    /// A refused view was written to the trail (best effort): its window
    /// opens.
    pub(super) fn refusal_recorded(&self, session_key: &Arc<str>, study: &str) {
        self.audited
            .insert(refusal_key(session_key, study), self.now_ms());
    }
}

/// The window's key of a refused view (beside the study's own key for
/// its allowed views).
fn refusal_key(session_key: &Arc<str>, study: &str) -> (Arc<str>, String) {
    (session_key.clone(), format!("refused {study}"))
}
