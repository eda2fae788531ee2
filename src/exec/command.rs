//! The command line that runs one step of this experiment in another process:
//! `xp exec-step` of the same file with the same overrides, so the child
//! recomputes the same keys. Slurm jobs run it on a node; `xp run --jobs N`
//! runs it as a child process.

use std::path::{Path, PathBuf};

use crate::backend::{BackendKind, Precision};
use crate::digest::StepKey;
use crate::store::Attempt;

/// How another process runs a step of this experiment: every path absolute, so
/// it does not depend on the directory it starts in.
#[derive(Clone, Debug)]
pub struct StepCommand {
    /// The `xp` binary (the running one: `std::env::current_exe()`).
    pub xp: PathBuf,
    /// The experiment file.
    pub file: PathBuf,
    /// `--set PATH=VALUE` given to the running `xp`, in order: the child
    /// recomputes the same keys only with the same overrides.
    pub overrides: Vec<String>,
    /// `--backend` given to the running `xp`.
    pub backend: Option<BackendKind>,
    /// `--precision` given to the running `xp`.
    pub precision: Option<Precision>,
    /// The remote cache of the running `xp` (`s3://…`): the child reads
    /// through to it, and with `push` uploads what it executes.
    pub remote: Option<String>,
    pub push: bool,
    /// The store the child uses when not the parent's: a Slurm node's own
    /// (`--node-cache-dir`), which it fills from the remote cache.
    pub node_store: Option<PathBuf>,
}

impl StepCommand {
    /// The experiment file's directory, where children start.
    pub fn dir(&self) -> &Path {
        self.file.parent().unwrap_or(Path::new("/"))
    }

    /// The arguments after the binary: `exec-step FILE --step STEP --expect-key
    /// KEY --cache-dir STORE [--remote URL] [--push] [--set ...] [--backend ...]
    /// [--precision ...] [--rerun]
    /// [--earlier-attempts JSON]`. `earlier` are the step's killed attempts, for
    /// its manifest: a few short records, so they travel as one JSON argument
    /// rather than in a file someone must clean up.
    pub fn args(
        &self,
        store: &Path,
        step: &str,
        key: StepKey,
        forced: bool,
        earlier: &[Attempt],
    ) -> Vec<String> {
        let mut words = vec![
            "exec-step".to_string(),
            self.file.to_string_lossy().into_owned(),
            "--step".into(),
            step.to_string(),
            "--expect-key".into(),
            key.to_hex(),
            "--cache-dir".into(),
            self.node_store
                .as_deref()
                .unwrap_or(store)
                .to_string_lossy()
                .into_owned(),
        ];
        if let Some(remote) = &self.remote {
            words.push("--remote".into());
            words.push(remote.clone());
        }
        if self.push {
            words.push("--push".into());
        }
        for set in &self.overrides {
            words.push("--set".into());
            words.push(set.clone());
        }
        if let Some(backend) = self.backend {
            words.push("--backend".into());
            words.push(backend.as_str().into());
        }
        if let Some(precision) = self.precision {
            words.push("--precision".into());
            words.push(precision.as_str().into());
        }
        if forced {
            words.push("--rerun".into());
        }
        if !earlier.is_empty() {
            words.push("--earlier-attempts".into());
            words.push(serde_json::to_string(earlier).expect("attempts serialise"));
        }
        words
    }
}
