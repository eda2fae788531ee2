//! `xp verify`: re-hash every entry of the store; report corrupt ones.

use clap::Args;

use super::common;
use super::exit::Success;
use super::{CliError, StoreArgs};

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub store: StoreArgs,
    /// Move corrupt entries to the store's quarantine, so the next run recomputes them.
    #[arg(long)]
    pub quarantine: bool,
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: VerifyArgs) -> Result<Success, CliError> {
    let store = common::open_store(&args.store)?;
    let report = store.verify(args.quarantine)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).expect("JSON"));
    } else {
        for entry in &report.problems {
            println!("CORRUPT {} ({}): {}", entry.key, entry.step, entry.describe());
        }
        println!(
            "{} entries checked, {} corrupt{}",
            report.checked,
            report.problems.len(),
            if args.quarantine && !report.problems.is_empty() { " (moved to quarantine)" } else { "" }
        );
    }
    Ok(if report.problems.is_empty() { Success::Ok } else { Success::CorruptEntries })
}
