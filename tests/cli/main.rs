//! The runner as a user meets it: experiment files (`spec_*`), the real `xp` binary on
//! temporary directories (`cli_*`: cache, dag, errors, show/diff), the shipped
//! experiments' plans (`experiments_*`), `xp plan --since` and time estimates
//! (`plan_since`), the `report` kind, the README's examples, and
//! experiments/mini.toml end to end (`mini_e2e`).
//!
//! One test binary; each module was one test file and keeps its name:
//! `cargo test --test cli` runs them all, `cargo test --test cli cli_cache::` one
//! file, `cargo test --test cli cli_cache::gc_keeps` one test (libtest's filters are
//! substrings of `module::test_name`).

#[path = "../common/mod.rs"]
mod common;

mod cli_cache;
mod cli_dag;
mod cli_errors;
mod cli_show_diff;
mod command_kind;
mod experiments_accumulate;
mod experiments_plan;
mod mini_e2e;
mod plan_since;
mod readme;
mod remote_cache;
mod report_render;
mod retry;
mod spec_errors;
mod spec_load;
mod spec_no_panic;
mod spec_schema;
mod sweep;
