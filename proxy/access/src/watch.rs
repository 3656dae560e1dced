//! Reload the policy set when its files change.
//!
//! A background thread receives file-system events for the policy
//! directory (recursively, minus `viewers/` and hidden files), waits until
//! they stop for the debounce delay (an editor's save is several events),
//! then calls [`Engine::reload`] and hands the outcome to a callback. The
//! proxy uses the callback for its logs and Prometheus counters; SIGHUP is
//! the proxy's to catch, and it calls [`Engine::reload`] directly.

use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};

use crate::engine::{Engine, ReloadOutcome};

/// A failure to start watching.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot watch policy directory {dir}: {source}")]
    StartWatching {
        dir: std::path::PathBuf,
        #[source]
        source: notify::Error,
    },
    #[error("cannot start the policy watch thread: {0}")]
    SpawnThread(#[source] std::io::Error),
}

/// Watches a policy directory while it lives; dropping it stops the watch
/// (after the reload in progress, if any).
pub struct PolicyWatcher {
    watcher: Option<notify::RecommendedWatcher>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for PolicyWatcher {
    fn drop(&mut self) {
        // Dropping the watcher drops the event sender, which ends the thread.
        self.watcher.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Engine {
    /// Watch the policy directory and reload after changes settle for
    /// `debounce`; `on_reload` receives each outcome (reloaded, unchanged or
    /// rejected).
    pub fn watch<F>(
        &self,
        debounce: Duration,
        mut on_reload: F,
    ) -> Result<PolicyWatcher, WatchError>
    where
        F: FnMut(ReloadOutcome) + Send + 'static,
    {
        let dir = self.dir().to_path_buf();
        let root = std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone());
        let (tx, rx) = mpsc::channel::<()>();
        let filter_root = root.clone();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let relevant = match &event {
                    Ok(ev) => {
                        !ev.kind.is_access()
                            && ev.paths.iter().any(|p| is_relevant(&filter_root, p))
                    }
                    // An error from the watcher: reload to be safe.
                    Err(_) => true,
                };
                if relevant {
                    let _ = tx.send(());
                }
            })
            .map_err(|source| WatchError::StartWatching {
                dir: dir.clone(),
                source,
            })?;
        watcher
            .watch(&root, RecursiveMode::Recursive)
            .map_err(|source| WatchError::StartWatching {
                dir: dir.clone(),
                source,
            })?;

        let engine = self.clone();
        let thread = std::thread::Builder::new()
            .name("policy-watch".into())
            .spawn(move || {
                // Ends when the sender (inside the watcher) is dropped.
                while rx.recv().is_ok() {
                    loop {
                        match rx.recv_timeout(debounce) {
                            Ok(()) => continue,
                            Err(mpsc::RecvTimeoutError::Timeout) => break,
                            Err(mpsc::RecvTimeoutError::Disconnected) => return,
                        }
                    }
                    on_reload(engine.reload());
                }
            })
            .map_err(WatchError::SpawnThread)?;
        Ok(PolicyWatcher {
            watcher: Some(watcher),
            thread: Some(thread),
        })
    }
}

/// Events for files the loader reads: not under `viewers/`, not hidden
/// (editor swap files), not the directory root itself.
fn is_relevant(root: &Path, path: &Path) -> bool {
    let rel = match path.strip_prefix(root) {
        Ok(rel) => rel,
        // Paths may come un-canonicalized; be conservative.
        Err(_) => return true,
    };
    let mut components = rel.components().peekable();
    if components.peek().is_none() {
        return false;
    }
    let mut first = true;
    for c in rel.components() {
        let name = c.as_os_str().to_string_lossy();
        if name.starts_with('.') || (first && name == "viewers") {
            return false;
        }
        first = false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::is_relevant;
    use std::path::Path;

    #[test]
    fn viewers_and_hidden_files_are_ignored() {
        let root = Path::new("/p");
        assert!(is_relevant(root, Path::new("/p/care-team.cedar")));
        assert!(is_relevant(root, Path::new("/p/tests/a.toml")));
        assert!(!is_relevant(root, Path::new("/p/viewers/orthanc.toml")));
        assert!(!is_relevant(root, Path::new("/p/.care-team.cedar.swp")));
        assert!(!is_relevant(root, Path::new("/p")));
    }
}
