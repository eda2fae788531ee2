//! The command line: one file per subcommand. Every path ends in a documented
//! exit code (see [`exit`]).

mod common;
mod cost;
mod dag;
mod diff;
mod exec_step;
pub mod exit;
mod gc;
mod log;
mod plan;
mod plan_since;
mod pull;
mod push;
mod remote;
mod report;
mod reporter;
mod run;
mod schema;
mod show;
mod validate;
mod verify;

use std::path::PathBuf;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};

use crate::backend::{BackendKind, Precision};

pub use exit::CliError;

/// xp: a declarative, content-addressed experiment runner for ML research.
///
/// An experiment is one TOML file. xp turns it into a DAG of steps, keys every
/// step by a blake3 hash of everything that determines its result, and runs
/// only what is not in the cache.
#[derive(Debug, Parser)]
#[command(name = "xp", version, about, long_about, after_help = exit::EXIT_CODES_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run every step of the experiment that is not cached.
    Run(run::RunArgs),
    /// Show, for every step, whether it is cached or will run, why, and how long it
    /// should take; with `--since REV`, what changed since a git revision invalidates.
    Plan(plan::PlanArgs),
    /// Print the DAG of steps (text, Graphviz dot or Mermaid).
    Dag(dag::DagArgs),
    /// Check an experiment file without running anything.
    Validate(validate::ValidateArgs),
    /// Print the JSON Schema of the experiment format.
    Schema,
    /// Show every step's key, status, outputs and metrics.
    Show(show::ShowArgs),
    /// Where the experiment's report is, or how to build it.
    Report(report::ReportArgs),
    /// Two runs' metrics side by side (experiment files or store keys).
    Diff(diff::DiffArgs),
    /// Remove store entries that no given experiment uses.
    Gc(gc::GcArgs),
    /// Re-hash every store entry and report corrupt ones.
    Verify(verify::VerifyArgs),
    /// Upload an experiment's entries (or given keys) to the remote cache.
    Push(push::PushArgs),
    /// Download an experiment's entries (or given keys) from the remote cache,
    /// checked against their digests.
    Pull(pull::PullArgs),
    /// Print the log of a step's latest Slurm job.
    Log(log::LogArgs),
    /// Run one step of an experiment here (what a cluster job runs on its node).
    #[command(hide = true)]
    ExecStep(exec_step::ExecStepArgs),
}

/// Options shared by every command that reads an experiment file.
#[derive(Debug, Args, Clone)]
pub struct ExperimentArgs {
    /// The experiment file.
    pub file: PathBuf,
    /// Override a value of the file: `--set steps.blocks.block_size=32`
    /// (repeatable; the value is TOML, or a plain string).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<String>,
    /// Override the experiment's backend (`[experiment] backend`).
    #[arg(long, value_parser = backend_values())]
    pub backend: Option<BackendKind>,
    /// Override how f32 matrix products are computed (`[experiment] precision`;
    /// part of the key of every step that runs a model).
    #[arg(long, value_parser = precision_values())]
    pub precision: Option<Precision>,
}

/// `--backend` takes the same lowercase names as the file.
fn backend_values() -> impl TypedValueParser<Value = BackendKind> {
    let values = BackendKind::ALL.map(|kind| {
        let help = match kind {
            BackendKind::Ndarray => "CPU (default)",
            BackendKind::Cuda => "NVIDIA GPU (needs the `cuda` feature)",
            BackendKind::Wgpu => "any GPU through wgpu (needs the `wgpu` feature)",
        };
        PossibleValue::new(kind.as_str()).help(help)
    });
    PossibleValuesParser::new(values)
        .map(|name| name.parse::<BackendKind>().expect("clap checked the name"))
}

/// `--precision` takes the same lowercase names as the file.
pub(crate) fn precision_values() -> impl TypedValueParser<Value = Precision> {
    const ALL: [Precision; 2] = [Precision::F32, Precision::Tf32];
    let values = ALL.map(|precision| {
        let help = match precision {
            Precision::F32 => "exact f32 products (default)",
            Precision::Tf32 => "TF32 tensor cores on NVIDIA GPUs (faster, ~1e-3 relative error)",
        };
        PossibleValue::new(precision.as_str()).help(help)
    });
    PossibleValuesParser::new(values).map(|name| {
        ALL.into_iter()
            .find(|p| p.as_str() == name)
            .expect("clap checked the name")
    })
}

/// Where the store is.
#[derive(Debug, Args, Clone)]
pub struct StoreArgs {
    /// The store directory.
    #[arg(long, env = "XP_CACHE_DIR", default_value = "cache")]
    pub cache_dir: PathBuf,
}

pub fn run(cli: Cli) -> Result<exit::Success, CliError> {
    match cli.command {
        Command::Run(args) => run::run(args),
        Command::Plan(args) => plan::run(args),
        Command::Dag(args) => dag::run(args),
        Command::Validate(args) => validate::run(args),
        Command::Schema => schema::run(),
        Command::Show(args) => show::run(args),
        Command::Report(args) => report::run(args),
        Command::Diff(args) => diff::run(args),
        Command::Gc(args) => gc::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Push(args) => push::run(args),
        Command::Pull(args) => pull::run(args),
        Command::Log(args) => log::run(args),
        Command::ExecStep(args) => exec_step::run(args),
    }
}
