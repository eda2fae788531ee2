//! Perplexity of the OPT fixture models on seeded blocks equals transformers' (references
//! from scripts/make_eval_fixtures.py) within 1e-4 relative: per block, token-weighted
//! over the set, and the authors' batch-mean variant.

use std::path::PathBuf;

use burn::backend::NdArray;
use serde_json::Value;
use xp::data::Blocks;
use xp::eval::{Summary, score_blocks};
use xp::model::load_pretrained;

type B = NdArray<f32>;
const REL_TOL: f64 = 1e-4;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn rel(got: f64, want: f64) -> f64 {
    (got - want).abs() / want.abs()
}

#[test]
fn perplexities_match_transformers() {
    for name in ["pre_ln", "post_ln_proj", "fp16_bin"] {
        let text = std::fs::read_to_string(fixtures().join(format!("eval/{name}.json"))).unwrap();
        let reference: Value = serde_json::from_str(&text).unwrap();
        let block_size = reference["block_size"].as_u64().unwrap() as usize;
        let batch_size = reference["batch_size"].as_u64().unwrap() as usize;
        let ids: Vec<u32> = reference["blocks"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|b| {
                b.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap() as u32)
            })
            .collect();
        let blocks = Blocks::new(block_size, ids).unwrap();
        let device = Default::default();
        let (model, config) =
            load_pretrained::<B>(&fixtures().join(format!("opt/{name}")), &device).unwrap();

        // Forward batches of 2 differ from the authors' batches: the numbers must not care.
        let mut progress = Vec::new();
        let got = score_blocks(&model, &config, &blocks, 2, batch_size, &device, |done| {
            progress.push(done)
        })
        .unwrap();
        let expected_progress: Vec<usize> = (1..=blocks.len().div_ceil(2))
            .map(|i| (2 * i).min(blocks.len()))
            .collect();
        assert_eq!(
            progress, expected_progress,
            "{name}: progress after each forward pass"
        );

        let want: Vec<f64> = reference["per_sample_perplexity"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let per_sample = got.per_sample_perplexity();
        assert_eq!(per_sample.len(), want.len());
        let worst = per_sample
            .iter()
            .zip(&want)
            .map(|(g, w)| rel(*g, *w))
            .fold(0.0, f64::max);
        let corpus = rel(
            got.corpus_perplexity,
            reference["corpus_perplexity"].as_f64().unwrap(),
        );
        let batch_mean = rel(
            got.batch_mean_perplexity,
            reference["batch_mean_perplexity"].as_f64().unwrap(),
        );
        eprintln!(
            "{name}: corpus ppl {:.4} (rel diff {corpus:.1e}), batch-mean ppl {:.4} (rel diff \
             {batch_mean:.1e}), worst per-sample rel diff {worst:.1e}",
            got.corpus_perplexity, got.batch_mean_perplexity
        );
        assert!(
            worst <= REL_TOL,
            "{name}: per-sample perplexity off by {worst:e}"
        );
        assert!(
            corpus <= REL_TOL,
            "{name}: corpus perplexity off by {corpus:e}"
        );
        assert!(
            batch_mean <= REL_TOL,
            "{name}: batch-mean perplexity off by {batch_mean:e}"
        );
        // The variants differ on these sets (the last batch is smaller), so the test
        // tells them apart.
        assert!(
            rel(got.corpus_perplexity, got.batch_mean_perplexity) > 1e-3,
            "{name}"
        );

        let summary = Summary::of(&per_sample).unwrap();
        let mean_want = want.iter().sum::<f64>() / want.len() as f64;
        assert!(rel(summary.mean, mean_want) <= REL_TOL, "{name}: mean");
    }
}

#[test]
fn blocks_the_model_cannot_score_are_errors() {
    let device = Default::default();
    let (model, config) = load_pretrained::<B>(&fixtures().join("opt/fp16_bin"), &device).unwrap();
    let score = |blocks: &Blocks| score_blocks(&model, &config, blocks, 4, 4, &device, |_| {});
    // Id 72 is outside the vocabulary of 72.
    let err = score(&Blocks::new(4, vec![3, 4, 5, 72]).unwrap()).unwrap_err();
    assert!(
        err.to_string().contains("outside the model's vocabulary"),
        "{err}"
    );
    // 17 tokens exceed the 16 positions.
    let err = score(&Blocks::new(17, vec![3; 17]).unwrap()).unwrap_err();
    assert!(err.to_string().contains("16 positions"), "{err}");
    let err = score(&Blocks::new(1, vec![3]).unwrap()).unwrap_err();
    assert!(err.to_string().contains("block_size >= 2"), "{err}");
}
