//! Sweeps and replicates: one experiment file, several points.
//!
//! `[sweep]` declares axes over value paths (any path `--set` accepts): the
//! `grid` axes multiply, the `zip` axes vary together (equal lengths). `[experiment]
//! seeds = [...]` adds the replicate axis `seed`, which gives each replicate's
//! seeded steps their own seed while the data steps keep `experiment.seed`. A
//! point is the file with one value set on every axis; the points' steps are
//! merged where they compute the same thing (`points.rs`), so a step that does not
//! depend on an axis runs once.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::ops::Range;

use serde_spanned::Spanned;
use toml::de::{DeTable, DeValue};

use super::error::{Problem, SpecError};
use super::location::SourceMap;
use super::overrides;

/// The key of the sweep table at the top of the file.
pub(crate) const SWEEP: &str = "sweep";
const SWEEP_KEYS: &[&str] = &["grid", "zip"];
pub use crate::artifacts::labels::SEED_AXIS;
/// More points than this is a typo, not a study (each point is a full plan).
const MAX_POINTS: usize = 10_000;
/// `[experiment]` keys an axis may not set: they are one per experiment. The base
/// seed (`experiment.seed`) may be swept.
const FIXED_EXPERIMENT_KEYS: &[&str] = &["name", "backend", "precision", "description", "seeds"];

/// One axis: a value path and the values it takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Axis {
    /// How point names call it: the path's last segment (`lr`), longer where two
    /// axes would share one (`finetune.lr`); `seed` for the replicates.
    pub name: String,
    /// The dotted path (`loop.gen.steps.finetune.lr`); `experiment.seeds` for the
    /// replicates.
    pub path: String,
    /// Each value as written (`3e-4`, `"adamw"` without its quotes).
    pub values: Vec<String>,
    /// Whether this is the replicate axis (`experiment.seeds`).
    pub replicate: bool,
}

/// One point: for each axis (in [`Sweep::axes`] order), the index of its value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Point(pub Vec<usize>);

/// The sweep's axes and points. Without `[sweep]` and `seeds`: no axes, one point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sweep {
    pub axes: Vec<Axis>,
    /// Every combination, the first axis varying slowest, the replicates fastest.
    pub points: Vec<Point>,
    /// The replicate seeds (`experiment.seeds`), in the file's order.
    pub seeds: Vec<u64>,
}

impl Sweep {
    /// Whether there is more than one point, or any axis at all.
    pub fn is_swept(&self) -> bool {
        !self.axes.is_empty()
    }

    /// `[lr=3e-4,seed=1]` over `axes` (indices into [`Sweep::axes`]); empty for none.
    pub fn label(&self, point: &Point, axes: &[usize]) -> String {
        if axes.is_empty() {
            return String::new();
        }
        let parts: Vec<String> = axes
            .iter()
            .map(|&a| format!("{}={}", self.axes[a].name, self.axes[a].values[point.0[a]]))
            .collect();
        format!("[{}]", parts.join(","))
    }

    /// The point's name over every axis: `[lr=3e-4,seed=1]`.
    pub fn point_label(&self, point: usize) -> String {
        let all: Vec<usize> = (0..self.axes.len()).collect();
        self.label(&self.points[point], &all)
    }

    /// The replicate seed of `point`, when the file declares `seeds`.
    pub fn seed_of(&self, point: usize) -> Option<u64> {
        let axis = self.axes.iter().position(|a| a.replicate)?;
        Some(self.seeds[self.points[point].0[axis]])
    }

    /// The points that differ from `point` at most in the replicate seed (its
    /// replicates, itself included), in order.
    pub fn replicates_of(&self, point: usize) -> Vec<usize> {
        let same = |q: &Point| {
            self.axes
                .iter()
                .enumerate()
                .all(|(a, axis)| axis.replicate || q.0[a] == self.points[point].0[a])
        };
        (0..self.points.len())
            .filter(|&q| same(&self.points[q]))
            .collect()
    }
}

/// One axis as written: its path's segments and values keep their spans, so a
/// bad value is reported where the sweep lists it.
#[derive(Clone, Debug)]
pub(crate) struct RawAxis<'i> {
    path: String,
    segments: Vec<(Cow<'i, str>, Range<usize>)>,
    values: Vec<Spanned<DeValue<'i>>>,
    /// Index of the dimension it varies along (zip axes share one).
    dimension: usize,
}

/// `[sweep]` as written.
#[derive(Clone, Debug, Default)]
pub(crate) struct RawSweep<'i> {
    axes: Vec<RawAxis<'i>>,
}

