//! `--set PATH=VALUE`: edits of the raw TOML tree, applied before anything else
//! reads it, so an override is checked exactly like the file's own text.
//!
//! PATH is dotted (`steps.blocks.block_size`); VALUE is a TOML value (`32`,
//! `true`, `"x"`, `[1, 2]`) or, when it does not parse as one, a plain string
//! (`/data/opt`). Every span of the new value points into the override's text, so
//! later errors about it name the override.

use std::borrow::Cow;
use std::ops::Range;

use serde_spanned::Spanned;
use toml::de::{DeTable, DeValue};

use super::error::{Problem, SpecError};
use super::location::SourceMap;

/// Applies `overrides` in order (a later one wins over an earlier one).
pub(crate) fn apply<'i>(
    root: &mut DeTable<'i>,
    overrides: &'i [String],
    map: &mut SourceMap<'i>,
) -> Result<(), SpecError> {
    for text in overrides {
        let base = map.add_override(text);
        apply_one(root, text, base, map)?;
    }
    Ok(())
}

fn apply_one<'i>(
    root: &mut DeTable<'i>,
    text: &'i str,
    base: usize,
    map: &SourceMap<'i>,
) -> Result<(), SpecError> {
    let whole = base..base + text.len();
    let bad = |span: Range<usize>, why: String| {
        map.error(
            &span,
            Problem::BadOverride {
                text: text.to_string(),
                why,
            },
        )
    };
    let Some((path, value_text)) = text.split_once('=') else {
        return Err(bad(
            whole,
            "expected PATH=VALUE, e.g. `steps.blocks.block_size=32`".into(),
        ));
    };
    let value_start = base + path.len() + 1;

    // (segment, its span) for each dotted part of PATH.
    let mut segments = Vec::new();
    let mut offset = base;
    for segment in path.split('.') {
        let span = offset..offset + segment.len();
        if segment.trim().is_empty() {
            let why = format!("empty key in `{path}` (write the path as `a.b.c`)");
            return Err(bad(span.start..span.end.max(span.start + 1), why));
        }
        segments.push((Cow::Borrowed(segment), span));
        offset += segment.len() + 1;
    }

    let value = match DeValue::parse(value_text) {
        Ok(value) => shift(value, value_start),
        // Not a TOML value: take it literally, so `sources.opt=/data/opt` works.
        Err(_) => Spanned::new(
            value_start..value_start + value_text.len(),
            DeValue::String(Cow::Borrowed(value_text)),
        ),
    };

    set_path(root, &segments, value).map_err(|(span, why)| bad(span, why))
}

/// Sets the value at the dotted path `segments` (each with its span), creating
/// the tables on the way; `Err((span, why))` when a segment on the way is not a
/// table. Shared by `--set` and the sweep's axes.
pub(crate) fn set_path<'i>(
    root: &mut DeTable<'i>,
    segments: &[(Cow<'i, str>, Range<usize>)],
    value: Spanned<DeValue<'i>>,
) -> Result<(), (Range<usize>, String)> {
    let Some(((last, last_span), parents)) = segments.split_last() else {
        return Err((value.span(), "empty path".into()));
    };
    let mut table = root;
    for (i, (segment, span)) in parents.iter().enumerate() {
        if !table.contains_key(segment.as_ref()) {
            let key = Spanned::new(span.clone(), segment.clone());
            table.insert(
                key,
                Spanned::new(span.clone(), DeValue::Table(DeTable::new())),
            );
        }
        let Some(child) = table.get_mut(segment.as_ref()) else {
            return Err((span.clone(), format!("cannot create `{segment}`")));
        };
        match child.get_mut() {
            DeValue::Table(child) => table = child,
            other => {
                let prefix: Vec<&str> = segments[..=i].iter().map(|(s, _)| s.as_ref()).collect();
                let why = format!("`{}` is {}, not a table", prefix.join("."), a_type(other));
                return Err((span.clone(), why));
            }
        }
    }
    table.insert(Spanned::new(last_span.clone(), last.clone()), value);
    Ok(())
}

/// "an array", "a string", ... for messages.
pub(crate) fn a_type(value: &DeValue<'_>) -> String {
    let name = value.type_str();
    let article = if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {name}")
}

/// Moves every span in `value` by `by` bytes (from the value's own text into the
/// virtual space of the source map).
fn shift<'i>(value: Spanned<DeValue<'i>>, by: usize) -> Spanned<DeValue<'i>> {
    let span = value.span();
    let inner = match value.into_inner() {
        DeValue::Array(items) => DeValue::Array(items.into_iter().map(|v| shift(v, by)).collect()),
        DeValue::Table(table) => DeValue::Table(
            table
                .into_iter()
                .map(|(key, v)| {
                    let key_span = key.span();
                    let key =
                        Spanned::new(key_span.start + by..key_span.end + by, key.into_inner());
                    (key, shift(v, by))
                })
                .collect(),
        ),
        scalar => scalar,
    };
    Spanned::new(span.start + by..span.end + by, inner)
}
