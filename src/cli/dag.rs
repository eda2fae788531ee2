//! `xp dag FILE`: the DAG as text, Graphviz dot or Mermaid.

use clap::{Args, ValueEnum};

use super::common;
use super::exit::Success;
use super::{CliError, ExperimentArgs};
use crate::plan::Plan;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DagFormat {
    Text,
    Dot,
    Mermaid,
}

#[derive(Debug, Args)]
pub struct DagArgs {
    #[command(flatten)]
    pub experiment: ExperimentArgs,
    #[arg(long, value_enum, default_value = "text")]
    pub format: DagFormat,
}

pub fn run(args: DagArgs) -> Result<Success, CliError> {
    let plan = common::plan_offline(&args.experiment)?;
    print!("{}", render(&plan, args.format));
    Ok(Success::Ok)
}

/// Edge labels name what flows: the producer's output and the consumer's slot.
fn edges(plan: &Plan) -> Vec<(usize, usize, String)> {
    let mut out = Vec::new();
    for (i, step) in plan.steps.iter().enumerate() {
        for (slot, inputs) in &step.inputs {
            for input in inputs {
                if let crate::plan::PlannedInput::Output {
                    step: from, output, ..
                } = input
                {
                    out.push((*from, i, format!("{output} → {slot}")));
                }
            }
        }
    }
    out
}

pub fn render(plan: &Plan, format: DagFormat) -> String {
    let kind = |i: usize| plan.decl(i).params.kind();
    let mut s = String::new();
    match format {
        DagFormat::Text => {
            for (i, step) in plan.steps.iter().enumerate() {
                s += &format!("{} ({})\n", step.name, kind(i));
                for (slot, inputs) in &step.inputs {
                    for input in inputs {
                        let from = match input {
                            crate::plan::PlannedInput::Source { name } => format!("source {name}"),
                            crate::plan::PlannedInput::Output { step, output, .. } => {
                                format!("{}.{output}", plan.steps[*step].name)
                            }
                        };
                        s += &format!("  {slot} ← {from}\n");
                    }
                }
            }
        }
        DagFormat::Dot => {
            s += &format!(
                "digraph \"{}\" {{\n  rankdir=LR;\n  node [shape=box];\n",
                plan.experiment.meta.name
            );
            for (i, step) in plan.steps.iter().enumerate() {
                s += &format!(
                    "  \"{}\" [label=\"{}\\n({})\"];\n",
                    step.name,
                    step.name,
                    kind(i)
                );
            }
            for (from, to, label) in edges(plan) {
                s += &format!(
                    "  \"{}\" -> \"{}\" [label=\"{label}\"];\n",
                    plan.steps[from].name, plan.steps[to].name
                );
            }
            s += "}\n";
        }
        DagFormat::Mermaid => {
            s += "flowchart LR\n";
            // Mermaid ids cannot contain `@`; label with the real name.
            let id = |i: usize| format!("s{i}");
            for (i, step) in plan.steps.iter().enumerate() {
                s += &format!("  {}[\"{}<br/>({})\"]\n", id(i), step.name, kind(i));
            }
            for (from, to, label) in edges(plan) {
                s += &format!("  {} -->|\"{label}\"| {}\n", id(from), id(to));
            }
        }
    }
    s
}
