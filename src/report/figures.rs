//! The report's figures, as chart specifications (drawn by [`super::chart`]).

use serde::{Deserialize, Serialize};

use super::chart::{Chart, FigureSpec, Series};
use super::data::{ReportInputs, Training, generation_of};
use super::groups::{Group, SetRow, colour_of};
use super::kde::{gaussian_kde, padded_range};

/// The figures a report can hold.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum FigureKind {
    /// Density of per-sample perplexity per generation (seed Figure 1).
    Density,
    /// Corpus and batch-mean perplexity against generation.
    Perplexity,
    /// Distinct-n, repetition, KL/JS to the reference, tail coverage/mass against generation.
    Collapse,
    /// Train loss per step and validation loss per epoch, per generation.
    Training,
}

impl FigureKind {
    pub const ALL: [FigureKind; 4] = [
        FigureKind::Density,
        FigureKind::Perplexity,
        FigureKind::Collapse,
        FigureKind::Training,
    ];

    /// The file stem under `figures/` and the HTML anchor.
    pub fn id(self) -> &'static str {
        match self {
            FigureKind::Density => "density",
            FigureKind::Perplexity => "perplexity",
            FigureKind::Collapse => "collapse",
            FigureKind::Training => "training",
        }
    }

    pub fn caption(self) -> &'static str {
        match self {
            FigureKind::Density => {
                "Density of per-sample perplexity, one curve per generation (seed Figure 1). \
                 Gaussian kernel density estimate of log10(perplexity), Silverman bandwidth; \
                 the x axis is logarithmic and the density is per log10 unit."
            }
            FigureKind::Perplexity => {
                "Perplexity against generation: the token-weighted corpus perplexity (main number) \
                 and the authors' variant, exp(mean over batches of the batch mean loss)."
            }
            FigureKind::Collapse => {
                "Collapse metrics against generation: distinct-n (share of distinct n-grams), \
                 repetition rate, unigram KL and JS divergence to the reference data, and the \
                 coverage and mass of the reference's rare-token tail."
            }
            FigureKind::Training => {
                "Training curves per generation: train loss per optimizer step and validation \
                 loss per epoch."
            }
        }
    }
}

/// Builds the figure of `kind`; `None` when the inputs hold nothing for it.
pub fn build(kind: FigureKind, inputs: &ReportInputs, groups: &[Group<'_>]) -> Option<FigureSpec> {
    let panels = match kind {
        FigureKind::Density => groups.iter().filter_map(density_panel).collect(),
        FigureKind::Perplexity => groups
            .iter()
            .filter(|g| g.has_generations())
            .map(perplexity_panel)
            .collect(),
        FigureKind::Collapse => collapse_panels(groups),
        FigureKind::Training => training_panels(inputs),
    };
    let panels: Vec<Chart> = panels;
    if panels.is_empty() {
        return None;
    }
    let columns = match kind {
        FigureKind::Collapse | FigureKind::Training => 2,
        _ => 1,
    };
    Some(FigureSpec {
        id: kind.id().into(),
        columns,
        panels,
    })
}

fn density_panel(group: &Group<'_>) -> Option<Chart> {
    let logs = |row: &SetRow<'_>| -> Vec<f64> {
        row.set
            .per_sample_perplexity
            .iter()
            .filter(|p| p.is_finite() && **p > 0.0)
            .map(|p| p.log10())
            .collect()
    };
    let all: Vec<f64> = group.rows.iter().flat_map(logs).collect();
    let (lo, hi) = padded_range(&all)?;
    let series: Vec<Series> = group
        .rows
        .iter()
        .enumerate()
        .filter_map(|(i, row)| {
            let density = gaussian_kde(&logs(row), lo, hi, 200)?;
            Some(Series {
                name: row.curve_name(),
                colour: colour_of(row.generation, i),
                points: density.points,
                markers: false,
            })
        })
        .collect();
    (!series.is_empty()).then(|| Chart {
        title: format!("Per-sample perplexity: {}", group.name),
        x_label: "perplexity (log scale)".into(),
        y_label: "density (per log10 unit)".into(),
        x_log10: true,
        x_integer: false,
        series,
    })
}

fn by_generation(group: &Group<'_>, value: impl Fn(&SetRow<'_>) -> Option<f64>) -> Vec<(f64, f64)> {
    group
        .rows
        .iter()
        .filter_map(|r| Some((r.generation? as f64, value(r)?)))
        .filter(|p| p.1.is_finite())
        .collect()
}

fn perplexity_panel(group: &Group<'_>) -> Chart {
    Chart {
        title: format!("Perplexity: {}", group.name),
        x_label: "generation".into(),
        y_label: "perplexity".into(),
        x_log10: false,
        x_integer: true,
        series: vec![
            Series {
                name: "corpus (token-weighted)".into(),
                colour: 0,
                points: by_generation(group, |r| Some(r.set.corpus_perplexity)),
                markers: true,
            },
            Series {
                name: "batch mean (authors')".into(),
                colour: 1,
                points: by_generation(group, |r| Some(r.set.batch_mean_perplexity)),
                markers: true,
            },
        ],
    }
}

