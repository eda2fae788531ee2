//! The one place that knows where things live inside a store directory.
//! See the module documentation of [`crate::store`] for the picture.

use std::fs;
use std::path::{Path, PathBuf};

use crate::digest::{ContentDigest, StepKey};

use super::error::{CHECK_STORE, StoreError, io_err};

/// Name of the file at the root that holds the layout version.
pub(crate) const FORMAT_FILE: &str = "STORE_FORMAT";
/// Name of the manifest inside an entry directory.
pub(crate) const MANIFEST_FILE: &str = "manifest.json";
/// Name of the output tree inside an entry (and staging) directory.
pub(crate) const OUT_DIR: &str = "out";
/// Suffix of a staging-area directory holding an entry being replaced.
pub(crate) const RETIRED_SUFFIX: &str = "retired";

/// Paths of a store rooted at one directory.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    root: PathBuf,
}

impl Layout {
    pub(crate) fn new(root: &Path) -> Self {
        Self {
            root: root.to_path_buf(),
        }
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn format_file(&self) -> PathBuf {
        self.root.join(FORMAT_FILE)
    }

    pub(crate) fn entries_dir(&self) -> PathBuf {
        self.root.join("entries")
    }

    pub(crate) fn staging_dir(&self) -> PathBuf {
        self.root.join("staging")
    }

    pub(crate) fn scratch_root(&self) -> PathBuf {
        self.root.join("scratch")
    }

    pub(crate) fn locks_dir(&self) -> PathBuf {
        self.root.join("locks")
    }

    pub(crate) fn quarantine_dir(&self) -> PathBuf {
        self.root.join("quarantine")
    }

    /// Creates every top-level directory (idempotent).
    pub(crate) fn create_dirs(&self) -> Result<(), StoreError> {
        for dir in [
            self.entries_dir(),
            self.staging_dir(),
            self.scratch_root(),
            self.locks_dir(),
            self.quarantine_dir(),
        ] {
            fs::create_dir_all(&dir).map_err(io_err("creating", &dir, CHECK_STORE))?;
        }
        Ok(())
    }

    pub(crate) fn entry_dir(&self, key: &StepKey) -> PathBuf {
        self.entries_dir().join(key.to_hex())
    }

    pub(crate) fn scratch_dir(&self, key: &StepKey) -> PathBuf {
        self.scratch_root().join(key.to_hex())
    }

    /// `<executor>/<group>/`: where a cluster executor's jobs write their logs
    /// (e.g. `slurm/<experiment>/`), on the store's filesystem so that the
    /// submitting host reads what a node wrote. `group` must be one path component.
    pub(crate) fn job_logs_dir(&self, executor: &str, group: &str) -> PathBuf {
        self.root.join(executor).join(group)
    }

    /// `<executor>/<group>/<step>.<key12>.<job>.log`: the log of one job.
    pub(crate) fn job_log(
        &self,
        executor: &str,
        group: &str,
        step: &str,
        key: &StepKey,
        job: &str,
    ) -> PathBuf {
        self.job_logs_dir(executor, group)
            .join(format!("{step}.{}.{job}.log", key.short()))
    }

    pub(crate) fn lock_file(&self, key: &StepKey) -> PathBuf {
        self.locks_dir().join(format!("{}.lock", key.to_hex()))
    }

    /// A fresh private directory name `staging/<key>.<pid>.<random>`.
    pub(crate) fn new_staging(&self, key: &StepKey) -> PathBuf {
        self.staging_dir().join(format!(
            "{}.{}.{:016x}",
            key.to_hex(),
            std::process::id(),
            rand::random::<u64>()
        ))
    }

    /// Where an entry that is being replaced waits until it is deleted:
    /// `staging/<key>.<pid>.<random>.retired`, so the same sweep cleans it up.
    pub(crate) fn new_retired(&self, key: &StepKey) -> PathBuf {
        let mut path = self.new_staging(key).into_os_string();
        path.push(format!(".{RETIRED_SUFFIX}"));
        PathBuf::from(path)
    }

    /// `quarantine/<key>.<UTC timestamp with nanoseconds>`.
    pub(crate) fn new_quarantine(&self, key: &StepKey) -> PathBuf {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.9fZ");
        self.quarantine_dir()
            .join(format!("{}.{stamp}", key.to_hex()))
    }
}

/// The object of an entry's manifest in a remote cache, relative to its prefix:
/// `manifests/<key-hex>.json`. Uploaded last, so that it exists only once every
/// object it lists does: it is the entry's commit marker.
pub(crate) fn remote_manifest(key: &StepKey) -> String {
    format!("manifests/{}.json", key.to_hex())
}

/// The object of a file's content in a remote cache: `objects/<blake3-hex>`.
/// Named by content, so two uploads of one name carry the same bytes and
/// entries share the files they have in common.
pub(crate) fn remote_object(digest: &ContentDigest) -> String {
    format!("objects/{}", digest.to_hex())
}

/// The key a `staging/`, `quarantine/` or `scratch/` directory name starts with.
pub(crate) fn key_of_name(name: &str) -> Option<StepKey> {
    name.get(..64)?.parse().ok()
}

/// The key an `entries/` or `locks/` name stands for (exact names only).
pub(crate) fn key_of_exact_name(name: &str, suffix: &str) -> Option<StepKey> {
    let hex = name.strip_suffix(suffix)?;
    if hex.len() != 64 {
        return None;
    }
    hex.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_to_their_key() {
        let key = StepKey([7; 32]);
        let layout = Layout::new(Path::new("/s"));
        let staging = layout.new_staging(&key);
        let name = staging.file_name().unwrap().to_str().unwrap();
        assert_eq!(key_of_name(name), Some(key));
        assert!(name.contains(&format!(".{}.", std::process::id())));
        let retired = layout.new_retired(&key);
        assert!(retired.to_str().unwrap().ends_with(".retired"));
        assert_eq!(layout.lock_file(&key).file_name().unwrap().len(), 69);
        assert_eq!(
            key_of_exact_name(&format!("{}.lock", key.to_hex()), ".lock"),
            Some(key)
        );
        assert_eq!(key_of_exact_name(&key.to_hex(), ""), Some(key));
        assert_eq!(key_of_exact_name("abc", ""), None);
        assert_eq!(key_of_name("short"), None);
    }
}
