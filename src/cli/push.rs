//! `xp push [FILE | --key KEY...]`: upload entries of the store to the remote
//! cache: each file as an object named by its digest, then the manifest.

use clap::Args;

use super::common;
use super::exit::Success;
use super::remote::{self, RemoteArgs, Selection};
use super::{CliError, StoreArgs};
use crate::store::{LookupOutcome, Pushed, StoreError};

#[derive(Debug, Args)]
pub struct PushArgs {
    #[command(flatten)]
    pub selection: Selection,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Upload every file and manifest even where the remote has them: repairs a
    /// remote entry that `xp pull` or `xp run` rejected.
    #[arg(long)]
    pub overwrite: bool,
}

pub fn run(args: PushArgs) -> Result<Success, CliError> {
    let experiment = args.selection.experiment()?;
    let store = common::open_store(&args.store)?;
    let (store, url) = remote::attach(store, &args.remote, experiment.as_ref())?;
    let url = url.ok_or(StoreError::NoRemote)?;
    let by_file = experiment.is_some();
    let (mut pushed, mut there, mut absent) = (0, 0, 0);
    for (label, key) in args.selection.keys(experiment)? {
        if !matches!(store.lookup(&key)?, LookupOutcome::Hit(_)) {
            if !by_file {
                return Err(StoreError::NotFound {
                    key,
                    root: store.root().to_path_buf(),
                }
                .into());
            }
            eprintln!("absent    {label}: not in the store (run it first)");
            absent += 1;
            continue;
        }
        match store.push(&key, args.overwrite)? {
            Pushed::Uploaded { files, bytes } => {
                eprintln!(
                    "pushed    {label} ({}): {files} new files, {bytes} bytes",
                    key.short()
                );
                pushed += 1;
            }
            Pushed::AlreadyThere => {
                eprintln!(
                    "present   {label} ({}): in the remote cache already",
                    key.short()
                );
                there += 1;
            }
        }
    }
    eprintln!("{pushed} pushed, {there} already in {url}, {absent} not in the store");
    Ok(Success::Ok)
}
