//! `xp pull [FILE | --key KEY...]`: download entries of the remote cache into
//! the store, each checked against its manifest's digests before it is
//! published; an entry that fails the check is not kept (exit code 7).

use clap::Args;

use super::common;
use super::exit::Success;
use super::remote::{self, RemoteArgs, Selection};
use super::{CliError, StoreArgs};
use crate::store::{Pulled, StoreError};

#[derive(Debug, Args)]
pub struct PullArgs {
    #[command(flatten)]
    pub selection: Selection,
    #[command(flatten)]
    pub store: StoreArgs,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

pub fn run(args: PullArgs) -> Result<Success, CliError> {
    let experiment = args.selection.experiment()?;
    let store = common::open_store(&args.store)?;
    let (store, url) = remote::attach(store, &args.remote, experiment.as_ref())?;
    let url = url.ok_or(StoreError::NoRemote)?;
    let (mut fetched, mut present, mut absent) = (0, 0, 0);
    let mut rejected = None;
    let clock = std::time::Instant::now();
    for (label, key) in args.selection.keys(experiment)? {
        match store.pull(&key) {
            Ok(Pulled::Fetched { bytes, .. }) => {
                eprintln!("pulled    {label} ({}): {bytes} bytes", key.short());
                fetched += 1;
            }
            Ok(Pulled::Present(_)) => present += 1,
            Ok(Pulled::Absent) => {
                eprintln!(
                    "absent    {label} ({}): not in the remote cache",
                    key.short()
                );
                absent += 1;
            }
            // Go on with the others; the exit code says one was refused.
            Err(e @ StoreError::RemoteRejected { .. }) => {
                eprintln!("REJECTED  {label}: {e}");
                rejected = Some(e);
            }
            Err(other) => return Err(other.into()),
        }
    }
    eprintln!(
        "{fetched} pulled from {url}, {present} already in the store, {absent} not in the remote, in {:.1} s",
        clock.elapsed().as_secs_f64()
    );
    match rejected {
        Some(e) => Err(e.into()),
        None => Ok(Success::Ok),
    }
}
