//! `xp verify`: re-hash every file of every entry.

use super::check::{self, Checked, Corruption, Depth, HashStats};
use super::error::StoreError;
use super::lock::KeyLock;
use super::{BrokenEntry, Store, layout, list_names};

/// What `verify` should do besides reporting.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VerifyOptions {
    /// Move corrupt entries to `quarantine/` (skipped for keys another
    /// process holds at that moment).
    pub quarantine: bool,
}

/// What `verify` found.
#[derive(Debug, Default)]
pub struct VerifyReport {
    /// Entries checked (sound or corrupt).
    pub entries: u64,
    /// Output files found and examined.
    pub files: u64,
    pub bytes_hashed: u64,
    /// Corrupt entries with their problems (missing, changed, unexpected
    /// files, bad manifests); `quarantined_to` is set for those moved aside.
    pub corrupt: Vec<Corruption>,
    /// Directories under `entries/` whose name is not a key.
    pub unrecognized: Vec<BrokenEntry>,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.corrupt.is_empty() && self.unrecognized.is_empty()
    }
}

impl Store {
    /// Re-hashes every file of every entry, ignoring mtimes, and reports
    /// corrupt, missing and unexpected files per entry.
    pub fn verify(&self, options: VerifyOptions) -> Result<VerifyReport, StoreError> {
        let mut report = VerifyReport::default();
        let mut stats = HashStats::default();
        let dir = self.layout.entries_dir();
        for name in list_names(&dir)? {
            let Some(key) = layout::key_of_exact_name(&name, "") else {
                report.unrecognized.push(BrokenEntry {
                    dir: dir.join(&name),
                    reason: "the directory name is not a step key".into(),
                });
                continue;
            };
            let problems = match check::check_entry(&self.layout, &key, Depth::Full, &mut stats)? {
                // Removed by someone else since we listed it.
                Checked::Absent => continue,
                Checked::Sound(_) => {
                    report.entries += 1;
                    continue;
                }
                Checked::Corrupt(problems) => problems,
            };
            report.entries += 1;
            let mut quarantined_to = None;
            if options.quarantine
                && let Ok(lock) = KeyLock::try_acquire(&self.layout, &key, &self.host)?
            {
                // Check again under the lock: a rerun may have replaced it.
                let mut again = HashStats::default();
                if let Checked::Corrupt(_) =
                    check::check_entry(&self.layout, &key, Depth::Full, &mut again)?
                {
                    quarantined_to = check::quarantine(&self.layout, &key)?;
                }
                drop(lock);
            }
            report.corrupt.push(Corruption {
                key,
                problems,
                quarantined_to,
            });
        }
        report.files = stats.files;
        report.bytes_hashed = stats.bytes_hashed;
        Ok(report)
    }
}
