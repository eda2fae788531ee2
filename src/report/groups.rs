//! Evaluated sets arranged by generation. Sets whose labels differ only by
//! generation, read from evaluations whose references differ only by generation
//! (or, where the reference has none, scored by models whose names do), form a
//! group (`synthesize@*.blocks` scored by `finetune@0.model`: the seed's Figure 1;
//! `blocks.test` from `test@*.scores`: test perplexity per generation); within a
//! group, rows are sorted by generation. A generation in the reference comes
//! before the scorer named in the file: an evaluation two arms share (one key, so
//! one file naming the scorer of the arm that ran it first) belongs to each arm
//! that lists it.

use super::data::{ReportInputs, Scores, generation_of, generation_template};
use crate::artifacts::SetScores;

/// One evaluated set, placed in its group.
#[derive(Clone, Debug)]
pub struct SetRow<'a> {
    /// From the set's label, else from the evaluation's reference (`test@2.scores`),
    /// else from the scorer's (`blocks.test` scored by `finetune@2.model`).
    pub generation: Option<u32>,
    pub set: &'a SetScores,
    pub scores: &'a Scores,
}

impl SetRow<'_> {
    pub fn scorer(&self) -> &str {
        &self.scores.file.model
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
    pub fn shared_scorer(&self) -> Option<&str> {
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
    groups
        .iter()
        .filter(|g| g.is_series())
        .any(|g| g.shared_scorer() == Some(row.scorer()))
}

/// Groups in order of first appearance; rows by generation (rows without one last,
/// in input order).
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
                generation_template(&set.label),
                generation_template(by)
            );
            let row = SetRow {
                generation: generation_of(&set.label)
                    .or_else(|| generation_of(&scores.provenance.label))
                    .or_else(|| generation_of(&scores.file.model)),
                set,
                scores,
            };
            match groups.iter_mut().find(|g| g.name == name) {
                Some(group) => group.rows.push(row),
                None => groups.push(Group {
                    name,
                    rows: vec![row],
                }),
            }
        }
    }
    for group in &mut groups {
        group
            .rows
            .sort_by_key(|r| (r.generation.is_none(), r.generation.unwrap_or(0)));
        // Name the group by what its rows share: the scorer itself when one
        // model scored every set (`... scored by finetune@0.model`).
        group.name = format!(
            "{} scored by {}",
            shared_label(group.rows.iter().map(|r| r.set.label.as_str())),
            shared_label(group.rows.iter().map(|r| r.scorer()))
        );
    }
    groups
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
