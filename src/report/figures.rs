//! The report's figures, as chart specifications (drawn by [`super::chart`]).

use serde::{Deserialize, Serialize};

use super::chart::{Chart, Colour, FigureSpec, RefLine, Series};
use super::data::{ReportInputs, Training, generation_of, generation_template};
use super::groups::{
    Group, SetRow, colour_of, is_attached, is_real_data, reference_name, references_of,
};
use super::kde::{gaussian_kde, padded_range};
use crate::artifacts::SetScores;

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
                "Density of per-sample perplexity, one curve per generation, the real data \
                 (scored by the same model) as the dashed reference curve (seed Figure 1). \
                 Gaussian kernel density estimate of log10(perplexity), Silverman bandwidth; \
                 the x axis is logarithmic and the density is per log10 unit."
            }
            FigureKind::Perplexity => {
                "Perplexity against generation: the token-weighted corpus perplexity (main number) \
                 and the authors' variant, exp(mean over batches of the batch mean loss); the \
                 dashed line is the real data's corpus perplexity under the same model."
            }
            FigureKind::Collapse => {
                "Collapse metrics against generation, one panel per metric: distinct-n (share \
                 of distinct n-grams), repetition rate, unigram KL and JS divergence to the \
                 reference data, and the coverage and mass of the reference's rare-token tail. \
                 The dashed line is the real data's value; a set that is the same in every \
                 generation (the test split) is in the table only."
            }
            FigureKind::Training => {
                "Training curves per generation: train loss per optimizer step and validation \
                 loss per epoch."
            }
        }
    }
}

/// Builds the figure of `kind`, each panel `panel_size` (width, height) pixels
/// (collapse metrics: smaller panels, four to a row); `None` when the inputs hold
/// nothing for it.
pub fn build(
    kind: FigureKind,
    inputs: &ReportInputs,
    groups: &[Group<'_>],
    panel_size: (u32, u32),
) -> Option<FigureSpec> {
    let panels: Vec<Chart> = match kind {
        FigureKind::Density => density_panels(groups),
        FigureKind::Perplexity => groups
            .iter()
            .filter(|g| g.is_series())
            .map(|g| perplexity_panel(g, groups))
            .collect(),
        FigureKind::Collapse => collapse_panels(groups),
        FigureKind::Training => training_panels(inputs),
    };
    if panels.is_empty() {
        return None;
    }
    let (columns, panel_size) = match kind {
        FigureKind::Collapse => (4, (panel_size.0 / 2, panel_size.1 * 3 / 4)),
        FigureKind::Training => (2, panel_size),
        _ => (1, panel_size),
    };
    Some(FigureSpec {
        id: kind.id().into(),
        columns,
        panel_size,
        panels,
    })
}

fn log_perplexities(row: &SetRow<'_>) -> Vec<f64> {
    row.set
        .per_sample_perplexity
        .iter()
        .filter(|p| p.is_finite() && **p > 0.0)
        .map(|p| p.log10())
        .collect()
}

/// One panel per series group, its references' densities drawn in it (seed
/// Figure 1: the real data beside the generations); a set scored once that is no
/// series' reference gets a panel of its own.
fn density_panels(groups: &[Group<'_>]) -> Vec<Chart> {
    let mut panels = Vec::new();
    for group in groups {
        let (rows, references): (Vec<&SetRow<'_>>, Vec<&SetRow<'_>>) = if group.is_series() {
            (group.rows.iter().collect(), references_of(group, groups))
        } else {
            match group.single() {
                Some(row) if !is_attached(row, groups) => (Vec::new(), vec![row]),
                _ => continue,
            }
        };
        let all: Vec<f64> = rows
            .iter()
            .chain(&references)
            .flat_map(|r| log_perplexities(r))
            .collect();
        let Some((lo, hi)) = padded_range(&all) else {
            continue;
        };
        let curve = |row: &SetRow<'_>, name: String, colour: Colour| {
            let density = gaussian_kde(&log_perplexities(row), lo, hi, 200)?;
            Some(Series {
                name,
                colour,
                points: density.points,
                band: Vec::new(),
                markers: false,
            })
        };
        let mut series: Vec<Series> = rows
            .iter()
            .enumerate()
            .filter_map(|(i, row)| {
                curve(
                    row,
                    row.curve_name(),
                    Colour::Palette(colour_of(row.generation, i)),
                )
            })
            .collect();
        series.extend(references.iter().enumerate().filter_map(|(i, row)| {
            curve(row, reference_name(&row.set.label), Colour::Reference(i))
        }));
        if series.is_empty() {
            continue;
        }
        panels.push(Chart {
            title: format!("Per-sample perplexity: {}", group.name),
            x_label: "perplexity (log scale)".into(),
            y_label: "density (per log10 unit)".into(),
            x_log10: true,
            x_integer: false,
            series,
            ref_lines: Vec::new(),
        });
    }
    panels
}

/// (generation, value) of each row: over replicates, the mean.
fn by_generation(group: &Group<'_>, value: Metric) -> Vec<(f64, f64)> {
    group
        .rows
        .iter()
        .filter_map(|r| Some((r.generation? as f64, value(&r.set)?)))
        .filter(|p| p.1.is_finite())
        .collect()
}

/// (generation, low, high) of the 95 % interval over replicates, for rows that
/// pool two or more seeds.
fn band_by_generation(group: &Group<'_>, value: Metric) -> Vec<(f64, f64, f64)> {
    group
        .rows
        .iter()
        .filter_map(|r| {
            let (lo, hi) = r.summary(value)?.interval()?;
            Some((r.generation? as f64, lo, hi))
        })
        .filter(|b| b.1.is_finite() && b.2.is_finite())
        .collect()
}

fn perplexity_panel(group: &Group<'_>, groups: &[Group<'_>]) -> Chart {
    let ref_lines = references_of(group, groups)
        .into_iter()
        .enumerate()
        .map(|(i, row)| RefLine {
            name: format!("{}, corpus", reference_name(&row.set.label)),
            colour: Colour::Reference(i),
            y: row.set.corpus_perplexity,
        })
        .collect();
    Chart {
        title: format!("Perplexity: {}", group.name),
        x_label: "generation".into(),
        y_label: "perplexity".into(),
        x_log10: false,
        x_integer: true,
        series: vec![
            Series {
                name: "corpus (token-weighted)".into(),
                colour: Colour::Palette(0),
                points: by_generation(group, |s| Some(s.corpus_perplexity)),
                band: band_by_generation(group, |s| Some(s.corpus_perplexity)),
                markers: true,
            },
            Series {
                name: "batch mean (authors')".into(),
                colour: Colour::Palette(1),
                points: by_generation(group, |s| Some(s.batch_mean_perplexity)),
                band: band_by_generation(group, |s| Some(s.batch_mean_perplexity)),
                markers: true,
            },
        ],
        ref_lines,
    }
}

