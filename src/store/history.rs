//! Cost from history: how long a step should take, from the manifests of the
//! runs the store already holds.
//!
//! The rule (README.md, "How long will it take?", says it for users):
//! - Runs considered: entries of the same kind, kind version and backend that
//!   ran in one go (a resumed run's duration covers only its last part). If some
//!   were made by a step of the same name, only those (same role in the DAG,
//!   usually the same amount of work); else every run of the kind. The 10
//!   newest count.
//! - Each run gives `fixed + variable × ratio`: `fixed` is its setup and
//!   warm-up (the first unit's extra time: a GPU compiling kernels) from its
//!   `timing`, which do not grow with the data; `variable` is the rest of its
//!   duration.
//! - `ratio` compares input sizes, in bytes of the producing steps' output files
//!   (read from their manifests: nothing is opened). Inputs that come from one
//!   producer form one group and add up (training and validation blocks of one
//!   `tokenize`); independent groups multiply (a model twice as big on twice as
//!   many tokens takes four times as long). A group whose size is unknown on
//!   either side (a source: manifests hold its digest, not its size; a producer
//!   no longer in the store) counts as unchanged.
//! - The estimate is the median over the runs, with their minimum and maximum.
//!
//! - Parameters that change the work without changing input sizes scale it too:
//!   each kind names them (`KindParams::WORK_PARAMS`: a finetune's `epochs`, a
//!   synthesize's `beams` and `new_tokens`), and the variable part is multiplied
//!   by the ratio of their products, the step's over the run's.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use super::{Entry, Outcome};
use crate::backend::BackendKind;
use crate::digest::StepKey;
use crate::events::median;

/// Runs considered per estimate, newest first.
const MAX_RUNS: usize = 10;

/// The store's entries, indexed for estimates.
pub struct History<'a> {
    entries: &'a [Entry],
    by_key: HashMap<StepKey, &'a Entry>,
}

/// One input of a step to estimate, as the caller knows it.
#[derive(Clone, Debug)]
pub struct SizedInput {
    /// The input slot (`train`, `model`).
    pub slot: String,
    /// Who produced it (a step name, a source name): inputs with one producer form
    /// one group.
    pub producer: String,
    /// Its size in bytes, when known.
    pub bytes: Option<u64>,
}

/// The step to estimate.
#[derive(Clone, Debug)]
pub struct CostQuery<'q> {
    pub step: &'q str,
    pub kind: &'q str,
    pub kind_version: u32,
    pub backend: BackendKind,
    pub inputs: Vec<SizedInput>,
    /// The step's parameters as its key has them (defaults filled in).
    pub params: &'q Value,
}

/// What the estimates need to know of kinds, which the store does not know: the
/// caller says.
pub trait KindFacts {
    /// Where a kind writes one of its outputs inside its entry's `out/` (`None`
    /// when the caller cannot say).
    fn path(&self, kind: &str, output: &str) -> Option<String>;
    /// The numeric parameters whose product the kind's time grows with, beside
    /// its inputs' size.
    fn work_params(&self, kind: &str) -> &'static [&'static str];
}

