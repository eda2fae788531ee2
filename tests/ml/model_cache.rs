//! The KV cache: incremental decoding equals a full forward, reordering by beam index
//! equals recomputing, truncate/reset. Tolerance: 1e-5 max abs on last-position logits.

use crate::model_support;

use burn::tensor::{Int, Tensor, TensorData};
use model_support::{B, Reference, device, fixture_dir, values};
use xp::model::{KvCache, ModelError, Opt, OptConfig, load_pretrained};

const STEP_TOL: f64 = 1e-5;

fn ids(rows: &[Vec<i64>]) -> Tensor<B, 2, Int> {
    let (b, t) = (rows.len(), rows[0].len());
    let flat: Vec<i64> = rows.iter().flatten().copied().collect();
    Tensor::from_data(TensorData::new(flat, [b, t]), &device())
}

/// Last-position logits `[batch, vocab]` of a full forward.
fn full_last(model: &Opt<B>, rows: &[Vec<i64>], mask: &[Vec<i64>]) -> Vec<f64> {
    let logits = model.forward(ids(rows), Some(ids(mask)), None).unwrap();
    let [b, t, v] = logits.dims();
    values(logits.narrow(1, t - 1, 1).reshape([b, v]))
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
}

fn slice_cols(rows: &[Vec<i64>], end: usize) -> Vec<Vec<i64>> {
    rows.iter().map(|r| r[..end].to_vec()).collect()
}

fn fixture_rows(name: &str) -> (Vec<Vec<i64>>, Vec<Vec<i64>>) {
    let reference = Reference::open(name);
    let to_rows = |key: &str| {
        let t = reference.get(key);
        t.values
            .chunks(t.shape[1])
            .map(|r| r.iter().map(|&v| v as i64).collect())
            .collect::<Vec<Vec<i64>>>()
    };
    (to_rows("input_ids"), to_rows("attention_mask"))
}

#[test]
fn incremental_decoding_equals_full_forward_step_by_step() {
    // Left padding in the batch: positions come from the mask at every step.
    for name in ["pre_ln", "post_ln_proj"] {
        let (model, _) = load_pretrained::<B>(&fixture_dir(name), &device()).unwrap();
        let (rows, mask) = fixture_rows(name);
        let seq = rows[0].len();
        let prompt = seq / 2 + 2; // past the left padding of every row
        let mut cache = KvCache::new();
        let first = model
            .forward(
                ids(&slice_cols(&rows, prompt)),
                Some(ids(&slice_cols(&mask, prompt))),
                Some(&mut cache),
            )
            .unwrap();
        assert_eq!(cache.len(), prompt);
        let [b, t, v] = first.dims();
        let got = values(first.narrow(1, t - 1, 1).reshape([b, v]));
        let want = full_last(
            &model,
            &slice_cols(&rows, prompt),
            &slice_cols(&mask, prompt),
        );
        assert!(max_diff(&got, &want) <= STEP_TOL, "{name} prompt");

        for step in prompt..seq {
            let new: Vec<Vec<i64>> = rows.iter().map(|r| vec![r[step]]).collect();
            let logits = model
                .forward(
                    ids(&new),
                    Some(ids(&slice_cols(&mask, step + 1))),
                    Some(&mut cache),
                )
                .unwrap(); // [b, 1, vocab]
            assert_eq!(cache.len(), step + 1);
            let got = values(logits.reshape([b, v]));
            let want = full_last(
                &model,
                &slice_cols(&rows, step + 1),
                &slice_cols(&mask, step + 1),
            );
            let diff = max_diff(&got, &want);
            assert!(diff <= STEP_TOL, "{name} step {step}: {diff:e}");
        }
    }
}

#[test]
fn reorder_by_beam_index_equals_recomputing() {
    let (model, _) = load_pretrained::<B>(&fixture_dir("pre_ln"), &device()).unwrap();
    let (rows, _) = fixture_rows("pre_ln");
    let rows: Vec<Vec<i64>> = rows.iter().map(|r| r[7..].to_vec()).collect(); // no padding
    let ones = |b: usize, t: usize| vec![vec![1i64; t]; b];
    let prompt = 4;
    let mut cache = KvCache::new();
    model
        .forward(ids(&slice_cols(&rows, prompt)), None, Some(&mut cache))
        .unwrap();

    // Beams: new row i continues old row beam[i] (a row may be picked twice or dropped).
    let beam = [2i64, 0, 0, 1];
    cache
        .reorder(Tensor::from_data(
            TensorData::new(beam.to_vec(), [4]),
            &device(),
        ))
        .unwrap();
    assert_eq!(cache.batch_size(), Some(4));
    let next = [5i64, 9, 17, 33];
    let step: Vec<Vec<i64>> = next.iter().map(|&t| vec![t]).collect();
    let logits = model
        .forward(
            ids(&step),
            Some(ids(&ones(4, prompt + 1))),
            Some(&mut cache),
        )
        .unwrap();
    let got = values(logits.reshape([4, 96])); // pre_ln's vocab is 96

    let recomputed: Vec<Vec<i64>> = beam
        .iter()
        .zip(next)
        .map(|(&b, t)| {
            let mut r = rows[b as usize][..prompt].to_vec();
            r.push(t);
            r
        })
        .collect();
    let want = full_last(&model, &recomputed, &ones(4, prompt + 1));
    assert!(max_diff(&got, &want) <= STEP_TOL);
}