impl<'i> RawSweep<'i> {
    /// Takes `[sweep]` out of the file's tree (it is not part of any point).
    pub(crate) fn take(root: &mut DeTable<'i>, map: &SourceMap<'i>) -> Result<Self, SpecError> {
        let Some(value) = root.remove(SWEEP) else {
            return Ok(RawSweep::default());
        };
        let bad =
            |span: &Range<usize>, message: String| map.error(span, Problem::Sweep { message });
        let span = value.span();
        let DeValue::Table(table) = value.into_inner() else {
            return Err(bad(
                &span,
                "`sweep` must be a table with `grid` and/or `zip`".into(),
            ));
        };
        let mut entries: Vec<_> = table.into_iter().collect();
        entries.sort_by_key(|(k, _)| k.span().start);
        let mut axes = Vec::new();
        let mut dimension = 0;
        for (key, value) in entries {
            let which = key.get_ref().to_string();
            if !SWEEP_KEYS.contains(&which.as_str()) {
                return Err(map.error(
                    &key.span(),
                    Problem::UnknownKey {
                        key: which,
                        table: "[sweep]".into(),
                        expected: SWEEP_KEYS.iter().map(|s| s.to_string()).collect(),
                    },
                ));
            }
            let zip = which == "zip";
            let span = value.span();
            let DeValue::Table(table) = value.into_inner() else {
                let message = format!(
                    "`{which}` must be a table of value paths to lists, e.g. \
                     `{which} = {{ \"loop.gen.steps.finetune.lr\" = [1e-3, 3e-4] }}`"
                );
                return Err(bad(&span, message));
            };
            let mut paths: Vec<_> = table.into_iter().collect();
            paths.sort_by_key(|(k, _)| k.span().start);
            let mut zip_len: Option<(usize, String)> = None;
            for (path_key, list) in paths {
                let axis = raw_axis(path_key, list, dimension, map)?;
                if zip {
                    match &zip_len {
                        None => zip_len = Some((axis.values.len(), axis.path.clone())),
                        Some((n, first)) if *n != axis.values.len() => {
                            let message = format!(
                                "the `zip` axes vary together, so their lists need equal \
                                 lengths: `{first}` has {n} values, `{}` has {}",
                                axis.path,
                                axis.values.len()
                            );
                            return Err(bad(&axis.segments[0].1, message));
                        }
                        Some(_) => {}
                    }
                } else {
                    dimension += 1;
                }
                if let Some(other) = axes.iter().find(|a: &&RawAxis| a.path == axis.path) {
                    let message = format!("`{}` is swept twice", other.path);
                    return Err(bad(&axis.segments[0].1, message));
                }
                axes.push(axis);
            }
            if zip && zip_len.is_some() {
                dimension += 1;
            }
        }
        Ok(RawSweep { axes })
    }

    /// Sets the values of `point` in `root` (the file's tree, overrides applied).
    pub(crate) fn apply(
        &self,
        root: &mut DeTable<'i>,
        point: &Point,
        map: &SourceMap<'_>,
    ) -> Result<(), SpecError> {
        for (a, axis) in self.axes.iter().enumerate() {
            let value = axis.values[point.0[a]].clone();
            overrides::set_path(root, &axis.segments, value).map_err(|(span, why)| {
                let message = format!("axis `{}`: {why}", axis.path);
                map.error(&span, Problem::Sweep { message })
            })?;
        }
        Ok(())
    }

