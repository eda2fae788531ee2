//! xp: a declarative, content-addressed experiment runner for ML research.
//!
//! The modules follow the flow of data:
//! spec → plan → store → exec → steps → model/train/generate/eval → report.
//! The ML half (model, train, generate, eval, data, tokenizer, backend) is the
//! `xp-ml` crate (crates/ml), re-exported here under the same names; the steps call
//! it through [`work`]. Which module may import which is written down in
//! ARCHITECTURE.md and checked by `architecture`'s tests.

pub mod alloc;
#[cfg(test)]
mod architecture;
pub mod artifacts;
pub mod cli;
pub mod digest;
pub mod events;
pub mod exec;
pub mod plan;
pub mod remote;
pub mod report;
pub mod source;
pub mod spec;
pub mod steps;
pub mod store;

pub use xp_ml::{backend, data, eval, generate, model, tokenizer, train, work};
