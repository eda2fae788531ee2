//! `xp diff A B`: two runs' metrics side by side. A and B are experiment files
//! (every step, matched by name) or store keys (one step each; a unique prefix
//! of at least 6 hex digits will do). `xp diff FILE --point A --point B`: two
//! points of one file's sweep, steps matched by their name in the file
//! (replicates of a point pooled: numbers are their mean).

use std::path::PathBuf;

use clap::Args;
use serde_json::{Value, json};

use super::common;
use super::exit::Success;
use super::show::{
    StepRow, flatten_metrics, format_value, group_rows, pooled_metrics, step_rows, step_rows_of,
};
use super::{CliError, ExperimentArgs, StoreArgs};
use crate::artifacts::labels::without_point;
use crate::report::replicates::Summary;
use crate::spec::Sweep;

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// An experiment file, or a store key (or a unique prefix of one).
    pub a: String,
    /// An experiment file, or a store key (or a unique prefix of one); absent
    /// with `--point`.
    pub b: Option<String>,
    /// Compare two points of A's sweep (`--point lr=3e-4 --point lr=1e-3`; several
    /// axes as `lr=3e-4,seed=1`): give it twice.
    #[arg(long = "point", value_name = "AXIS=VALUE,...")]
    pub points: Vec<String>,
    /// Override a value of both files (as for `xp show`).
    #[arg(long = "set", value_name = "PATH=VALUE")]
    pub set: Vec<String>,
    #[command(flatten)]
    pub store: StoreArgs,
    /// One JSON object per (step, metric): step, metric, a, b, changed.
    #[arg(long)]
    pub json: bool,
}

/// A step's metrics flattened to (dotted name, value).
type Metrics = Vec<(String, Value)>;

/// One side's steps: (name, status, metrics).
struct Side {
    steps: Vec<(String, String, Metrics)>,
}

fn resolve(arg: &str, args: &DiffArgs) -> Result<Side, CliError> {
    let path = PathBuf::from(arg);
    if path.is_file() {
        let experiment = ExperimentArgs {
            file: path,
            set: args.set.clone(),
            backend: None,
            precision: None,
        };
        let steps = step_rows(&experiment, &args.store)?
            .into_iter()
            .map(|r| {
                let metrics = r.metrics.as_ref().map(flatten_metrics).unwrap_or_default();
                (r.step, r.status.to_string(), metrics)
            })
            .collect();
        return Ok(Side { steps });
    }
    let is_hex = arg.len() >= 6 && arg.len() <= 64 && arg.chars().all(|c| c.is_ascii_hexdigit());
    if !is_hex {
        return Err(CliError::Usage(format!(
            "error: `{arg}` is neither an experiment file nor a store key (hex, at least 6 digits)"
        )));
    }
    let Some(store) = common::open_store_if_exists(&args.store)? else {
        return Err(CliError::Usage(format!(
            "error: key `{arg}`: there is no store at {}",
            args.store.cache_dir.display()
        )));
    };
    let prefix = arg.to_ascii_lowercase();
    let matches: Vec<_> = store
        .entries()?
        .entries
        .into_iter()
        .filter(|e| e.key.to_hex().starts_with(&prefix))
        .collect();
    match matches.as_slice() {
        [entry] => Ok(Side {
            steps: vec![(
                entry.manifest.step.clone(),
                "cached".into(),
                flatten_metrics(&entry.manifest.metrics),
            )],
        }),
        [] => Err(CliError::Usage(format!(
            "error: no store entry has a key starting with `{arg}` (store: {})",
            args.store.cache_dir.display()
        ))),
        many => Err(CliError::Usage(format!(
            "error: key prefix `{arg}` matches {} entries; give more digits",
            many.len()
        ))),
    }
}

/// A row of the comparison.
struct Row {
    step: String,
    metric: String,
    a: Option<Value>,
    b: Option<Value>,
}

impl Row {
    fn changed(&self) -> bool {
        self.a != self.b
    }
}