/// What history says about a step's time.
#[derive(Clone, Debug, PartialEq)]
pub enum Cost {
    Estimate(Estimate),
    /// No run of this kind and version on this backend; `elsewhere` counts the
    /// runs on other backends (they say nothing about this one's speed).
    NoHistory {
        elsewhere: BTreeMap<String, usize>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Estimate {
    /// The median of the runs' scaled durations.
    pub seconds: f64,
    pub low_s: f64,
    pub high_s: f64,
    /// How many runs it rests on.
    pub runs: usize,
    /// Whether the runs were made by a step of the same name (else: of the same kind).
    pub same_step: bool,
    /// Whether input sizes or work parameters differed (by more than 1%) and scaled
    /// at least one run.
    pub scaled: bool,
}

impl Cost {
    pub fn seconds(&self) -> Option<f64> {
        match self {
            Cost::Estimate(e) => Some(e.seconds),
            Cost::NoHistory { .. } => None,
        }
    }
}

impl<'a> History<'a> {
    pub fn new(entries: &'a [Entry]) -> Self {
        Self {
            entries,
            by_key: entries.iter().map(|e| (e.key, e)).collect(),
        }
    }

    /// Bytes of the files at `path` (a file or a folder) in the entry of `key`.
    pub fn output_bytes(&self, key: &StepKey, path: &str) -> Option<u64> {
        let entry = self.by_key.get(key)?;
        files_at(entry, path)
    }

    /// Bytes at `path` in the newest entry made by a step called `step`: what a
    /// step that is about to run again will likely write.
    pub fn latest_output_bytes(&self, step: &str, path: &str) -> Option<u64> {
        self.entries
            .iter()
            .filter(|e| e.manifest.step == step)
            .max_by_key(|e| e.manifest.finished_at)
            .and_then(|e| files_at(e, path))
    }

    pub fn estimate(&self, query: &CostQuery, paths: &dyn KindFacts) -> Cost {
        let of_kind: Vec<&Entry> = self
            .entries
            .iter()
            .filter(|e| {
                e.manifest.kind == query.kind && e.manifest.kind_version == query.kind_version
            })
            .collect();
        let mut runs: Vec<&Entry> = of_kind
            .iter()
            .copied()
            .filter(|e| e.manifest.backend == query.backend)
            .filter(|e| e.manifest.outcome == Outcome::Completed)
            .collect();
        if runs.is_empty() {
            let mut elsewhere = BTreeMap::new();
            for e in of_kind
                .iter()
                .filter(|e| e.manifest.backend != query.backend)
            {
                *elsewhere
                    .entry(e.manifest.backend.as_str().to_string())
                    .or_default() += 1;
            }
            return Cost::NoHistory { elsewhere };
        }
        let same_step = runs.iter().any(|e| e.manifest.step == query.step);
        if same_step {
            runs.retain(|e| e.manifest.step == query.step);
        }
        runs.sort_by_key(|e| std::cmp::Reverse(e.manifest.finished_at));
        runs.truncate(MAX_RUNS);

        let mut scaled = false;
        let mut seconds: Vec<f64> = runs
            .iter()
            .map(|run| {
                let ratio = self.ratio(query, run, paths) * work_ratio(query, run, paths);
                // Regenerated data differs by a few bytes: not worth a mention.
                scaled |= (ratio - 1.0).abs() > 0.01;
                let m = &run.manifest;
                let fixed = m
                    .timing
                    .as_ref()
                    .map(|t| t.setup_s + t.warmup_s.unwrap_or(0.0))
                    .unwrap_or(0.0)
                    .clamp(0.0, m.duration_s);
                fixed + (m.duration_s - fixed) * ratio
            })
            .collect();
        seconds.sort_by(f64::total_cmp);
        Cost::Estimate(Estimate {
            seconds: median(&seconds).expect("at least one run"),
            low_s: seconds[0],
            high_s: seconds[seconds.len() - 1],
            runs: seconds.len(),
            same_step,
            scaled,
        })
    }

    /// How much bigger the query's inputs are than the run's (see the module docs).
    fn ratio(&self, query: &CostQuery, run: &Entry, paths: &dyn KindFacts) -> f64 {
        let old = self.inputs_of(run, paths);
        let new_groups = groups(&query.inputs);
        let old_groups = groups(&old);
        // Grouped differently (another producer layout): compare the totals.
        let slot_groups: Vec<Vec<String>> = if new_groups == old_groups {
            new_groups
        } else {
            let mut all: Vec<String> = query.inputs.iter().map(|i| i.slot.clone()).collect();
            all.extend(old.iter().map(|i| i.slot.clone()));
            all.sort();
            all.dedup();
            vec![all]
        };
        let total = |inputs: &[SizedInput], slots: &[String]| -> Option<u64> {
            inputs
                .iter()
                .filter(|i| slots.contains(&i.slot))
                .map(|i| i.bytes)
                .sum()
        };
        slot_groups
            .iter()
            .map(
                |slots| match (total(&query.inputs, slots), total(&old, slots)) {
                    (Some(new), Some(old)) if new > 0 && old > 0 => new as f64 / old as f64,
                    _ => 1.0,
                },
            )
            .product()
    }

    /// A past run's inputs, sized from its producers' manifests.
    fn inputs_of(&self, run: &Entry, paths: &dyn KindFacts) -> Vec<SizedInput> {
        let Some(Value::Object(slots)) = run.manifest.key_inputs.get("inputs") else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (slot, list) in slots {
            for input in list.as_array().into_iter().flatten() {
                let producer_key = input
                    .get("step")
                    .and_then(Value::as_str)
                    .and_then(|hex| hex.parse::<StepKey>().ok());
                let (producer, bytes) = match producer_key {
                    Some(key) => {
                        let bytes = self.by_key.get(&key).and_then(|entry| {
                            let output = input.get("output").and_then(Value::as_str)?;
                            files_at(entry, &paths.path(&entry.manifest.kind, output)?)
                        });
                        (key.to_hex(), bytes)
                    }
                    None => (input.to_string(), None),
                };
                out.push(SizedInput {
                    slot: slot.clone(),
                    producer,
                    bytes,
                });
            }
        }
        out
    }
}

/// Bytes of the manifest's files at `path` or under `path/`; `None` if none.
/// How much more work the query's parameters ask for than the run's: the ratio of
/// the products of the kind's work parameters (1 when either side lacks them).
fn work_ratio(query: &CostQuery, run: &Entry, kinds: &dyn KindFacts) -> f64 {
    let names = kinds.work_params(query.kind);
    let work = |params: Option<&Value>| -> Option<f64> {
        let params = params?;
        names
            .iter()
            .map(|name| params.get(*name).and_then(Value::as_f64))
            .product::<Option<f64>>()
            .filter(|w| *w > 0.0)
    };
    match (
        work(Some(query.params)),
        work(run.manifest.key_inputs.get("params")),
    ) {
        (Some(new), Some(old)) => new / old,
        _ => 1.0,
    }
}

fn files_at(entry: &Entry, path: &str) -> Option<u64> {
    let prefix = format!("{}/", path.trim_end_matches('/'));
    let mut found = false;
    let bytes = entry
        .manifest
        .outputs
        .iter()
        .filter(|(rel, _)| *rel == path || rel.starts_with(&prefix))
        .inspect(|_| found = true)
        .map(|(_, f)| f.size)
        .sum();
    found.then_some(bytes)
}

/// Slots joined when they share a producer (union-find over a handful of slots),
/// as sorted lists of sorted slot names.
fn groups(inputs: &[SizedInput]) -> Vec<Vec<String>> {
    let mut by_producer: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for i in inputs {
        by_producer.entry(&i.producer).or_default().push(&i.slot);
    }
    let mut groups: Vec<Vec<String>> = Vec::new();
    for slots in by_producer.values() {
        let mut merged: Vec<String> = slots.iter().map(|s| s.to_string()).collect();
        groups.retain(|g| {
            if g.iter().any(|s| merged.contains(s)) {
                merged.extend(g.iter().cloned());
                false
            } else {
                true
            }
        });
        merged.sort();
        merged.dedup();
        groups.push(merged);
    }
    groups.sort();
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Precision;
    use crate::store::{Manifest, ManifestInfo, OutputFile};
    use chrono::{DateTime, Duration, Utc};
    use serde_json::json;

    struct SameName;

    impl KindFacts for SameName {
        fn path(&self, _kind: &str, output: &str) -> Option<String> {
            Some(output.to_string())
        }

        fn work_params(&self, kind: &str) -> &'static [&'static str] {
            match kind {
                "finetune" => &["epochs"],
                _ => &[],
            }
        }
    }

    fn key(n: u8) -> StepKey {
        StepKey([n; 32])
    }

    /// An entry made by `step` in `seconds`, with output files `outputs`, reading
    /// `inputs` (slot, producer key, output name).
    fn entry(
        n: u8,
        step: &str,
        kind: &str,
        backend: BackendKind,
        seconds: i64,
        outputs: &[(&str, u64)],
        inputs: &[(&str, u8, &str)],
    ) -> Entry {
        let mut slots = serde_json::Map::new();
        for (slot, producer, output) in inputs {
            slots
                .entry(slot.to_string())
                .or_insert_with(|| json!([]))
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "output", "step": key(*producer).to_hex(), "output": output}));
        }
        let started: DateTime<Utc> =
            DateTime::from_timestamp(1_700_000_000 + n as i64 * 100, 0).unwrap();
        let info = ManifestInfo {
            step: step.into(),
            kind: kind.into(),
            kind_version: 1,
            experiment: "t".into(),
            key_inputs: json!({"kind": kind, "inputs": slots}),
            metrics: Value::Null,
            backend,
            precision: Precision::F32,
            started_at: started,
            timing: None,
            outcome: Outcome::Completed,
            earlier_attempts: Vec::new(),
        };
        let files = outputs
            .iter()
            .map(|(p, size)| {
                (
                    p.to_string(),
                    OutputFile {
                        size: *size,
                        digest: crate::digest::ContentDigest::of_bytes(p.as_bytes()),
                        mtime_ns: 0,
                    },
                )
            })
            .collect();
        let manifest = Manifest::assemble(
            key(n),
            info,
            files,
            "h".into(),
            started + Duration::seconds(seconds),
        );
        Entry {
            key: key(n),
            dir: std::path::PathBuf::from("/nowhere"),
            manifest,
        }
    }

    static NO_PARAMS: Value = Value::Null;

    fn query<'q>(step: &'q str, kind: &'q str, inputs: &[(&str, &str, u64)]) -> CostQuery<'q> {
        CostQuery {
            params: &NO_PARAMS,
            step,
            kind,
            kind_version: 1,
            backend: BackendKind::Ndarray,
            inputs: inputs
                .iter()
                .map(|(slot, producer, bytes)| SizedInput {
                    slot: slot.to_string(),
                    producer: producer.to_string(),
                    bytes: Some(*bytes),
                })
                .collect(),
        }
    }

    fn history_of_a_small_dag() -> Vec<Entry> {
        use BackendKind::Ndarray;
        vec![
            entry(
                1,
                "blocks",
                "tokenize",
                Ndarray,
                2,
                &[("train", 100), ("valid", 20)],
                &[],
            ),
            entry(2, "init", "init", Ndarray, 1, &[("model/w", 1000)], &[]),
            entry(
                3,
                "ft",
                "finetune",
                Ndarray,
                60,
                &[("model/w", 1000)],
                &[
                    ("model", 2, "model"),
                    ("train", 1, "train"),
                    ("valid", 1, "valid"),
                ],
            ),
        ]
    }

    #[test]
    fn the_same_inputs_estimate_the_recorded_duration() {
        let entries = history_of_a_small_dag();
        let h = History::new(&entries);
        let q = query(
            "ft",
            "finetune",
            &[
                ("model", "init", 1000),
                ("train", "blocks", 100),
                ("valid", "blocks", 20),
            ],
        );
        let Cost::Estimate(e) = h.estimate(&q, &SameName) else {
            panic!()
        };
        assert_eq!(
            (e.seconds, e.runs, e.same_step, e.scaled),
            (60.0, 1, true, false)
        );
    }

    #[test]
    fn work_parameters_scale_the_estimate_and_other_parameters_do_not() {
        let mut entries = history_of_a_small_dag();
        for e in entries.iter_mut().filter(|e| e.manifest.step == "ft") {
            e.manifest.key_inputs["params"] = json!({"epochs": 2, "lr": 0.001});
        }
        let h = History::new(&entries);
        let inputs = [
            ("model", "init", 1000),
            ("train", "blocks", 100),
            ("valid", "blocks", 20),
        ];
        let estimate = |params: Value| {
            let q = CostQuery {
                params: &params,
                ..query("ft", "finetune", &inputs)
            };
            match h.estimate(&q, &SameName) {
                Cost::Estimate(e) => (e.seconds, e.scaled),
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(estimate(json!({"epochs": 4, "lr": 0.001})), (120.0, true));
        assert_eq!(estimate(json!({"epochs": 2, "lr": 0.1})), (60.0, false));
        // Without the parameter on one side: unscaled.
        assert_eq!(estimate(json!({"lr": 0.001})), (60.0, false));
    }

    #[test]
    fn inputs_from_one_producer_add_up_and_independent_ones_multiply() {
        let entries = history_of_a_small_dag();
        let h = History::new(&entries);
        // Twice the blocks (train and valid together): twice the time, not four times.
        let q = query(
            "ft",
            "finetune",
            &[
                ("model", "init", 1000),
                ("train", "blocks", 200),
                ("valid", "blocks", 40),
            ],
        );
        assert_eq!(h.estimate(&q, &SameName).seconds(), Some(120.0));
        // And a model twice as big on them: four times.
        let q = query(
            "ft",
            "finetune",
            &[
                ("model", "init", 2000),
                ("train", "blocks", 200),
                ("valid", "blocks", 40),
            ],
        );
        let Cost::Estimate(e) = h.estimate(&q, &SameName) else {
            panic!()
        };
        assert_eq!((e.seconds, e.scaled), (240.0, true));
    }

    #[test]
    fn other_backends_and_kinds_are_no_history_and_say_where_there_is() {
        let entries = history_of_a_small_dag();
        let h = History::new(&entries);
        let mut q = query("ft", "finetune", &[]);
        q.backend = BackendKind::Cuda;
        assert_eq!(
            h.estimate(&q, &SameName),
            Cost::NoHistory {
                elsewhere: [("ndarray".to_string(), 1)].into_iter().collect()
            }
        );
        let mut q = query("ft", "finetune", &[]);
        q.kind_version = 2;
        assert_eq!(
            h.estimate(&q, &SameName),
            Cost::NoHistory {
                elsewhere: BTreeMap::new()
            }
        );
    }

    #[test]
    fn runs_of_the_same_step_are_preferred_then_every_run_of_the_kind_counts() {
        use BackendKind::Ndarray;
        let mut entries = history_of_a_small_dag();
        entries.push(entry(4, "ft@1", "finetune", Ndarray, 30, &[], &[]));
        entries.push(entry(5, "ft@2", "finetune", Ndarray, 40, &[], &[]));
        let h = History::new(&entries);
        let Cost::Estimate(e) = h.estimate(&query("ft@1", "finetune", &[]), &SameName) else {
            panic!()
        };
        assert_eq!((e.seconds, e.runs, e.same_step), (30.0, 1, true));
        let Cost::Estimate(e) = h.estimate(&query("ft@9", "finetune", &[]), &SameName) else {
            panic!()
        };
        assert_eq!(
            (e.seconds, e.low_s, e.high_s, e.runs),
            (40.0, 30.0, 60.0, 3)
        );
        assert!(!e.same_step);
    }

    #[test]
    fn output_sizes_come_from_manifests() {
        let entries = history_of_a_small_dag();
        let h = History::new(&entries);
        assert_eq!(h.output_bytes(&key(2), "model"), Some(1000));
        assert_eq!(h.output_bytes(&key(2), "mod"), None);
        assert_eq!(h.output_bytes(&key(1), "valid"), Some(20));
        assert_eq!(h.latest_output_bytes("blocks", "train"), Some(100));
        assert_eq!(h.latest_output_bytes("nope", "train"), None);
    }
}
