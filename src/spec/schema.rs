//! The JSON Schema of the experiment file, built from Rust types so it cannot
//! drift from what the loader accepts (a test compares it with
//! `schemas/experiment.schema.json`).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde_json::{Map, Value, json};

use super::raw::{ExperimentTable, MAX_GENERATIONS, REPLICATE, RESOURCES, RETRY};
use super::resources::Resources;
use super::retry::Retry;
use crate::steps::StepParams;

/// A whole experiment file, for the schema only (the loader reads the spanned
/// TOML tree instead, to keep locations).
#[allow(dead_code)]
#[derive(JsonSchema)]
#[schemars(
    title = "xp experiment",
    description = "An xp experiment file: named steps, their sources and loops."
)]
#[serde(deny_unknown_fields)]
struct ExperimentFile {
    /// What the experiment is called and how it runs.
    experiment: ExperimentTable,
    /// Where the remote cache is (never part of a key).
    #[serde(default)]
    cache: super::cache::CacheTable,
    /// Models and datasets: `name = "hf:owner/repo"` (Hugging Face Hub) or a
    /// local path, relative to the experiment file.
    #[serde(default)]
    sources: BTreeMap<String, String>,
    /// Parameters merged under every step of a kind (the step's own keys win).
    #[serde(default)]
    defaults: BTreeMap<String, Map<String, Value>>,
    /// The steps, by name. Input slots hold references: a source name or `step.output`.
    #[serde(default)]
    steps: BTreeMap<String, StepParams>,
    /// Loops: steps repeated for generations 0..count-1.
    #[serde(default, rename = "loop")]
    loops: BTreeMap<String, LoopTable>,
    /// Points to run the experiment at: each axis is a value path (as `--set`
    /// takes it) and its values. Steps that compute the same thing at several
    /// points run once; the others are named after their point
    /// (`finetune@2[lr=3e-4]`).
    #[serde(default)]
    sweep: Option<SweepTable>,
}

/// `[sweep]`: `grid` axes multiply; `zip` axes vary together.
#[allow(dead_code)]
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct SweepTable {
    /// Every combination of these axes' values: `{ "loop.gen.steps.finetune.lr" = [1e-3, 3e-4] }`.
    #[serde(default)]
    grid: BTreeMap<String, Vec<Value>>,
    /// Axes whose lists (of equal length) vary together: the i-th values form one point.
    #[serde(default)]
    zip: BTreeMap<String, Vec<Value>>,
}

/// `[loop.NAME]`: its steps are expanded to `NAME@0`, `NAME@1`, ...
#[allow(dead_code)]
#[derive(JsonSchema)]
#[serde(deny_unknown_fields)]
struct LoopTable {
    /// The number of generations.
    #[schemars(range(min = 1, max = MAX_GENERATIONS))]
    count: u32,
    /// Carried references: `carry.X` in generation 0 (`carry = { data = "blocks.train" }`).
    #[serde(default)]
    carry: BTreeMap<String, String>,
    /// What `carry.X` is in generation g+1, resolved in generation g (same keys as `carry`).
    #[serde(default)]
    next: BTreeMap<String, String>,
    /// The steps of one generation. A bare loop-step name means the same generation's.
    steps: BTreeMap<String, StepParams>,
}

/// The JSON Schema (draft 2020-12) of the experiment file format.
pub fn json_schema() -> Value {
    let schema = schemars::schema_for!(ExperimentFile);
    let mut value = serde_json::to_value(&schema).unwrap_or(Value::Null);
    add_resources(&mut value);
    let defaults = defaults_schema(&value);
    if let Some(slot) = value.pointer_mut("/properties/defaults") {
        let description = slot.get("description").cloned();
        *slot = defaults;
        if let (Some(description), Some(obj)) = (description, slot.as_object_mut()) {
            obj.insert("description".into(), description);
        }
    }
    // Names of sources, steps, loops and carried values.
    let name = json!({ "pattern": NAME_PATTERN });
    for pointer in [
        "/properties/sources",
        "/properties/steps",
        "/properties/loop",
        "/$defs/LoopTable/properties/steps",
        "/$defs/LoopTable/properties/carry",
        "/$defs/LoopTable/properties/next",
    ] {
        if let Some(obj) = value.pointer_mut(pointer).and_then(Value::as_object_mut) {
            obj.insert("propertyNames".into(), name.clone());
        }
    }
    value
}