    /// The axes with their names, the replicate axis last, and every point.
    /// `seeds` is `experiment.seeds` with its span.
    pub(crate) fn points(
        &self,
        seeds: Option<&(Vec<u64>, Range<usize>)>,
        map: &SourceMap<'_>,
    ) -> Result<Sweep, SpecError> {
        let mut axes: Vec<Axis> = self
            .axes
            .iter()
            .map(|raw| Axis {
                name: String::new(),
                path: raw.path.clone(),
                values: raw.values.iter().map(|v| value_text(v, map)).collect(),
                replicate: false,
            })
            .collect();
        let mut dimensions: Vec<usize> = self.axes.iter().map(|a| a.dimension).collect();
        let mut seed_list = Vec::new();
        if let Some((seeds, span)) = seeds {
            let bad = |message: String| map.error(span, Problem::Sweep { message });
            if seeds.is_empty() {
                return Err(bad(
                    "`experiment.seeds` is empty: list the replicate seeds, e.g. `seeds = [0, 1, 2]`"
                        .into(),
                ));
            }
            let distinct: BTreeSet<u64> = seeds.iter().copied().collect();
            if distinct.len() != seeds.len() {
                return Err(bad(format!(
                    "`experiment.seeds` lists a seed twice ({seeds:?}): replicates need distinct seeds"
                )));
            }
            axes.push(Axis {
                name: SEED_AXIS.into(),
                path: "experiment.seeds".into(),
                values: seeds.iter().map(u64::to_string).collect(),
                replicate: true,
            });
            dimensions.push(dimensions.iter().max().map_or(0, |d| d + 1));
            seed_list = seeds.clone();
        }
        name_axes(&mut axes);

        // The sizes of the dimensions, in order; zip axes share theirs.
        let mut sizes: Vec<usize> = Vec::new();
        for (axis, &d) in axes.iter().zip(&dimensions) {
            if d == sizes.len() {
                sizes.push(axis.values.len());
            }
        }
        let total = sizes.iter().try_fold(1usize, |acc, &n| acc.checked_mul(n));
        if total.is_none_or(|t| t > MAX_POINTS) {
            let span = self.axes.first().map_or(0..0, |a| a.segments[0].1.clone());
            let message = format!(
                "the sweep has more than {MAX_POINTS} points ({sizes:?} values per dimension)"
            );
            return Err(map.error(&span, Problem::Sweep { message }));
        }
        let mut points = vec![Vec::new()];
        for size in &sizes {
            points = points
                .into_iter()
                .flat_map(|prefix: Vec<usize>| {
                    (0..*size).map(move |i| {
                        let mut next = prefix.clone();
                        next.push(i);
                        next
                    })
                })
                .collect();
        }
        let points = points
            .into_iter()
            .map(|by_dimension| Point(dimensions.iter().map(|&d| by_dimension[d]).collect()))
            .collect();
        Ok(Sweep {
            axes,
            points,
            seeds: seed_list,
        })
    }
}

fn raw_axis<'i>(
    key: Spanned<Cow<'i, str>>,
    list: Spanned<DeValue<'i>>,
    dimension: usize,
    map: &SourceMap<'_>,
) -> Result<RawAxis<'i>, SpecError> {
    let path = key.get_ref().to_string();
    let key_span = key.span();
    let bad = |span: &Range<usize>, message: String| map.error(span, Problem::Sweep { message });
    // Spans of the segments inside the key's text (a quoted key: skip the quote).
    let text = map.text_of(&key_span);
    let offset = usize::from(text.starts_with('"') || text.starts_with('\''));
    let mut segments = Vec::new();
    let mut start = key_span.start + offset;
    for segment in path.split('.') {
        if segment.trim().is_empty() {
            let message = format!("empty key in the path `{path}` (write it as `a.b.c`)");
            return Err(bad(&key_span, message));
        }
        let span = start..start + segment.len();
        segments.push((Cow::Owned(segment.to_string()), span));
        start += segment.len() + 1;
    }
    match segments.as_slice() {
        [(first, _), ..] if first == SWEEP => {
            return Err(bad(&key_span, "a sweep cannot sweep itself".into()));
        }
        [(first, _), (second, _), ..]
            if first == "experiment" && FIXED_EXPERIMENT_KEYS.contains(&second.as_ref()) =>
        {
            let message = format!(
                "`{path}` is one per experiment and cannot be swept{}",
                if second == "seeds" {
                    " (the seeds are the replicate axis already)"
                } else {
                    ""
                }
            );
            return Err(bad(&key_span, message));
        }
        [(first, _), ..] if first == "cache" => {
            let message = format!("`{path}`: the cache is one per experiment and cannot be swept");
            return Err(bad(&key_span, message));
        }
        [(first, _), ..] if first == "sources" => {
            let message = format!(
                "`{path}`: a source is one per experiment; declare one source per value and \
                 sweep the step's reference to it instead"
            );
            return Err(bad(&key_span, message));
        }
        _ => {}
    }
    let list_span = list.span();
    let DeValue::Array(items) = list.into_inner() else {
        let message = format!("axis `{path}` must list its values, e.g. `[1, 2, 3]`");
        return Err(bad(&list_span, message));
    };
    if items.is_empty() {
        let message = format!("axis `{path}` has no values");
        return Err(bad(&list_span, message));
    }
    let values: Vec<Spanned<DeValue<'i>>> = items.into_iter().collect();
    let mut seen = BTreeSet::new();
    for value in &values {
        let text = value_text(value, map);
        if !seen.insert(text.clone()) {
            let message = format!("axis `{path}` lists `{text}` twice");
            return Err(bad(&value.span(), message));
        }
    }
    Ok(RawAxis {
        path,
        segments,
        values,
        dimension,
    })
}

/// A value as point names show it: a string without its quotes, anything else
/// as written.
fn value_text(value: &Spanned<DeValue<'_>>, map: &SourceMap<'_>) -> String {
    match value.get_ref() {
        DeValue::String(s) => s.to_string(),
        _ => map.text_of(&value.span()).trim().to_string(),
    }
}

