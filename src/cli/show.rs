//! `xp show FILE`: every step's key, status, outputs and metrics.

use clap::Args;
use serde_json::json;

use super::common;
use super::exit::Success;
use super::{CliError, ExperimentArgs, StoreArgs};

#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub experiment: ExperimentArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ShowArgs) -> Result<Success, CliError> {
    let plan = common::plan_offline(&args.experiment)?;
    let store = common::open_store_if_exists(&args.store)?;
    let mut rows = Vec::new();
    for (i, step) in plan.steps.iter().enumerate() {
        let key = step.key.key();
        let entry = match (&store, key) {
            (Some(store), Some(key)) => store.lookup(&key)?.hit(),
            _ => None,
        };
        let status = match (&entry, key) {
            (Some(_), _) => "cached",
            (None, Some(_)) => "not run",
            (None, None) => "needs sources",
        };
        let outputs: Vec<_> = plan
            .decl(i)
            .params
            .outputs()
            .into_iter()
            .map(|(name, path)| {
                let full = entry
                    .as_ref()
                    .map(|e| e.out_dir().join(&path).display().to_string());
                json!({"name": name, "path": full})
            })
            .collect();
        rows.push(json!({
            "step": step.name,
            "kind": plan.decl(i).params.kind(),
            "key": key.map(|k| k.to_hex()),
            "status": status,
            "outputs": outputs,
            "metrics": entry.as_ref().map(|e| e.manifest.metrics.clone()),
            "duration_s": entry.as_ref().map(|e| e.manifest.duration_s),
            "backend": entry.as_ref().map(|e| e.manifest.backend.clone()),
        }));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows).expect("JSON"));
        return Ok(Success::Ok);
    }
    for row in &rows {
        let key = row["key"]
            .as_str()
            .map(|k| &k[..12])
            .unwrap_or("????????????");
        println!(
            "{}  {}  {} ({})",
            row["step"].as_str().unwrap_or(""),
            key,
            row["status"].as_str().unwrap_or(""),
            row["kind"].as_str().unwrap_or("")
        );
        for output in row["outputs"].as_array().into_iter().flatten() {
            if let Some(path) = output["path"].as_str() {
                println!("    {} = {}", output["name"].as_str().unwrap_or(""), path);
            }
        }
        if let Some(metrics) = row["metrics"].as_object() {
            for (name, value) in metrics {
                println!("    {name}: {}", compact(value));
            }
        }
    }
    Ok(Success::Ok)
}

/// Numbers with sensible precision; nested values as compact JSON.
fn compact(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Number(n) if n.is_f64() => {
            format!("{:.6}", n.as_f64().unwrap_or(f64::NAN))
        }
        other => other.to_string(),
    }
}
