//! Per-key locks: `locks/<key>.lock`, held with an OS advisory lock (flock).
//!
//! The kernel releases the lock when its holder dies, however it dies, so
//! there is no stale lock to detect or break: that is the stale-lock
//! recovery. The holder writes its pid, host and start time into the file so a
//! waiting process can say whom it is waiting for.
//!
//! Lock files may be deleted (by gc) while held. A process that opened the
//! old file and then got its lock checks, after locking, that the path still
//! names the file it locked, and starts over if not; so two processes never
//! both believe they hold one key.

use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::digest::StepKey;

use super::error::{CHECK_STORE, StoreError, io_err};
use super::layout::Layout;

/// Who holds a key's lock, as written by the holder into the lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    pub pid: u32,
    pub host: String,
    pub since: DateTime<Utc>,
}

/// A key is locked by someone else; what to tell the user while waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockWait {
    pub key: StepKey,
    pub lock_file: PathBuf,
    /// `None` when the holder has not written its details yet (or they are
    /// unreadable).
    pub holder: Option<LockHolder>,
}

impl fmt::Display for LockWait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.holder {
            Some(h) => write!(
                f,
                "waiting for step {} held by pid {} on host {} since {}",
                self.key.short(),
                h.pid,
                h.host,
                h.since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            None => write!(
                f,
                "waiting for step {} held by another process (lock file {})",
                self.key.short(),
                self.lock_file.display()
            ),
        }
    }
}

/// A held key lock; released when dropped.
#[derive(Debug)]
pub(crate) struct KeyLock {
    file: File,
    path: PathBuf,
}

impl KeyLock {
    /// Takes the lock without waiting; `Err(wait)` says who holds it.
    pub(crate) fn try_acquire(
        layout: &Layout,
        key: &StepKey,
        host: &str,
    ) -> Result<Result<KeyLock, LockWait>, StoreError> {
        let path = layout.lock_file(key);
        loop {
            let file = open_lock_file(&path)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    return Ok(Err(LockWait {
                        key: *key,
                        holder: read_holder(&path),
                        lock_file: path,
                    }));
                }
                Err(TryLockError::Error(e)) => {
                    return Err(io_err("locking", &path, LOCK_HINT)(e));
                }
            }
            if let Some(lock) = Self::confirm(file, &path, host)? {
                return Ok(Ok(lock));
            }
        }
    }

    /// Takes the lock, waiting as long as it takes. `on_wait` is called once,
    /// before blocking, if someone else holds it.
    pub(crate) fn acquire(
        layout: &Layout,
        key: &StepKey,
        host: &str,
        on_wait: impl FnOnce(&LockWait),
    ) -> Result<KeyLock, StoreError> {
        let mut on_wait = Some(on_wait);
        let path = layout.lock_file(key);
        loop {
            let file = open_lock_file(&path)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    if let Some(report) = on_wait.take() {
                        report(&LockWait {
                            key: *key,
                            holder: read_holder(&path),
                            lock_file: path.clone(),
                        });
                    }
                    file.lock()
                        .map_err(io_err("waiting for the lock", &path, LOCK_HINT))?;
                }
                Err(TryLockError::Error(e)) => {
                    return Err(io_err("locking", &path, LOCK_HINT)(e));
                }
            }
            if let Some(lock) = Self::confirm(file, &path, host)? {
                return Ok(lock);
            }
        }
    }

    /// After locking `file`: if `path` still names it, record ourselves as the
    /// holder; if gc deleted it meanwhile, return `None` so the caller retries.
    fn confirm(file: File, path: &Path, host: &str) -> Result<Option<KeyLock>, StoreError> {
        let ours = file
            .metadata()
            .map_err(io_err("reading metadata of", path, LOCK_HINT))?;
        match fs::metadata(path) {
            Ok(now) if now.dev() == ours.dev() && now.ino() == ours.ino() => {}
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err("reading metadata of", path, LOCK_HINT)(e)),
        }
        let holder = LockHolder {
            pid: std::process::id(),
            host: host.to_string(),
            since: Utc::now(),
        };
        // serde_json cannot fail on this struct; fall back to an empty record.
        let json = serde_json::to_vec(&holder).unwrap_or_default();
        file.set_len(0)
            .and_then(|_| file.write_all_at(&json, 0))
            .map_err(io_err("writing", path, LOCK_HINT))?;
        Ok(Some(KeyLock {
            file,
            path: path.to_path_buf(),
        }))
    }

    /// Deletes the lock file while still holding the lock (gc of a key that
    /// is gone). Waiters on the old file notice and retry on a fresh one.
    pub(crate) fn remove_file(self) -> Result<(), StoreError> {
        match fs::remove_file(&self.path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("removing", &self.path, LOCK_HINT)(e)),
        }
    }
}

impl Drop for KeyLock {
    fn drop(&mut self) {
        // Clear the holder record so the next waiter does not read ours; the
        // lock itself goes when the file is closed.
        let _ = self.file.set_len(0);
    }
}

const LOCK_HINT: &str =
    "the store needs a filesystem with working flock locks (local disk or NFSv4)";

fn open_lock_file(path: &Path) -> Result<File, StoreError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(io_err("opening", path, CHECK_STORE))
}

/// Best effort: a holder that has not written yet, or garbage, gives `None`.
fn read_holder(path: &Path) -> Option<LockHolder> {
    let text = fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_try_acquire_reports_the_holder_and_succeeds_after_release() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        layout.create_dirs().unwrap();
        let key = StepKey([3; 32]);
        let held = KeyLock::try_acquire(&layout, &key, "hostA")
            .unwrap()
            .unwrap();
        let wait = KeyLock::try_acquire(&layout, &key, "hostB")
            .unwrap()
            .unwrap_err();
        let holder = wait.holder.clone().unwrap();
        assert_eq!(holder.pid, std::process::id());
        assert_eq!(holder.host, "hostA");
        let message = wait.to_string();
        assert!(message.starts_with(&format!(
            "waiting for step {} held by pid {} on host hostA since ",
            key.short(),
            std::process::id()
        )));
        drop(held);
        assert!(
            KeyLock::try_acquire(&layout, &key, "hostB")
                .unwrap()
                .is_ok()
        );
    }

    #[test]
    fn removing_a_held_lock_file_does_not_let_two_holders_in() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        layout.create_dirs().unwrap();
        let key = StepKey([4; 32]);
        let first = KeyLock::try_acquire(&layout, &key, "h").unwrap().unwrap();
        let waiter = {
            let layout = layout.clone();
            std::thread::spawn(move || KeyLock::acquire(&layout, &key, "h", |_| {}).unwrap())
        };
        std::thread::sleep(std::time::Duration::from_millis(100));
        // gc deletes the file as the last thing before releasing. The waiter
        // wakes up holding a lock on a deleted file; unless it notices and
        // relocks the file now at the path, a newcomer would get in beside it.
        first.remove_file().unwrap();
        let second = waiter.join().unwrap();
        assert!(
            KeyLock::try_acquire(&layout, &key, "h").unwrap().is_err(),
            "a newcomer got the lock while the waiter holds it"
        );
        drop(second);
    }
}
