//! docs/kinds.md: a reference of every step kind (its parameters, their types and
//! defaults, its inputs and outputs), generated from the same types as the JSON
//! schema, so it cannot say what the code does not do. A test compares the file
//! with this rendering (`XP_BLESS=1 cargo test --test cli spec_schema::` rewrites it).

use serde_json::{Map, Value};

use super::schema::json_schema;
use crate::steps::{KIND_NAMES, StepParams};

/// The whole of docs/kinds.md.
pub fn kinds_reference() -> String {
    let schema = json_schema();
    let mut out = String::from(
        "# Step kinds\n\n\
         <!-- Generated from the Rust types (src/spec/reference.rs); do not edit.\n     \
         Regenerate with `XP_BLESS=1 cargo test --test cli spec_schema::`. -->\n\n\
         Every step of an experiment has a `kind`; this page lists each kind's parameters\n\
         with their types and defaults (a step states only what differs), the parameters\n\
         that are references to other steps' outputs or to sources (its inputs), and the\n\
         outputs other steps can refer to as `STEP.OUTPUT`. Every kind also takes a\n\
         `resources` table for cluster jobs and a `retry` table for steps whose process\n\
         may be killed, neither part of the key, and `replicate = true|false`, whether\n\
         the step gets each replicate's seed, which is in its key (docs/dsl.md).\n\n",
    );
    for kind in KIND_NAMES {
        out.push_str(&format!("- [`{kind}`](#{kind})\n"));
    }
    for kind in KIND_NAMES {
        if let Some(variant) = variant_of(&schema, kind) {
            out.push('\n');
            out.push_str(&kind_section(&schema, kind, variant));
        }
    }
    out
}

/// The schema of kind `kind`'s parameters.
fn variant_of<'a>(schema: &'a Value, kind: &str) -> Option<&'a Value> {
    schema
        .pointer("/$defs/StepParams/oneOf")?
        .as_array()?
        .iter()
        .map(|v| resolve(schema, v))
        .find(|v| v.pointer("/properties/kind/const").and_then(Value::as_str) == Some(kind))
}

fn kind_section(schema: &Value, kind: &str, variant: &Value) -> String {
    let empty = Map::new();
    let properties = variant
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let required: Vec<&str> = variant
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let slots = StepParams::input_slots_of(kind).unwrap_or_default();
    let example = example(kind, properties, &required, slots);
    let mut out = format!("## `{kind}`\n\n");
    if let Some(text) = variant.get("description").and_then(Value::as_str) {
        out.push_str(&one_line(text));
        out.push_str("\n\n");
    }
    if let Some(params) = &example {
        let hint = params.resources();
        out.push_str(&format!(
            "Version {} · seed in the key: {} · precision in the key: {} · cluster default: {}, {}\n\n",
            params.version(),
            yes_no(params.uses_seed()),
            yes_no(params.uses_precision()),
            if hint.gpu {
                "a GPU on a GPU backend"
            } else {
                "CPU only"
            },
            hint.time
        ));
    }
    let inputs: Vec<String> = slots.iter().map(|s| format!("`{s}`")).collect();
    out.push_str(&format!(
        "Inputs: {}\n\n",
        if inputs.is_empty() {
            "none".to_string()
        } else {
            inputs.join(", ")
        }
    ));
    if let Some(params) = &example {
        let outputs: Vec<String> = params
            .outputs()
            .into_iter()
            .map(|(name, path)| format!("`{name}` (`{path}`)"))
            .collect();
        out.push_str(&format!(
            "Outputs (with the defaults): {}\n\n",
            outputs.join(", ")
        ));
    }
    out.push_str("| Parameter | Type | Default | Description |\n| --- | --- | --- | --- |\n");
    for (name, property) in properties {
        if name == "kind" || name == "resources" || name == "retry" || name == "replicate" {
            continue;
        }
        let is_input = slots.contains(&name.as_str());
        let ty = if is_input {
            format!("input: {}", type_of(schema, property))
        } else {
            type_of(schema, property)
        };
        let default = match property.get("default") {
            Some(value) => format!("`{}`", cell(&value.to_string())),
            None if required.contains(&name.as_str()) => "required".to_string(),
            None => "unset".to_string(),
        };
        let description = property
            .get("description")
            .and_then(Value::as_str)
            .map(one_line)
            .unwrap_or_default();
        out.push_str(&format!(
            "| `{name}` | {} | {default} | {} |\n",
            cell(&ty),
            cell(&description)
        ));
    }
    out
}

