//! The experiment file: a small TOML language read into a typed, validated
//! [`Experiment`] whose every step knows where it was written.
//!
//! The stages, each in its own file:
//! 1. parse the TOML into a tree that keeps byte spans (`toml::de::DeTable`);
//! 2. apply `--set PATH=VALUE` overrides to that tree ([`overrides`]);
//! 3. split it into sections and merge kind defaults into steps (`raw.rs`);
//! 4. expand loops and rewrite references, then deserialise each step's table
//!    into its kind's typed parameters (`expand.rs`);
//! 5. check names and references (`validate.rs`).
//!
//! The format is described in `docs/dsl.md`; [`json_schema`] gives its JSON Schema.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::de::DeTable;

use crate::backend::{BackendKind, Precision};
use crate::steps::StepParams;

mod cache;
mod error;
mod expand;
mod files;
mod location;
mod overrides;
mod raw;
mod reference;
mod resources;
mod retry;
mod schema;
mod validate;

pub use cache::CacheTable;
pub use error::{Diagnostic, Problem, SpecError};
pub use location::{Location, Snippet};
pub use reference::kinds_reference;
pub use resources::Resources;
pub use retry::{MAX_RETRIES, Retry};
pub use schema::json_schema;

/// `[experiment]`: what the experiment is called and how it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExperimentMeta {
    pub name: String,
    /// Default 0.
    pub seed: u64,
    /// Where tensors are computed (default ndarray); recorded in manifests, not keyed.
    pub backend: BackendKind,
    /// How f32 products are computed (default exact f32); in the key of every step
    /// that runs a model ([`crate::steps::StepParams::uses_precision`]).
    pub precision: Precision,
    /// Cosmetic; never part of a key.
    pub description: Option<String>,
}

/// One entry of `[sources]`: `name = "hf:owner/repo"` or a local path (relative
/// paths are relative to [`Experiment::dir`]); or a repository file a step reads
/// (`file:PATH`), named by that reference, with its path on this machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceDecl {
    pub name: String,
    pub value: String,
    /// Where the value was written.
    pub location: Location,
}

/// One step after loop expansion.
#[derive(Clone, Debug)]
pub struct StepDecl {
    /// `"blocks"`, or `"finetune@2"` for generation 2 of a loop step.
    pub name: String,
    /// Typed parameters: kind defaults and `[defaults.KIND]` filled in, references
    /// rewritten (`carry.X`, bare loop-step names, `@last`, `@*`, `@earlier` resolved).
    pub params: StepParams,
    /// Where the step's name was written (`[steps.NAME]` or `[loop.L.steps.NAME]`).
    pub location: Location,
    /// `(loop name, generation)` for an expanded loop step.
    pub generation: Option<(String, u32)>,
    /// Where each input reference (as rewritten) was written.
    pub ref_locations: BTreeMap<String, Location>,
    /// What a cluster job running this step asks for (`[steps.NAME.resources]`
    /// over `[defaults.KIND.resources]`); never part of the key.
    pub resources: Resources,
    /// How often the step is started again after its process was killed
    /// (`retry = { max = N }`, over `[defaults.KIND]`); never part of the key.
    pub retry: Retry,
}

/// A loaded, validated experiment.
#[derive(Clone, Debug)]
pub struct Experiment {
    /// The experiment file as given.
    pub file: PathBuf,
    /// The directory local sources are relative to (the file's directory).
    pub dir: PathBuf,
    pub meta: ExperimentMeta,
    /// `[cache]`: the remote cache; never part of a key.
    pub cache: CacheTable,
    pub sources: BTreeMap<String, SourceDecl>,
    /// File order; a loop's steps generation by generation at the loop's place.
    pub steps: Vec<StepDecl>,
}

impl Experiment {
    /// The step called `name` (`"blocks"`, `"finetune@2"`).
    pub fn step(&self, name: &str) -> Option<&StepDecl> {
        self.steps.iter().find(|s| s.name == name)
    }

    /// The names of the sources some step reads, sorted (declared but unused
    /// sources are never resolved or fetched).
    pub fn used_sources(&self) -> std::collections::BTreeSet<&str> {
        self.steps
            .iter()
            .flat_map(|s| s.params.inputs())
            .flat_map(|slot| slot.refs)
            .filter_map(|r| match r.target() {
                crate::steps::RefTarget::Source(name) => Some(name),
                crate::steps::RefTarget::Output { .. } => None,
            })
            .collect()
    }
}

/// Reads and loads the experiment file at `path`, applying `overrides`
/// (`--set PATH=VALUE`, in order).
pub fn load(path: &Path, overrides: &[String]) -> Result<Experiment, SpecError> {
    let text = std::fs::read_to_string(path).map_err(|source| SpecError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    load_str(&text, path, overrides)
}

/// Loads an experiment from `text`, as if read from `file` (used in messages and
/// to resolve relative source paths).
pub fn load_str(text: &str, file: &Path, overrides: &[String]) -> Result<Experiment, SpecError> {
    let mut map = location::SourceMap::new(file, text);
    let root = DeTable::parse(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        map.error(
            &span,
            Problem::Toml {
                message: e.message().trim_end().to_string(),
            },
        )
    })?;
    let mut root = root.into_inner();
    overrides::apply(&mut root, overrides, &mut map)?;
    let doc = raw::Document::parse(root, &map)?;

    let meta = ExperimentMeta {
        name: doc.experiment.name.clone(),
        seed: doc.experiment.seed,
        backend: doc.experiment.backend,
        precision: doc.experiment.precision,
        description: doc.experiment.description.clone(),
    };
    let mut sources: BTreeMap<String, SourceDecl> = doc
        .sources
        .iter()
        .map(|(name, value)| {
            let decl = SourceDecl {
                name: name.text.clone(),
                value: value.text.clone(),
                location: map.locate(&value.span),
            };
            (name.text.clone(), decl)
        })
        .collect();
    let dir = match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let expanded = expand::expand(&doc.steps, &doc.loops, &map)?;
    sources.extend(files::file_sources(&expanded, &dir, &map)?);
    validate::check(&expanded, &sources, &map)?;
    let expanded = expanded.steps;

    Ok(Experiment {
        file: file.to_path_buf(),
        dir,
        meta,
        cache: doc.cache,
        sources,
        steps: expanded.into_iter().map(|e| e.decl).collect(),
    })
}
