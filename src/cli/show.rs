//! `xp show FILE`: every step's key, status, outputs and metrics.

use clap::Args;
use serde_json::{Value, json};

use super::common;
use super::exit::Success;
use super::{CliError, ExperimentArgs, StoreArgs};
use crate::artifacts::labels::{without_point, without_replicate};
use crate::backend::{BackendKind, Precision};
use crate::events::WorkTiming;
use crate::plan::Plan;
use crate::report::replicates::Summary;

#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(flatten)]
    pub experiment: ExperimentArgs,
    #[command(flatten)]
    pub store: StoreArgs,
    #[arg(long)]
    pub json: bool,
}

/// One step of an experiment in the light of the store.
pub(super) struct StepRow {
    pub step: String,
    pub kind: &'static str,
    pub key: Option<String>,
    pub status: &'static str,
    pub outputs: Vec<(String, Option<String>)>,
    pub metrics: Option<Value>,
    pub duration_s: Option<f64>,
    pub backend: Option<BackendKind>,
    /// `None` also for entries written before precision was recorded.
    pub precision: Option<Precision>,
    pub timing: Option<WorkTiming>,
    /// The sweep points ([`crate::spec::Sweep`]) the step belongs to, by label.
    pub points: Vec<String>,
}

/// Every step of the experiment: key, status, output paths, metrics.
pub(super) fn step_rows(
    experiment: &ExperimentArgs,
    store: &super::StoreArgs,
) -> Result<Vec<StepRow>, CliError> {
    let plan = common::plan_offline(experiment)?;
    step_rows_of(&plan, store)
}

/// [`step_rows`] of a plan already made.
pub(super) fn step_rows_of(
    plan: &Plan,
    store: &super::StoreArgs,
) -> Result<Vec<StepRow>, CliError> {
    let store = common::open_store_if_exists(store)?;
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
        let outputs = plan
            .decl(i)
            .params
            .outputs()
            .into_iter()
            .map(|(name, path)| {
                let full = entry
                    .as_ref()
                    .map(|e| e.out_dir().join(&path).display().to_string());
                (name, full)
            })
            .collect();
        rows.push(StepRow {
            step: step.name.clone(),
            kind: plan.decl(i).params.kind(),
            key: key.map(|k| k.to_hex()),
            status,
            outputs,
            metrics: entry.as_ref().map(|e| e.manifest.metrics.clone()),
            duration_s: entry.as_ref().map(|e| e.manifest.duration_s),
            backend: entry.as_ref().map(|e| e.manifest.backend),
            precision: entry.as_ref().and_then(|e| e.manifest.precision),
            timing: entry.as_ref().and_then(|e| e.manifest.timing.clone()),
            points: plan
                .decl(i)
                .points
                .iter()
                .map(|&p| plan.experiment.sweep.point_label(p))
                .filter(|label| !label.is_empty())
                .collect(),
        });
    }
    Ok(rows)
}

pub fn run(args: ShowArgs) -> Result<Success, CliError> {
    let rows = step_rows(&args.experiment, &args.store)?;
    if args.json {
        let rows: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "step": r.step,
                    "kind": r.kind,
                    "key": r.key,
                    "status": r.status,
                    "outputs": r.outputs.iter().map(|(name, path)| json!({"name": name, "path": path})).collect::<Vec<_>>(),
                    "metrics": r.metrics,
                    "duration_s": r.duration_s,
                    "backend": r.backend,
                    "precision": r.precision,
                    "timing": r.timing,
                    "points": r.points,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows).expect("JSON"));
        return Ok(Success::Ok);
    }
    for row in &rows {
        let key = row
            .key
            .as_deref()
            .map(|k| &k[..12])
            .unwrap_or("????????????");
        let timing = match (row.duration_s, row.backend, row.precision) {
            (Some(d), Some(b), Some(Precision::Tf32)) => format!(", {d:.1} s on {b} (tf32)"),
            (Some(d), Some(b), _) => format!(", {d:.1} s on {b}"),
            _ => String::new(),
        };
        println!(
            "{}  {}  {} ({}{timing})",
            row.step, key, row.status, row.kind
        );
        if let Some(timing) = &row.timing {
            println!("    {}", describe_timing(timing));
        }
        for (name, path) in &row.outputs {
            if let Some(path) = path {
                println!("    {name} = {path}");
            }
        }
        let metrics = row
            .metrics
            .as_ref()
            .map(flatten_metrics)
            .unwrap_or_default();
        let width = metrics
            .iter()
            .map(|(n, _)| n.chars().count())
            .max()
            .unwrap_or(0);
        for (name, value) in &metrics {
            println!("    {name:<width$}  {}", format_value(value));
        }
    }
    for table in by_point(&rows) {
        println!("\n{table}");
    }
    Ok(Success::Ok)
}

