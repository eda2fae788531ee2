//! `xp log FILE STEP`: the log of the step's latest Slurm job (for its current
//! key), from the store's `slurm/` directory.

use std::path::PathBuf;

use clap::Args;

use super::common;
use super::exit::Success;
use super::{CliError, ExperimentArgs, StoreArgs};
use crate::exec::slurm::log_dir;

#[derive(Debug, Args)]
pub struct LogArgs {
    #[command(flatten)]
    pub experiment: ExperimentArgs,
    /// The step (`blocks`, `finetune@2`).
    pub step: String,
    #[command(flatten)]
    pub store: StoreArgs,
    /// Print only the last N lines.
    #[arg(long, value_name = "N")]
    pub tail: Option<usize>,
    /// Print the log's path instead of its content.
    #[arg(long)]
    pub path: bool,
}

pub fn run(args: LogArgs) -> Result<Success, CliError> {
    let plan = common::plan_offline(&args.experiment)?;
    let index = plan.index_of(&args.step).ok_or_else(|| {
        CliError::Usage(format!(
            "error: no step `{}` in {}",
            args.step,
            args.experiment.file.display()
        ))
    })?;
    let key = plan.steps[index].key.key().ok_or_else(|| {
        CliError::Usage(format!(
            "error: step `{}` has no key yet (its sources must be fetched): it never ran",
            args.step
        ))
    })?;
    let none = || {
        CliError::Usage(format!(
            "error: step `{}` (key {}) has no Slurm job log in this store; \
             logs exist for steps run with `xp run --executor slurm`",
            args.step,
            key.short()
        ))
    };
    let store = common::open_store_if_exists(&args.store)?.ok_or_else(none)?;
    let dir = log_dir(&store, &plan.experiment.meta.name);
    let prefix = format!("{}.{}.", args.step, key.short());
    // `<step>.<key12>.<job id>.log`: the highest job id is the latest job.
    let latest: Option<(u64, PathBuf)> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let job = name.strip_prefix(&prefix)?.strip_suffix(".log")?;
            Some((job.parse().ok()?, e.path()))
        })
        .max();
    let (_, path) = latest.ok_or_else(none)?;
    if args.path {
        println!("{}", path.display());
        return Ok(Success::Ok);
    }
    let bytes = std::fs::read(&path).map_err(|source| CliError::Io {
        context: format!("cannot read {}", path.display()),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let start = args.tail.map_or(0, |n| lines.len().saturating_sub(n));
    for line in &lines[start..] {
        println!("{line}");
    }
    Ok(Success::Ok)
}
