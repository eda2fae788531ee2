//! The report's tables. Every row names the input it came from (an origin
//! label); the provenance table maps each label to its step and key.

use super::data::{ReportInputs, generation_of};
use super::document::Table;
use super::figures::{run_name, sorted_training};
use super::groups::Group;

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

pub fn perplexity(groups: &[Group<'_>]) -> Option<Table> {
    let rows: Vec<Vec<String>> = groups
        .iter()
        .flat_map(|g| {
            g.rows.iter().map(|r| {
                let s = r.set;
                vec![
                    gen_cell(r.generation),
                    s.label.clone(),
                    r.scorer().to_string(),
                    s.blocks.to_string(),
                    s.tokens.to_string(),
                    num(Some(s.corpus_perplexity)),
                    num(Some(s.batch_mean_perplexity)),
                    num(Some(s.mean)),
                    num(Some(s.median)),
                    num(Some(s.p90)),
                    num(Some(s.p99)),
                    r.scores.provenance.label.clone(),
                ]
            })
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
    let rows: Vec<Vec<String>> = groups
        .iter()
        .flat_map(|g| {
            g.rows.iter().map(|r| {
                let s = r.set;
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
                    r.scores.provenance.label.clone(),
                ]
            })
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
