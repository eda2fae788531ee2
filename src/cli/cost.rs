//! A planned step's estimated time, asked of the store's history
//! ([`crate::store::History`], where the rule lives) and written for people and
//! for `--json`.

use std::collections::HashMap;

use serde_json::{Value, json};

use crate::plan::{Plan, PlannedInput};
use crate::steps::StepParams;
use crate::store::{Cost, CostQuery, History, KindFacts, SizedInput};

/// Where each kind of the plan writes each output, from the kinds themselves.
pub struct PlanPaths(HashMap<(String, String), String>);

impl PlanPaths {
    pub fn of(plan: &Plan) -> Self {
        let mut map = HashMap::new();
        for step in &plan.steps {
            let params = &plan.decl_of(step).params;
            for (output, path) in params.outputs() {
                map.insert((params.kind().to_string(), output), path);
            }
        }
        Self(map)
    }
}

impl KindFacts for PlanPaths {
    fn path(&self, kind: &str, output: &str) -> Option<String> {
        self.0.get(&(kind.to_string(), output.to_string())).cloned()
    }

    fn work_params(&self, kind: &str) -> &'static [&'static str] {
        StepParams::work_params_of(kind).unwrap_or_default()
    }
}

/// The estimate for plan step `index` (run on the experiment's backend).
pub fn estimate(plan: &Plan, index: usize, history: &History, paths: &PlanPaths) -> Cost {
    let step = &plan.steps[index];
    let params = &plan.decl_of(step).params;
    let params_json = match &step.key {
        crate::plan::KeyState::Known { inputs, .. } => inputs.params.clone(),
        crate::plan::KeyState::Unknown { .. } => Value::Null,
    };
    let mut inputs = Vec::new();
    for (slot, planned) in &step.inputs {
        for input in planned {
            inputs.push(match input {
                PlannedInput::Source { name } => SizedInput {
                    slot: slot.to_string(),
                    producer: format!("source {name}"),
                    bytes: None,
                },
                PlannedInput::Output { step: p, path, .. } => {
                    let producer = &plan.steps[*p];
                    // A producer that will run too: what it wrote last time is the
                    // best guess of what it will write.
                    let bytes = producer
                        .key
                        .key()
                        .and_then(|key| history.output_bytes(&key, path))
                        .or_else(|| history.latest_output_bytes(&producer.name, path));
                    SizedInput {
                        slot: slot.to_string(),
                        producer: producer.name.clone(),
                        bytes,
                    }
                }
            });
        }
    }
    history.estimate(
        &CostQuery {
            step: &step.name,
            kind: params.kind(),
            kind_version: params.version(),
            backend: plan.experiment.meta.backend,
            inputs,
            params: &params_json,
        },
        paths,
    )
}

/// `~1m 05s (3 runs, 58s–1m 12s)`, `~4s (1 run of another finetune step)`, or
/// `no history on ndarray`.
pub fn text(cost: &Cost, backend: &str) -> String {
    match cost {
        Cost::Estimate(e) => {
            let runs = match e.runs {
                1 => "1 run".to_string(),
                n => format!("{n} runs"),
            };
            let of = if e.same_step { "" } else { " of its kind" };
            let (low, high) = (duration(e.low_s), duration(e.high_s));
            let range = if e.runs > 1 && low != high {
                format!(", {low}–{high}")
            } else {
                String::new()
            };
            let scaled = if e.scaled {
                ", scaled to its inputs and parameters"
            } else {
                ""
            };
            format!("{} ({runs}{of}{range}{scaled})", about(e.seconds))
        }
        Cost::NoHistory { elsewhere } if elsewhere.is_empty() => {
            format!("no history on {backend}")
        }
        Cost::NoHistory { elsewhere } => format!(
            "no history on {backend} (runs on {})",
            elsewhere
                .iter()
                .map(|(b, n)| format!("{b}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

pub fn to_json(cost: &Cost) -> Value {
    match cost {
        Cost::Estimate(e) => json!({
            "estimate_s": e.seconds,
            "low_s": e.low_s,
            "high_s": e.high_s,
            "runs": e.runs,
            "basis": if e.same_step { "same step" } else { "same kind" },
            "scaled_by_input_size": e.scaled,
        }),
        Cost::NoHistory { elsewhere } => json!({
            "estimate_s": null,
            "runs": 0,
            "runs_on_other_backends": elsewhere,
        }),
    }
}

/// The summary of several estimates: `estimated time on ndarray: ~2m 10s` with how
/// many steps had no history.
pub fn summary<'c>(costs: impl IntoIterator<Item = &'c Cost>, backend: &str) -> Option<String> {
    let (mut total, mut known, mut unknown) = (0.0, 0usize, 0usize);
    for cost in costs {
        match cost.seconds() {
            Some(s) => {
                total += s;
                known += 1;
            }
            None => unknown += 1,
        }
    }
    match (known, unknown) {
        (0, 0) => None,
        (0, n) => Some(format!(
            "estimated time on {backend}: unknown ({n} step{} without history)",
            plural(n)
        )),
        (_, 0) => Some(format!("estimated time on {backend}: {}", about(total))),
        (_, n) => Some(format!(
            "estimated time on {backend}: {} and {n} step{} without history",
            about(total),
            plural(n)
        )),
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `~12s`, or `<0.1s` (already approximate).
fn about(seconds: f64) -> String {
    let text = duration(seconds);
    if text.starts_with('<') {
        text
    } else {
        format!("~{text}")
    }
}

/// `<0.1s`, `0.4s`, `12s`, `1m 05s`, `2h 03m`.
pub fn duration(seconds: f64) -> String {
    if seconds < 0.05 {
        return "<0.1s".into();
    }
    if seconds < 10.0 {
        return format!("{seconds:.1}s");
    }
    let s = seconds.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Estimate;

    #[test]
    fn durations_read_at_a_glance() {
        assert_eq!(duration(0.01), "<0.1s");
        assert_eq!(duration(0.42), "0.4s");
        assert_eq!(duration(12.4), "12s");
        assert_eq!(duration(65.0), "1m 05s");
        assert_eq!(duration(7380.0), "2h 03m");
    }

    #[test]
    fn estimates_say_what_they_rest_on() {
        let one = Cost::Estimate(Estimate {
            seconds: 12.0,
            low_s: 12.0,
            high_s: 12.0,
            runs: 1,
            same_step: true,
            scaled: false,
        });
        assert_eq!(text(&one, "ndarray"), "~12s (1 run)");
        let tiny = Cost::Estimate(Estimate {
            seconds: 0.02,
            low_s: 0.01,
            high_s: 0.03,
            runs: 2,
            same_step: true,
            scaled: false,
        });
        assert_eq!(text(&tiny, "ndarray"), "<0.1s (2 runs)");
        let three = Cost::Estimate(Estimate {
            seconds: 65.0,
            low_s: 50.0,
            high_s: 80.0,
            runs: 3,
            same_step: false,
            scaled: true,
        });
        assert_eq!(
            text(&three, "ndarray"),
            "~1m 05s (3 runs of its kind, 50s–1m 20s, scaled to its inputs and parameters)"
        );
        let none = Cost::NoHistory {
            elsewhere: [("cuda".to_string(), 2)].into_iter().collect(),
        };
        assert_eq!(
            text(&none, "ndarray"),
            "no history on ndarray (runs on cuda: 2)"
        );
        assert_eq!(
            summary([&one, &three, &none], "ndarray").unwrap(),
            "estimated time on ndarray: ~1m 17s and 1 step without history"
        );
        assert_eq!(summary([], "ndarray"), None);
    }
}
