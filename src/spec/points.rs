//! The points of a sweep merged into one experiment.
//!
//! Each point was expanded on its own, with the names the file gives. Two points'
//! steps of the same name are one step when they compute the same thing: the same
//! kind, version, parameters, seed (where the kind uses one) and inputs, inputs
//! compared the same way, recursively. This is the key's recursion without the
//! sources' digests (a sweep may not change a source), so it is known before
//! anything is fetched, and steps merged here have equal keys.
//!
//! A step that differs between points is named after the axes it depends on: the
//! axes whose value is the same at every point it belongs to (`finetune@2[seed=1]`,
//! `report[lr=3e-4]`); a step that is the same at every point keeps its name. A
//! kind that gathers replicates (the report) is one step for all seeds of a point:
//! its list inputs hold every replicate's references.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::error::{Diagnostic, Problem, SpecError};
use super::location::SourceMap;
use super::sweep::Sweep;
use super::{ExperimentMeta, PointExpansion, SourceDecl, StepDecl};
use crate::steps::{InputRef, RefTarget};

/// The experiment's meta, sources and steps over every point.
pub(crate) struct Merged {
    pub meta: ExperimentMeta,
    pub sources: BTreeMap<String, SourceDecl>,
    pub steps: Vec<StepDecl>,
}

type Identity = [u8; 32];

/// A step of one point: (point, index in that point's steps).
type At = (usize, usize);

pub(crate) fn merge(
    sweep: &Sweep,
    mut points: Vec<PointExpansion>,
    map: &SourceMap<'_>,
) -> Result<Merged, SpecError> {
    if points.len() == 1 {
        let only = points.pop().expect("one point");
        let steps = only
            .steps
            .into_iter()
            .map(|decl| StepDecl {
                points: vec![0],
                ..decl
            })
            .collect();
        return Ok(Merged {
            meta: only.meta,
            sources: only.sources,
            steps,
        });
    }
    let sweep_error = |message: String| {
        let span = 0..0;
        map.error(&span, Problem::Sweep { message })
    };
    let meta = points[0].meta.clone();
    let mut sources: BTreeMap<String, SourceDecl> = BTreeMap::new();
    for (p, point) in points.iter().enumerate() {
        let same_meta = ExperimentMeta {
            seed: meta.seed,
            ..point.meta.clone()
        };
        if same_meta != meta {
            return Err(sweep_error(format!(
                "point {} changes [experiment] beyond its seed",
                sweep.point_label(p)
            )));
        }
        for (name, decl) in &point.sources {
            match sources.get(name) {
                Some(first) if first.value != decl.value => {
                    return Err(sweep_error(format!(
                        "source `{name}` is `{}` at one point and `{}` at {}: a sweep may not \
                         change a source",
                        first.value,
                        decl.value,
                        sweep.point_label(p)
                    )));
                }
                Some(_) => {}
                None => {
                    sources.insert(name.clone(), decl.clone());
                }
            }
        }
    }

    let mut ids = Identities::new(sweep, &points);
    let mut order: Vec<At> = Vec::new();
    for (p, point) in points.iter().enumerate() {
        for i in 0..point.steps.len() {
            order.push((p, i));
        }
    }
    // Distinct (name, identity) pairs in first-seen order, with their points.
    let mut distinct: Vec<(At, BTreeSet<usize>)> = Vec::new();
    let mut index_of: HashMap<(String, Identity), usize> = HashMap::new();
    let mut merged_of: HashMap<At, usize> = HashMap::new();
    for &(p, i) in &order {
        let id = ids.of(p, i)?;
        let name = points[p].steps[i].name.clone();
        let next = distinct.len();
        let m = *index_of.entry((name, id)).or_insert(next);
        if m == next {
            distinct.push(((p, i), BTreeSet::new()));
        }
        distinct[m].1.insert(p);
        merged_of.insert((p, i), m);
    }
    // A gathering step belongs to the points of every replicate it gathers.
    for (at, belongs) in distinct.iter_mut() {
        if ids.gathers(*at) {
            let all: BTreeSet<usize> = belongs
                .iter()
                .flat_map(|&p| sweep.replicates_of(p))
                .collect();
            *belongs = all;
        }
    }
    let names = new_names(sweep, &points, &distinct);

    let mut steps = Vec::with_capacity(distinct.len());
    for (m, ((p, i), belongs)) in distinct.iter().enumerate() {
        let decl = &points[*p].steps[*i];
        let group: Vec<usize> = if ids.gathers((*p, *i)) {
            sweep.replicates_of(*p)
        } else {
            vec![*p]
        };
        let renamed = |q: usize, r: &InputRef| -> InputRef {
            match r.target() {
                RefTarget::Output { step, output } => {
                    let producer = ids.by_name[q][step];
                    InputRef(format!("{}.{output}", names[merged_of[&(q, producer)]]))
                }
                RefTarget::Source(_) => r.clone(),
            }
        };
        // The same step (by name) at each point of the group, with its references.
        let members: Vec<(usize, &StepDecl)> = group
            .iter()
            .filter_map(|&q| {
                let j = *ids.by_name[q].get(decl.name.as_str())?;
                Some((q, &points[q].steps[j]))
            })
            .collect();
        let params = decl
            .params
            .with_refs(|slot, refs| {
                if members.len() == 1 {
                    return refs.iter().map(|r| renamed(*p, r)).collect();
                }
                let mut seen = HashSet::new();
                members
                    .iter()
                    .flat_map(|(q, member)| {
                        let slot_refs: Vec<InputRef> = member
                            .params
                            .inputs()
                            .into_iter()
                            .filter(|s| s.slot == slot)
                            .flat_map(|s| s.refs.into_iter().cloned())
                            .collect();
                        slot_refs.into_iter().map(|r| renamed(*q, &r))
                    })
                    .filter(|r| seen.insert(r.clone()))
                    .collect()
            })
            .map_err(|why| sweep_error(format!("step `{}`: {why}", decl.name)))?;
        let mut ref_locations = BTreeMap::new();
        for (q, member) in &members {
            for (reference, location) in &member.ref_locations {
                let new = renamed(*q, &InputRef(reference.clone()));
                ref_locations
                    .entry(new.0)
                    .or_insert_with(|| location.clone());
            }
        }
        steps.push(StepDecl {
            name: names[m].clone(),
            params,
            ref_locations,
            points: belongs.iter().copied().collect(),
            ..decl.clone()
        });
    }
    Ok(Merged {
        meta,
        sources,
        steps,
    })
}

