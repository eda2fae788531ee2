//! The report's tables. Every row names the input it came from (an origin
//! label); the provenance table maps each label to its step and key.

use super::data::{ReportInputs, generation_of};
use super::document::Table;
use super::figures::{run_name, sorted_training};
use super::groups::{Group, Member, SetRow};
use crate::artifacts::SetScores;

/// Four significant figures or so; `—` for a missing value.
pub fn num(value: Option<f64>) -> String {
    match value {
        None => "—".into(),
        Some(v) if !v.is_finite() => format!("{v}"),
        Some(v) if v.abs() >= 1000.0 => format!("{v:.1}"),
        Some(v) if v.abs() >= 1.0 => format!("{v:.3}"),
        Some(v) => format!("{v:.4}"),
    }
}

fn gen_cell(generation: Option<u32>) -> String {
    generation
        .map(|g| g.to_string())
        .unwrap_or_else(|| "—".into())
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Every replicate of every row, with its row: the tables list each seed's set.
fn members<'g, 'a>(
    groups: &'g [Group<'a>],
) -> impl Iterator<Item = (&'g SetRow<'a>, &'g Member<'a>)> {
    groups.iter().flat_map(|g| {
        g.rows
            .iter()
            .flat_map(|r| r.members.iter().map(move |m| (r, m)))
    })
}

