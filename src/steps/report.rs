//! `report`: the experiment's report — figures, tables and provenance as
//! `report.md` and a self-contained `report.html` (src/report/).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::context::{InputLocation, InputOrigin, StepContext, StepError, StepOutcome};
use super::{Document, InputRef, KindParams, ResourceHint};
use crate::report::{self, FigureKind, Provenance, ReportError, ReportInputs, ReportOptions};

/// The experiment's report: figures, tables and provenance as `report.md` and a self-
/// contained `report.html`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// `scores.json` of `evaluate` steps (e.g. `["evaluate.scores", "evaluate_test@*.scores"]`).
    #[serde(default)]
    pub evaluations: Vec<InputRef>,
    /// `metrics.jsonl` of `finetune` steps (e.g. `["finetune@*.metrics"]`).
    #[serde(default)]
    pub training: Vec<InputRef>,
    /// `answers.json` of `prompts` steps (e.g. `["prompts@*.answers"]`).
    #[serde(default)]
    pub answers: Vec<InputRef>,
    /// The report's title.
    #[serde(default = "default_title")]
    pub title: String,
    /// Which figures to draw: `density` (seed Figure 1), `perplexity`,
    /// `collapse`, `training`. Default: all. Tables are always included.
    #[serde(default = "default_figures")]
    pub figures: Vec<FigureKind>,
    /// Width of one plot panel, in pixels.
    #[serde(default = "default_width")]
    pub width: u32,
    /// Height of one plot panel, in pixels.
    #[serde(default = "default_height")]
    pub height: u32,
}

fn default_title() -> String {
    "Model collapse report".to_string()
}
fn default_figures() -> Vec<FigureKind> {
    FigureKind::ALL.to_vec()
}
fn default_width() -> u32 {
    900
}
fn default_height() -> u32 {
    520
}

impl KindParams for Params {
    const KIND: &'static str = "report";
    /// 3: figures one panel per metric with the real data as reference, provenance
    /// paths relative to the store, a page that fits the window.
    const VERSION: u32 = 4;
    const USES_SEED: bool = false;
    const GATHERS_REPLICATES: bool = true;
    const USES_PRECISION: bool = false; // reads numbers; no model
    const RESOURCES: ResourceHint = ResourceHint::DATA;
    const DOCUMENT: Option<Document> = Some(Document {
        output: "report",
        html: "report.html",
        markdown: "report.md",
        figures: "figures",
    });
    input_slots!(evaluations, training, answers);

    fn outputs(&self) -> Vec<(String, String)> {
        vec![("report".into(), "report".into())]
    }
}

fn provenance(slot: &str, input: &InputLocation) -> Provenance {
    let (step, key, store_path) = match &input.origin {
        InputOrigin::Source { .. } => (None, None, None),
        InputOrigin::Output {
            step,
            key,
            store_path,
            ..
        } => (
            Some(step.clone()),
            Some(key.to_hex()),
            Some(store_path.clone()),
        ),
    };
    Provenance {
        slot: slot.to_string(),
        label: input.origin.label(),
        step,
        key,
        path: input.path.clone(),
        store_path,
    }
}

fn step_error(step: &str, err: ReportError) -> StepError {
    match err {
        ReportError::Io { path, source } => StepError::Io { path, source },
        other => StepError::Invalid(format!("step `{step}`: {other}")),
    }
}

pub fn run(p: &Params, ctx: &StepContext<'_>) -> Result<StepOutcome, StepError> {
    if p.width < 200 || p.height < 150 {
        return Err(StepError::Invalid(format!(
            "step `{}`: width = {} and height = {} are too small to draw a plot; use at least 200 × 150",
            ctx.step, p.width, p.height
        )));
    }
    let err = |e| step_error(ctx.step, e);
    let mut inputs = ReportInputs::default();
    for input in ctx.input_list("evaluations") {
        inputs
            .evaluations
            .push(report::read_scores(provenance("evaluations", input)).map_err(err)?);
    }
    for input in ctx.input_list("training") {
        inputs
            .training
            .push(report::read_training(provenance("training", input)).map_err(err)?);
    }
    for input in ctx.input_list("answers") {
        inputs
            .answers
            .push(report::read_answers(provenance("answers", input)).map_err(err)?);
    }
    if inputs.is_empty() {
        return Err(StepError::Invalid(format!(
            "step `{}`: a report needs inputs: set `evaluations`, `training` or `answers`",
            ctx.step
        )));
    }
    ctx.progress(0, Some(1), "report", "drawing figures");
    let options = ReportOptions {
        title: p.title.clone(),
        figures: p.figures.clone(),
        panel_size: (p.width, p.height),
    };
    let summary = report::build_report(&inputs, &options, &ctx.out_path("report")).map_err(err)?;
    ctx.progress(1, Some(1), "report", "written");
    Ok(StepOutcome {
        metrics: serde_json::json!({
            "figures": summary.figures.len(),
            "tables": summary.tables.len(),
            "generations": summary.generations.len(),
            "inputs": inputs.provenances().len(),
        }),
    })
}
