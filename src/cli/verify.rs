//! `xp verify`: re-hash every entry of the store; report corrupt ones.

use clap::Args;

use serde_json::json;

use super::common;
use super::exit::Success;
use super::{CliError, StoreArgs};
use crate::store::VerifyOptions;

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
    let report = store.verify(VerifyOptions {
        quarantine: args.quarantine,
    })?;
    if args.json {
        let corrupt: Vec<_> = report
            .corrupt
            .iter()
            .map(|c| {
                json!({
                    "key": c.key.to_hex(),
                    "problems": c.problems.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
                    "quarantined_to": c.quarantined_to,
                })
            })
            .collect();
        let unrecognized: Vec<_> = report
            .unrecognized
            .iter()
            .map(|b| b.dir.display().to_string())
            .collect();
        let out = json!({
            "entries": report.entries,
            "files": report.files,
            "bytes_hashed": report.bytes_hashed,
            "corrupt": corrupt,
            "unrecognized": unrecognized,
        });
        println!("{}", serde_json::to_string_pretty(&out).expect("JSON"));
    } else {
        for corruption in &report.corrupt {
            println!("CORRUPT {corruption}");
        }
        for broken in &report.unrecognized {
            println!("UNRECOGNIZED {}: {}", broken.dir.display(), broken.reason);
        }
        println!(
            "{} entries, {} files, {} bytes checked: {} corrupt",
            report.entries,
            report.files,
            report.bytes_hashed,
            report.corrupt.len() + report.unrecognized.len()
        );
    }
    Ok(if report.is_clean() {
        Success::Ok
    } else {
        Success::CorruptEntries
    })
}
