//! Loop expansion and reference rewriting.
//!
//! References live only in a kind's input slots. They are rewritten in the raw
//! table (so spans survive) and only then deserialised into typed parameters:
//!
//! - inside loop `L`, generation g: `carry.X` becomes the carried reference
//!   (generation 0: `carry.X` of the loop; g > 0: `next.X` resolved in g-1), and a
//!   bare loop-step name `s.out` becomes `s@g.out`;
//! - anywhere: `s@3.out` is kept (checked to exist), `s@last.out` becomes
//!   `s@{count-1}.out`, and `s@*.out` becomes every generation's reference (only
//!   inside a list);
//! - inside loop `L`, generation g, for a step `s` of `L`: `s@earlier.out` becomes
//!   `s@0.out` … `s@{g-1}.out` (only inside a list; none in generation 0);
//! - a loop step referred to from outside its loop must say which generation.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::Range;

use serde_spanned::Spanned;
use toml::de::{DeArray, DeTable, DeValue, ValueDeserializer};

use super::StepDecl;
use super::error::{Problem, SpecError};
use super::location::SourceMap;
use super::raw::{RawLoop, RawStep, Text, kind_names};
use crate::steps::StepParams;

/// An expanded step and the spans its errors point at.
pub(crate) struct Expanded {
    pub decl: StepDecl,
    /// The step's name where it was declared.
    pub name_span: Range<usize>,
    /// Where each (rewritten) input reference was written.
    pub ref_spans: BTreeMap<String, Range<usize>>,
}

/// A reference written in a loop's `carry` or `next`, resolved. Steps check the
/// ones they use; these are checked too, so a typo in a value no step uses yet
/// (like `next` when count = 1) does not wait for a later edit to surface.
pub(crate) struct LoopRef {
    /// "`next.data` of loop `gen`"
    pub place: String,
    pub reference: String,
    pub span: Range<usize>,
}

/// The expanded steps, and the loops' own references.
pub(crate) struct Expansion {
    pub steps: Vec<Expanded>,
    pub loop_refs: Vec<LoopRef>,
}

/// Every step of the document, expanded: top-level steps and loops in file order,
/// a loop's steps generation by generation.
pub(crate) fn expand(
    steps: &[RawStep<'_>],
    loops: &[RawLoop<'_>],
    map: &SourceMap<'_>,
) -> Result<Expansion, SpecError> {
    let names = Names::new(steps, loops, map)?;

    enum Item<'a, 'i> {
        Step(&'a RawStep<'i>),
        Loop(&'a RawLoop<'i>),
    }
    let mut items: Vec<(usize, Item)> = steps
        .iter()
        .map(|s| (s.name.span.start, Item::Step(s)))
        .collect();
    items.extend(loops.iter().map(|l| (l.name.span.start, Item::Loop(l))));
    items.sort_by_key(|(start, _)| *start);

    let mut out = Vec::new();
    let mut loop_refs = Vec::new();
    for (_, item) in items {
        match item {
            Item::Step(step) => {
                out.push(names.declare(step, step.name.text.clone(), &Scope::Top, None, map)?)
            }
            Item::Loop(lp) => {
                let (generations, refs) = names.carried_values(lp, map)?;
                loop_refs.extend(refs);
                for (g, carried) in generations.iter().enumerate() {
                    let g = g as u32;
                    let scope = Scope::Generation {
                        loop_name: &lp.name.text,
                        g,
                        carried,
                    };
                    for step in &lp.steps {
                        let name = format!("{}@{g}", step.name.text);
                        let generation = Some((lp.name.text.clone(), g));
                        out.push(names.declare(step, name, &scope, generation, map)?);
                    }
                }
            }
        }
    }
    Ok(Expansion {
        steps: out,
        loop_refs,
    })
}

/// One generation's carried values: key -> resolved reference.
type Carry = BTreeMap<String, String>;

/// Where a reference is resolved.
enum Scope<'a> {
    /// A top-level step, or a loop's `carry` (generation 0's values).
    Top,
    /// Generation `g` of loop `loop_name`, whose carried values are `carried`.
    Generation {
        loop_name: &'a str,
        g: u32,
        carried: &'a Carry,
    },
}

/// A loop step's loop and generation count.
struct InLoop<'a> {
    loop_name: &'a str,
    count: u32,
}

/// What references are resolved against.
struct Names<'a> {
    top: BTreeMap<&'a str, &'a Text>,
    loop_steps: BTreeMap<&'a str, InLoop<'a>>,
}

