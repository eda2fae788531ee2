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
mod points;
mod raw;
mod reference;
mod resources;
mod retry;
mod schema;
mod sweep;
mod validate;

pub use cache::CacheTable;
pub use error::{Diagnostic, Problem, SpecError};
pub use location::{Location, Snippet};
pub use reference::kinds_reference;
pub use resources::Resources;
pub use retry::{MAX_RETRIES, Retry};
pub use schema::json_schema;
pub use sweep::{Axis, Point, SEED_AXIS, Sweep};

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
    /// The seed the step's randomness uses (in its key when the kind uses one):
    /// its replicate's seed for a step that is replicated
    /// ([`crate::steps::StepParams::replicated`], or `replicate = true|false` on the
    /// step), else `experiment.seed`.
    pub seed: u64,
    /// Whether the step gets each replicate's seed (when the file has `seeds`).
    pub replicate: bool,
    /// The sweep points ([`Experiment::sweep`]) this step belongs to; every point
    /// when nothing is swept or the step does not depend on the sweep.
    pub points: Vec<usize>,
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
    /// With a sweep, point by point: each point's steps that an earlier point
    /// did not already have.
    pub steps: Vec<StepDecl>,
    /// The sweep's axes and points (`[sweep]`, `experiment.seeds`); one point
    /// without axes when there is neither.
    pub sweep: Sweep,
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
    let raw_sweep = sweep::RawSweep::take(&mut root, &map)?;
    let dir = match file.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };

    // The file as written is checked once before its points, so an error that is
    // not about the sweep is reported once, where it is written.
    let doc = raw::Document::parse(root.clone(), &map)?;
    let seeds = doc
        .experiment
        .seeds
        .as_ref()
        .map(|s| (s.get_ref().clone(), s.span()));
    let sweep = raw_sweep.points(seeds.as_ref(), &map)?;
    let mut expanded = Vec::with_capacity(sweep.points.len());
    for (i, point) in sweep.points.iter().enumerate() {
        let mut root = root.clone();
        raw_sweep.apply(&mut root, point, &map)?;
        let doc = raw::Document::parse(root, &map)?;
        expanded.push(expand_point(doc, sweep.seed_of(i), &dir, &map)?);
    }
    let merged = points::merge(&sweep, expanded, &map)?;
    let points::Merged {
        meta,
        sources,
        steps,
    } = merged;
    Ok(Experiment {
        file: file.to_path_buf(),
        dir,
        meta,
        cache: doc.cache,
        sources,
        steps,
        sweep,
    })
}

/// One point of the experiment, expanded and checked: its meta, sources and steps
/// (named as in the file), each step's seed set.
pub(crate) struct PointExpansion {
    pub meta: ExperimentMeta,
    pub sources: BTreeMap<String, SourceDecl>,
    pub steps: Vec<StepDecl>,
}

fn expand_point(
    doc: raw::Document<'_>,
    replicate_seed: Option<u64>,
    dir: &Path,
    map: &location::SourceMap<'_>,
) -> Result<PointExpansion, SpecError> {
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
    let expanded = expand::expand(&doc.steps, &doc.loops, map)?;
    sources.extend(files::file_sources(&expanded, dir, map)?);
    validate::check(&expanded, &sources, map)?;
    let steps = expanded
        .steps
        .into_iter()
        .map(|e| {
            let mut decl = e.decl;
            decl.seed = match replicate_seed {
                Some(seed) if decl.replicate => seed,
                _ => meta.seed,
            };
            decl
        })
        .collect();
    Ok(PointExpansion {
        meta,
        sources,
        steps,
    })
}
