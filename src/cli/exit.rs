//! Exit codes and the top-level error: each failure maps to one code and a
//! message written for a person.

use crate::backend::BackendError;
use crate::exec::ExecError;
use crate::plan::PlanError;
use crate::spec::SpecError;
use crate::store::StoreError;

pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  one or more steps failed (the others ran; dependents were skipped)
  2  invalid command line or experiment file, or its backend is not in this xp
  3  the store has corrupt entries (xp verify)
  4  a source is not available (offline, not in the HF cache, missing file)
  5  the store cannot be used (permissions, disk full, newer format)
  6  xp plan --since REV: some step's key differs from REV (something to rerun);
     0 when nothing is invalidated
  7  the remote cache cannot be used (unreachable, refused the credentials, or
     holds an entry that fails its check)";

/// How a successful command ends (some "successes" still exit non-zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Success {
    Ok,
    StepsFailed,
    CorruptEntries,
    /// `xp plan --since`: some step's key differs from the revision's.
    Invalidated,
}

impl Success {
    pub fn code(self) -> i32 {
        match self {
            Success::Ok => 0,
            Success::StepsFailed => 1,
            Success::CorruptEntries => 3,
            Success::Invalidated => 6,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Spec(#[from] SpecError),
    #[error("{0}")]
    Plan(#[from] PlanError),
    #[error("{0}")]
    Usage(String),
    /// `xp run` of an experiment whose backend this binary cannot run.
    #[error("error: {0}")]
    Backend(#[from] BackendError),
    #[error("{0}")]
    SourceUnavailable(String),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Exec(#[from] ExecError),
    #[error("error: {0}")]
    Remote(#[from] crate::remote::RemoteError),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
}

impl CliError {
    pub fn code(&self) -> i32 {
        match self {
            CliError::Spec(_) | CliError::Plan(_) | CliError::Usage(_) | CliError::Backend(_) => 2,
            CliError::SourceUnavailable(_) => 4,
            CliError::Store(StoreError::NoRemote) => 2,
            CliError::Remote(_)
            | CliError::Store(StoreError::Remote(_) | StoreError::RemoteRejected { .. }) => 7,
            CliError::Store(_) | CliError::Io { .. } => 5,
            CliError::Exec(ExecError::Store(_)) => 5,
            CliError::Exec(ExecError::UnknownKey { .. }) => 4,
            CliError::Exec(_) => 1,
        }
    }
}
