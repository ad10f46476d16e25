//! Watches the config file and calls back when its contents change
//! (`server.watch_config`). Control path only.
//!
//! A Kubernetes ConfigMap volume never rewrites the file: kubelet writes the
//! new data into a fresh timestamped directory and renames a `..data`
//! symlink over the old one, and the mounted name is a symlink through
//! `..data`. No SIGHUP is sent and the file's own inode never changes, so
//! the directory holding the configured path is watched (inotify through
//! the `notify` crate), not the file. Events are debounced (an editor or
//! kubelet makes several in a row), and the file is read again: only new
//! contents call back, so events for other files in the directory, or our
//! own reads, reload nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::event::{AccessKind, AccessMode, EventKind};
use notify::{RecursiveMode, Watcher};
use tokio_util::sync::CancellationToken;

/// Quiet time after the last event before the file is read: long enough to
/// cover an editor's write-rename-chmod and kubelet's swap, short enough
/// that an edit applies at once.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// A registered watch of one config file's directory.
pub struct ConfigWatch {
    path: PathBuf,
    dir: PathBuf,
    /// Kept alive: dropping it ends the watch (and notify's thread).
    _watcher: notify::RecommendedWatcher,
    events: tokio::sync::mpsc::UnboundedReceiver<notify::Result<notify::Event>>,
    /// The contents last seen (`None`: unreadable).
    last: Option<Vec<u8>>,
}

impl ConfigWatch {
    /// Registers the watch now, so that any change made after this returns
    /// is seen. `None` (logged) when the directory cannot be watched:
    /// SIGHUP still reloads.
    pub fn new(path: PathBuf) -> Option<ConfigWatch> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let (tx, events) = tokio::sync::mpsc::unbounded_channel();
        // notify calls this on its own thread; an unbounded send never blocks it.
        let watcher = notify::recommended_watcher(move |event| {
            let _ = tx.send(event);
        });
        let mut watcher = match watcher {
            Ok(w) => w,
            Err(e) => return cannot_watch(&dir, &e),
        };
        if let Err(e) = watcher.watch(&dir, RecursiveMode::NonRecursive) {
            return cannot_watch(&dir, &e);
        }
        tracing::info!(dir = %dir.display(), file = %path.display(), "watching the config file for changes");
        let last = std::fs::read(&path).ok();
        Some(ConfigWatch {
            path,
            dir,
            _watcher: watcher,
            events,
            last,
        })
    }

    /// Until `shutdown`: calls `changed` once per debounced change of the
    /// file's contents (a file that cannot be read counts as a change too,
    /// so the reload reports it).
    pub async fn run(mut self, shutdown: CancellationToken, mut changed: impl FnMut()) {
        loop {
            let event = tokio::select! {
                _ = shutdown.cancelled() => return,
                e = self.events.recv() => e,
            };
            match event {
                None => return,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, dir = %self.dir.display(), "config watch error");
                    continue;
                }
                Some(Ok(e)) if !relevant(&e.kind) => continue,
                Some(Ok(_)) => {}
            }
            // Debounce: wait until DEBOUNCE passes without another event.
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(DEBOUNCE) => break,
                    e = self.events.recv() => if e.is_none() { return },
                }
            }
            let now = std::fs::read(&self.path).ok();
            if now != self.last {
                self.last = now;
                changed();
            }
        }
    }
}

/// Reads (opening, reading, closing without a write) change nothing; our
/// own read of the file after an event must not start another round.
fn relevant(kind: &EventKind) -> bool {
    !matches!(kind, EventKind::Access(a) if *a != AccessKind::Close(AccessMode::Write))
}

fn cannot_watch(dir: &Path, e: &notify::Error) -> Option<ConfigWatch> {
    tracing::warn!(
        error = %e,
        dir = %dir.display(),
        "cannot watch the config directory (server.watch_config); SIGHUP still reloads"
    );
    None
}