type Metric = (&'static str, fn(&SetRow<'_>) -> Option<f64>);

fn collapse_panels(groups: &[Group<'_>]) -> Vec<Chart> {
    let panels: [(&str, &str, Vec<Metric>); 6] = [
        (
            "Distinct n-grams",
            "share distinct",
            vec![
                ("distinct-1", |r| r.set.distinct_1),
                ("distinct-2", |r| r.set.distinct_2),
                ("distinct-3", |r| r.set.distinct_3),
            ],
        ),
        (
            "Repetition rate",
            "rate",
            vec![("repetition", |r| r.set.repetition_rate)],
        ),
        (
            "Unigram KL to reference",
            "KL (nats)",
            vec![("KL", |r| r.set.unigram_kl)],
        ),
        (
            "Unigram JS to reference",
            "JS (nats)",
            vec![("JS", |r| r.set.unigram_js)],
        ),
        (
            "Tail coverage",
            "share of tail tokens seen",
            vec![("coverage", |r| r.set.tail_coverage)],
        ),
        (
            "Tail mass",
            "probability mass of the tail",
            vec![("mass", |r| r.set.tail_mass)],
        ),
    ];
    let plotted: Vec<&Group<'_>> = groups.iter().filter(|g| g.has_generations()).collect();
    let mut charts = Vec::new();
    for (title, y_label, metrics) in panels {
        let mut series = Vec::new();
        for group in &plotted {
            for (name, value) in &metrics {
                let points = by_generation(group, value);
                if points.is_empty() {
                    continue;
                }
                let name = if plotted.len() > 1 {
                    format!("{name}: {}", short_group_name(&group.name))
                } else {
                    (*name).to_string()
                };
                series.push(Series {
                    colour: series.len(),
                    name,
                    points,
                    markers: true,
                });
            }
        }
        if !series.is_empty() {
            charts.push(Chart {
                title: title.into(),
                x_label: "generation".into(),
                y_label: y_label.into(),
                x_log10: false,
                x_integer: true,
                series,
            });
        }
    }
    charts
}

/// `synthesize@*.blocks scored by finetune@0.model` → `synthesize@*.blocks / finetune@0`:
/// legends stay narrow (the full name is in the tables).
fn short_group_name(name: &str) -> String {
    let strip = |label: &str| {
        label
            .rsplit_once('.')
            .map(|(s, _)| s.to_string())
            .unwrap_or(label.to_string())
    };
    match name.split_once(" scored by ") {
        Some((set, scorer)) => format!("{set} / {}", strip(scorer)),
        None => name.to_string(),
    }
}

/// Training inputs by generation (inputs without one last, in input order).
pub fn sorted_training(inputs: &ReportInputs) -> Vec<(Option<u32>, &Training)> {
    let mut runs: Vec<(Option<u32>, &Training)> = inputs
        .training
        .iter()
        .map(|t| (generation_of(&t.provenance.label), t))
        .collect();
    runs.sort_by_key(|(g, _)| (g.is_none(), g.unwrap_or(0)));
    runs
}

/// A curve's name: its generation, or its label outside a loop.
pub fn run_name(generation: Option<u32>, label: &str) -> String {
    match generation {
        Some(g) => format!("gen {g}"),
        None => label.to_string(),
    }
}

fn training_panels(inputs: &ReportInputs) -> Vec<Chart> {
    let runs = sorted_training(inputs);
    let train: Vec<Series> = runs
        .iter()
        .enumerate()
        .filter(|(_, (_, t))| t.metrics.train().next().is_some())
        .map(|(i, (g, t))| Series {
            name: run_name(*g, &t.provenance.label),
            colour: colour_of(*g, i),
            points: t.metrics.train().map(|p| (p.step as f64, p.loss)).collect(),
            markers: false,
        })
        .collect();
    let valid: Vec<Series> = runs
        .iter()
        .enumerate()
        .filter(|(_, (_, t))| t.metrics.valid().next().is_some())
        .map(|(i, (g, t))| Series {
            name: run_name(*g, &t.provenance.label),
            colour: colour_of(*g, i),
            points: t
                .metrics
                .valid()
                .map(|p| (p.epoch as f64, p.loss))
                .collect(),
            markers: true,
        })
        .collect();
    let mut charts = Vec::new();
    if !train.is_empty() {
        charts.push(Chart {
            title: "Train loss per step".into(),
            x_label: "optimizer step".into(),
            y_label: "loss (nats/token)".into(),
            x_log10: false,
            x_integer: false,
            series: train,
        });
    }
    if !valid.is_empty() {
        charts.push(Chart {
            title: "Validation loss per epoch".into(),
            x_label: "epoch".into(),
            y_label: "loss (nats/token)".into(),
            x_log10: false,
            x_integer: true,
            series: valid,
        });
    }
    charts
}