/// The kind's parameters with only the required keys set (references as
/// placeholders, other parameters their schema's first example), to ask the kind
/// what it declares.
fn example(
    kind: &str,
    properties: &Map<String, Value>,
    required: &[&str],
    slots: &[&str],
) -> Option<StepParams> {
    let mut table = Map::new();
    for name in required.iter().filter(|n| **n != "kind") {
        if !slots.contains(name)
            && let Some(example) = properties.get(*name).and_then(|p| p.pointer("/examples/0"))
        {
            table.insert(name.to_string(), example.clone());
            continue;
        }
        let is_list = properties
            .get(*name)
            .and_then(|p| p.get("type"))
            .and_then(Value::as_str)
            == Some("array");
        // A required list of plain values (`command`'s `argv`): one stand-in.
        let placeholder = match slots.contains(name) {
            true => Value::String(format!("{name}_step.{name}")),
            false if is_list => Value::String(name.to_uppercase()),
            false => return None,
        };
        table.insert(
            name.to_string(),
            if is_list {
                Value::Array(vec![placeholder])
            } else {
                placeholder
            },
        );
    }
    StepParams::deserialize_kind(kind, Value::Object(table))
        .ok()
        .flatten()
}

/// A short description of a property's type.
fn type_of(schema: &Value, property: &Value) -> String {
    if let Some(values) = property.get("enum").and_then(Value::as_array) {
        let names: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        return format!("one of {}", names.join(", "));
    }
    if let Some(reference) = property.get("$ref").and_then(Value::as_str) {
        let target = resolve(schema, property);
        if target.get("enum").is_some() || target.get("oneOf").is_some() {
            let values: Vec<String> = match target.get("enum").and_then(Value::as_array) {
                Some(values) => values.iter().map(Value::to_string).collect(),
                None => target
                    .get("oneOf")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|o| variant_label(schema, o))
                    .collect(),
            };
            if !values.is_empty() {
                return format!("one of {}", values.join(", "));
            }
        }
        if reference.ends_with("/InputRef") {
            return "reference".to_string();
        }
        return type_of(schema, target);
    }
    if let Some(options) = property
        .get("anyOf")
        .or_else(|| property.get("oneOf"))
        .and_then(Value::as_array)
    {
        let kinds: Vec<String> = options
            .iter()
            .filter(|o| o.get("type").and_then(Value::as_str) != Some("null"))
            .map(|o| type_of(schema, o))
            .collect();
        return kinds.join(" or ");
    }
    match property.get("type") {
        Some(Value::String(t)) if t == "array" => {
            let items = property
                .get("items")
                .map(|i| type_of(schema, i))
                .unwrap_or_else(|| "value".into());
            format!("list of {items}")
        }
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(types)) => types
            .iter()
            .filter_map(Value::as_str)
            .filter(|t| *t != "null")
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "value".to_string(),
    }
}

/// One variant of an enum as it is written: a string (`"resample"`) or, for a
/// variant holding a value, a one-key table (`{ lowest = number }`).
fn variant_label(schema: &Value, variant: &Value) -> Option<String> {
    if let Some(value) = variant.get("const").or_else(|| variant.pointer("/enum/0")) {
        return Some(value.to_string());
    }
    let properties = variant.get("properties")?.as_object()?;
    match properties.iter().collect::<Vec<_>>().as_slice() {
        [(name, property)] => Some(format!("{{ {name} = {} }}", type_of(schema, property))),
        _ => None,
    }
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

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_section_with_its_parameters_and_outputs() {
        let text = kinds_reference();
        for kind in KIND_NAMES {
            let section = text
                .split(&format!("## `{kind}`\n"))
                .nth(1)
                .unwrap_or_else(|| panic!("no section for `{kind}`"));
            let section = section.split("\n## ").next().unwrap();
            assert!(section.contains("Outputs (with the defaults): `"), "{kind}");
            assert!(section.contains("| Parameter |"), "{kind}");
        }
        // A flattened decoding parameter appears with its default.
        assert!(text.contains("| `beams` | integer | `5` |"));
    }
}
