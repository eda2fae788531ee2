//! The Slurm executor: what `xp run --executor slurm` hands to `sbatch`, with
//! stand-in scripts (`slurm_submit`, always runs), and runs through a real
//! slurmctld (`slurm_executor`; skipped with a message unless `XP_SLURM_TESTS=1`
//! and `sinfo` answers: `scripts/slurm/start.sh`, then
//! `XP_SLURM_TESTS=1 cargo test --test slurm`, as `.ci/run` does).

mod cluster;
#[path = "../common/mod.rs"]
mod common;

mod slurm_executor;
mod slurm_remote;
mod slurm_submit;
