//! The raw TOML tree split into its sections: `[experiment]`, `[sources]`,
//! `[defaults.KIND]`, `[steps.NAME]` and `[loop.NAME]`. Step tables stay raw
//! (with their spans) because loop expansion rewrites their references before
//! they are deserialised into typed parameters.

use std::collections::BTreeMap;
use std::ops::Range;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_spanned::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::error::{Problem, SpecError};
use super::location::SourceMap;
use super::overrides::a_type;
use super::resources::{self, Resources};
use super::retry::{self, Retry};
use crate::backend::{BackendKind, Precision};
use crate::steps::{KIND_NAMES, StepParams};

pub(crate) type Value<'i> = Spanned<DeValue<'i>>;

/// The largest `count` a loop may have: enough for any study, small enough that a
/// typo (`count = 1000000000`) is an error instead of an out-of-memory.
pub(crate) const MAX_GENERATIONS: u64 = 1_000;

const TOP_KEYS: &[&str] = &[
    "experiment",
    "sources",
    "defaults",
    "steps",
    "loop",
    "cache",
    super::sweep::SWEEP,
];
const LOOP_KEYS: &[&str] = &["count", "carry", "next", "steps"];
/// The key of a step's (or a kind default's) scheduler resources.
pub(crate) const RESOURCES: &str = "resources";
/// The key of a step's (or a kind default's) retries after its process was killed.
pub(crate) const RETRY: &str = "retry";
/// The key that says whether a step gets each replicate's seed (`experiment.seeds`).
pub(crate) const REPLICATE: &str = "replicate";

/// `[experiment]` as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExperimentTable {
    /// The experiment's name (reports and `xp plan` show it).
    pub name: String,
    /// The seed every seeded step uses (it is part of their keys). With `seeds`,
    /// the seed of the data steps (corpus, tokenizer, tokenize), which the
    /// replicates share.
    #[serde(default)]
    pub seed: u64,
    /// Replicate seeds: the experiment runs once per seed, each replicate's seeded
    /// steps (training, generation, selection) with its own seed; steps that do not
    /// depend on it run once. Steps are named `finetune@2[seed=1]`; `xp show` and the
    /// report give the mean and a 95 % interval over seeds.
    #[serde(default)]
    #[schemars(with = "Option<Vec<u64>>")]
    pub seeds: Option<Spanned<Vec<u64>>>,
    /// Where tensors are computed. `--backend` overrides it. Recorded in every
    /// manifest, never part of a key: results computed on a GPU are reused on a CPU.
    #[serde(default)]
    pub backend: BackendKind,
    /// How f32 matrix products are computed: `f32` (exact) or `tf32` (TF32 tensor
    /// cores on NVIDIA GPUs: faster, ~1e-3 relative error). `--precision` overrides
    /// it. Part of the key of every step that runs a model.
    #[serde(default)]
    pub precision: Precision,
    /// Free text; cosmetic, never part of a key.
    #[serde(default)]
    pub description: Option<String>,
}

/// A string written in the file, and where.
#[derive(Clone, Debug)]
pub(crate) struct Text {
    pub text: String,
    pub span: Range<usize>,
}

/// A step table, `kind` taken out, kind defaults merged in.
#[derive(Clone, Debug)]
pub(crate) struct RawStep<'i> {
    pub name: Text,
    pub kind: Text,
    pub table: DeTable<'i>,
    pub table_span: Range<usize>,
    /// `resources` taken out of the table (it is not a parameter), the kind's
    /// default resources merged in.
    pub resources: Resources,
    /// `retry` taken out of the table (it is not a parameter either), else the
    /// kind's default.
    pub retry: Retry,
    /// `replicate` taken out of the table: whether the step gets each replicate's
    /// seed; `None` when the file does not say (the kind decides).
    pub replicate: Option<bool>,
}

