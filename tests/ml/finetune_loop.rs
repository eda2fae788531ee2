//! The training loop in-process on a tiny model: loss goes down, best-vs-last
//! selection, resume from a checkpoint, NaN detection.

use std::path::Path;

use xp::backend::NdarrayBackend as B;
use xp::data::Blocks;
use xp::model::{Opt, OptConfig, save_pretrained};
use xp::train::{AdamWConfig, Select, TrainError, TrainReport, TrainSettings, train};

/// burn-ndarray's RNG (dropout masks) is global to the process: tests that train
/// take this lock so that each run draws its masks alone.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn tiny_model(dir: &Path, dropout: f64) {
    let mut config = OptConfig::tiny(40, 32, 2, 4, 64, 32);
    config.dropout = dropout;
    let device = Default::default();
    <B as burn::tensor::backend::Backend>::seed(&device, 3);
    let model = Opt::<B>::init(&config, &device);
    save_pretrained(&model, &config, dir, None).unwrap();
}

/// `n` blocks of 16 tokens from a small repeating pattern shifted per block.
fn patterned(n: usize, period: u32, offset: u32) -> Blocks {
    let tokens = (0..n as u32 * 16)
        .map(|i| offset + (i * 7 + i / 16) % period)
        .collect();
    Blocks::new(16, tokens).unwrap()
}

fn constant(n: usize, id: u32) -> Blocks {
    Blocks::new(16, vec![id; n * 16]).unwrap()
}

fn settings(epochs: usize, lr: f64, select: Select) -> TrainSettings {
    TrainSettings {
        epochs,
        batch_size: 8,
        micro_batch: 4,
        lr,
        eta_min: lr / 20.0,
        t_max: epochs,
        adamw: AdamWConfig::default(),
        clip_norm: None,
        select,
        shuffle: true,
        seed: 0,
    }
}

fn run(
    model: &Path,
    train_blocks: &Blocks,
    valid: &Blocks,
    s: &TrainSettings,
    scratch: &Path,
) -> Result<TrainReport, TrainError> {
    train::<B>(
        &Default::default(),
        model,
        train_blocks,
        valid,
        s,
        scratch,
        &mut |_| {},
    )
}