/// Steps matched by name (two single keys are matched to each other), in A's
/// order then B's extra steps; within a step, metrics in A's order then B's.
fn compare(a: &Side, b: &Side) -> Vec<Row> {
    let single = a.steps.len() == 1 && b.steps.len() == 1;
    let mut names: Vec<String> = a.steps.iter().map(|s| s.0.clone()).collect();
    for s in &b.steps {
        if !single && !names.contains(&s.0) {
            names.push(s.0.clone());
        }
    }
    let mut rows = Vec::new();
    for name in names {
        let find = |side: &Side| -> Option<(String, Metrics)> {
            if single {
                return side.steps.first().map(|s| (s.1.clone(), s.2.clone()));
            }
            side.steps
                .iter()
                .find(|s| s.0 == name)
                .map(|s| (s.1.clone(), s.2.clone()))
        };
        let (sa, sb) = (find(a), find(b));
        let step = if single && a.steps[0].0 != b.steps[0].0 {
            format!("{} | {}", a.steps[0].0, b.steps[0].0)
        } else {
            name.clone()
        };
        let status = |s: &Option<(String, Metrics)>| {
            Some(Value::String(
                s.as_ref()
                    .map(|s| s.0.clone())
                    .unwrap_or_else(|| "absent".into()),
            ))
        };
        rows.push(Row {
            step: step.clone(),
            metric: "(status)".into(),
            a: status(&sa),
            b: status(&sb),
        });
        let mut metrics: Vec<String> = Vec::new();
        for side in [&sa, &sb].into_iter().flatten() {
            for (m, _) in &side.1 {
                if !metrics.contains(m) {
                    metrics.push(m.clone());
                }
            }
        }
        for metric in metrics {
            let get = |s: &Option<(String, Metrics)>| {
                s.as_ref().and_then(|s| {
                    s.1.iter()
                        .find(|(m, _)| *m == metric)
                        .map(|(_, v)| v.clone())
                })
            };
            rows.push(Row {
                step: step.clone(),
                a: get(&sa),
                b: get(&sb),
                metric,
            });
        }
    }
    rows
}

/// The points of `sweep` a selector (`lr=3e-4,seed=1`, brackets optional) names.
fn select_points(sweep: &Sweep, selector: &str) -> Result<Vec<usize>, CliError> {
    let inner = selector
        .trim()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let names: Vec<&str> = sweep.axes.iter().map(|a| a.name.as_str()).collect();
    let mut wanted = Vec::new();
    for part in inner.split(',').filter(|p| !p.trim().is_empty()) {
        let Some((axis, value)) = part.split_once('=') else {
            return Err(CliError::Usage(format!(
                "error: --point `{selector}`: expected AXIS=VALUE (axes: {})",
                names.join(", ")
            )));
        };
        let Some(a) = names.iter().position(|n| *n == axis.trim()) else {
            return Err(CliError::Usage(format!(
                "error: --point `{selector}`: the sweep has no axis `{}` (axes: {})",
                axis.trim(),
                names.join(", ")
            )));
        };
        wanted.push((a, value.trim().to_string()));
    }
    let points: Vec<usize> = (0..sweep.points.len())
        .filter(|&p| {
            wanted
                .iter()
                .all(|(a, v)| sweep.axes[*a].values[sweep.points[p].0[*a]] == *v)
        })
        .collect();
    if points.is_empty() {
        return Err(CliError::Usage(format!(
            "error: --point `{selector}` matches no point of the sweep; the points are {}",
            (0..sweep.points.len())
                .map(|p| sweep.point_label(p))
                .collect::<Vec<_>>()
                .join(" ")
        )));
    }
    Ok(points)
}

/// One point's steps (the file's names; replicates pooled: a number is the mean
/// over the point's seeds).
fn point_side(rows: &[StepRow], sweep: &Sweep, points: &[usize]) -> Side {
    let labels: Vec<String> = points.iter().map(|&p| sweep.point_label(p)).collect();
    let grouped = group_rows(
        rows.iter()
            .filter(|r| r.points.iter().any(|l| labels.contains(l))),
        |r| without_point(&r.step).to_string(),
    );
    let steps = grouped
        .into_iter()
        .map(|(base, members)| {
            let status = if members.iter().all(|r| r.status == members[0].status) {
                members[0].status.to_string()
            } else {
                "partly cached".to_string()
            };
            let metrics: Metrics = pooled_metrics(&members)
                .into_iter()
                .map(|(name, values)| {
                    let mean = (members.len() > 1 && values[0].is_number())
                        .then(|| Summary::of(values.iter().filter_map(Value::as_f64)))
                        .flatten();
                    match mean {
                        Some(s) => (name, json!(s.mean)),
                        None => (name, values[0].clone()),
                    }
                })
                .collect();
            (base, status, metrics)
        })
        .collect();
    Side { steps }
}