/// For each step of the file that differs between sweep points (`test@1` at
/// `[lr=1e-3]` and at `[lr=3e-4]`), its numeric metrics side by side, one column
/// per point; replicates (the same point but for the seed) pooled as mean ± the
/// half-width of the 95 % Student-t interval, with the number of seeds.
fn by_point(rows: &[StepRow]) -> Vec<String> {
    let mut bases: Vec<&str> = Vec::new();
    for row in rows {
        let base = without_point(&row.step);
        if base != row.step && !bases.contains(&base) {
            bases.push(base);
        }
    }
    let mut tables = Vec::new();
    for base in bases {
        // Columns: the step's point without its seed, in plan order.
        let columns = group_rows(
            rows.iter().filter(|r| without_point(&r.step) == base),
            |r| without_replicate(&r.step)[base.len()..].to_string(),
        );
        let pooled: Vec<Vec<(String, Vec<Value>)>> = columns
            .iter()
            .map(|(_, members)| pooled_metrics(members))
            .collect();
        let mut metric_names: Vec<String> = Vec::new();
        for (name, values) in pooled.iter().flatten() {
            if values.iter().any(Value::is_number) && !metric_names.contains(name) {
                metric_names.push(name.clone());
            }
        }
        if metric_names.is_empty() {
            continue;
        }
        let cell = |metrics: &[(String, Vec<Value>)], members: usize, metric: &str| -> String {
            let values = metrics
                .iter()
                .find(|(n, _)| n == metric)
                .into_iter()
                .flat_map(|(_, v)| v.iter().filter_map(Value::as_f64));
            match Summary::of(values) {
                None => "—".into(),
                Some(s) => match s.half_width {
                    // Seeds that agree but for rounding: no spread.
                    Some(h) if h <= 1e-9 * s.mean.abs() => {
                        format!("{} ± 0 ({})", short(s.mean), s.n)
                    }
                    Some(h) => format!("{} ± {} ({})", short(s.mean), short(h), s.n),
                    None if members > 1 => format!("{} (1)", short(s.mean)),
                    None => short(s.mean),
                },
            }
        };
        let replicated = columns.iter().any(|(_, m)| m.len() > 1);
        let point_name = |c: &str| match c {
            "" if replicated => "over seeds".to_string(),
            "" => "every point".to_string(),
            _ => c.to_string(),
        };
        // One row per point; the metrics as columns, in as many tables as keep
        // each under a terminal's width.
        let mut text = format!("{base} by point");
        if replicated {
            text.push_str(" (over seeds: mean ± 95 % Student-t half-width (seeds))");
        }
        let first_width = columns
            .iter()
            .map(|(c, _)| point_name(c).chars().count())
            .max()
            .unwrap_or(0)
            .max("point".len());
        let cells: Vec<Vec<String>> = columns
            .iter()
            .zip(&pooled)
            .map(|((_, members), metrics)| {
                metric_names
                    .iter()
                    .map(|m| cell(metrics, members.len(), m))
                    .collect()
            })
            .collect();
        let width_of = |m: usize| {
            cells
                .iter()
                .map(|row| row[m].chars().count())
                .chain(std::iter::once(metric_names[m].chars().count()))
                .max()
                .unwrap_or(0)
        };
        let mut chunks: Vec<Vec<usize>> = vec![Vec::new()];
        let mut used = first_width;
        for m in 0..metric_names.len() {
            let w = width_of(m) + 2;
            let chunk = chunks.last_mut().expect("one chunk");
            if !chunk.is_empty() && used + w > SHOW_WIDTH {
                chunks.push(Vec::new());
                used = first_width;
            }
            chunks.last_mut().expect("one chunk").push(m);
            used += w;
        }
        for chunk in chunks {
            let mut header = format!("{:<first_width$}", "point");
            for &m in &chunk {
                header.push_str(&format!("  {:<w$}", metric_names[m], w = width_of(m)));
            }
            text.push_str(&format!("\n  {}", header.trim_end()));
            for ((c, _), row) in columns.iter().zip(&cells) {
                let mut line = format!("{:<first_width$}", point_name(c));
                for &m in &chunk {
                    line.push_str(&format!("  {:<w$}", row[m], w = width_of(m)));
                }
                text.push_str(&format!("\n  {}", line.trim_end()));
            }
        }
        tables.push(text);
    }
    tables
}