/// `[defaults.KIND]`: parameters merged under every step of the kind, and the
/// kind's default `resources` and `retry`.
#[derive(Clone, Debug, Default)]
pub(crate) struct KindDefaults<'i> {
    pub params: DeTable<'i>,
    pub resources: Resources,
    pub retry: Option<Retry>,
}

/// One carried value of a loop: its value in generation 0 and its update.
#[derive(Clone, Debug)]
pub(crate) struct Carried {
    pub key: String,
    pub init: Text,
    pub next: Text,
}

#[derive(Clone, Debug)]
pub(crate) struct RawLoop<'i> {
    pub name: Text,
    pub count: u32,
    pub carried: Vec<Carried>,
    pub steps: Vec<RawStep<'i>>,
}

/// The file, split by section.
pub(crate) struct Document<'i> {
    pub experiment: ExperimentTable,
    pub cache: super::cache::CacheTable,
    /// (name, value), file order.
    pub sources: Vec<(Text, Text)>,
    pub steps: Vec<RawStep<'i>>,
    pub loops: Vec<RawLoop<'i>>,
}

impl<'i> Document<'i> {
    pub(crate) fn parse(mut root: DeTable<'i>, map: &SourceMap<'_>) -> Result<Self, SpecError> {
        check_keys(&root, TOP_KEYS, "the top level of the file", map)?;
        let experiment = match root.remove_entry("experiment") {
            Some((key, value)) => experiment(key.span(), value, map)?,
            None => {
                let what = "[experiment] table (with at least `name = \"...\"`)".to_string();
                return Err(map.error(&(0..0), Problem::Missing { what }));
            }
        };
        let cache = match root.remove_entry("cache") {
            Some((key, value)) => super::cache::parse(key.span(), value, map)?,
            None => Default::default(),
        };
        let sources = match root.remove("sources") {
            Some(value) => sources(value, map)?,
            None => Vec::new(),
        };
        let defaults = match root.remove("defaults") {
            Some(value) => defaults(value, map)?,
            None => BTreeMap::new(),
        };
        let steps = match root.remove("steps") {
            Some(value) => {
                let (table, _) = expect_table(value, "steps", map)?;
                steps(table, "steps", &defaults, map)?
            }
            None => Vec::new(),
        };
        let loops = match root.remove("loop") {
            Some(value) => {
                let (table, _) = expect_table(value, "loop", map)?;
                let mut loops = Vec::new();
                for (name, value) in sorted(table) {
                    loops.push(parse_loop(name, value, &defaults, map)?);
                }
                loops
            }
            None => Vec::new(),
        };
        Ok(Document {
            experiment,
            cache,
            sources,
            steps,
            loops,
        })
    }
}

/// Entries in the order they were written (the map itself is sorted by key).
fn sorted<'i>(table: DeTable<'i>) -> Vec<(Text, Value<'i>)> {
    let mut entries: Vec<_> = table
        .into_iter()
        .map(|(key, value)| {
            (
                Text {
                    text: key.get_ref().to_string(),
                    span: key.span(),
                },
                value,
            )
        })
        .collect();
    entries.sort_by_key(|(key, _)| key.span.start);
    entries
}

fn check_keys(
    table: &DeTable<'_>,
    allowed: &[&str],
    where_: &str,
    map: &SourceMap<'_>,
) -> Result<(), SpecError> {
    let mut unknown: Vec<_> = table
        .keys()
        .filter(|k| !allowed.contains(&key_str(k)))
        .collect();
    unknown.sort_by_key(|k| k.span().start);
    match unknown.first() {
        Some(key) => Err(map.error(
            &key.span(),
            Problem::UnknownKey {
                key: key.get_ref().to_string(),
                table: where_.to_string(),
                expected: allowed.iter().map(|s| s.to_string()).collect(),
            },
        )),
        None => Ok(()),
    }
}

fn key_str<'a>(key: &'a Spanned<std::borrow::Cow<'_, str>>) -> &'a str {
    key.get_ref()
}

