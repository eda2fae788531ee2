//! Evaluated sets arranged by generation. Sets whose labels differ only by
//! generation, read from evaluations whose references differ only by generation
//! (or, where the reference has none, scored by models whose names do), form a
//! group (`synthesize@*.blocks` scored by `finetune@0.model`: the seed's Figure 1;
//! `blocks.test` from `test@*.scores`: test perplexity per generation); within a
//! group, rows are sorted by generation. A generation in the reference comes
//! before the scorer named in the file: an evaluation two arms share (one key, so
//! one file naming the scorer of the arm that ran it first) belongs to each arm
//! that lists it.
//!
//! Replicates (labels that differ only by their seed, `test@2[seed=1].scores`)
//! are one row: its numbers are the means over seeds (its per-sample
//! perplexities pooled), and each seed's set is one of its members.

use std::borrow::Cow;

use super::data::{ReportInputs, Scores, generation_of, generation_template};
use super::replicates::Summary;
use crate::artifacts::SetScores;
use crate::artifacts::labels::{replicate_of, without_replicate};

/// One evaluated set, placed in its group.
#[derive(Clone, Debug)]
pub struct SetRow<'a> {
    /// From the set's label, else from the evaluation's reference (`test@2.scores`),
    /// else from the scorer's (`blocks.test` scored by `finetune@2.model`).
    pub generation: Option<u32>,
    /// The set's scores; over replicates, each number's mean (labels without the seed).
    pub set: Cow<'a, SetScores>,
    /// The scores file of the first member.
    pub scores: &'a Scores,
    /// Each replicate's set and scores file, in input order; one without replicates.
    pub members: Vec<Member<'a>>,
}

/// One replicate of a row.
#[derive(Clone, Debug)]
pub struct Member<'a> {
    /// The replicate seed, from the set's label or else the evaluation's.
    pub seed: Option<&'a str>,
    pub set: &'a SetScores,
    pub scores: &'a Scores,
}

impl SetRow<'_> {
    /// The model that scored the set, without a replicate's seed.
    pub fn scorer(&self) -> String {
        without_replicate(&self.scores.file.model)
    }

    /// Whether the row pools several replicates.
    pub fn is_replicated(&self) -> bool {
        self.members.len() > 1
    }

    /// One number over the row's replicates.
    pub fn summary(&self, value: impl Fn(&SetScores) -> Option<f64>) -> Option<Summary> {
        Summary::of(self.members.iter().filter_map(|m| value(m.set)))
    }

    /// The name of the row's curve within its group.
    pub fn curve_name(&self) -> String {
        match self.generation {
            Some(g) => format!("gen {g}"),
            None => self.set.label.clone(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct Group<'a> {
    /// `<set template> scored by <scorer template>`.
    pub name: String,
    pub rows: Vec<SetRow<'a>>,
}

impl<'a> Group<'a> {
    /// Whether any row has a generation (else plotting against generation is moot).
    pub fn has_generations(&self) -> bool {
        self.rows.iter().any(|r| r.generation.is_some())
    }

    /// A series over generations: at least two rows, at least one with a
    /// generation. A group of one row is a set scored once: a reference, never a
    /// one-point series.
    pub fn is_series(&self) -> bool {
        self.rows.len() >= 2 && self.has_generations()
    }

    /// The one row of a set scored once.
    pub fn single(&self) -> Option<&SetRow<'a>> {
        match self.rows.as_slice() {
            [row] => Some(row),
            _ => None,
        }
    }

    /// Whether every row scored the same set (the test split under each
    /// generation's model): its data-only metrics are the same in every row.
    pub fn same_set(&self) -> bool {
        let first = self.rows.first().map(|r| r.set.label.as_str());
        self.rows
            .iter()
            .all(|r| Some(r.set.label.as_str()) == first)
    }

    /// The scorer of every row, when one model scored them all.
    pub fn shared_scorer(&self) -> Option<String> {
        let first = self.rows.first()?.scorer();
        self.rows
            .iter()
            .all(|r| r.scorer() == first)
            .then_some(first)
    }
}

/// A set outside the generations (no `@` in its label: a source or a step
/// outside the loop, e.g. `blocks.train`) is the real data.
pub fn is_real_data(label: &str) -> bool {
    !label.contains('@')
}

/// How a reference is named in legends: `real data (blocks.train)` for real
/// data, else its label.
pub fn reference_name(label: &str) -> String {
    if is_real_data(label) {
        format!("real data ({label})")
    } else {
        label.to_string()
    }
}

/// The sets scored once by the model that scored every row of `series`
/// (`blocks.train` beside `synthesize@*.blocks`, both scored by
/// `finetune@0.model`): the references drawn with that series.
pub fn references_of<'g, 'a>(series: &Group<'a>, groups: &'g [Group<'a>]) -> Vec<&'g SetRow<'a>> {
    let Some(scorer) = series.shared_scorer() else {
        return Vec::new();
    };
    groups
        .iter()
        .filter_map(Group::single)
        .filter(|row| row.scorer() == scorer)
        .collect()
}

/// Whether `row` (a set scored once) is drawn as a reference of some series.
pub fn is_attached(row: &SetRow<'_>, groups: &[Group<'_>]) -> bool {
    let scorer = row.scorer();
    groups
        .iter()
        .filter(|g| g.is_series())
        .any(|g| g.shared_scorer().as_ref() == Some(&scorer))
}

/// Groups in order of first appearance; rows by generation (rows without one last,
/// in input order); replicates pooled into one row.
pub fn group_sets(inputs: &ReportInputs) -> Vec<Group<'_>> {
    let mut groups: Vec<Group<'_>> = Vec::new();
    for scores in &inputs.evaluations {
        for set in &scores.file.sets {
            // A reference with a generation (`test@2.scores`) says which series
            // the evaluation belongs to; else (one evaluation of many sets, a
            // source) the scorer does.
            let by = match generation_of(&scores.provenance.label) {
                Some(_) => &scores.provenance.label,
                None => &scores.file.model,
            };
            let name = format!(
                "{} from {}",
                generation_template(&without_replicate(&set.label)),
                generation_template(&without_replicate(by))
            );
            let generation = generation_of(&set.label)
                .or_else(|| generation_of(&scores.provenance.label))
                .or_else(|| generation_of(&scores.file.model));
            let member = Member {
                seed: replicate_of(&set.label).or_else(|| replicate_of(&scores.provenance.label)),
                set,
                scores,
            };
            let group = match groups.iter_mut().position(|g| g.name == name) {
                Some(i) => &mut groups[i],
                None => {
                    groups.push(Group {
                        name,
                        rows: Vec::new(),
                    });
                    groups.last_mut().expect("just pushed")
                }
            };
            // A replicate of a row already there: same generation, same set and
            // scorer but for the seed.
            let same = |row: &SetRow<'_>| {
                member.seed.is_some()
                    && row.generation == generation
                    && without_replicate(&row.members[0].set.label) == without_replicate(&set.label)
                    && row.scorer() == without_replicate(&scores.file.model)
                    && row.members.iter().all(|m| m.seed != member.seed)
            };
            match group.rows.iter_mut().find(|row| same(row)) {
                Some(row) => row.members.push(member),
                None => group.rows.push(SetRow {
                    generation,
                    set: Cow::Borrowed(set),
                    scores,
                    members: vec![member],
                }),
            }
        }
    }
    for group in &mut groups {
        for row in &mut group.rows {
            if row.is_replicated() {
                row.set = Cow::Owned(pooled(&row.members));
            }
        }
        group
            .rows
            .sort_by_key(|r| (r.generation.is_none(), r.generation.unwrap_or(0)));
        // Name the group by what its rows share: the scorer itself when one
        // model scored every set (`... scored by finetune@0.model`).
        group.name = format!(
            "{} scored by {}",
            shared_label(group.rows.iter().map(|r| r.set.label.as_str())),
            shared_label(
                group
                    .rows
                    .iter()
                    .map(|r| r.scorer())
                    .collect::<Vec<_>>()
                    .iter()
                    .map(String::as_str)
            )
        );
    }
    groups
}