impl<'a> Names<'a> {
    /// Indexes the step names; a name declared twice is an error.
    fn new(
        steps: &'a [RawStep<'_>],
        loops: &'a [RawLoop<'_>],
        map: &SourceMap<'_>,
    ) -> Result<Self, SpecError> {
        let mut top = BTreeMap::new();
        let mut seen: BTreeMap<&str, &Text> = BTreeMap::new();
        for step in steps {
            top.insert(step.name.text.as_str(), &step.name);
            seen.insert(step.name.text.as_str(), &step.name);
        }
        let mut loop_steps = BTreeMap::new();
        for lp in loops {
            for step in &lp.steps {
                if let Some(first) = seen.get(step.name.text.as_str()) {
                    let problem = Problem::DuplicateStep {
                        name: step.name.text.clone(),
                        first: map.locate(&first.span),
                    };
                    return Err(map.error(&step.name.span, problem));
                }
                seen.insert(step.name.text.as_str(), &step.name);
                loop_steps.insert(
                    step.name.text.as_str(),
                    InLoop {
                        loop_name: &lp.name.text,
                        count: lp.count,
                    },
                );
            }
        }
        Ok(Names { top, loop_steps })
    }

    /// The carried values of every generation of `lp` (index g), resolved, and
    /// the loop's references to check: `carry` (generation 0) and `next` as
    /// resolved in the last generation.
    fn carried_values(
        &self,
        lp: &RawLoop<'_>,
        map: &SourceMap<'_>,
    ) -> Result<(Vec<Carry>, Vec<LoopRef>), SpecError> {
        let mut generations: Vec<Carry> = Vec::with_capacity(lp.count as usize);
        let mut refs = Vec::new();
        let mut current = BTreeMap::new();
        for carried in &lp.carried {
            let place = format!("`carry.{}` of loop `{}`", carried.key, lp.name.text);
            let resolved = self.resolve_one(&carried.init, &Scope::Top, &place, map)?;
            current.insert(carried.key.clone(), resolved.clone());
            refs.push(LoopRef {
                place,
                reference: resolved,
                span: carried.init.span.clone(),
            });
        }
        // `next` is resolved in every generation, the last one included: that
        // one's values are used by no step, but it checks `next` even when count = 1.
        for g in 0..lp.count {
            let scope = Scope::Generation {
                loop_name: &lp.name.text,
                g,
                carried: &current,
            };
            let mut following = BTreeMap::new();
            for carried in &lp.carried {
                let place = format!("`next.{}` of loop `{}`", carried.key, lp.name.text);
                let resolved = self.resolve_one(&carried.next, &scope, &place, map)?;
                following.insert(carried.key.clone(), resolved);
            }
            generations.push(std::mem::replace(&mut current, following));
        }
        for carried in &lp.carried {
            if let Some(reference) = current.remove(&carried.key) {
                let place = format!("`next.{}` of loop `{}`", carried.key, lp.name.text);
                refs.push(LoopRef {
                    place,
                    reference,
                    span: carried.next.span.clone(),
                });
            }
        }
        Ok((generations, refs))
    }

    fn resolve_one(
        &self,
        text: &Text,
        scope: &Scope<'_>,
        place: &str,
        map: &SourceMap<'_>,
    ) -> Result<String, SpecError> {
        let mut resolved = self
            .resolve(&text.text, scope, false, place)
            .map_err(|p| map.error(&text.span, p))?;
        // Outside a list a reference resolves to exactly one.
        resolved.pop().ok_or_else(|| {
            let why = "it names no generation".to_string();
            map.error(
                &text.span,
                Problem::BadRef {
                    place: place.into(),
                    reference: text.text.clone(),
                    why,
                },
            )
        })
    }

    /// Rewrites one reference. More than one result only for `s@*.out` in a list.
    fn resolve(
        &self,
        reference: &str,
        scope: &Scope<'_>,
        in_list: bool,
        place: &str,
    ) -> Result<Vec<String>, Problem> {
        let bad = |why: String| Problem::BadRef {
            place: place.into(),
            reference: reference.into(),
            why,
        };
        if reference.starts_with(crate::steps::FILE_PREFIX) {
            // A repository file: the same in every generation (spec/files.rs checks it).
            return Ok(vec![reference.to_string()]);
        }
        if let Some(key) = reference.strip_prefix("carry.") {
            return match scope {
                Scope::Top => Err(bad(
                    "`carry.X` only has a meaning in a loop's steps and its `next`".into(),
                )),
                Scope::Generation {
                    loop_name, carried, ..
                } => match carried.get(key) {
                    Some(value) => Ok(vec![value.clone()]),
                    None => Err(Problem::UnknownCarry {
                        place: place.into(),
                        loop_name: loop_name.to_string(),
                        key: key.into(),
                        carried: carried.keys().cloned().collect(),
                    }),
                },
            };
        }
        // No dot: a source name (checked later).
        let Some((step, output)) = reference.rsplit_once('.') else {
            return Ok(vec![reference.to_string()]);
        };
        if let Some((name, selector)) = step.split_once('@') {
            let Some(in_loop) = self.loop_steps.get(name) else {
                let why = if self.top.contains_key(name) {
                    format!(
                        "`{name}` is not in a loop, so it has no generations: write `{name}.{output}`"
                    )
                } else {
                    format!(
                        "`@` selects a generation of a loop step, and no loop has a step `{name}`"
                    )
                };
                return Err(bad(why));
            };
            let last = in_loop.count - 1;
            let generations: Vec<u32> = match selector {
                "last" => vec![last],
                "*" if in_list => (0..in_loop.count).collect(),
                "earlier" => match scope {
                    Scope::Generation { loop_name, g, .. } if *loop_name == in_loop.loop_name => {
                        if !in_list {
                            return Err(bad(format!(
                                "`@earlier` names every generation before this one (none in \
                                 generation 0), so it may only appear inside a list: \
                                 `[\"{reference}\"]`"
                            )));
                        }
                        (0..*g).collect()
                    }
                    _ => {
                        return Err(bad(format!(
                            "`@earlier` (the generations before the current one) only has a \
                             meaning in the steps of loop `{}`, the loop of `{name}`",
                            in_loop.loop_name
                        )));
                    }
                },
                "*" => {
                    return Err(Problem::StarOutsideList {
                        place: place.into(),
                        reference: reference.into(),
                    });
                }
                digits if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => {
                    match digits.parse::<u32>() {
                        Ok(g) if g <= last => vec![g],
                        _ => {
                            let why =
                                format!("loop `{}` has generations 0 to {last}", in_loop.loop_name);
                            return Err(bad(why));
                        }
                    }
                }
                other => {
                    return Err(bad(format!(
                        "`@{other}`: expected a generation number, `@last`, `@*` or `@earlier`"
                    )));
                }
            };
            return Ok(generations
                .into_iter()
                .map(|g| format!("{name}@{g}.{output}"))
                .collect());
        }
        match (scope, self.loop_steps.get(step)) {
            (Scope::Generation { loop_name, g, .. }, Some(in_loop))
                if in_loop.loop_name == *loop_name =>
            {
                Ok(vec![format!("{step}@{g}.{output}")])
            }
            (_, Some(in_loop)) => Err(bad(format!(
                "`{step}` is a step of loop `{}`: name one generation (`{step}@0.{output}`, \
                 `{step}@last.{output}`) or, inside a list, all of them (`{step}@*.{output}`)",
                in_loop.loop_name
            ))),
            (_, None) => Ok(vec![reference.to_string()]),
        }
    }

    /// Rewrites the references of `step` in `scope` and deserialises its parameters.
    fn declare(
        &self,
        step: &RawStep<'_>,
        name: String,
        scope: &Scope<'_>,
        generation: Option<(String, u32)>,
        map: &SourceMap<'_>,
    ) -> Result<Expanded, SpecError> {
        let mut table = step.table.clone();
        let mut ref_spans = BTreeMap::new();
        let slots = StepParams::input_slots_of(&step.kind.text).unwrap_or(&[]);
        for slot in slots {
            let Some(value) = table.get_mut(*slot) else {
                continue;
            };
            let place = format!("`{slot}` of step `{name}`");
            let span = value.span();
            match value.get_mut() {
                DeValue::String(reference) => {
                    let text = Text {
                        text: reference.to_string(),
                        span: span.clone(),
                    };
                    let resolved = self.resolve_one(&text, scope, &place, map)?;
                    ref_spans
                        .entry(resolved.clone())
                        .or_insert_with(|| span.clone());
                    *reference = Cow::Owned(resolved);
                }
                DeValue::Array(items) => {
                    let mut rewritten = DeArray::new();
                    for item in items.iter() {
                        let DeValue::String(reference) = item.get_ref() else {
                            // Not a reference: serde reports the type error with its span.
                            rewritten.push(item.clone());
                            continue;
                        };
                        let item_span = item.span();
                        let resolved = self
                            .resolve(reference, scope, true, &place)
                            .map_err(|p| map.error(&item_span, p))?;
                        for r in resolved {
                            ref_spans
                                .entry(r.clone())
                                .or_insert_with(|| item_span.clone());
                            rewritten.push(Spanned::new(
                                item_span.clone(),
                                DeValue::String(Cow::Owned(r)),
                            ));
                        }
                    }
                    *items = rewritten;
                }
                // Named inputs (`inputs = { blocks = "b.train" }`): each value is one reference.
                DeValue::Table(entries) => {
                    for (entry, item) in entries.iter_mut() {
                        let item_span = item.span();
                        let DeValue::String(reference) = item.get_mut() else {
                            // Not a reference: serde reports the type error with its span.
                            continue;
                        };
                        let text = Text {
                            text: reference.to_string(),
                            span: item_span.clone(),
                        };
                        let place = format!("`{slot}.{}` of step `{name}`", entry.get_ref());
                        let resolved = self.resolve_one(&text, scope, &place, map)?;
                        ref_spans.entry(resolved.clone()).or_insert(item_span);
                        *reference = Cow::Owned(resolved);
                    }
                }
                // Not a reference: serde reports the type error with its span.
                _ => {}
            }
        }
        let params = typed(step, &name, table, map)?;
        let replicate = step.replicate.unwrap_or_else(|| params.replicated());
        let ref_locations = ref_spans
            .iter()
            .map(|(r, span)| (r.clone(), map.locate(span)))
            .collect();
        let decl = StepDecl {
            name,
            params,
            location: map.locate(&step.name.span),
            generation,
            ref_locations,
            resources: step.resources.clone(),
            retry: step.retry,
            // Set by the caller, which knows the point's seeds and the sweep.
            seed: 0,
            replicate,
            points: Vec::new(),
        };
        Ok(Expanded {
            decl,
            name_span: step.name.span.clone(),
            ref_spans,
        })
    }
}