#[test]
fn truncate_and_reset() {
    let (model, _) = load_pretrained::<B>(&fixture_dir("no_bias"), &device()).unwrap();
    let rows = vec![vec![5i64, 6, 7, 8, 9, 10], vec![11, 12, 13, 14, 15, 16]];
    let mut cache = KvCache::new();
    model.forward(ids(&rows), None, Some(&mut cache)).unwrap();
    assert_eq!(cache.len(), 6);

    // Roll back to 3 positions and continue with a different token.
    cache.truncate(3);
    assert_eq!(cache.len(), 3);
    let logits = model
        .forward(ids(&[vec![40], vec![41]]), None, Some(&mut cache))
        .unwrap();
    let got = values(logits.reshape([2, 64]));
    let alt = vec![vec![5i64, 6, 7, 40], vec![11, 12, 13, 41]];
    let want = full_last(&model, &alt, &[vec![1; 4], vec![1; 4]]);
    assert!(max_diff(&got, &want) <= STEP_TOL);

    cache.truncate(10); // longer than the cache: no-op
    assert_eq!(cache.len(), 4);
    cache.reset();
    assert!(cache.is_empty());
    assert_eq!(cache.batch_size(), None);
}

#[test]
fn inconsistent_inputs_are_errors_not_panics() {
    let config = OptConfig::tiny(50, 16, 1, 2, 32, 8);
    let model = Opt::<B>::init(&config, &device());
    let rows = vec![vec![3i64, 4, 5]];
    let invalid = |r: Result<Tensor<B, 3>, ModelError>, needle: &str| match r {
        Err(ModelError::InvalidInput(msg)) => assert!(msg.contains(needle), "{msg}"),
        other => panic!("expected InvalidInput({needle}), got {other:?}"),
    };
    invalid(
        model.forward(ids(&rows), Some(ids(&[vec![1, 1]])), None),
        "attention_mask",
    );
    invalid(model.forward(ids(&[vec![3, 50]]), None, None), "vocabulary");
    invalid(
        model.forward(ids(&[vec![1; 9]]), None, None),
        "max_position_embeddings",
    );

    let mut cache = KvCache::new();
    model.forward(ids(&rows), None, Some(&mut cache)).unwrap();
    invalid(
        model.forward(ids(&[vec![3], vec![4]]), None, Some(&mut cache)),
        "batch",
    );
    let err = cache
        .reorder(Tensor::from_data(
            TensorData::new(vec![1i64], [1]),
            &device(),
        ))
        .unwrap_err();
    assert!(err.to_string().contains("outside"), "{err}");
}

/// Prompt, a reorder that repeats and drops rows (3 -> 4), then three decoding steps
/// with same-size reorders between them, on backend `BB` with the model saved in
/// `dir`; logits of each step.
fn decode_with_reorder<BB>(dir: &std::path::Path) -> Vec<Vec<f64>>
where
    BB: xp::backend::XpBackend<Device = burn::backend::ndarray::NdArrayDevice>,
{
    let dev = device();
    let (model, _) = load_pretrained::<BB>(dir, &dev).unwrap();
    let ids = |rows: &[Vec<i64>]| {
        let (b, t) = (rows.len(), rows[0].len());
        let flat: Vec<i64> = rows.iter().flatten().copied().collect();
        Tensor::<BB, 2, Int>::from_data(TensorData::new(flat, [b, t]), &dev)
    };
    let prompt = vec![
        vec![5i64, 6, 7, 8],
        vec![9, 10, 11, 12],
        vec![13, 14, 15, 16],
    ];
    let mut cache = KvCache::with_capacity(2); // grows past its first room
    model.forward(ids(&prompt), None, Some(&mut cache)).unwrap();
    let beams = TensorData::new(vec![2i64, 0, 0, 1], [4]);
    cache.reorder(Tensor::from_data(beams, &dev)).unwrap();
    let mut out = Vec::new();
    for (step, tokens) in [[5i64, 9, 17, 33], [40, 41, 42, 43], [44, 45, 46, 47]]
        .iter()
        .enumerate()
    {
        if step > 0 {
            // Same batch size: the host cache only rewrites its table of sources.
            let beams = TensorData::new(vec![3i64, 3, 1, step as i64 - 1], [4]);
            cache.reorder(Tensor::from_data(beams, &dev)).unwrap();
        }
        let new: Vec<Vec<i64>> = tokens.iter().map(|&t| vec![t]).collect();
        let mask = vec![vec![1i64; prompt[0].len() + step + 1]; 4];
        let logits = model
            .forward(ids(&new), Some(ids(&mask)), Some(&mut cache))
            .unwrap();
        out.push(values(logits));
    }
    out
}

#[test]
fn the_host_cache_and_the_tensor_cache_agree() {
    // The plain CPU backend keeps the cache in host memory (reorders rewrite a table
    // of sources); autodiff, like CUDA, keeps tensors and copies on reorder. Dropout
    // off: autodiff backends apply it in every forward.
    let mut config = OptConfig::tiny(64, 32, 2, 4, 64, 32);
    config.dropout = 0.0;
    config.attention_dropout = 0.0;
    <B as burn::tensor::backend::Backend>::seed(&device(), 11);
    let model = Opt::<B>::init(&config, &device());
    let dir = tempfile::tempdir().unwrap();
    xp::model::save_pretrained(&model, &config, dir.path(), None).unwrap();
    let host = decode_with_reorder::<B>(dir.path());
    let tensors = decode_with_reorder::<burn::backend::Autodiff<B>>(dir.path());
    for (h, t) in host.iter().zip(&tensors) {
        assert!(max_diff(h, t) <= STEP_TOL, "{:e}", max_diff(h, t));
    }
}