/// Each axis is called by its path's last segment, or as many trailing segments
/// as make it unique (`finetune.lr` and `mix.lr`).
fn name_axes(axes: &mut [Axis]) {
    let segments: Vec<Vec<&str>> = axes
        .iter()
        .map(|a| {
            if a.replicate {
                vec![SEED_AXIS]
            } else {
                a.path.split('.').collect()
            }
        })
        .collect();
    let suffix = |segs: &[&str], n: usize| segs[segs.len().saturating_sub(n)..].join(".");
    let names: Vec<String> = segments
        .iter()
        .enumerate()
        .map(|(i, segs)| {
            (1..=segs.len())
                .map(|n| suffix(segs, n))
                .find(|name| {
                    segments
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| *j != i)
                        .all(|(_, other)| (1..=other.len()).all(|m| suffix(other, m) != *name))
                })
                .unwrap_or_else(|| segs.join("."))
        })
        .collect();
    for (axis, name) in axes.iter_mut().zip(names) {
        axis.name = name;
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn sweep_of(text: &str, seeds: Option<Vec<u64>>) -> Result<Sweep, SpecError> {
        let map = SourceMap::new(Path::new("t.toml"), text);
        let mut root = DeTable::parse(text).unwrap().into_inner();
        let raw = RawSweep::take(&mut root, &map)?;
        let seeds = seeds.map(|s| (s, 0..0));
        raw.points(seeds.as_ref(), &map)
    }

    #[test]
    fn grid_axes_multiply_zip_axes_vary_together_seeds_vary_fastest() {
        let text = r#"
[sweep]
grid = { "steps.a.lr" = [1e-3, 3e-4] }
zip = { "steps.a.x" = [1, 2, 3], "steps.b.y" = ["p", "q", "r"] }
"#;
        let sweep = sweep_of(text, Some(vec![7, 8])).unwrap();
        let names: Vec<&str> = sweep.axes.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["lr", "x", "y", "seed"]);
        assert_eq!(sweep.points.len(), 2 * 3 * 2);
        assert_eq!(sweep.point_label(0), "[lr=1e-3,x=1,y=p,seed=7]");
        assert_eq!(sweep.point_label(1), "[lr=1e-3,x=1,y=p,seed=8]");
        assert_eq!(sweep.point_label(2), "[lr=1e-3,x=2,y=q,seed=7]");
        assert_eq!(sweep.point_label(11), "[lr=3e-4,x=3,y=r,seed=8]");
        assert_eq!(sweep.seed_of(3), Some(8));
        assert_eq!(sweep.replicates_of(3), vec![2, 3]);
    }

    #[test]
    fn axes_sharing_a_last_segment_are_named_by_more_of_their_paths() {
        let text = r#"
[sweep]
grid = { "steps.a.lr" = [1, 2], "steps.b.lr" = [3, 4], "experiment.seed" = [0, 1] }
"#;
        let sweep = sweep_of(text, Some(vec![5])).unwrap();
        let names: Vec<&str> = sweep.axes.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["a.lr", "b.lr", "experiment.seed", "seed"]);
    }

    #[test]
    fn no_sweep_is_one_point_without_axes() {
        let sweep = sweep_of("[experiment]\nname = \"x\"\n", None).unwrap();
        assert!(!sweep.is_swept());
        assert_eq!(sweep.points, vec![Point(vec![])]);
        assert_eq!(sweep.point_label(0), "");
        assert_eq!(sweep.seed_of(0), None);
    }

    #[test]
    fn bad_sweeps_are_errors_that_say_why() {
        let cases = [
            ("[sweep]\ngrid = { \"steps.a.x\" = [] }\n", "has no values"),
            (
                "[sweep]\ngrid = { \"steps.a.x\" = 3 }\n",
                "must list its values",
            ),
            ("[sweep]\ngrid = { \"steps.a.x\" = [1, 1] }\n", "twice"),
            (
                "[sweep]\nzip = { \"steps.a.x\" = [1, 2], \"steps.a.y\" = [1] }\n",
                "equal lengths",
            ),
            ("[sweep]\nlines = 3\n", "unknown key `lines`"),
            (
                "[sweep]\ngrid = { \"experiment.backend\" = [\"ndarray\"] }\n",
                "cannot be swept",
            ),
            (
                "[sweep]\ngrid = { \"sources.opt\" = [\"a\", \"b\"] }\n",
                "declare one source",
            ),
        ];
        for (text, expected) in cases {
            let err = sweep_of(text, None).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
        let err = sweep_of("[experiment]\n", Some(vec![1, 1]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("twice"), "{err}");
        let err = sweep_of("[experiment]\n", Some(vec![]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("empty"), "{err}");
    }
}