/// Deserialises a step table (references rewritten) into its kind's parameters;
/// serde's error is placed on the key or value it is about.
fn typed(
    step: &RawStep<'_>,
    name: &str,
    table: DeTable<'_>,
    map: &SourceMap<'_>,
) -> Result<StepParams, SpecError> {
    // (key, span of key and value together) to name the key an error is about.
    let keys: Vec<(String, Range<usize>, Range<usize>)> = table
        .iter()
        .map(|(k, v)| (k.get_ref().to_string(), k.span(), v.span()))
        .collect();
    let de = ValueDeserializer::from(Spanned::new(step.table_span.clone(), DeValue::Table(table)));
    let error = match StepParams::deserialize_kind(&step.kind.text, de) {
        Ok(Some(params)) => {
            let Err(problem) = params.check() else {
                return Ok(params);
            };
            // Point at the parameter's value, or at the step when it is not written.
            let span = keys
                .iter()
                .find(|(key, _, _)| key == problem.key)
                .map(|(_, _, value)| value.clone())
                .unwrap_or_else(|| step.name.span.clone());
            let problem = Problem::Params {
                step: name.to_string(),
                kind: step.kind.text.clone(),
                key: Some(problem.key.to_string()),
                message: problem.message,
            };
            return Err(map.error(&span, problem));
        }
        Ok(None) => <toml::de::Error as serde::de::Error>::custom(format!(
            "unknown kind `{}`, expected one of {}",
            step.kind.text,
            super::error::list(&kind_names())
        )),
        Err(error) => error,
    };
    let mut message = error.message().to_string();
    // A missing key has no place of its own (serde gives the whole table): point at the step's name.
    let mut span = match error.span() {
        Some(span) if !message.starts_with("missing field") && span != step.table_span => span,
        _ => step.name.span.clone(),
    };
    // Keys of a flattened group (synthesize's and prompts' decoding parameters) reach
    // serde without their places and its message without the expected keys: an
    // unknown key is found by name, and the kind's keys are listed.
    if let Some(unknown) = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
        .map(str::to_string)
    {
        if let Some((_, key_span, _)) = keys.iter().find(|(k, _, _)| *k == unknown) {
            span = key_span.clone();
        }
        if !message.contains("expected") {
            let fields = super::schema::kind_fields(&step.kind.text);
            message = format!(
                "unknown field `{unknown}`, expected one of {}",
                super::error::list(&fields)
            );
        }
    }
    let key = keys
        .iter()
        .find(|(_, k, v)| {
            k.contains(&span.start) || v.contains(&span.start) || *k == span || *v == span
        })
        .map(|(key, _, _)| key.clone());
    let problem = Problem::Params {
        step: name.to_string(),
        kind: step.kind.text.clone(),
        key,
        message,
    };
    Err(map.error(&span, problem))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::spec::raw::Document;

    const TEXT: &str = r#"
[experiment]
name = "t"
[steps.top]
kind = "tokenizer"
from = "opt"
[loop.gen]
count = 3
[loop.gen.steps.b]
kind = "tokenize"
data = "x"
tokenizer = "top.tokenizer"
[loop.other]
count = 2
[loop.other.steps.c]
kind = "tokenizer"
from = "opt"
"#;

    fn resolve(reference: &str, scope: &Scope<'_>, in_list: bool) -> Result<Vec<String>, Problem> {
        let map = SourceMap::new(Path::new("t.toml"), TEXT);
        let root = DeTable::parse(TEXT).unwrap().into_inner();
        let doc = Document::parse(root, &map).unwrap();
        let names = Names::new(&doc.steps, &doc.loops, &map).unwrap();
        names.resolve(reference, scope, in_list, "`x` of step `s`")
    }

    #[test]
    fn references_resolve_by_scope() {
        let carried = BTreeMap::from([("data".to_string(), "top.tokenizer".to_string())]);
        let gen1 = Scope::Generation {
            loop_name: "gen",
            g: 1,
            carried: &carried,
        };
        let gen0 = Scope::Generation {
            loop_name: "gen",
            g: 0,
            carried: &carried,
        };
        let gen2 = Scope::Generation {
            loop_name: "gen",
            g: 2,
            carried: &carried,
        };
        let ok = |v: &[&str]| Ok(v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        // (reference, scope, in a list, expected)
        type Expected = Result<Vec<String>, ()>;
        let cases: Vec<(&str, &Scope, bool, Expected)> = vec![
            ("opt", &Scope::Top, false, ok(&["opt"])),
            ("top.tokenizer", &Scope::Top, false, ok(&["top.tokenizer"])),
            (
                "b@*.train",
                &Scope::Top,
                true,
                ok(&["b@0.train", "b@1.train", "b@2.train"]),
            ),
            ("b@*.train", &Scope::Top, false, Err(())),
            ("b@last.train", &Scope::Top, false, ok(&["b@2.train"])),
            ("b@1.train", &Scope::Top, false, ok(&["b@1.train"])),
            ("b@3.train", &Scope::Top, false, Err(())),
            ("b@x.train", &Scope::Top, false, Err(())),
            ("b@.train", &Scope::Top, false, Err(())),
            ("top@0.tokenizer", &Scope::Top, false, Err(())),
            ("b.train", &Scope::Top, false, Err(())),
            ("carry.data", &Scope::Top, false, Err(())),
            // Inside generation 1 of `gen`.
            ("b.train", &gen1, false, ok(&["b@1.train"])),
            ("carry.data", &gen1, false, ok(&["top.tokenizer"])),
            ("carry.other", &gen1, false, Err(())),
            ("c.tokenizer", &gen1, false, Err(())),
            ("c@last.tokenizer", &gen1, false, ok(&["c@1.tokenizer"])),
            (
                "c@*.tokenizer",
                &gen1,
                true,
                ok(&["c@0.tokenizer", "c@1.tokenizer"]),
            ),
            // `@earlier`: the generations before the current one, in a list, in its loop.
            ("b@earlier.train", &gen1, true, ok(&["b@0.train"])),
            (
                "b@earlier.train",
                &gen2,
                true,
                ok(&["b@0.train", "b@1.train"]),
            ),
            ("b@earlier.train", &gen0, true, ok(&[])),
            ("b@earlier.train", &gen1, false, Err(())),
            ("b@earlier.train", &Scope::Top, true, Err(())),
            ("c@earlier.tokenizer", &gen1, true, Err(())),
        ];
        for (reference, scope, in_list, expected) in cases {
            let got = resolve(reference, scope, in_list).map_err(|_| ());
            assert_eq!(got, expected, "{reference} (in a list: {in_list})");
        }
    }
}