/// `rows` grouped by `key`, groups and rows in order.
pub(super) fn group_rows<'a>(
    rows: impl Iterator<Item = &'a StepRow>,
    key: impl Fn(&StepRow) -> String,
) -> Vec<(String, Vec<&'a StepRow>)> {
    let mut groups: Vec<(String, Vec<&StepRow>)> = Vec::new();
    for row in rows {
        let k = key(row);
        match groups.iter_mut().find(|(g, _)| *g == k) {
            Some((_, members)) => members.push(row),
            None => groups.push((k, vec![row])),
        }
    }
    groups
}

/// The metrics of a step's rows (its replicates), each flattened once: every
/// metric name in first-seen order with the values the rows have for it.
pub(super) fn pooled_metrics(members: &[&StepRow]) -> Vec<(String, Vec<Value>)> {
    let mut pooled: Vec<(String, Vec<Value>)> = Vec::new();
    for row in members {
        for (name, value) in row
            .metrics
            .as_ref()
            .map(flatten_metrics)
            .unwrap_or_default()
        {
            match pooled.iter_mut().find(|(n, _)| *n == name) {
                Some((_, values)) => values.push(value),
                None => pooled.push((name, vec![value])),
            }
        }
    }
    pooled
}

/// How wide `xp show`'s tables by point may grow before their columns wrap into
/// another table.
const SHOW_WIDTH: usize = 150;

/// Four significant digits.
fn short(v: f64) -> String {
    if v == 0.0 || !v.is_finite() {
        format!("{v}")
    } else if v.abs() >= 1e6 || v.abs() < 1e-3 {
        format!("{v:.3e}")
    } else {
        let digits = (3 - v.abs().log10().floor() as i32).clamp(0, 6) as usize;
        format!("{v:.digits$}")
    }
}

/// "setup 2.1 s, first of 120 training steps 41.2 s, then 0.38 s each": the
/// first unit's excess over the others is mostly kernel compilation and tuning.
fn describe_timing(t: &WorkTiming) -> String {
    let first = format!(
        "setup {:.1} s, first of {} {} {}",
        t.setup_s,
        t.units,
        t.unit,
        seconds(t.first_unit_s)
    );
    match t.steady_unit_s {
        Some(steady) => format!("{first}, then {} each", seconds(steady)),
        None => first,
    }
}

/// Seconds with three significant digits at most.
fn seconds(s: f64) -> String {
    if s >= 10.0 {
        format!("{s:.1} s")
    } else if s >= 0.1 {
        format!("{s:.2} s")
    } else {
        format!("{:.1} ms", s * 1000.0)
    }
}

/// Metrics as (dotted path, leaf value): `{"sets": {"a": {"mean": 1}}}` →
/// `sets.a.mean = 1`. Arrays stay whole (printed as compact JSON).
pub(super) fn flatten_metrics(value: &Value) -> Vec<(String, Value)> {
    fn walk(prefix: &str, value: &Value, out: &mut Vec<(String, Value)>) {
        match value {
            Value::Object(map) if !map.is_empty() => {
                for (k, v) in map {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&path, v, out);
                }
            }
            Value::Null if prefix.is_empty() => {}
            other => out.push((prefix.to_string(), other.clone())),
        }
    }
    let mut out = Vec::new();
    walk("", value, &mut out);
    out
}

/// Numbers with sensible precision; strings bare; the rest as compact JSON.
pub(super) fn format_value(value: &Value) -> String {
    match value {
        Value::Number(n) if n.is_f64() => {
            let v = n.as_f64().unwrap_or(f64::NAN);
            if v != 0.0 && (v.abs() >= 1e6 || v.abs() < 1e-4) {
                format!("{v:.6e}")
            } else {
                format!("{v:.6}")
            }
        }
        Value::String(s) => s.clone(),
        Value::Null => "—".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_metrics_flatten_to_dotted_paths() {
        let v = json!({"a": 1, "sets": {"x.y": {"mean": 2.5}}, "list": [1, 2], "empty": {}});
        let flat = flatten_metrics(&v);
        let names: Vec<&str> = flat.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", "sets.x.y.mean", "list", "empty"]);
        assert_eq!(format_value(&flat[1].1), "2.500000");
        assert_eq!(format_value(&json!(1.0e-7)), "1.000000e-7");
        assert_eq!(format_value(&json!("s")), "s");
    }
}
