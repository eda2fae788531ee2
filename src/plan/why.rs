//! Why a step will run: the difference between the key inputs it has now and
//! those of the closest cached entry made by a step of the same name.

use std::collections::BTreeMap;

use serde_json::Value;

use super::key::{InputDigest, KeyInputs};

/// One difference between a cached entry's key inputs and the planned ones.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// Dotted path inside the key inputs: `params.block_size`, `inputs.data`, `kind_version`.
    pub path: String,
    pub old: Option<Value>,
    pub new: Option<Value>,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<Value>| match v {
            Some(v) => v.to_string(),
            None => "(unset)".to_string(),
        };
        write!(
            f,
            "{}: {} → {}",
            self.path,
            show(&self.old),
            show(&self.new)
        )
    }
}

/// The differences between `old` and `new`, smallest paths first. Input slots are
/// compared as wholes (one change per slot), parameters leaf by leaf.
pub fn changes(old: &KeyInputs, new: &KeyInputs) -> Vec<Change> {
    let mut out = Vec::new();
    let mut scalar = |path: &str, a: Value, b: Value| {
        if a != b {
            out.push(Change {
                path: path.into(),
                old: Some(a),
                new: Some(b),
            });
        }
    };
    scalar("key_schema", old.key_schema.into(), new.key_schema.into());
    scalar("kind", old.kind.clone().into(), new.kind.clone().into());
    scalar(
        "kind_version",
        old.kind_version.into(),
        new.kind_version.into(),
    );
    if old.seed != new.seed {
        out.push(Change {
            path: "seed".into(),
            old: old.seed.map(Value::from),
            new: new.seed.map(Value::from),
        });
    }
    if old.precision != new.precision {
        out.push(Change {
            path: "precision".into(),
            old: Some(Value::from(old.precision.as_str())),
            new: Some(Value::from(new.precision.as_str())),
        });
    }
    let (a, b) = (
        flatten("params", &old.params),
        flatten("params", &new.params),
    );
    out.extend(diff_maps(&a, &b));
    let slots: std::collections::BTreeSet<&String> =
        old.inputs.keys().chain(new.inputs.keys()).collect();
    for slot in slots {
        let (a, b) = (old.inputs.get(slot), new.inputs.get(slot));
        if a != b {
            out.push(Change {
                path: format!("inputs.{slot}"),
                old: a.map(|v| describe_inputs(v)),
                new: b.map(|v| describe_inputs(v)),
            });
        }
    }
    out
}

/// The candidate (by index) whose key inputs differ least from `new`; ties go to
/// the earliest candidate (callers pass the newest first).
pub fn closest<'a>(
    new: &KeyInputs,
    candidates: impl IntoIterator<Item = &'a KeyInputs>,
) -> Option<(usize, Vec<Change>)> {
    candidates
        .into_iter()
        .enumerate()
        .map(|(i, old)| (i, changes(old, new)))
        .min_by_key(|(i, c)| (c.len(), *i))
}

fn describe_inputs(inputs: &[InputDigest]) -> Value {
    Value::Array(
        inputs
            .iter()
            .map(|d| match d {
                InputDigest::Source { digest } => {
                    Value::String(format!("source {}", digest.short()))
                }
                InputDigest::Output { step, output } => {
                    Value::String(format!("{output} of {}", step.short()))
                }
            })
            .collect(),
    )
}

fn flatten(prefix: &str, value: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (k, v) in map {
                out.extend(flatten(&format!("{prefix}.{k}"), v));
            }
        }
        leaf => {
            out.insert(prefix.to_string(), leaf.clone());
        }
    }
    out
}

fn diff_maps(a: &BTreeMap<String, Value>, b: &BTreeMap<String, Value>) -> Vec<Change> {
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| Change {
            path: k.clone(),
            old: a.get(k).cloned(),
            new: b.get(k).cloned(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Precision;
    use crate::digest::ContentDigest;
    use serde_json::json;

    fn inputs(params: Value, data: &[u8]) -> KeyInputs {
        KeyInputs {
            key_schema: 1,
            kind: "tokenize".into(),
            kind_version: 1,
            params,
            seed: None,
            precision: Precision::F32,
            inputs: [(
                "data".to_string(),
                vec![InputDigest::Source {
                    digest: ContentDigest::of_bytes(data),
                }],
            )]
            .into_iter()
            .collect(),
        }
    }

    #[test]
    fn names_the_changed_parameter_with_old_and_new() {
        let old = inputs(json!({"block_size": 64, "grouping": "global"}), b"x");
        let new = inputs(json!({"block_size": 32, "grouping": "global"}), b"x");
        let c = changes(&old, &new);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].to_string(), "params.block_size: 64 → 32");
    }

    #[test]
    fn names_a_changed_precision() {
        let old = inputs(json!({"block_size": 64}), b"x");
        let mut new = old.clone();
        new.precision = Precision::Tf32;
        let c = changes(&old, &new);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].to_string(), "precision: \"f32\" → \"tf32\"");
        assert_eq!(
            changes(&new, &old)[0].to_string(),
            "precision: \"tf32\" → \"f32\""
        );
    }

    #[test]
    fn input_changes_are_one_per_slot() {
        let c = changes(&inputs(json!({}), b"x"), &inputs(json!({}), b"y"));
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].path, "inputs.data");
    }

    #[test]
    fn closest_prefers_fewest_changes() {
        let new = inputs(json!({"a": 1, "b": 2}), b"x");
        let far = inputs(json!({"a": 0, "b": 0}), b"y");
        let near = inputs(json!({"a": 1, "b": 3}), b"x");
        let (i, c) = closest(&new, [&far, &near]).unwrap();
        assert_eq!(i, 1);
        assert_eq!(c.len(), 1);
    }
}