/// Max abs difference between two published weight files (for failure messages).
fn weight_diff(a: &Path, b: &Path) -> f32 {
    let (a, b) = (std::fs::read(a).unwrap(), std::fs::read(b).unwrap());
    let (a, b) = (
        safetensors::SafeTensors::deserialize(&a).unwrap(),
        safetensors::SafeTensors::deserialize(&b).unwrap(),
    );
    let mut worst = 0.0f32;
    for name in a.names() {
        let (x, y) = (a.tensor(name).unwrap(), b.tensor(name).unwrap());
        for (u, v) in x.data().chunks_exact(4).zip(y.data().chunks_exact(4)) {
            let u = f32::from_le_bytes(u.try_into().unwrap());
            let v = f32::from_le_bytes(v.try_into().unwrap());
            worst = worst.max((u - v).abs());
        }
    }
    worst
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

fn train_losses(report: &TrainReport) -> Vec<(usize, f64)> {
    report
        .state
        .metrics
        .iter()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["type"] == "train")
        .map(|v| {
            (
                v["epoch"].as_u64().unwrap() as usize,
                v["loss"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn loss_decreases_and_best_is_the_last_epoch_on_matching_data() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    tiny_model(&dir.path().join("model"), 0.1);
    let report = run(
        &dir.path().join("model"),
        &patterned(64, 20, 4),
        &patterned(16, 20, 4),
        &settings(3, 3e-3, Select::Best),
        &dir.path().join("scratch"),
    )
    .unwrap();
    let losses = train_losses(&report);
    assert_eq!(losses.len(), 3 * 8, "8 steps per epoch");
    let per_epoch: Vec<f64> = (1..=3)
        .map(|e| {
            mean(
                &losses
                    .iter()
                    .filter(|(ep, _)| *ep == e)
                    .map(|x| x.1)
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    eprintln!(
        "train loss per epoch {per_epoch:?}, valid {:?}",
        report.state.valid_losses
    );
    assert!(per_epoch[2] < per_epoch[0] - 0.1, "{per_epoch:?}");
    let v = &report.state.valid_losses;
    assert!(v[2] < v[0], "{v:?}");
    assert_eq!(report.best_epoch(), 3);
    assert_eq!(report.selected_epoch, 3);
    assert!(
        report
            .selected_model_dir
            .join("model.safetensors")
            .is_file()
    );
}

#[test]
fn best_picks_the_lowest_validation_loss_when_it_rises() {
    let _serial = serial();
    // Training on one token pushes probability away from the validation token: the
    // validation loss rises every epoch, so best = epoch 1 and last = epoch 3.
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    tiny_model(&model, 0.0);
    let (train_blocks, valid) = (constant(16, 5), constant(4, 7));
    let best = run(
        &model,
        &train_blocks,
        &valid,
        &settings(3, 1e-3, Select::Best),
        &dir.path().join("best"),
    )
    .unwrap();
    let v = &best.state.valid_losses;
    eprintln!("valid losses {v:?}");
    assert!(v[0] < v[1] && v[1] < v[2], "{v:?}");
    assert_eq!((best.best_epoch(), best.selected_epoch), (1, 1));
    assert!((best.best_valid_loss() - v[0]).abs() < 1e-12);
    let last = run(
        &model,
        &train_blocks,
        &valid,
        &settings(3, 1e-3, Select::Last),
        &dir.path().join("last"),
    )
    .unwrap();
    assert_eq!((last.best_epoch(), last.selected_epoch), (1, 3));
    let digest =
        |r: &TrainReport| std::fs::read(r.selected_model_dir.join("model.safetensors")).unwrap();
    assert_ne!(digest(&best), digest(&last));
    // The best checkpoint was kept although later epochs were written.
    assert!(
        dir.path()
            .join("best/ckpt-1/model/model.safetensors")
            .is_file()
    );
}

#[test]
fn resuming_from_a_checkpoint_gives_the_uninterrupted_weights() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    tiny_model(&model, 0.1);
    let (t, v) = (patterned(24, 20, 4), patterned(8, 20, 4));
    let whole = run(
        &model,
        &t,
        &v,
        &settings(3, 1e-3, Select::Last),
        &dir.path().join("a"),
    )
    .unwrap();
    // Stop after epoch 1 (a 1-epoch run with the 3-epoch schedule leaves exactly the
    // epoch-1 checkpoint), then continue to 3 epochs in the same scratch directory.
    let scratch = dir.path().join("b");
    let mut first = settings(1, 1e-3, Select::Last);
    first.t_max = 3;
    run(&model, &t, &v, &first, &scratch).unwrap();
    assert_eq!(
        std::fs::read_to_string(scratch.join("LATEST")).unwrap(),
        "1"
    );
    let mut resumed_at = None;
    let resumed = train::<B>(
        &Default::default(),
        &model,
        &t,
        &v,
        &settings(3, 1e-3, Select::Last),
        &scratch,
        &mut |e| {
            if let xp::train::TrainEvent::Resumed { epoch } = e {
                resumed_at = Some(epoch)
            }
        },
    )
    .unwrap();
    assert_eq!(resumed_at, Some(1));
    let bytes =
        |r: &TrainReport| std::fs::read(r.selected_model_dir.join("model.safetensors")).unwrap();
    assert!(
        bytes(&whole) == bytes(&resumed),
        "resumed weights differ from the uninterrupted run's by up to {:e}",
        weight_diff(
            &whole.selected_model_dir.join("model.safetensors"),
            &resumed.selected_model_dir.join("model.safetensors"),
        )
    );
    assert_eq!(whole.state.valid_losses, resumed.state.valid_losses);
}

#[test]
fn a_non_finite_loss_stops_with_the_step() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    tiny_model(&model, 0.0);
    let err = run(
        &model,
        &patterned(16, 20, 4),
        &patterned(4, 20, 4),
        &settings(2, 1e30, Select::Best),
        &dir.path().join("s"),
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, TrainError::NonFinite { .. }), "{text}");
    assert!(text.contains("epoch 1, optimizer step 2"), "{text}");
    assert!(
        !dir.path().join("s/LATEST").exists(),
        "no checkpoint after NaN"
    );
}

/// Two identical runs in one process give the same bytes, with and without dropout:
/// nothing in a run (thread scheduling, memory layout, the order gradients are summed)
/// may change its result.
#[test]
fn two_uninterrupted_runs_are_bitwise_identical() {
    let _serial = serial();
    for dropout in [0.0, 0.1] {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("model");
        tiny_model(&model, dropout);
        let (t, v) = (patterned(24, 20, 4), patterned(8, 20, 4));
        let s = settings(3, 1e-3, Select::Last);
        let a = run(&model, &t, &v, &s, &dir.path().join("a")).unwrap();
        let b = run(&model, &t, &v, &s, &dir.path().join("b")).unwrap();
        let (wa, wb) = (
            a.selected_model_dir.join("model.safetensors"),
            b.selected_model_dir.join("model.safetensors"),
        );
        assert!(
            std::fs::read(&wa).unwrap() == std::fs::read(&wb).unwrap(),
            "dropout {dropout}: two runs differ by up to {:e}",
            weight_diff(&wa, &wb)
        );
        assert_eq!(a.state.valid_losses, b.state.valid_losses);
    }
}
