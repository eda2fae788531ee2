//! The plan: the experiment's steps as a DAG (petgraph), in a deterministic
//! topological order, each with its key. The planner never runs anything and
//! never touches the store; `why` compares a plan with what the store holds.

pub mod compare;
pub mod key;
pub mod sources;
pub mod why;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

use petgraph::graph::{DiGraph, NodeIndex};

use crate::backend::Precision;
use crate::digest::{ContentDigest, StepKey};
use crate::spec::{Experiment, Location, StepDecl};
use crate::steps::RefTarget;
use key::{InputDigest, KEY_SCHEMA, KeyInputs};

/// Errors found while building the plan (the spec already checked references).
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("error: the steps form a cycle: {}\n{}", cycle_text(.members), cycle_locations(.members))]
    Cycle { members: Vec<(String, Location)> },
    #[error("error: source `{name}` ({value}) cannot be used: {reason}\n --> {location}")]
    Source {
        name: String,
        value: String,
        location: Location,
        reason: String,
    },
}

fn cycle_text(members: &[(String, Location)]) -> String {
    let mut names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
    if let Some(first) = names.first().copied() {
        names.push(first);
    }
    names.join(" → ")
}

fn cycle_locations(members: &[(String, Location)]) -> String {
    members
        .iter()
        .map(|(n, l)| format!(" --> {l} (step `{n}`)"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What the planner knows about a source without running anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SourceState {
    /// Its content is known: local files, or an `hf:` repo present in the HF cache.
    Ready { digest: ContentDigest },
    /// It must be downloaded before its content (and so any key using it) is known.
    MustFetch { what: String },
    /// Nothing is there: a local path that a git revision did not hold
    /// (`xp plan --since`). No key using it exists.
    Absent { what: String },
}

/// Tells the planner the identity of each source (implemented over `source::`).
pub trait SourceOracle {
    fn state(
        &self,
        name: &str,
        value: &str,
        experiment: &Experiment,
    ) -> Result<SourceState, String>;
}

/// One input of a planned step, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlannedInput {
    Source {
        name: String,
    },
    /// Output `output` (stored at `path` inside that step's entry) of plan step `step`.
    Output {
        step: usize,
        output: String,
        path: String,
    },
}

/// A step's key, or why it cannot be known yet.
#[derive(Clone, Debug)]
pub enum KeyState {
    Known {
        key: StepKey,
        inputs: KeyInputs,
    },
    /// Depends (directly or not) on sources that must be fetched first.
    Unknown {
        missing_sources: Vec<String>,
    },
}

impl KeyState {
    pub fn key(&self) -> Option<StepKey> {
        match self {
            KeyState::Known { key, .. } => Some(*key),
            KeyState::Unknown { .. } => None,
        }
    }
}

#[derive(Clone, Debug)]
pub struct PlannedStep {
    pub name: String,
    /// Index into `Plan::experiment.steps`.
    pub decl: usize,
    /// Plan indices of the steps this one reads from (sorted, deduplicated).
    pub deps: Vec<usize>,
    /// Inputs by slot, in the order the kind declares them.
    pub inputs: Vec<(&'static str, Vec<PlannedInput>)>,
    pub key: KeyState,
}

/// The sealed plan: built once, then only read.
#[derive(Debug)]
pub struct Plan {
    pub experiment: Experiment,
    /// In topological order (ties broken by order in the file).
    pub steps: Vec<PlannedStep>,
    pub sources: BTreeMap<String, SourceState>,
    by_name: HashMap<String, usize>,
}

impl Plan {
    pub fn build(experiment: Experiment, oracle: &dyn SourceOracle) -> Result<Plan, PlanError> {
        let sources = source_states(&experiment, oracle)?;
        let order = topological_order(&experiment)?;
        let position: HashMap<&str, usize> = order
            .iter()
            .enumerate()
            .map(|(pos, &decl)| (experiment.steps[decl].name.as_str(), pos))
            .collect();

        let mut steps: Vec<PlannedStep> = Vec::with_capacity(order.len());
        for &decl_index in &order {
            let decl = &experiment.steps[decl_index];
            let outputs_of = |pos: usize| experiment.steps[order[pos]].params.outputs();
            let mut deps = Vec::new();
            let mut inputs = Vec::new();
            for slot in decl.params.inputs() {
                let mut planned = Vec::new();
                for r in slot.refs {
                    match r.target() {
                        RefTarget::Source(name) => {
                            planned.push(PlannedInput::Source { name: name.into() })
                        }
                        RefTarget::Output { step, output } => {
                            let pos = position[step];
                            let path = outputs_of(pos)
                                .into_iter()
                                .find(|(name, _)| name == output)
                                .map(|(_, path)| path)
                                .expect("spec validated output names");
                            deps.push(pos);
                            planned.push(PlannedInput::Output {
                                step: pos,
                                output: output.into(),
                                path,
                            });
                        }
                    }
                }
                inputs.push((slot.slot, planned));
            }
            deps.sort_unstable();
            deps.dedup();
            let key = key_state(decl, &experiment, &inputs, &steps, &sources);
            steps.push(PlannedStep {
                name: decl.name.clone(),
                decl: decl_index,
                deps,
                inputs,
                key,
            });
        }
        let by_name = steps
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        Ok(Plan {
            experiment,
            steps,
            sources,
            by_name,
        })
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    pub fn decl(&self, step: usize) -> &StepDecl {
        &self.experiment.steps[self.steps[step].decl]
    }

    pub fn decl_of(&self, step: &PlannedStep) -> &StepDecl {
        &self.experiment.steps[step.decl]
    }

    /// Every step that (transitively) reads from `step`, in plan order.
    pub fn descendants(&self, step: usize) -> Vec<usize> {
        let mut marked = vec![false; self.steps.len()];
        marked[step] = true;
        let mut out = Vec::new();
        for (i, s) in self.steps.iter().enumerate().skip(step + 1) {
            if s.deps.iter().any(|&d| marked[d]) {
                marked[i] = true;
                out.push(i);
            }
        }
        out
    }

    /// The DAG as a petgraph graph (node weight = plan index), for rendering.
    pub fn graph(&self) -> DiGraph<usize, ()> {
        let mut g = DiGraph::new();
        let nodes: Vec<NodeIndex> = (0..self.steps.len()).map(|i| g.add_node(i)).collect();
        for (i, s) in self.steps.iter().enumerate() {
            for &d in &s.deps {
                g.add_edge(nodes[d], nodes[i], ());
            }
        }
        g
    }
}

fn source_states(
    experiment: &Experiment,
    oracle: &dyn SourceOracle,
) -> Result<BTreeMap<String, SourceState>, PlanError> {
    let mut states = BTreeMap::new();
    for name in experiment.used_sources() {
        let decl = &experiment.sources[name];
        let state = oracle
            .state(name, &decl.value, experiment)
            .map_err(|reason| PlanError::Source {
                name: name.to_string(),
                value: decl.value.clone(),
                location: decl.location.clone(),
                reason,
            })?;
        states.insert(name.to_string(), state);
    }
    Ok(states)
}

fn key_state(
    decl: &StepDecl,
    experiment: &Experiment,
    inputs: &[(&'static str, Vec<PlannedInput>)],
    planned: &[PlannedStep],
    sources: &BTreeMap<String, SourceState>,
) -> KeyState {
    let mut digests: BTreeMap<String, Vec<InputDigest>> = BTreeMap::new();
    let mut missing = Vec::new();
    // `inputs` was built from `decl.params.inputs()`, slot by slot, in this order.
    let slots = decl.params.inputs();
    for (slot, (_, slot_inputs)) in slots.iter().zip(inputs) {
        let labels = slot.labels();
        for (i, input) in slot_inputs.iter().enumerate() {
            // A map slot's entries are keyed apart; a list's stay one ordered list.
            let label = labels.get(i).unwrap_or(&labels[0]).clone();
            let list = digests.entry(label).or_default();
            match input {
                PlannedInput::Source { name } => match &sources[name] {
                    SourceState::Ready { digest } => {
                        list.push(InputDigest::Source { digest: *digest })
                    }
                    SourceState::MustFetch { .. } | SourceState::Absent { .. } => {
                        missing.push(name.clone())
                    }
                },
                PlannedInput::Output { step, output, .. } => match &planned[*step].key {
                    KeyState::Known { key, .. } => list.push(InputDigest::Output {
                        step: *key,
                        output: output.clone(),
                    }),
                    KeyState::Unknown { missing_sources } => {
                        missing.extend(missing_sources.iter().cloned())
                    }
                },
            }
        }
    }
    if !missing.is_empty() {
        missing.sort();
        missing.dedup();
        return KeyState::Unknown {
            missing_sources: missing,
        };
    }
    let params = &decl.params;
    let inputs = KeyInputs {
        key_schema: KEY_SCHEMA,
        kind: params.kind().to_string(),
        kind_version: params.version(),
        params: params.params_without_inputs(),
        seed: params.uses_seed().then_some(decl.seed),
        precision: if params.uses_precision() {
            experiment.meta.precision
        } else {
            Precision::F32
        },
        inputs: digests,
    };
    KeyState::Known {
        key: inputs.key(),
        inputs,
    }
}

/// Kahn's algorithm; among ready steps the one declared first goes first, so the
/// order is deterministic and reads like the file.
fn topological_order(experiment: &Experiment) -> Result<Vec<usize>, PlanError> {
    let n = experiment.steps.len();
    let index: HashMap<&str, usize> = experiment
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let mut consumers: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut indegree = vec![0usize; n];
    for (i, step) in experiment.steps.iter().enumerate() {
        let mut producers: Vec<usize> = step
            .params
            .inputs()
            .into_iter()
            .flat_map(|slot| slot.refs)
            .filter_map(|r| match r.target() {
                RefTarget::Output { step, .. } => Some(index[step]),
                RefTarget::Source(_) => None,
            })
            .collect();
        producers.sort_unstable();
        producers.dedup();
        for p in producers {
            consumers[p].push(i);
            indegree[i] += 1;
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| indegree[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &c in &consumers[i] {
            indegree[c] -= 1;
            if indegree[c] == 0 {
                ready.push(Reverse(c));
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    Err(PlanError::Cycle {
        members: one_cycle(experiment, &consumers, &indegree),
    })
}

/// Names one cycle among the steps left over by Kahn's algorithm, in edge order.
fn one_cycle(
    experiment: &Experiment,
    consumers: &[Vec<usize>],
    indegree: &[usize],
) -> Vec<(String, Location)> {
    let mut graph = DiGraph::<usize, ()>::new();
    let nodes: Vec<NodeIndex> = (0..consumers.len()).map(|i| graph.add_node(i)).collect();
    for (p, cs) in consumers.iter().enumerate() {
        for &c in cs {
            graph.add_edge(nodes[p], nodes[c], ());
        }
    }
    let scc = petgraph::algo::tarjan_scc(&graph)
        .into_iter()
        .find(|c| c.len() > 1 || graph.contains_edge(c[0], c[0]))
        .unwrap_or_else(|| {
            (0..indegree.len())
                .filter(|&i| indegree[i] > 0)
                .map(|i| nodes[i])
                .collect()
        });
    // Walk the component from its first-declared member, following edges inside it.
    let members: std::collections::HashSet<usize> = scc.iter().map(|n| graph[*n]).collect();
    let start = *members.iter().min().expect("a cycle has members");
    let mut walk = vec![start];
    let mut current = start;
    loop {
        let next = consumers[current]
            .iter()
            .copied()
            .filter(|c| members.contains(c))
            .min();
        match next {
            Some(n) if n != start && !walk.contains(&n) => {
                walk.push(n);
                current = n;
            }
            _ => break,
        }
    }
    walk.into_iter()
        .map(|i| {
            (
                experiment.steps[i].name.clone(),
                experiment.steps[i].location.clone(),
            )
        })
        .collect()
}