pub fn perplexity(groups: &[Group<'_>]) -> Option<Table> {
    let rows: Vec<Vec<String>> = members(groups)
        .map(|(r, m)| {
            let s = m.set;
            vec![
                gen_cell(r.generation),
                s.label.clone(),
                m.scores.file.model.clone(),
                s.blocks.to_string(),
                s.tokens.to_string(),
                num(Some(s.corpus_perplexity)),
                num(Some(s.batch_mean_perplexity)),
                num(Some(s.mean)),
                num(Some(s.median)),
                num(Some(s.p90)),
                num(Some(s.p99)),
                m.scores.provenance.label.clone(),
            ]
        })
        .collect();
    (!rows.is_empty()).then(|| Table {
        id: "perplexity".into(),
        header: strings(&[
            "gen",
            "set",
            "scored by",
            "blocks",
            "tokens",
            "corpus ppl",
            "batch-mean ppl (authors')",
            "mean",
            "median",
            "p90",
            "p99",
            "from",
        ]),
        rows,
    })
}

pub fn collapse(groups: &[Group<'_>]) -> Option<Table> {
    let rows: Vec<Vec<String>> = members(groups)
        .map(|(r, m)| {
            let s = m.set;
            vec![
                gen_cell(r.generation),
                s.label.clone(),
                num(s.distinct_1),
                num(s.distinct_2),
                num(s.distinct_3),
                num(s.repetition_rate),
                num(s.unigram_kl),
                num(s.unigram_js),
                num(s.tail_coverage),
                num(s.tail_mass),
                m.scores.provenance.label.clone(),
            ]
        })
        .collect();
    (!rows.is_empty()).then(|| Table {
        id: "collapse".into(),
        header: strings(&[
            "gen",
            "set",
            "distinct-1",
            "distinct-2",
            "distinct-3",
            "repetition",
            "unigram KL",
            "unigram JS",
            "tail coverage",
            "tail mass",
            "from",
        ]),
        rows,
    })
}

type Metric = fn(&SetScores) -> Option<f64>;

const PERPLEXITY_METRICS: usize = 5;

/// The numbers a replicate table summarises, in the perplexity and collapse
/// tables' order; the first [`PERPLEXITY_METRICS`] depend on the scorer, the
/// others on the text alone.
const REPLICATED_METRICS: [(&str, Metric); 13] = [
    ("corpus ppl", |s| Some(s.corpus_perplexity)),
    ("batch-mean ppl (authors')", |s| {
        Some(s.batch_mean_perplexity)
    }),
    ("mean ppl", |s| Some(s.mean)),
    ("median ppl", |s| Some(s.median)),
    ("p90 ppl", |s| Some(s.p90)),
    ("distinct-1", |s| s.distinct_1),
    ("distinct-2", |s| s.distinct_2),
    ("distinct-3", |s| s.distinct_3),
    ("repetition", |s| s.repetition_rate),
    ("unigram KL", |s| s.unigram_kl),
    ("unigram JS", |s| s.unigram_js),
    ("tail coverage", |s| s.tail_coverage),
    ("tail mass", |s| s.tail_mass),
];

/// Over seeds: per group, generation and number, the mean, n and the 95 %
/// Student-t interval of the mean. Only when some row pools replicates.
pub fn replicates(groups: &[Group<'_>]) -> Option<Table> {
    if !groups
        .iter()
        .flat_map(|g| &g.rows)
        .any(SetRow::is_replicated)
    {
        return None;
    }
    let mut rows = Vec::new();
    for group in groups {
        // The test split under each generation's model: its text-only numbers are
        // the same in every row, as in the collapse figure.
        let metrics = if group.same_set() && group.rows.len() > 1 {
            &REPLICATED_METRICS[..PERPLEXITY_METRICS]
        } else {
            &REPLICATED_METRICS[..]
        };
        for row in &group.rows {
            for &(name, value) in metrics {
                let Some(summary) = row.summary(value) else {
                    continue;
                };
                let (lo, hi) = match summary.interval() {
                    Some((lo, hi)) => (Some(lo), Some(hi)),
                    None => (None, None),
                };
                rows.push(vec![
                    gen_cell(row.generation),
                    row.set.label.clone(),
                    row.scorer(),
                    name.to_string(),
                    summary.n.to_string(),
                    num(Some(summary.mean)),
                    num(lo),
                    num(hi),
                ]);
            }
        }
    }
    (!rows.is_empty()).then(|| Table {
        id: "replicates".into(),
        header: strings(&[
            "gen",
            "set",
            "scored by",
            "metric",
            "seeds",
            "mean",
            "95% CI low",
            "95% CI high",
        ]),
        rows,
    })
}

pub fn training(inputs: &ReportInputs) -> Option<Table> {
    let rows: Vec<Vec<String>> = sorted_training(inputs)
        .into_iter()
        .map(|(g, t)| {
            let best = t.metrics.valid().min_by(|a, b| a.loss.total_cmp(&b.loss));
            let epochs = t
                .metrics
                .train()
                .map(|p| p.epoch)
                .chain(t.metrics.valid().map(|p| p.epoch))
                .max();
            vec![
                run_name(g, &t.provenance.label),
                t.metrics.train().count().to_string(),
                epochs.map(|e| e.to_string()).unwrap_or_else(|| "—".into()),
                num(t.metrics.train().last().map(|p| p.loss)),
                num(best.map(|p| p.loss)),
                best.map(|p| p.epoch.to_string())
                    .unwrap_or_else(|| "—".into()),
                num(best.map(|p| p.perplexity)),
                t.provenance.label.clone(),
            ]
        })
        .collect();
    (!rows.is_empty()).then(|| Table {
        id: "training".into(),
        header: strings(&[
            "run",
            "steps",
            "epochs",
            "final train loss",
            "best valid loss",
            "best epoch",
            "best valid ppl",
            "from",
        ]),
        rows,
    })
}

/// Seed Table 1: one row per prompt, one column per generation's model.
pub fn prompts(inputs: &ReportInputs) -> Option<Table> {
    let mut runs: Vec<(Option<u32>, usize)> = inputs
        .answers
        .iter()
        .enumerate()
        .map(|(i, a)| (generation_of(&a.file.model), i))
        .collect();
    runs.sort_by_key(|(g, i)| (g.is_none(), g.unwrap_or(0), *i));
    let mut prompts: Vec<&str> = Vec::new();
    for answers in &inputs.answers {
        for a in &answers.file.answers {
            if !prompts.contains(&a.prompt.as_str()) {
                prompts.push(&a.prompt);
            }
        }
    }
    if prompts.is_empty() {
        return None;
    }
    let mut header = vec!["prompt".to_string()];
    header.extend(runs.iter().map(|(g, i)| {
        let model = &inputs.answers[*i].file.model;
        match g {
            Some(g) => format!("gen {g} ({model})"),
            None => model.clone(),
        }
    }));
    let rows = prompts
        .iter()
        .map(|prompt| {
            let mut row = vec![prompt.to_string()];
            row.extend(runs.iter().map(|(_, i)| {
                inputs.answers[*i]
                    .file
                    .answers
                    .iter()
                    .find(|a| a.prompt == *prompt)
                    .map(|a| a.answer.clone())
                    .unwrap_or_else(|| "—".into())
            }));
            row
        })
        .collect();
    Some(Table {
        id: "prompts".into(),
        header,
        rows,
    })
}

/// Every input file: which step and key produced it.
pub fn provenance(inputs: &ReportInputs) -> Table {
    let rows = inputs
        .provenances()
        .into_iter()
        .map(|p| {
            vec![
                p.label.clone(),
                p.slot.clone(),
                p.step.clone().unwrap_or_else(|| "(source)".into()),
                p.key.clone().unwrap_or_else(|| "—".into()),
                p.shown_path(),
            ]
        })
        .collect();
    Table {
        id: "provenance".into(),
        header: strings(&["input", "slot", "step", "key", "file"]),
        rows,
    }
}

/// The evaluated sets and scorers named inside scores files, with their keys.
pub fn evaluated_sets(inputs: &ReportInputs) -> Option<Table> {
    let rows: Vec<Vec<String>> = inputs
        .evaluations
        .iter()
        .flat_map(|s| {
            let scorer = vec![
                s.file.model.clone(),
                "scorer".into(),
                s.file.model_key.clone().unwrap_or_else(|| "—".into()),
                s.provenance.label.clone(),
            ];
            std::iter::once(scorer).chain(s.file.sets.iter().map(|set| {
                vec![
                    set.label.clone(),
                    "evaluated set".into(),
                    set.key.clone().unwrap_or_else(|| "—".into()),
                    s.provenance.label.clone(),
                ]
            }))
        })
        .collect();
    (!rows.is_empty()).then(|| Table {
        id: "sets".into(),
        header: strings(&["label", "role", "key", "in"]),
        rows,
    })
}