type Metric = fn(&SetScores) -> Option<f64>;

/// The collapse metrics, one panel each: (title, y label, value).
const COLLAPSE_METRICS: [(&str, &str, Metric); 8] = [
    ("Distinct 1-grams", "share distinct", |s| s.distinct_1),
    ("Distinct 2-grams", "share distinct", |s| s.distinct_2),
    ("Distinct 3-grams", "share distinct", |s| s.distinct_3),
    ("Repetition rate", "rate", |s| s.repetition_rate),
    ("Unigram KL to reference", "KL (nats)", |s| s.unigram_kl),
    ("Unigram JS to reference", "JS (nats)", |s| s.unigram_js),
    ("Tail coverage", "share of tail tokens seen", |s| {
        s.tail_coverage
    }),
    ("Tail mass", "probability mass of the tail", |s| s.tail_mass),
];

/// One panel per metric. The metrics depend on the text alone, so: one series
/// per set that changes with the generation (`synthesize@*.blocks`, whoever
/// scored it); a set that is the same in every row (the test split under each
/// generation's model) would be a flat line and is left out; the real data,
/// scored once, is a reference line.
fn collapse_panels(groups: &[Group<'_>]) -> Vec<Chart> {
    let mut varying: Vec<&Group<'_>> = Vec::new();
    for group in groups.iter().filter(|g| g.is_series() && !g.same_set()) {
        let template = |g: &Group<'_>| generation_template(&g.rows[0].set.label);
        if !varying.iter().any(|v| template(v) == template(group)) {
            varying.push(group);
        }
    }
    let mut real: Vec<&SetRow<'_>> = Vec::new();
    for row in groups.iter().filter_map(Group::single) {
        if is_real_data(&row.set.label) && !real.iter().any(|r| r.set.label == row.set.label) {
            real.push(row);
        }
    }
    if varying.is_empty() {
        return Vec::new();
    }
    let mut charts = Vec::new();
    for (title, y_label, value) in COLLAPSE_METRICS {
        let series: Vec<Series> = varying
            .iter()
            .enumerate()
            .map(|(i, group)| Series {
                name: generation_template(&group.rows[0].set.label),
                colour: Colour::Palette(i),
                points: by_generation(group, value),
                band: band_by_generation(group, value),
                markers: true,
            })
            .filter(|s| !s.points.is_empty())
            .collect();
        if series.is_empty() {
            continue;
        }
        let ref_lines = real
            .iter()
            .enumerate()
            .filter_map(|(i, row)| {
                Some(RefLine {
                    name: reference_name(&row.set.label),
                    colour: Colour::Reference(i),
                    y: value(&row.set).filter(|v| v.is_finite())?,
                })
            })
            .collect();
        charts.push(Chart {
            title: title.into(),
            x_label: "generation".into(),
            y_label: y_label.into(),
            x_log10: false,
            x_integer: true,
            series,
            ref_lines,
        });
    }
    charts
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
            colour: Colour::Palette(colour_of(*g, i)),
            points: t.metrics.train().map(|p| (p.step as f64, p.loss)).collect(),
            band: Vec::new(),
            markers: false,
        })
        .collect();
    let valid: Vec<Series> = runs
        .iter()
        .enumerate()
        .filter(|(_, (_, t))| t.metrics.valid().next().is_some())
        .map(|(i, (g, t))| Series {
            name: run_name(*g, &t.provenance.label),
            colour: Colour::Palette(colour_of(*g, i)),
            points: t
                .metrics
                .valid()
                .map(|p| (p.epoch as f64, p.loss))
                .collect(),
            band: Vec::new(),
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
            ref_lines: Vec::new(),
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
            ref_lines: Vec::new(),
        });
    }
    charts
}
