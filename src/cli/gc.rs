//! `xp gc FILE...`: remove store entries that none of the given experiments uses.

use std::collections::HashSet;
use std::path::PathBuf;

use clap::Args;

use super::common;
use super::exit::Success;
use super::{CliError, ExperimentArgs, StoreArgs};
use crate::plan::KeyState;

#[derive(Debug, Args)]
pub struct GcArgs {
    /// The experiment files whose entries are kept.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Overrides applied to every file (as in `xp run`), to keep a variant's entries.
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<String>,
    /// Only print what would be removed.
    #[arg(long)]
    pub dry_run: bool,
    /// Remove even when some step's key is unknown (its sources are not fetched),
    /// which may delete that step's entries.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: GcArgs) -> Result<Success, CliError> {
    let mut keep = HashSet::new();
    for file in &args.files {
        let plan = common::plan_offline(&ExperimentArgs {
            file: file.clone(),
            set: args.set.clone(),
            backend: None,
            precision: None,
        })?;
        for step in &plan.steps {
            match &step.key {
                KeyState::Known { key, .. } => {
                    keep.insert(*key);
                }
                KeyState::Unknown { missing_sources } if !args.force => {
                    return Err(CliError::Usage(format!(
                        "error: cannot tell which entries step `{}` of {} uses: source(s) {} are not fetched. \
                         Fetch them (xp run), or pass --force to collect anyway.",
                        step.name,
                        file.display(),
                        missing_sources.join(", ")
                    )));
                }
                KeyState::Unknown { .. } => {}
            }
        }
    }
    let store = common::open_store(&args.store)?;
    let report = store.gc(&keep, args.dry_run)?;
    let verb = if args.dry_run {
        "would remove"
    } else {
        "removed"
    };
    for (key, bytes) in &report.removed_entries {
        println!("{verb} entry {key} ({bytes} bytes)");
    }
    for key in &report.skipped_locked {
        println!("kept entry {key}: another xp process holds it");
    }
    println!(
        "{verb} {} entries, {} staging, {} scratch and {} quarantined directories: {} bytes",
        report.removed_entries.len(),
        report.removed_staging.len(),
        report.removed_scratch.len(),
        report.removed_quarantine.len(),
        report.bytes_freed
    );
    Ok(Success::Ok)
}
