//! What changed between two plans of one experiment (`xp plan --since REV`): the
//! steps whose key differs, each with why, found by name. Keys come from
//! [`key`](super::key) for both plans, and the differences from [`why`], the same
//! machinery that explains `xp plan`'s reruns.

use super::why::{self, Change};
use super::{KeyState, Plan, PlannedInput};

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
            (Some(KeyState::Unknown { .. }), KeyState::Unknown { .. })
                if same_unkeyed(
                    old.expect("old step"),
                    old_index.expect("old step"),
                    new,
                    index,
                    &out,
                ) =>
            {
                None
            }
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

/// Whether a step that neither plan could key (an `hf:` source not in the HF
/// cache) is declared the same in both: the same kind, version, parameters, seed
/// and precision where they count, the same sources written the same way (so they
/// resolve alike) and the same producers, none of them invalidated. Such a step
/// would get the same key in both once its sources are fetched.
fn same_unkeyed(old: &Plan, old_step: usize, new: &Plan, step: usize, so_far: &Comparison) -> bool {
    let (a, b) = (&old.decl(old_step).params, &new.decl(step).params);
    let (ma, mb) = (&old.experiment.meta, &new.experiment.meta);
    let same_inputs = |x: &PlannedInput, y: &PlannedInput| match (x, y) {
        (PlannedInput::Source { name: n }, PlannedInput::Source { name: m }) => {
            n == m
                && old.experiment.sources[n].value == new.experiment.sources[m].value
                && old.sources.get(n) == new.sources.get(m)
        }
        (
            PlannedInput::Output {
                step: p, output: o, ..
            },
            PlannedInput::Output {
                step: q, output: r, ..
            },
        ) => o == r && old.steps[*p].name == new.steps[*q].name && !so_far.is_invalidated(*q),
        _ => false,
    };
    let (ia, ib) = (&old.steps[old_step].inputs, &new.steps[step].inputs);
    a.kind() == b.kind()
        && a.version() == b.version()
        && a.params_without_inputs() == b.params_without_inputs()
        && (!b.uses_seed() || old.decl(old_step).seed == new.decl(step).seed)
        && (!b.uses_precision() || ma.precision == mb.precision)
        && ia.len() == ib.len()
        && ia.iter().zip(ib).all(|((sa, xa), (sb, xb))| {
            sa == sb && xa.len() == xb.len() && xa.iter().zip(xb).all(|(x, y)| same_inputs(x, y))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{SourceOracle, SourceState};
    use crate::spec::{Experiment, load_str};
    use std::path::Path;

    /// Every source must be fetched: no key that reads one is known.
    struct NoSources;

    impl SourceOracle for NoSources {
        fn state(&self, _: &str, _: &str, _: &Experiment) -> Result<SourceState, String> {
            Ok(SourceState::MustFetch {
                what: "not in the HF cache".into(),
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

    const HUB: &str = r#"
[experiment]
name = "t"

[sources]
opt = "hf:facebook/opt-125m"

[steps.tok]
kind = "tokenizer"
from = "opt"

[steps.blocks]
kind = "tokenize"
data = "corpus.data"
tokenizer = "tok.tokenizer"
block_size = 16

[steps.corpus]
kind = "corpus"
train_rows = 40
"#;

    #[test]
    fn steps_neither_plan_can_key_are_unchanged_only_if_declared_alike() {
        let old = plan(HUB);
        assert!(old.steps.iter().any(|s| s.key.key().is_none()));
        let c = compare(Some(&old), &plan(&format!("# comment\n{HUB}")));
        assert!(c.invalidated.is_empty(), "{:?}", c.invalidated);
        assert_eq!(c.unchanged, 3);

        // Another Hub revision, or a parameter of a step downstream: can't be the same key.
        let moved = plan(&HUB.replace("opt-125m\"", "opt-125m@v2\""));
        let c = compare(Some(&old), &moved);
        assert_eq!(names(&moved, &c), ["tok", "blocks"]);
        assert!(matches!(c.invalidated[0].reason, Reason::UnknownNow { .. }));
        let smaller = plan(&HUB.replace("block_size = 16", "block_size = 8"));
        assert_eq!(names(&smaller, &compare(Some(&old), &smaller)), ["blocks"]);
        let fewer = plan(&HUB.replace("train_rows = 40", "train_rows = 30"));
        assert_eq!(
            names(&fewer, &compare(Some(&old), &fewer)),
            ["corpus", "blocks"]
        );
    }
}
