//! What a step's job asks Slurm for: the step's `resources` table over
//! `[defaults.KIND.resources]` (both merged by the spec), over the kind's own
//! [`ResourceHint`], turned into `sbatch` options.

use crate::backend::BackendKind;
use crate::spec::Resources;
use crate::steps::ResourceHint;

/// xp's resources for a kind (its [`ResourceHint`]) when the file says nothing.
/// A kind that runs no model gets one CPU and a little memory; one that runs a
/// model gets one GPU on the `cuda` backend, and on any backend several cores.
/// The time limit is the kind's.
pub fn kind_default(hint: ResourceHint, backend: BackendKind) -> Resources {
    if !hint.gpu {
        return Resources {
            gpus: Some(0),
            cpus: Some(1),
            mem: Some("2G".into()),
            time: Some(hint.time.into()),
            ..Resources::default()
        };
    }
    let gpu = backend == BackendKind::Cuda;
    Resources {
        gpus: Some(u32::from(gpu)),
        cpus: Some(if gpu { 8 } else { 4 }),
        mem: Some(if gpu { "32G" } else { "16G" }.into()),
        time: Some(hint.time.into()),
        ..Resources::default()
    }
}

/// The `sbatch` options for `resources`, in a fixed order; the file's
/// `sbatch_args` last, so they override xp's.
pub fn sbatch_options(resources: &Resources) -> Vec<String> {
    let mut args = Vec::new();
    if let Some(cpus) = resources.cpus {
        args.push(format!("--cpus-per-task={cpus}"));
    }
    if let Some(mem) = &resources.mem {
        args.push(format!("--mem={mem}"));
    }
    if let Some(time) = &resources.time {
        args.push(format!("--time={time}"));
    }
    if let Some(gpus) = resources.gpus.filter(|&g| g > 0) {
        args.push(format!("--gres=gpu:{gpus}"));
    }
    if let Some(partition) = &resources.partition {
        args.push(format!("--partition={partition}"));
    }
    args.extend(resources.sbatch_args.iter().flatten().cloned());
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::steps::{KindParams, finetune, report, tokenize};

    const FINETUNE: ResourceHint = <finetune::Params as KindParams>::RESOURCES;
    const TOKENIZE: ResourceHint = <tokenize::Params as KindParams>::RESOURCES;

    #[test]
    fn model_kinds_get_a_gpu_only_on_cuda() {
        assert_eq!(kind_default(FINETUNE, BackendKind::Cuda).gpus, Some(1));
        assert_eq!(kind_default(FINETUNE, BackendKind::Ndarray).gpus, Some(0));
        assert_eq!(kind_default(TOKENIZE, BackendKind::Cuda).gpus, Some(0));
        // The report reads numbers and draws: no GPU, no day-long limit.
        let report = kind_default(<report::Params as KindParams>::RESOURCES, BackendKind::Cuda);
        assert_eq!(report.gpus, Some(0));
        assert_eq!(report.time.as_deref(), Some("1:00:00"));
    }

    #[test]
    fn options_follow_the_merged_resources() {
        let step = Resources {
            gpus: Some(2),
            partition: Some("a100".into()),
            sbatch_args: Some(vec!["--qos=high".into()]),
            ..Resources::default()
        };
        let merged = step.or(&kind_default(FINETUNE, BackendKind::Cuda));
        assert_eq!(
            sbatch_options(&merged),
            [
                "--cpus-per-task=8",
                "--mem=32G",
                "--time=24:00:00",
                "--gres=gpu:2",
                "--partition=a100",
                "--qos=high"
            ]
        );
        let none = kind_default(ResourceHint::DATA, BackendKind::Ndarray);
        assert!(
            !sbatch_options(&none)
                .iter()
                .any(|a| a.starts_with("--gres"))
        );
    }
}