pub(crate) fn expect_table<'i>(
    value: Value<'i>,
    what: &str,
    map: &SourceMap<'_>,
) -> Result<(DeTable<'i>, Range<usize>), SpecError> {
    let span = value.span();
    match value.into_inner() {
        DeValue::Table(table) => Ok((table, span)),
        other => Err(wrong_type(&span, what, "a table", &other, map)),
    }
}

fn expect_str(value: Value<'_>, what: &str, map: &SourceMap<'_>) -> Result<Text, SpecError> {
    let span = value.span();
    match value.into_inner() {
        DeValue::String(text) => Ok(Text {
            text: text.into_owned(),
            span,
        }),
        other => Err(wrong_type(&span, what, "a string", &other, map)),
    }
}

fn wrong_type(
    span: &Range<usize>,
    what: &str,
    expected: &str,
    found: &DeValue<'_>,
    map: &SourceMap<'_>,
) -> SpecError {
    let problem = Problem::WrongType {
        what: what.to_string(),
        expected: expected.to_string(),
        found: a_type(found),
    };
    map.error(span, problem)
}

/// Step, loop, source and carry names: `[A-Za-z_][A-Za-z0-9_-]*`.
pub(crate) fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn check_name(name: &Text, what: &str, map: &SourceMap<'_>) -> Result<(), SpecError> {
    if is_valid_name(&name.text) {
        Ok(())
    } else {
        Err(map.error(
            &name.span,
            Problem::BadName {
                what: what.into(),
                name: name.text.clone(),
            },
        ))
    }
}

fn experiment(
    key_span: Range<usize>,
    value: Value<'_>,
    map: &SourceMap<'_>,
) -> Result<ExperimentTable, SpecError> {
    let (table, span) = expect_table(value, "experiment", map)?;
    let de = ValueDeserializer::from(Spanned::new(span.clone(), DeValue::Table(table)));
    let meta = ExperimentTable::deserialize(de).map_err(|e| {
        // A missing key has no place of its own: point at the header.
        let span = match e.span() {
            Some(s) if !e.message().starts_with("missing field") => s,
            _ => key_span.clone(),
        };
        map.error(
            &span,
            Problem::Experiment {
                message: e.message().to_string(),
            },
        )
    })?;
    if meta.name.trim().is_empty() {
        let what = "experiment name (`name` is empty)".to_string();
        return Err(map.error(&key_span, Problem::Missing { what }));
    }
    Ok(meta)
}

fn sources(value: Value<'_>, map: &SourceMap<'_>) -> Result<Vec<(Text, Text)>, SpecError> {
    let (table, _) = expect_table(value, "sources", map)?;
    let mut sources = Vec::new();
    for (name, value) in sorted(table) {
        check_name(&name, "source", map)?;
        let value = expect_str(value, &format!("sources.{}", name.text), map)?;
        if value.text.trim().is_empty() {
            let what = format!(
                "a value for source `{}` (`hf:owner/repo` or a path)",
                name.text
            );
            return Err(map.error(&value.span, Problem::Missing { what }));
        }
        sources.push((name, value));
    }
    Ok(sources)
}

