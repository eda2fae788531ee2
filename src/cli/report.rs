//! `xp report FILE`: where the document of each step whose kind writes one (the
//! `report` kind; see `steps::Document`) is, or how to build it.

use clap::Args;
use serde_json::json;

use super::common;
use super::exit::Success;
use super::{CliError, ExperimentArgs, StoreArgs};
use crate::steps::StepParams;

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub experiment: ExperimentArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    /// One JSON object per report step: step, key, built, html, markdown, dir, figures.
    #[arg(long)]
    pub json: bool,
}

/// Exit 0 when every report is built; 1 when one is not (yet), with the
/// command that builds it; 2 when the experiment has no `report` step.
pub fn run(args: ReportArgs) -> Result<Success, CliError> {
    let plan = common::plan_offline(&args.experiment)?;
    let store = common::open_store_if_exists(&args.store)?;
    let mut rows = Vec::new();
    for (i, step) in plan.steps.iter().enumerate() {
        let params = &plan.decl(i).params;
        let Some(document) = params.document() else {
            continue;
        };
        let output = params
            .outputs()
            .into_iter()
            .find(|(name, _)| name == document.output)
            .map(|(_, path)| path)
            .unwrap_or_else(|| document.output.to_string());
        let key = step.key.key();
        let entry = match (&store, key) {
            (Some(store), Some(key)) => store.lookup(&key)?.hit(),
            _ => None,
        };
        let dir = entry.as_ref().map(|e| e.out_dir().join(&output));
        rows.push(json!({
            "step": step.name,
            "key": key.map(|k| k.to_hex()),
            "built": dir.is_some(),
            "dir": dir.as_ref().map(|d| d.display().to_string()),
            "html": dir.as_ref().map(|d| d.join(document.html).display().to_string()),
            "markdown": dir.as_ref().map(|d| d.join(document.markdown).display().to_string()),
            "figures": dir.as_ref().map(|d| d.join(document.figures).display().to_string()),
        }));
    }
    if rows.is_empty() {
        let kinds = StepParams::document_kinds();
        let kind = kinds.first().copied().unwrap_or_default();
        return Err(CliError::Usage(format!(
            "error: {} has no step of kind `{kind}`; add one, e.g.\n\n[steps.{kind}]\nkind = \"{kind}\"\nevaluations = [\"evaluate.scores\"]",
            args.experiment.file.display()
        )));
    }
    let all_built = rows.iter().all(|r| r["built"] == true);
    if args.json {
        for row in &rows {
            println!("{row}");
        }
    } else {
        for row in &rows {
            let step = row["step"].as_str().unwrap_or_default();
            match row["html"].as_str() {
                Some(html) => {
                    println!("{step}: {html}");
                    println!(
                        "    markdown: {}",
                        row["markdown"].as_str().unwrap_or_default()
                    );
                    println!(
                        "    figures:  {}",
                        row["figures"].as_str().unwrap_or_default()
                    );
                }
                None => println!(
                    "{step}: not built yet; build it with `xp run {}` (it runs what the report needs)",
                    args.experiment.file.display()
                ),
            }
        }
    }
    Ok(if all_built {
        Success::Ok
    } else {
        Success::StepsFailed
    })
}