/// "lr: 3e-4 → 1e-3" for each axis whose values differ between the two selections.
fn differing_axes(sweep: &Sweep, a: &[usize], b: &[usize]) -> Vec<String> {
    let values = |points: &[usize], axis: usize| {
        let mut v: Vec<&str> = points
            .iter()
            .map(|&p| sweep.axes[axis].values[sweep.points[p].0[axis]].as_str())
            .collect();
        v.dedup();
        v.join("|")
    };
    (0..sweep.axes.len())
        .filter_map(|axis| {
            let (va, vb) = (values(a, axis), values(b, axis));
            (va != vb).then(|| format!("{}: {va} → {vb}", sweep.axes[axis].name))
        })
        .collect()
}

pub fn run(args: DiffArgs) -> Result<Success, CliError> {
    let (a, b, differ) = match (args.points.as_slice(), &args.b) {
        ([], Some(b)) => (resolve(&args.a, &args)?, resolve(b, &args)?, Vec::new()),
        ([pa, pb], None) => {
            let experiment = ExperimentArgs {
                file: PathBuf::from(&args.a),
                set: args.set.clone(),
                backend: None,
                precision: None,
            };
            let plan = common::plan_offline(&experiment)?;
            let sweep = &plan.experiment.sweep;
            if !sweep.is_swept() {
                return Err(CliError::Usage(format!(
                    "error: `{}` has no [sweep] and no seeds: --point compares points of a sweep",
                    args.a
                )));
            }
            let (points_a, points_b) = (select_points(sweep, pa)?, select_points(sweep, pb)?);
            let rows = step_rows_of(&plan, &args.store)?;
            let differ = differing_axes(sweep, &points_a, &points_b);
            (
                point_side(&rows, sweep, &points_a),
                point_side(&rows, sweep, &points_b),
                differ,
            )
        }
        _ => {
            return Err(CliError::Usage(
                "error: give two runs (`xp diff A B`: files or keys) or one file and two points \
                 (`xp diff FILE --point lr=3e-4 --point lr=1e-3`)"
                    .into(),
            ));
        }
    };
    let (name_a, name_b) = match args.points.as_slice() {
        [pa, pb] => (pa.clone(), pb.clone()),
        _ => (args.a.clone(), args.b.clone().unwrap_or_default()),
    };
    let rows = compare(&a, &b);
    if args.json {
        for r in &rows {
            println!(
                "{}",
                json!({"step": r.step, "metric": r.metric, "a": r.a, "b": r.b, "changed": r.changed()})
            );
        }
        return Ok(Success::Ok);
    }
    let cell = |v: &Option<Value>| v.as_ref().map(format_value).unwrap_or_else(|| "—".into());
    let table: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            [
                r.step.clone(),
                r.metric.clone(),
                cell(&r.a),
                cell(&r.b),
                if r.changed() {
                    "*".into()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    let header = [
        "step".to_string(),
        "metric".to_string(),
        format!("A: {name_a}"),
        format!("B: {name_b}"),
        String::new(),
    ];
    let widths: Vec<usize> = (0..4)
        .map(|i| {
            table
                .iter()
                .chain(std::iter::once(&header))
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |r: &[String; 5]| {
        format!(
            "{:<w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {}",
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
            w3 = widths[3]
        )
        .trim_end()
        .to_string()
    };
    if !differ.is_empty() {
        println!("the points differ in {}\n", differ.join("; "));
    }
    println!("{}", line(&header));
    for r in &table {
        println!("{}", line(r));
    }
    let changed = rows.iter().filter(|r| r.changed()).count();
    println!("\n{changed} of {} value(s) differ (marked *)", rows.len());
    Ok(Success::Ok)
}