/// Every step kind (and so every `[defaults.KIND]`) takes a `resources` and a
/// `retry` table, which the loader takes out before reading the kind's parameters.
fn add_resources(root: &mut Value) {
    let definition = |mut schema: Value| {
        if let Some(obj) = schema.as_object_mut() {
            obj.shift_remove("$schema");
            obj.shift_remove("title");
        }
        schema
    };
    let resources = serde_json::to_value(schemars::schema_for!(Resources)).unwrap_or(Value::Null);
    let retry = serde_json::to_value(schemars::schema_for!(Retry)).unwrap_or(Value::Null);
    if let Some(defs) = root.get_mut("$defs").and_then(Value::as_object_mut) {
        defs.insert("Resources".into(), definition(resources));
        defs.insert("Retry".into(), definition(retry));
        defs.insert(
            "Replicate".into(),
            json!({ "type": "boolean", "description": "Whether the step gets each replicate's seed." }),
        );
    }
    let count = root
        .pointer("/$defs/StepParams/oneOf")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    for i in 0..count {
        let pointer = format!("/$defs/StepParams/oneOf/{i}");
        // A variant is inline or a `$ref` to `#/$defs/X`: edit whichever holds it.
        let target = root
            .pointer(&pointer)
            .and_then(|v| v.get("$ref"))
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix('#'))
            .map(str::to_string)
            .unwrap_or(pointer);
        if let Some(props) = root
            .pointer_mut(&format!("{target}/properties"))
            .and_then(Value::as_object_mut)
        {
            props.insert(
                RESOURCES.into(),
                json!({
                    "$ref": "#/$defs/Resources",
                    "description": "What a cluster job running this step asks for (`xp run --executor slurm`); not part of the step's key."
                }),
            );
            props.insert(
                REPLICATE.into(),
                json!({
                    "$ref": "#/$defs/Replicate",
                    "description": "With `experiment.seeds`: whether each replicate runs this step with its own seed (default: yes for seeded kinds, no for the data kinds corpus, tokenizer and tokenize, whose steps the replicates share)."
                }),
            );
            props.insert(
                RETRY.into(),
                json!({
                    "$ref": "#/$defs/Retry",
                    "description": "How often the step is started again when its process is killed (a signal; a Slurm job preempted, on a failed node or out of time); not part of the step's key."
                }),
            );
        }
    }
}

/// What [`super::raw::is_valid_name`] accepts.
const NAME_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_-]*$";

/// `[defaults.KIND]`: for each kind, that kind's parameters with none required
/// and no `kind` key. Derived from the step schema, so new kinds appear by themselves.
fn defaults_schema(root: &Value) -> Value {
    let mut properties = Map::new();
    let variants = root
        .pointer("/$defs/StepParams/oneOf")
        .and_then(Value::as_array);
    for variant in variants.into_iter().flatten() {
        let variant = resolve(root, variant);
        let Some(kind) = variant
            .pointer("/properties/kind/const")
            .and_then(Value::as_str)
        else {
            continue;
        };
        let mut partial = variant.clone();
        if let Some(obj) = partial.as_object_mut() {
            obj.shift_remove("required");
            if let Some(props) = obj.get_mut("properties").and_then(Value::as_object_mut) {
                props.shift_remove("kind");
            }
        }
        properties.insert(kind.to_string(), partial);
    }
    json!({ "type": "object", "properties": properties, "additionalProperties": false })
}

/// The parameter names of `kind` (without `kind`), in declaration order; empty
/// for an unknown kind.
pub(crate) fn kind_fields(kind: &str) -> Vec<String> {
    let schema = schemars::schema_for!(StepParams);
    let root = schema.as_value();
    let variants = root.get("oneOf").and_then(Value::as_array);
    variants
        .into_iter()
        .flatten()
        .map(|variant| resolve(root, variant))
        .find(|variant| {
            variant
                .pointer("/properties/kind/const")
                .and_then(Value::as_str)
                == Some(kind)
        })
        .and_then(|variant| variant.get("properties").and_then(Value::as_object))
        .map(|properties| {
            properties
                .keys()
                .filter(|k| *k != "kind")
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Follows a local `$ref` (`#/$defs/X`) once.
fn resolve<'a>(root: &'a Value, value: &'a Value) -> &'a Value {
    match value
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
    {
        Some(pointer) => root.pointer(pointer).unwrap_or(value),
        None => value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_fields_lists_a_kinds_parameters() {
        let fields = kind_fields("tokenize");
        assert_eq!(fields[..3], ["data", "tokenizer", "block_size"]);
        assert!(!fields.contains(&"kind".to_string()));
        assert!(kind_fields("no-such-kind").is_empty());
    }
}