/// The replicates of one set as one: every number the mean over seeds, the
/// per-sample perplexities pooled, the label without the seed.
fn pooled(members: &[Member<'_>]) -> SetScores {
    let mean = |value: fn(&SetScores) -> f64| {
        members.iter().map(|m| value(m.set)).sum::<f64>() / members.len() as f64
    };
    let mean_of = |value: fn(&SetScores) -> Option<f64>| {
        Summary::of(members.iter().filter_map(|m| value(m.set))).map(|s| s.mean)
    };
    let first = members[0].set;
    SetScores {
        label: without_replicate(&first.label),
        key: None,
        blocks: members.iter().map(|m| m.set.blocks).sum(),
        tokens: members.iter().map(|m| m.set.tokens).sum(),
        per_sample_perplexity: members
            .iter()
            .flat_map(|m| m.set.per_sample_perplexity.iter().copied())
            .collect(),
        corpus_perplexity: mean(|s| s.corpus_perplexity),
        batch_mean_perplexity: mean(|s| s.batch_mean_perplexity),
        mean: mean(|s| s.mean),
        median: mean(|s| s.median),
        p90: mean(|s| s.p90),
        p99: mean(|s| s.p99),
        distinct_1: mean_of(|s| s.distinct_1),
        distinct_2: mean_of(|s| s.distinct_2),
        distinct_3: mean_of(|s| s.distinct_3),
        repetition_rate: mean_of(|s| s.repetition_rate),
        unigram_kl: mean_of(|s| s.unigram_kl),
        unigram_js: mean_of(|s| s.unigram_js),
        tail_coverage: mean_of(|s| s.tail_coverage),
        tail_mass: mean_of(|s| s.tail_mass),
    }
}

/// The label all rows share, else the generation template most of them have (the
/// latest rows' on a tie; rows are in generation order): an arm whose generation 0
/// is shared with another arm names that arm's scorer in its file.
fn shared_label<'l>(labels: impl Iterator<Item = &'l str>) -> String {
    let labels: Vec<&str> = labels.collect();
    let first = labels.first().copied().unwrap_or_default();
    if labels.iter().all(|l| *l == first) {
        return first.to_string();
    }
    let templates: Vec<String> = labels.iter().map(|l| generation_template(l)).collect();
    let count = |t: &String| templates.iter().filter(|u| *u == t).count();
    let mut best = &templates[0];
    for t in &templates {
        if count(t) >= count(best) {
            best = t;
        }
    }
    best.clone()
}

/// The colour of a row: its generation, or a slot after the generations.
pub fn colour_of(generation: Option<u32>, position: usize) -> usize {
    match generation {
        Some(g) => g as usize,
        None => 10 + position,
    }
}

/// The distinct generations seen anywhere in the inputs.
pub fn generations(inputs: &ReportInputs) -> Vec<u32> {
    let mut gens: Vec<u32> = group_sets(inputs)
        .iter()
        .flat_map(|g| g.rows.iter().filter_map(|r| r.generation))
        .chain(
            inputs
                .training
                .iter()
                .filter_map(|t| generation_of(&t.provenance.label)),
        )
        .chain(
            inputs
                .answers
                .iter()
                .filter_map(|a| generation_of(&a.file.model)),
        )
        .collect();
    gens.sort_unstable();
    gens.dedup();
    gens
}