fn defaults<'i>(
    value: Value<'i>,
    map: &SourceMap<'_>,
) -> Result<BTreeMap<String, KindDefaults<'i>>, SpecError> {
    let (table, _) = expect_table(value, "defaults", map)?;
    let mut defaults = BTreeMap::new();
    for (kind, value) in sorted(table) {
        if StepParams::input_slots_of(&kind.text).is_none() {
            return Err(map.error(
                &kind.span,
                Problem::UnknownKind {
                    kind: kind.text.clone(),
                    context: "under [defaults]".into(),
                    expected: kind_names(),
                },
            ));
        }
        let (mut table, _) = expect_table(value, &format!("defaults.{}", kind.text), map)?;
        if let Some((key, _)) = table.get_key_value("kind") {
            return Err(map.error(&key.span(), Problem::KindInDefaults));
        }
        let resources = match table.remove(RESOURCES) {
            Some(value) => {
                resources::parse(value, &format!("defaults.{}.{RESOURCES}", kind.text), map)?
            }
            None => Resources::default(),
        };
        let retry = match table.remove(RETRY) {
            Some(value) => Some(retry::parse(
                value,
                &format!("defaults.{}.{RETRY}", kind.text),
                map,
            )?),
            None => None,
        };
        // Checked here too, so a default for a kind no step uses yet is not silently ignored.
        let fields = super::schema::kind_fields(&kind.text);
        if !fields.is_empty() {
            let mut fields: Vec<&str> = fields.iter().map(String::as_str).collect();
            fields.push(RESOURCES);
            fields.push(RETRY);
            check_keys(&table, &fields, &format!("[defaults.{}]", kind.text), map)?;
        }
        let params = table;
        defaults.insert(
            kind.text,
            KindDefaults {
                params,
                resources,
                retry,
            },
        );
    }
    Ok(defaults)
}

pub(crate) fn kind_names() -> Vec<String> {
    KIND_NAMES.iter().map(|s| s.to_string()).collect()
}

/// The steps of a `steps` table, in file order.
/// `prefix` is `steps` or `loop.L.steps`, for error messages.
fn steps<'i>(
    table: DeTable<'i>,
    prefix: &str,
    defaults: &BTreeMap<String, KindDefaults<'i>>,
    map: &SourceMap<'_>,
) -> Result<Vec<RawStep<'i>>, SpecError> {
    let mut steps = Vec::new();
    for (name, value) in sorted(table) {
        check_name(&name, "step", map)?;
        if name.text == "carry" {
            return Err(map.error(&name.span, Problem::ReservedName { name: name.text }));
        }
        let (mut table, table_span) = expect_table(value, &format!("steps.{}", name.text), map)?;
        let Some(kind) = table.remove("kind") else {
            return Err(map.error(
                &name.span,
                Problem::MissingKind {
                    step: name.text.clone(),
                    expected: kind_names(),
                },
            ));
        };
        let kind = expect_str(kind, &format!("kind` of step `{}", name.text), map)?;
        if StepParams::input_slots_of(&kind.text).is_none() {
            return Err(map.error(
                &kind.span,
                Problem::UnknownKind {
                    kind: kind.text.clone(),
                    context: format!("for step `{}`", name.text),
                    expected: kind_names(),
                },
            ));
        }
        let mut resources = match table.remove(RESOURCES) {
            Some(value) => {
                let path = format!("{prefix}.{}.{RESOURCES}", name.text);
                resources::parse(value, &path, map)?
            }
            None => Resources::default(),
        };
        let mut retry = match table.remove(RETRY) {
            Some(value) => Some(retry::parse(
                value,
                &format!("{prefix}.{}.{RETRY}", name.text),
                map,
            )?),
            None => None,
        };
        let replicate = match table.remove(REPLICATE) {
            Some(value) => match value.get_ref() {
                DeValue::Boolean(b) => Some(*b),
                other => {
                    let what = format!("{prefix}.{}.{REPLICATE}", name.text);
                    return Err(wrong_type(
                        &value.span(),
                        &what,
                        "true or false",
                        other,
                        map,
                    ));
                }
            },
            None => None,
        };
        // Kind defaults sit under the step's own keys: the step's keys win.
        if let Some(defaults) = defaults.get(&kind.text) {
            for (key, value) in defaults.params.iter() {
                if !table.contains_key(key_str(key)) {
                    table.insert(key.clone(), value.clone());
                }
            }
            resources = resources.or(&defaults.resources);
            retry = retry.or(defaults.retry);
        }
        steps.push(RawStep {
            name,
            kind,
            table,
            table_span,
            resources,
            retry: retry.unwrap_or_default(),
            replicate,
        });
    }
    Ok(steps)
}

