//! xp: a declarative, content-addressed experiment runner for ML research.
//!
//! The modules follow the flow of data:
//! spec → plan → store → exec → steps → model/train/generate/eval → report.
//! Which module may import which is written down in ARCHITECTURE.md and
//! checked by `architecture`'s tests.

pub mod alloc;
#[cfg(test)]
mod architecture;
pub mod artifacts;
pub mod backend;
pub mod cli;
pub mod data;
pub mod digest;
pub mod eval;
pub mod events;
pub mod exec;
pub mod generate;
pub mod model;
pub mod plan;
pub mod remote;
pub mod report;
pub mod source;
pub mod spec;
pub mod steps;
pub mod store;
pub mod tokenizer;
pub mod train;
