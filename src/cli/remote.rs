//! Which remote cache a command uses: `--remote` (or `XP_REMOTE`) over the
//! experiment's `[cache]` over the user configuration's
//! (`$XDG_CONFIG_HOME/xp/config.toml`, else `~/.config/xp/config.toml`); the
//! endpoint and region that these leave open, and the credentials, come from
//! the standard AWS configuration.

use std::path::PathBuf;

use clap::Args;
use serde::Deserialize;

use super::CliError;
use crate::remote::{AwsConfig, Remote};
use crate::spec::{CacheTable, Experiment};
use crate::store::Store;

/// `--remote`, for the commands that read or write the remote cache.
#[derive(Debug, Args, Clone, Default)]
pub struct RemoteArgs {
    /// The remote cache, `s3://BUCKET/PREFIX` (over `[cache] remote` of the
    /// experiment file and of ~/.config/xp/config.toml). Credentials, region and
    /// endpoint come from the AWS environment and ~/.aws (AWS_ENDPOINT_URL for a
    /// server other than AWS).
    #[arg(long, env = "XP_REMOTE", value_name = "URL")]
    pub remote: Option<String>,
}

/// The user configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserConfig {
    #[serde(default)]
    cache: CacheTable,
}

/// `$XDG_CONFIG_HOME/xp/config.toml`, else `$HOME/.config/xp/config.toml`.
pub fn user_config_path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("xp").join("config.toml"))
}

fn user_cache() -> Result<CacheTable, CliError> {
    let Some(path) = user_config_path() else {
        return Ok(CacheTable::default());
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(CacheTable::default()),
        Err(source) => {
            return Err(CliError::Io {
                context: format!("cannot read the user configuration {}", path.display()),
                source,
            });
        }
    };
    let config: UserConfig = toml::from_str(&text).map_err(|e| {
        CliError::Usage(format!(
            "error: {}: {} (the user configuration holds a `[cache]` table: remote, endpoint, region)",
            path.display(),
            e.message()
        ))
    })?;
    if let Some(url) = &config.cache.remote {
        url.parse::<crate::remote::RemoteUrl>().map_err(|e| {
            CliError::Usage(format!("error: {}: [cache] remote: {e}", path.display()))
        })?;
    }
    Ok(config.cache)
}

/// The remote cache's URL for this command, if any (`--remote`, the
/// experiment's `[cache]`, the user's), with the table that configures it.
pub fn chosen(
    args: &RemoteArgs,
    experiment: Option<&Experiment>,
) -> Result<Option<(String, CacheTable)>, CliError> {
    let from_file = experiment.map(|e| e.cache.clone()).unwrap_or_default();
    let table = from_file.over(&user_cache()?);
    Ok(args
        .remote
        .clone()
        .or_else(|| table.remote.clone())
        .map(|url| (url, table)))
}

/// The chosen remote cache, if any, with its URL (nothing is sent yet).
pub fn connect(
    args: &RemoteArgs,
    experiment: Option<&Experiment>,
) -> Result<Option<(Remote, String)>, CliError> {
    let Some((url, table)) = chosen(args, experiment)? else {
        return Ok(None);
    };
    let settings = table.settings(Some(&url))?.expect("a URL was given");
    let remote = Remote::connect(&settings, &AwsConfig::from_environment()?)?;
    Ok(Some((remote, url)))
}

/// `store`, reading through to (and pushing to) the chosen remote cache, if any.
/// Returns the remote's URL too, for the child processes and jobs.
pub fn attach(
    store: Store,
    args: &RemoteArgs,
    experiment: Option<&Experiment>,
) -> Result<(Store, Option<String>), CliError> {
    Ok(match connect(args, experiment)? {
        Some((remote, url)) => (store.with_remote(remote), Some(url)),
        None => (store, None),
    })
}

/// What `xp push` and `xp pull` copy: an experiment's steps or given keys.
#[derive(Debug, Args, Clone)]
pub struct Selection {
    /// The experiment whose steps to copy (its keys as `xp plan` computes them).
    pub file: Option<PathBuf>,
    /// Override a value of the file, as for `xp run` (the keys depend on them).
    #[arg(long = "set", value_name = "PATH=VALUE", requires = "file")]
    pub set: Vec<String>,
    /// Override the experiment's precision, as for `xp run`.
    #[arg(long, value_parser = super::precision_values(), requires = "file")]
    pub precision: Option<crate::backend::Precision>,
    /// A step key (64 hex digits) to copy instead of an experiment's (repeatable).
    #[arg(long = "key", value_name = "KEY", conflicts_with = "file")]
    pub keys: Vec<String>,
}

impl Selection {
    /// The experiment, when one was given.
    pub fn experiment(&self) -> Result<Option<Experiment>, CliError> {
        let Some(file) = &self.file else {
            return Ok(None);
        };
        let args = super::ExperimentArgs {
            file: file.clone(),
            set: self.set.clone(),
            backend: None,
            precision: self.precision,
        };
        super::common::load_experiment(&args).map(Some)
    }

    /// (label, key) of everything selected: a step's name, or the key itself.
    pub fn keys(
        &self,
        experiment: Option<Experiment>,
    ) -> Result<Vec<(String, crate::digest::StepKey)>, CliError> {
        if let Some(experiment) = experiment {
            let plan = crate::plan::Plan::build(experiment, &crate::plan::sources::LocalOracle)?;
            let mut keys = Vec::new();
            for step in &plan.steps {
                match step.key.key() {
                    Some(key) => keys.push((step.name.clone(), key)),
                    None => eprintln!(
                        "skipped   {}: its key depends on sources not fetched yet",
                        step.name
                    ),
                }
            }
            return Ok(keys);
        }
        if self.keys.is_empty() {
            return Err(CliError::Usage(
                "error: give an experiment file or --key KEY (repeatable)".into(),
            ));
        }
        self.keys
            .iter()
            .map(|hex| {
                hex.parse().map(|key| (hex.clone(), key)).map_err(|_| {
                    CliError::Usage(format!(
                        "error: --key {hex}: not a step key (64 hex digits)"
                    ))
                })
            })
            .collect()
    }
}
