//! `xp gc`: remove what no experiment needs any more.

use std::collections::HashSet;
use std::path::PathBuf;

use crate::digest::StepKey;

use super::error::StoreError;
use super::lock::KeyLock;
use super::publish::remove_tree;
use super::{Store, layout, list_names, tree_size};

/// What `gc` removed (or, with `dry_run`, would remove).
#[derive(Debug, Default)]
pub struct GcReport {
    pub dry_run: bool,
    /// Entries not in `keep`, with their size in bytes.
    pub removed_entries: Vec<(StepKey, u64)>,
    /// Entries not in `keep` left alone because another process held the key.
    pub skipped_locked: Vec<StepKey>,
    /// Staging directories of dead or finished processes.
    pub removed_staging: Vec<(PathBuf, u64)>,
    /// Scratch directories of keys not in `keep`.
    pub removed_scratch: Vec<(StepKey, u64)>,
    /// Quarantined entries (already reported when they were moved aside).
    pub removed_quarantine: Vec<(PathBuf, u64)>,
    /// Lock files of keys that have nothing else left in the store.
    pub removed_locks: u64,
    /// Total bytes freed.
    pub bytes_freed: u64,
}

impl Store {
    /// Removes entries and scratch directories of keys not in `keep`, stale
    /// staging directories, quarantined entries and orphaned lock files. Keys
    /// another process holds are skipped. With `dry_run`, only reports.
    pub fn gc(&self, keep: &HashSet<StepKey>, dry_run: bool) -> Result<GcReport, StoreError> {
        let mut report = GcReport {
            dry_run,
            removed_staging: self.sweep_staging(dry_run)?,
            ..GcReport::default()
        };

        for name in list_names(&self.layout.entries_dir())? {
            let Some(key) = layout::key_of_exact_name(&name, "") else {
                continue; // not a key: `verify` reports it, a human decides
            };
            if keep.contains(&key) {
                continue;
            }
            let Ok(lock) = KeyLock::try_acquire(&self.layout, &key, &self.host)? else {
                report.skipped_locked.push(key);
                continue;
            };
            let size = tree_size(&self.layout.entry_dir(&key))?;
            if !dry_run {
                self.remove_locked(&key)?;
            }
            drop(lock);
            report.removed_entries.push((key, size));
        }

        for name in list_names(&self.layout.scratch_root())? {
            let Some(key) = layout::key_of_exact_name(&name, "") else {
                continue;
            };
            if keep.contains(&key) {
                continue;
            }
            // A held key is being computed: its checkpoints are live.
            let Ok(lock) = KeyLock::try_acquire(&self.layout, &key, &self.host)? else {
                continue;
            };
            let dir = self.layout.scratch_dir(&key);
            let size = tree_size(&dir)?;
            if !dry_run {
                remove_tree(&dir)?;
            }
            drop(lock);
            report.removed_scratch.push((key, size));
        }

        let quarantine = self.layout.quarantine_dir();
        for name in list_names(&quarantine)? {
            let dir = quarantine.join(&name);
            let size = tree_size(&dir)?;
            if !dry_run {
                remove_tree(&dir)?;
            }
            report.removed_quarantine.push((dir, size));
        }

        if !dry_run {
            report.removed_locks = self.remove_orphan_locks()?;
        }

        report.bytes_freed = report.removed_entries.iter().map(|(_, s)| s).sum::<u64>()
            + report.removed_staging.iter().map(|(_, s)| s).sum::<u64>()
            + report.removed_scratch.iter().map(|(_, s)| s).sum::<u64>()
            + report
                .removed_quarantine
                .iter()
                .map(|(_, s)| s)
                .sum::<u64>();
        Ok(report)
    }

    /// Deletes lock files of free keys with no entry and no scratch directory.
    /// The file is deleted while locked; see `lock` for why that is safe.
    fn remove_orphan_locks(&self) -> Result<u64, StoreError> {
        let mut removed = 0;
        for name in list_names(&self.layout.locks_dir())? {
            let Some(key) = layout::key_of_exact_name(&name, ".lock") else {
                continue;
            };
            if self.layout.entry_dir(&key).exists() || self.layout.scratch_dir(&key).exists() {
                continue;
            }
            if let Ok(lock) = KeyLock::try_acquire(&self.layout, &key, &self.host)? {
                // Re-check under the lock: it may have been published meanwhile.
                if !self.layout.entry_dir(&key).exists() && !self.layout.scratch_dir(&key).exists()
                {
                    lock.remove_file()?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }
}
