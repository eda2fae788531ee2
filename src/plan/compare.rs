//! What changed between two plans of one experiment (`xp plan --since REV`): the
//! steps whose key differs, each with why, found by name. Keys come from
//! [`key`](super::key) for both plans, and the differences from [`why`], the same
//! machinery that explains `xp plan`'s reruns.

use super::why::{self, Change};
use super::{KeyState, Plan};

/// Why a step of the new plan is invalidated.
#[derive(Clone, Debug, PartialEq)]
pub enum Reason {
    /// No step of that name in the old plan (or no old plan: the file is new).
    NewStep,
    /// The old plan could not key it: these sources were absent then (or not in the
    /// HF cache now), so there is nothing to compare with.
    UnknownBefore { sources: Vec<String> },
    /// Its key cannot be computed now: these sources must be fetched first.
    UnknownNow { sources: Vec<String> },
    /// Its key inputs differ: parameters, versions, seed, precision or inputs.
    Changed(Vec<Change>),
}

/// One invalidated step.
#[derive(Clone, Debug)]
pub struct Invalidated {
    /// Index in the new plan.
    pub step: usize,
    /// Its index in the old plan, when it had one.
    pub old_step: Option<usize>,
    pub reason: Reason,
}

/// The steps of the new plan whose key is not the old one, and the old steps
/// that are gone.
#[derive(Clone, Debug, Default)]
pub struct Comparison {
    /// In the new plan's order.
    pub invalidated: Vec<Invalidated>,
    /// Names of the old plan's steps the new one does not have (and whose key no
    /// new step has), in the old order.
    pub removed: Vec<String>,
    /// `(old name, new name)` of steps renamed with their key unchanged: the name
    /// is not in the key, so nothing reruns.
    pub renamed: Vec<(String, String)>,
    /// Steps whose key is unchanged.
    pub unchanged: usize,
}

impl Comparison {
    pub fn is_invalidated(&self, step: usize) -> bool {
        self.invalidated.iter().any(|i| i.step == step)
    }
}

/// Compares `new` with `old` (`None`: the experiment did not exist then).
pub fn compare(old: Option<&Plan>, new: &Plan) -> Comparison {
    let mut out = Comparison::default();
    for (index, step) in new.steps.iter().enumerate() {
        let old_index = old.and_then(|o| o.index_of(&step.name));
        let old_key = old_index.map(|i| &old.expect("index from old").steps[i].key);
        let renamed_from = old.and_then(|o| {
            let key = step.key.key()?;
            o.steps
                .iter()
                .find(|s| s.key.key() == Some(key) && new.index_of(&s.name).is_none())
        });
        let reason = match (old_key, &step.key) {
            (None, _) => match renamed_from {
                Some(from) => {
                    out.renamed.push((from.name.clone(), step.name.clone()));
                    None
                }
                None => Some(Reason::NewStep),
            },
            (Some(_), KeyState::Unknown { missing_sources }) => Some(Reason::UnknownNow {
                sources: missing_sources.clone(),
            }),
            (Some(KeyState::Unknown { missing_sources }), KeyState::Known { .. }) => {
                Some(Reason::UnknownBefore {
                    sources: missing_sources.clone(),
                })
            }
            (
                Some(KeyState::Known {
                    key: old_key,
                    inputs: old_inputs,
                }),
                KeyState::Known { key, inputs },
            ) => (old_key != key).then(|| Reason::Changed(why::changes(old_inputs, inputs))),
        };
        match reason {
            Some(reason) => out.invalidated.push(Invalidated {
                step: index,
                old_step: old_index,
                reason,
            }),
            None => out.unchanged += 1,
        }
    }
    if let Some(old) = old {
        out.removed = old
            .steps
            .iter()
            .filter(|s| new.index_of(&s.name).is_none())
            .filter(|s| !out.renamed.iter().any(|(from, _)| *from == s.name))
            .map(|s| s.name.clone())
            .collect();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{SourceOracle, SourceState};
    use crate::spec::{Experiment, load_str};
    use std::path::Path;

    struct NoSources;

    impl SourceOracle for NoSources {
        fn state(&self, _: &str, _: &str, _: &Experiment) -> Result<SourceState, String> {
            Ok(SourceState::Absent {
                what: "no sources in this test".into(),
            })
        }
    }

    const BASE: &str = r#"
[experiment]
name = "t"

[steps.corpus]
kind = "corpus"
train_rows = 40

[steps.tok]
kind = "tokenizer"
train_on = "corpus.data"
vocab_size = 300

[steps.blocks]
kind = "tokenize"
data = "corpus.data"
tokenizer = "tok.tokenizer"
block_size = 16
"#;

    fn plan(text: &str) -> Plan {
        Plan::build(
            load_str(text, Path::new("t.toml"), &[]).unwrap(),
            &NoSources,
        )
        .unwrap()
    }

    fn names(plan: &Plan, c: &Comparison) -> Vec<String> {
        c.invalidated
            .iter()
            .map(|i| plan.steps[i.step].name.clone())
            .collect()
    }

    #[test]
    fn a_changed_parameter_invalidates_its_step_and_what_reads_it() {
        let old = plan(BASE);
        let new = plan(&BASE.replace("vocab_size = 300", "vocab_size = 280"));
        let c = compare(Some(&old), &new);
        assert_eq!(names(&new, &c), ["tok", "blocks"]);
        assert_eq!(c.unchanged, 1);
        let Reason::Changed(changes) = &c.invalidated[0].reason else {
            panic!("{:?}", c.invalidated[0].reason)
        };
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].to_string(), "params.vocab_size: 300 → 280");
        let Reason::Changed(changes) = &c.invalidated[1].reason else {
            panic!()
        };
        assert_eq!(changes[0].path, "inputs.tokenizer");
    }

    #[test]
    fn comments_change_nothing_and_new_or_removed_steps_are_named() {
        let old = plan(BASE);
        let c = compare(Some(&old), &plan(&format!("# a comment\n{BASE}")));
        assert!(c.invalidated.is_empty());
        assert_eq!(c.unchanged, 3);

        // A renamed step keeps its key: nothing to rerun.
        let renamed = plan(&BASE.replace("[steps.blocks]", "[steps.blocks16]"));
        let c = compare(Some(&old), &renamed);
        assert!(c.invalidated.is_empty());
        assert_eq!(c.renamed, [("blocks".to_string(), "blocks16".to_string())]);
        assert!(c.removed.is_empty());

        let replaced = plan(
            &BASE
                .replace("[steps.blocks]", "[steps.b]")
                .replace("= 16", "= 8"),
        );
        let c = compare(Some(&old), &replaced);
        assert_eq!(names(&replaced, &c), ["b"]);
        assert_eq!(c.invalidated[0].reason, Reason::NewStep);
        assert_eq!(c.removed, ["blocks"]);

        let c = compare(None, &old);
        assert_eq!(c.invalidated.len(), 3);
        assert!(c.invalidated.iter().all(|i| i.reason == Reason::NewStep));
    }
}
