//! Source resolution, owned by the plan: sources as the planner and the executor see them: the planner asks only
//! what is on this machine ([`LocalOracle`]), or what a git revision held
//! ([`RevisionOracle`], for `xp plan --since`); a run first resolves (and
//! downloads) every source used ([`resolve_sources`]).

use std::cell::RefCell;
use std::collections::BTreeMap;

use super::{SourceOracle, SourceState};
use crate::digest::ContentDigest;
use crate::source::{
    Files, GitRevision, PlanStatus, ResolveOptions, SourceError, SourceIdentity, SourceSpec,
    WorkingTree, absolute, local_identity, plan_status, resolve,
};
use crate::spec::Experiment;
use crate::steps::context::{InputLocation, InputOrigin};

/// Answers from the local disk and the HF cache only; never the network.
pub struct LocalOracle;

impl SourceOracle for LocalOracle {
    fn state(
        &self,
        _name: &str,
        value: &str,
        experiment: &Experiment,
    ) -> Result<SourceState, String> {
        let spec = SourceSpec::parse(value).map_err(|e| e.to_string())?;
        let mut opts = ResolveOptions::from_env(&experiment.dir);
        match plan_status(&spec, &opts).map_err(|e| e.to_string())? {
            PlanStatus::MustFetch { what, .. } => Ok(SourceState::MustFetch { what }),
            PlanStatus::Available { .. } => {
                // Present locally: its identity comes from the cache, offline.
                opts.hub.offline = true;
                let resolved = resolve(&spec, &opts).map_err(|e| e.to_string())?;
                Ok(SourceState::Ready {
                    digest: resolved.identity.content_digest(),
                })
            }
        }
    }
}

/// Answers what a git revision held: a local source inside the repository is
/// read from the commit (its identity computed by the rule a run uses, through
/// [`Files`]); a local source git cannot say anything about (outside the
/// repository, or ignored by git) is read from the working tree, with a note; an
/// `hf:` source is looked up in the HF cache as [`LocalOracle`] does.
pub struct RevisionOracle<'a> {
    revision: &'a GitRevision,
    notes: RefCell<Vec<String>>,
}

impl<'a> RevisionOracle<'a> {
    pub fn new(revision: &'a GitRevision) -> Self {
        Self {
            revision,
            notes: RefCell::new(Vec::new()),
        }
    }

    /// What the user should know about how the revision's sources were read.
    pub fn notes(&self) -> Vec<String> {
        self.notes.borrow().clone()
    }
}

impl SourceOracle for RevisionOracle<'_> {
    fn state(
        &self,
        name: &str,
        value: &str,
        experiment: &Experiment,
    ) -> Result<SourceState, String> {
        let spec = SourceSpec::parse(value).map_err(|e| e.to_string())?;
        let SourceSpec::Local(relative) = &spec else {
            return LocalOracle.state(name, value, experiment);
        };
        let path = absolute(relative, &experiment.dir);
        let at = self.revision.describe();
        let unknown_to_git = if self.revision.repo_path(&path).is_none() {
            Some("is outside the repository")
        } else if self.revision.is_ignored(&path) {
            Some("is ignored by git")
        } else {
            None
        };
        let (files, note): (&dyn Files, _) = match unknown_to_git {
            Some(why) => (
                &WorkingTree,
                Some(format!(
                    "source `{name}` (`{value}`) {why}: its content at {at} is unknown, \
                     so it is taken as it is now"
                )),
            ),
            None => (self.revision, None),
        };
        match local_identity(files, &spec, &path) {
            Ok(identity) => {
                self.notes.borrow_mut().extend(note);
                Ok(SourceState::Ready {
                    digest: identity.content_digest(),
                })
            }
            Err(SourceError::LocalNotFound { .. }) if note.is_none() => Ok(SourceState::Absent {
                what: format!("`{value}` did not exist at {at}"),
            }),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Every source the experiment's steps use, on this machine.
#[derive(Debug, Default)]
pub struct ResolvedSources {
    pub locations: BTreeMap<String, InputLocation>,
    /// Worth telling the user (e.g. a Hub source served from the cache).
    pub warnings: Vec<String>,
    digests: BTreeMap<String, ContentDigest>,
}

impl SourceOracle for ResolvedSources {
    fn state(
        &self,
        name: &str,
        _value: &str,
        _experiment: &Experiment,
    ) -> Result<SourceState, String> {
        self.digests
            .get(name)
            .map(|digest| SourceState::Ready { digest: *digest })
            .ok_or_else(|| format!("source `{name}` was not resolved"))
    }
}

/// Resolves every source a step uses, downloading from the Hub what the HF
/// cache lacks (unless HF_HUB_OFFLINE). Fails early, before any step runs.
pub fn resolve_sources(experiment: &Experiment) -> Result<ResolvedSources, SourceError> {
    let mut opts = ResolveOptions::from_env(&experiment.dir);
    opts.hub.progress = true;
    let mut out = ResolvedSources::default();
    let mut failures = Vec::new();
    for name in experiment.used_sources() {
        let decl = &experiment.sources[name];
        let resolved = match SourceSpec::parse(&decl.value).and_then(|spec| resolve(&spec, &opts)) {
            Ok(resolved) => resolved,
            Err(e) => {
                // Every unavailable source at once, each hint naming its `--set` path.
                failures.push(format!(
                    "sources.{name}: {}",
                    e.to_string()
                        .replace("sources.NAME=", &format!("sources.{name}="))
                ));
                continue;
            }
        };
        let splits = (!resolved.splits.is_empty()).then(|| resolved.splits.clone());
        let path = match &resolved.identity {
            // A local file is its own input (a single-file dataset).
            SourceIdentity::LocalFile { .. } => resolved.files[0].path.clone(),
            _ => resolved.root.clone(),
        };
        if let Some(error) = &resolved.offline_fallback {
            out.warnings.push(format!(
                "source `{name}` ({}): the Hub could not be reached ({error}); using the copy in the HF cache",
                decl.value
            ));
        }
        out.digests
            .insert(name.to_string(), resolved.identity.content_digest());
        out.locations.insert(
            name.to_string(),
            InputLocation {
                path,
                splits,
                origin: InputOrigin::Source {
                    name: name.to_string(),
                },
            },
        );
    }
    match failures.len() {
        0 => Ok(out),
        _ => Err(SourceError::Several(failures)),
    }
}
