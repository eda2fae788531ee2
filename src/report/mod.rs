//! The experiment report: figures (PNG and SVG, drawn with plotters), tables,
//! and the provenance of every number, as `report.md` and a self-contained
//! `report.html`. Fed by the `report` step kind (src/steps/report.rs).
//!
//! Layout of the output directory:
//! `report.md`, `report.html`, `figures/<id>.png`, `figures/<id>.svg`.

pub mod chart;
pub mod data;
pub mod document;
pub mod figures;
pub mod groups;
pub mod kde;
pub mod replicates;
pub mod tables;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use data::{Provenance, ReportInputs, read_answers, read_scores, read_training};
pub use figures::FigureKind;

use document::{Block, Document};

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a valid {what}: {detail}")]
    Format {
        path: PathBuf,
        what: &'static str,
        detail: String,
    },
    #[error("figure `{figure}`: drawing failed: {detail}")]
    Plot { figure: String, detail: String },
}

/// What to put in the report and how big.
#[derive(Clone, Debug)]
pub struct ReportOptions {
    pub title: String,
    pub figures: Vec<FigureKind>,
    /// Size of one plot panel in pixels (width, height).
    pub panel_size: (u32, u32),
}

/// What was written.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReportSummary {
    pub figures: Vec<String>,
    pub tables: Vec<String>,
    pub generations: Vec<u32>,
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    std::fs::write(path, bytes).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes the report into `out_dir` (created if missing).
pub fn build_report(
    inputs: &ReportInputs,
    options: &ReportOptions,
    out_dir: &Path,
) -> Result<ReportSummary, ReportError> {
    let figures_dir = out_dir.join("figures");
    std::fs::create_dir_all(&figures_dir).map_err(|source| ReportError::Io {
        path: figures_dir.clone(),
        source,
    })?;
    let groups = groups::group_sets(inputs);
    let mut summary = ReportSummary {
        generations: groups::generations(inputs),
        ..ReportSummary::default()
    };
    let mut svgs = BTreeMap::new();
    let mut blocks = vec![Block::Paragraph(format!(
        "Generations: {}. Inputs: {} evaluation(s), {} training run(s), {} prompt answer set(s). \
         Every table row names the input it came from; the provenance section gives each \
         input's step and key.",
        if summary.generations.is_empty() {
            "none labelled".to_string()
        } else {
            summary
                .generations
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        },
        inputs.evaluations.len(),
        inputs.training.len(),
        inputs.answers.len()
    ))];

    let mut figure = |kind: FigureKind, blocks: &mut Vec<Block>| -> Result<(), ReportError> {
        if !options.figures.contains(&kind) {
            return Ok(());
        }
        let Some(spec) = figures::build(kind, inputs, &groups, options.panel_size) else {
            return Ok(());
        };
        let rendered = chart::render(&spec)?;
        write(&figures_dir.join(format!("{}.png", spec.id)), &rendered.png)?;
        write(
            &figures_dir.join(format!("{}.svg", spec.id)),
            rendered.svg.as_bytes(),
        )?;
        svgs.insert(spec.id.clone(), rendered.svg);
        summary.figures.push(spec.id.clone());
        blocks.push(Block::Figure {
            id: spec.id,
            caption: kind.caption().into(),
        });
        Ok(())
    };
    let mut tables_written = Vec::new();
    let mut table = |t: Option<document::Table>, blocks: &mut Vec<Block>| {
        if let Some(t) = t {
            tables_written.push(t.id.clone());
            blocks.push(Block::Table(t));
        }
    };

    if !inputs.evaluations.is_empty() {
        blocks.push(Block::Heading("Perplexity".into()));
        figure(FigureKind::Density, &mut blocks)?;
        figure(FigureKind::Perplexity, &mut blocks)?;
        blocks.push(Block::Paragraph(
            "`corpus ppl` is the token-weighted perplexity of the whole set (the main number); \
             `batch-mean ppl (authors')` is exp of the mean over batches of each batch's mean \
             loss, as the original code computes it. `mean`, `median`, `p90`, `p99` are over \
             per-sample perplexities."
                .into(),
        ));
        table(tables::perplexity(&groups), &mut blocks);
        blocks.push(Block::Heading("Collapse metrics".into()));
        figure(FigureKind::Collapse, &mut blocks)?;
        table(tables::collapse(&groups), &mut blocks);
        let replicated = tables::replicates(&groups);
        if replicated.is_some() {
            blocks.push(Block::Heading("Over seeds".into()));
            blocks.push(Block::Paragraph(
                "Each number over the replicate seeds: its mean, the number of seeds and the \
                 95 % Student-t interval of the mean (mean ± t(0.975, n−1)·s/√n). The figures \
                 draw the means, the interval as a band; the density figure pools the seeds' \
                 per-sample perplexities."
                    .into(),
            ));
        }
        table(replicated, &mut blocks);
    }
    if !inputs.training.is_empty() {
        blocks.push(Block::Heading("Training".into()));
        figure(FigureKind::Training, &mut blocks)?;
        table(tables::training(inputs), &mut blocks);
    }
    if !inputs.answers.is_empty() {
        blocks.push(Block::Heading("Answers to the fixed prompts".into()));
        blocks.push(Block::Paragraph(
            "Each generation's answer to the same prompts (seed Table 1).".into(),
        ));
        table(tables::prompts(inputs), &mut blocks);
    }
    blocks.push(Block::Heading("Provenance".into()));
    blocks.push(Block::Paragraph(
        "Each input of this report, and the step and key that produced it (`(source)`: a file \
         named under `[sources]`). A step output's file is given relative to the store's root \
         (`cache/` by default); a source's by its file name."
            .into(),
    ));
    table(Some(tables::provenance(inputs)), &mut blocks);
    table(tables::evaluated_sets(inputs), &mut blocks);
    summary.tables = tables_written;

    let doc = Document {
        title: options.title.clone(),
        blocks,
    };
    write(
        &out_dir.join("report.md"),
        document::to_markdown(&doc).as_bytes(),
    )?;
    write(
        &out_dir.join("report.html"),
        document::to_html(&doc, &svgs).as_bytes(),
    )?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/report")
            .join(name)
    }

    fn from_step(slot: &str, step: &str, output: &str, file: &str) -> Provenance {
        Provenance {
            slot: slot.into(),
            label: format!("{step}.{output}"),
            step: Some(step.into()),
            key: Some(format!("{:0>64}", step.len())),
            path: fixture(file),
            store_path: None,
        }
    }

    /// Step outputs (not sources) label runs by their generation, sorted by it
    /// whatever the input order.
    #[test]
    fn step_outputs_are_labelled_and_sorted_by_generation() {
        let mut inputs = ReportInputs::default();
        for g in [2, 0, 1] {
            let p = from_step(
                "training",
                &format!("finetune@{g}"),
                "metrics",
                &format!("metrics_g{g}.jsonl"),
            );
            inputs.training.push(read_training(p).unwrap());
            let p = from_step(
                "answers",
                &format!("prompts@{g}"),
                "answers",
                &format!("answers_g{g}.json"),
            );
            inputs.answers.push(read_answers(p).unwrap());
        }
        let p = from_step("evaluations", "evaluate", "scores", "scores_synthetic.json");
        inputs.evaluations.push(read_scores(p).unwrap());
        let out = tempfile::tempdir().unwrap();
        let options = ReportOptions {
            title: "t".into(),
            figures: FigureKind::ALL.to_vec(),
            panel_size: (400, 300),
        };
        let summary = build_report(&inputs, &options, out.path()).unwrap();
        assert_eq!(summary.generations, [0, 1, 2]);
        assert_eq!(
            summary.figures,
            ["density", "perplexity", "collapse", "training"]
        );
        let md = std::fs::read_to_string(out.path().join("report.md")).unwrap();
        let rows: Vec<&str> = md
            .lines()
            .filter(|l| l.starts_with("| gen ") && l.ends_with(".metrics |"))
            .collect();
        let order: Vec<bool> = (0..3)
            .map(|g| {
                rows.get(g)
                    .is_some_and(|r| r.starts_with(&format!("| gen {g} |")))
            })
            .collect();
        assert_eq!(order, [true, true, true], "{md}");
        assert!(
            md.contains("| finetune@2.metrics | training | finetune@2 |"),
            "{md}"
        );
        let svg = std::fs::read_to_string(out.path().join("figures/training.svg")).unwrap();
        assert!(svg.contains("gen 0") && svg.contains("gen 2"));
    }

    fn provenance(slot: &str, label: &str) -> Provenance {
        Provenance {
            slot: slot.into(),
            label: label.into(),
            step: Some(label.split('.').next().unwrap().into()),
            key: Some("ab".repeat(32)),
            path: PathBuf::from("/somewhere/on/this/machine/x.json"),
            store_path: Some(format!("entries/{}/out/x.json", "ab".repeat(32)).into()),
        }
    }

    /// Two arms share generation 0's evaluation (one key, one file, which names the
    /// replace arm's scorer): each arm's series still starts at generation 0, and
    /// is named by its own scorer.
    #[test]
    fn an_evaluation_two_arms_share_belongs_to_both() {
        use crate::artifacts::ScoresFile;
        use crate::artifacts::scores::tests::degenerate_set;
        let mut inputs = ReportInputs::default();
        let scores = |reference: &str, scorer: &str| data::Scores {
            provenance: provenance("evaluations", reference),
            file: ScoresFile {
                model: scorer.into(),
                model_key: None,
                sets: vec![degenerate_set("blocks.test")],
            },
        };
        for g in 0..3 {
            inputs.evaluations.push(scores(
                &format!("test@{g}.scores"),
                &format!("finetune@{g}.model"),
            ));
        }
        inputs
            .evaluations
            .push(scores("acc_test@0.scores", "finetune@0.model"));
        for g in 1..3 {
            inputs.evaluations.push(scores(
                &format!("acc_test@{g}.scores"),
                &format!("acc_finetune@{g}.model"),
            ));
        }
        let groups = groups::group_sets(&inputs);
        let summary: Vec<(String, Vec<Option<u32>>)> = groups
            .iter()
            .map(|g| {
                (
                    g.name.clone(),
                    g.rows.iter().map(|r| r.generation).collect(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            [
                (
                    "blocks.test scored by finetune@*.model".to_string(),
                    vec![Some(0), Some(1), Some(2)]
                ),
                (
                    "blocks.test scored by acc_finetune@*.model".to_string(),
                    vec![Some(0), Some(1), Some(2)]
                ),
            ]
        );
    }

    /// Degenerate artifacts render: a set too short for distinct-3 (null
    /// metrics), a set scored once, and a generation with no answers.
    #[test]
    fn degenerate_inputs_render() {
        use crate::artifacts::scores::tests::degenerate_set;
        use crate::artifacts::{Answer, AnswersFile, ScoresFile};
        let mut inputs = ReportInputs::default();
        let mut sets = vec![degenerate_set("blocks.train")];
        for g in 0..2 {
            sets.push(degenerate_set(&format!("synthesize@{g}.blocks")));
        }
        inputs.evaluations.push(data::Scores {
            provenance: provenance("evaluations", "fig1.scores"),
            file: ScoresFile {
                model: "finetune@0.model".into(),
                model_key: None,
                sets,
            },
        });
        inputs.evaluations.push(data::Scores {
            provenance: provenance("evaluations", "once.scores"),
            file: ScoresFile {
                model: "other".into(),
                model_key: None,
                sets: vec![degenerate_set("blocks.test")],
            },
        });
        for (g, answers) in [(0, 1), (1, 0)] {
            inputs.answers.push(data::Answers {
                provenance: provenance("answers", &format!("answers@{g}.answers")),
                file: AnswersFile {
                    model: format!("finetune@{g}.model"),
                    answers: (0..answers)
                        .map(|_| Answer {
                            prompt: "p".into(),
                            answer: "a".into(),
                            ids: vec![1],
                        })
                        .collect(),
                },
            });
        }
        let out = tempfile::tempdir().unwrap();
        let options = ReportOptions {
            title: "t".into(),
            figures: FigureKind::ALL.to_vec(),
            panel_size: (400, 300),
        };
        let summary = build_report(&inputs, &options, out.path()).unwrap();
        assert_eq!(summary.figures, ["density", "perplexity", "collapse"]);
        let md = std::fs::read_to_string(out.path().join("report.md")).unwrap();
        // distinct-3 and every metric after it are null: shown as —.
        assert!(
            md.contains("| 1 | synthesize@1.blocks | 1.000 | — | — | — | — | — | — | — |"),
            "{md}"
        );
        // The generation without answers has an empty cell, not a missing column.
        assert!(md.contains("| p | a | — |"), "{md}");
        // Provenance: relative to the store, never this machine's path.
        assert!(md.contains("| entries/abab"), "{md}");
        assert!(!md.contains("/somewhere/on/this/machine"), "{md}");
        // The real data is the density's reference curve, beside the generations.
        let density = std::fs::read_to_string(out.path().join("figures/density.svg")).unwrap();
        assert!(density.contains("real data (blocks.train)"), "{density}");
        // The set scored once by another model has its own density panel, and no
        // one-point perplexity panel.
        assert!(density.contains("real data (blocks.test)"));
        let perplexity =
            std::fs::read_to_string(out.path().join("figures/perplexity.svg")).unwrap();
        assert!(!perplexity.contains("blocks.test"));
        assert!(perplexity.contains("real data (blocks.train), corpus"));
    }
}