fn parse_loop<'i>(
    name: Text,
    value: Value<'i>,
    defaults: &BTreeMap<String, KindDefaults<'i>>,
    map: &SourceMap<'_>,
) -> Result<RawLoop<'i>, SpecError> {
    check_name(&name, "loop", map)?;
    let bad = |span: &Range<usize>, why: String| {
        map.error(
            span,
            Problem::BadLoop {
                name: name.text.clone(),
                why,
            },
        )
    };
    let (mut table, _) = expect_table(value, &format!("loop.{}", name.text), map)?;
    check_keys(&table, LOOP_KEYS, &format!("loop `{}`", name.text), map)?;

    let count = match table.remove("count") {
        Some(count) => {
            let span = count.span();
            let parsed = match count.get_ref() {
                DeValue::Integer(i) => u64::from_str_radix(i.as_str(), i.radix()).ok(),
                _ => None,
            };
            match parsed {
                Some(n) if (1..=MAX_GENERATIONS).contains(&n) => n as u32,
                _ => {
                    let why = format!(
                        "`count` must be a positive integer (at most {MAX_GENERATIONS}), found {}",
                        describe(count.get_ref())
                    );
                    return Err(bad(&span, why));
                }
            }
        }
        None => {
            return Err(bad(
                &name.span,
                "missing `count = N` (generations 0..N-1)".into(),
            ));
        }
    };

    let carry = string_table(table.remove("carry"), &name.text, "carry", map)?;
    let next = string_table(table.remove("next"), &name.text, "next", map)?;
    let mut carried = Vec::new();
    for (key, init) in &carry {
        check_name(key, "carried value", map)?;
        let Some((_, next)) = next.iter().find(|(k, _)| k.text == key.text) else {
            let why = format!(
                "`carry.{0}` has no `next.{0}` (what generation g+1 gets)",
                key.text
            );
            return Err(bad(&key.span, why));
        };
        carried.push(Carried {
            key: key.text.clone(),
            init: init.clone(),
            next: next.clone(),
        });
    }
    if let Some((key, _)) = next
        .iter()
        .find(|(k, _)| !carry.iter().any(|(c, _)| c.text == k.text))
    {
        let why = format!(
            "`next.{0}` has no `carry.{0}` (what generation 0 gets)",
            key.text
        );
        return Err(bad(&key.span, why));
    }

    let steps = match table.remove("steps") {
        Some(value) => {
            let (table, _) = expect_table(value, &format!("loop.{}.steps", name.text), map)?;
            let prefix = format!("loop.{}.steps", name.text);
            self::steps(table, &prefix, defaults, map)?
        }
        None => Vec::new(),
    };
    if steps.is_empty() {
        return Err(bad(
            &name.span,
            format!("no steps; add `[loop.{}.steps.NAME]` tables", name.text),
        ));
    }
    Ok(RawLoop {
        name,
        count,
        carried,
        steps,
    })
}

/// `carry = { data = "blocks.train" }`: (key, value) in file order.
fn string_table(
    value: Option<Value<'_>>,
    loop_name: &str,
    field: &str,
    map: &SourceMap<'_>,
) -> Result<Vec<(Text, Text)>, SpecError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let (table, _) = expect_table(value, &format!("loop.{loop_name}.{field}"), map)?;
    sorted(table)
        .into_iter()
        .map(|(key, value)| {
            let what = format!("loop.{loop_name}.{field}.{}", key.text);
            Ok((key, expect_str(value, &what, map)?))
        })
        .collect()
}

fn describe(value: &DeValue<'_>) -> String {
    match value {
        DeValue::Integer(i) => format!("`{i}`"),
        DeValue::Float(f) => format!("`{f}`"),
        DeValue::String(s) => format!("\"{s}\""),
        other => a_type(other),
    }
}
