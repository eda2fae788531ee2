//! Checks on the expanded experiment: unique step names and references that
//! point at something (a declared source, or a declared output of a step).
//! Cycles are the planner's to find.

use std::collections::BTreeMap;

use super::error::{Problem, SpecError};
use super::expand::{Expanded, Expansion, LoopRef};
use super::location::SourceMap;
use super::{SourceDecl, StepDecl};
use crate::steps::{InputRef, RefTarget};

/// A step's outputs by step name.
type Outputs<'a> = BTreeMap<&'a str, (&'a StepDecl, Vec<String>)>;

pub(crate) fn check(
    expansion: &Expansion,
    sources: &BTreeMap<String, SourceDecl>,
    map: &SourceMap<'_>,
) -> Result<(), SpecError> {
    let mut outputs: Outputs = BTreeMap::new();
    for Expanded {
        decl: step,
        name_span,
        ..
    } in &expansion.steps
    {
        if let Some((first, _)) = outputs.get(step.name.as_str()) {
            let problem = Problem::DuplicateStep {
                name: step.name.clone(),
                first: first.location.clone(),
            };
            return Err(map.error(name_span, problem));
        }
        let names = step
            .params
            .outputs()
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        outputs.insert(&step.name, (step, names));
    }

    for Expanded {
        decl: step,
        name_span,
        ref_spans,
    } in &expansion.steps
    {
        for slot in step.params.inputs() {
            for reference in slot.refs {
                if let Some((why, suggestions)) = dangling(reference.as_str(), &outputs, sources) {
                    let problem = Problem::DanglingRef {
                        step: step.name.clone(),
                        slot: slot.slot.to_string(),
                        reference: reference.to_string(),
                        why,
                        suggestions,
                    };
                    let span = ref_spans.get(reference.as_str()).unwrap_or(name_span);
                    return Err(map.error(span, problem));
                }
            }
        }
    }

    for LoopRef {
        place,
        reference,
        span,
    } in &expansion.loop_refs
    {
        if let Some((why, suggestions)) = dangling(reference, &outputs, sources) {
            let problem = Problem::DanglingLoopRef {
                place: place.clone(),
                reference: reference.clone(),
                why,
                suggestions,
            };
            return Err(map.error(span, problem));
        }
    }
    Ok(())
}

/// Why `reference` points at nothing, and the names it may have meant; `None`
/// when it points at a source or a declared step output.
fn dangling(
    reference: &str,
    outputs: &Outputs,
    sources: &BTreeMap<String, SourceDecl>,
) -> Option<(String, Vec<String>)> {
    let why = match InputRef(reference.to_string()).target() {
        RefTarget::Source(name) if sources.contains_key(name) => return None,
        RefTarget::Source(name) => format!("there is no source `{name}` under [sources]"),
        RefTarget::Output {
            step: target,
            output,
        } => match outputs.get(target) {
            None => format!("there is no step `{target}`"),
            Some((_, names)) if names.iter().any(|n| n == output) => return None,
            Some((decl, names)) => format!(
                "step `{target}` (kind {}) has no output `{output}`; its outputs are {}",
                decl.params.kind(),
                super::error::list(names)
            ),
        },
    };
    let candidates = sources.keys().cloned().chain(
        outputs
            .iter()
            .flat_map(|(step, (_, names))| names.iter().map(move |o| format!("{step}.{o}"))),
    );
    Some((why, closest(reference, candidates)))
}

/// The candidates nearest to `word` by edit distance (ties: at most three, sorted),
/// and only when close enough to be a plausible typo.
pub(crate) fn closest(word: &str, candidates: impl Iterator<Item = String>) -> Vec<String> {
    let limit = (word.chars().count() / 3).max(2);
    let mut scored: Vec<(usize, String)> = candidates
        .map(|c| (edit_distance(word, &c), c))
        .filter(|(d, _)| *d <= limit)
        .collect();
    scored.sort();
    scored.dedup();
    // Only the nearest: a list of loosely similar names helps less than one good guess.
    let best = scored.first().map(|(d, _)| *d);
    scored
        .into_iter()
        .filter(|(d, _)| Some(*d) == best)
        .take(3)
        .map(|(_, c)| c)
        .collect()
}

/// Levenshtein distance over chars.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_single_char_edits() {
        for (a, b, d) in [
            ("", "", 0),
            ("abc", "abc", 0),
            ("blocks", "block", 1),
            ("wikitxt", "wikitext", 1),
            ("ab", "ba", 2),
            ("", "xyz", 3),
        ] {
            assert_eq!(edit_distance(a, b), d, "{a} vs {b}");
        }
    }

    #[test]
    fn closest_keeps_near_candidates_only() {
        let candidates = ["blocks.train", "blocks.test", "opt", "wikitext"].map(String::from);
        assert_eq!(
            closest("blocks.trian", candidates.clone().into_iter()),
            vec!["blocks.train"]
        );
        assert_eq!(
            closest("wikitxt", candidates.clone().into_iter()),
            vec!["wikitext"]
        );
        assert!(closest("zzzzzzzz", candidates.into_iter()).is_empty());
    }
}