/// The identity of every step of every point, computed on demand.
struct Identities<'a> {
    sweep: &'a Sweep,
    points: &'a [PointExpansion],
    /// Per point: step name → index.
    by_name: Vec<HashMap<&'a str, usize>>,
    known: HashMap<At, Identity>,
    visiting: HashSet<At>,
}

impl<'a> Identities<'a> {
    fn new(sweep: &'a Sweep, points: &'a [PointExpansion]) -> Self {
        let by_name = points
            .iter()
            .map(|point| {
                point
                    .steps
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (s.name.as_str(), i))
                    .collect()
            })
            .collect();
        Identities {
            sweep,
            points,
            by_name,
            known: HashMap::new(),
            visiting: HashSet::new(),
        }
    }

    /// Whether the step gathers its point's replicates (the file has seeds and the
    /// kind gathers them).
    fn gathers(&self, (p, i): At) -> bool {
        !self.sweep.seeds.is_empty() && self.points[p].steps[i].params.gathers_replicates()
    }

    fn of(&mut self, p: usize, i: usize) -> Result<Identity, SpecError> {
        if let Some(id) = self.known.get(&(p, i)) {
            return Ok(*id);
        }
        let decl = &self.points[p].steps[i];
        if !self.visiting.insert((p, i)) {
            // The planner names a cycle with every member; here, only where it closes.
            return Err(SpecError::Invalid(Box::new(Diagnostic {
                problem: Problem::Sweep {
                    message: format!(
                        "the steps form a cycle through `{}`; `xp plan` without the sweep names it",
                        decl.name
                    ),
                },
                location: decl.location.clone(),
                snippet: None,
            })));
        }
        let mut hasher = blake3::Hasher::new();
        let mut field = |bytes: &[u8]| {
            hasher.update(&(bytes.len() as u64).to_le_bytes());
            hasher.update(bytes);
        };
        let params = &decl.params;
        field(params.kind().as_bytes());
        field(&params.version().to_le_bytes());
        field(params.params_without_inputs().to_string().as_bytes());
        if params.uses_seed() {
            field(&decl.seed.to_le_bytes());
        }
        let group = if self.gathers((p, i)) {
            self.sweep.replicates_of(p)
        } else {
            vec![p]
        };
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        for q in group {
            let Some(&j) = self.by_name[q].get(decl.name.as_str()) else {
                continue;
            };
            let member = &self.points[q].steps[j];
            for slot in member.params.inputs() {
                for (label, r) in slot.labels().iter().cycle().zip(&slot.refs) {
                    let mut input = label.as_bytes().to_vec();
                    input.push(0);
                    match r.target() {
                        RefTarget::Source(name) => input.extend_from_slice(name.as_bytes()),
                        RefTarget::Output { step, output } => {
                            let producer = self.by_name[q][step];
                            input.extend_from_slice(&self.of(q, producer)?);
                            input.extend_from_slice(output.as_bytes());
                        }
                    }
                    inputs.push(input);
                }
            }
        }
        for input in &inputs {
            field(input);
        }
        let id = *hasher.finalize().as_bytes();
        self.visiting.remove(&(p, i));
        self.known.insert((p, i), id);
        Ok(id)
    }
}

/// The merged steps' names: the file's name, followed by the axes the step
/// depends on where points differ.
fn new_names(
    sweep: &Sweep,
    points: &[PointExpansion],
    distinct: &[(At, BTreeSet<usize>)],
) -> Vec<String> {
    let base = |m: usize| {
        let (p, i) = distinct[m].0;
        points[p].steps[i].name.as_str()
    };
    let mut by_base: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for m in 0..distinct.len() {
        by_base.entry(base(m)).or_default().push(m);
    }
    let mut names = vec![String::new(); distinct.len()];
    for (name, members) in by_base {
        if let [only] = members.as_slice() {
            names[*only] = name.to_string();
            continue;
        }
        let labels: Vec<String> = members
            .iter()
            .map(|&m| {
                let belongs = &distinct[m].1;
                let first = *belongs.iter().next().expect("a step belongs to a point");
                let constant: Vec<usize> = (0..sweep.axes.len())
                    .filter(|&a| {
                        let value = sweep.points[first].0[a];
                        belongs.iter().all(|&p| sweep.points[p].0[a] == value)
                    })
                    .collect();
                sweep.label(&sweep.points[first], &constant)
            })
            .collect();
        for (k, &m) in members.iter().enumerate() {
            let unique =
                !labels[k].is_empty() && labels.iter().filter(|l| **l == labels[k]).count() == 1;
            let label = if unique {
                labels[k].clone()
            } else {
                // Keys that coincide for some values of an axis and not others:
                // the point it was first seen at names it.
                let first = *distinct[m]
                    .1
                    .iter()
                    .next()
                    .expect("a step belongs to a point");
                sweep.point_label(first)
            };
            names[m] = format!("{name}{label}");
        }
    }
    names
}
