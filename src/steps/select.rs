//! `select`: keeps part of a blocks file by each block's perplexity under a model —
//! a filter on synthetic data before the next generation trains on it.
//!
//! Every block of `data` is scored as `evaluate` scores it (per-block perplexity,
//! `exp` of the mean NLL of its next-token predictions; [`crate::eval`]), then `keep`
//! decides how many copies of it the output holds:
//!
//! - `{ lowest = f }` / `{ highest = f }`: the `round(f × n)` blocks of lowest /
//!   highest perplexity (ties: the earlier block first), one copy each;
//! - `{ below = t }` / `{ above = t }`: every block with perplexity ≤ t / ≥ t;
//! - `"resample"`: importance resampling towards the perplexity distribution of
//!   `reference` (the real data) under the same model. Both sets' log-perplexities
//!   go into `bins` equal-width bins spanning the smallest to the largest of either
//!   set; block i in bin b gets the weight w_i = p_ref(b) / p_data(b), the ratio of
//!   the two histogram densities (p(b) = blocks of the set in b / blocks of the set;
//!   the bin width cancels). `blocks` draws (default: as many as `data` has) are made
//!   with replacement, block i with probability w_i / Σw (multinomial), so blocks
//!   whose scores are rarer in the real data than in the synthetic are drawn less.
//!
//! Output blocks keep the input's order (a resampled block's copies side by side).
//! Resampling draws with a ChaCha8 generator seeded by the step's key (the experiment
//! seed, the parameters and the inputs' keys). `selection.json`
//! ([`crate::artifacts::SelectionFile`]) records every block's perplexity, weight and
//! copies; the step's metrics, the kept share and the quantiles before and after.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use super::context::{StepContext, StepError, StepOutcome};
use super::evaluate::score_sets;
use super::{InputRef, KindParams, ResourceHint};
use crate::artifacts::{BlockChoice, Quantiles, SelectionFile, SelectionSummary};
use crate::data::{Blocks, read_blocks, write_blocks};
use crate::eval::percentile;

/// Keeps part of a blocks file by each block's perplexity under a model (a share or a
/// threshold from either end), or resamples it towards the real data's perplexity
/// distribution; writes the kept blocks and `selection.json`.
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// The scoring model: an HF model directory (e.g. `finetune@0.model`, generation
    /// 0's, or `finetune.model`, the generation's own).
    pub model: InputRef,
    /// The blocks to select from (e.g. `synthesize.blocks`).
    pub data: InputRef,
    /// The real data (a blocks file) whose perplexity distribution `"resample"` moves
    /// towards; required by it, refused by the other rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<InputRef>,
    /// Which blocks stay: `{ lowest = 0.5 }` / `{ highest = 0.5 }` (that share of the
    /// blocks, in (0, 1], by perplexity), `{ below = 40.0 }` / `{ above = 40.0 }`
    /// (perplexity ≤ / ≥ the threshold), or `"resample"` (importance resampling
    /// towards `reference`'s perplexities; see `bins`).
    #[schemars(example = Keep::Lowest(Share(0.5)))]
    pub keep: Keep,
    /// `"resample"`: blocks drawn (with replacement). Unset: as many as `data` has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<usize>,
    /// `"resample"`: equal-width bins of log-perplexity over both sets' range, for the
    /// histogram densities whose ratio is each block's weight. Unset: 20.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bins: Option<usize>,
    /// Blocks per forward pass (memory and speed only).
    #[serde(default = "default_forward_batch")]
    pub forward_batch: usize,
}

fn default_forward_batch() -> usize {
    16
}

const DEFAULT_BINS: usize = 20;

/// Which blocks a `select` step keeps.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Keep {
    /// This share of the blocks, those of lowest perplexity.
    Lowest(Share),
    /// This share of the blocks, those of highest perplexity.
    Highest(Share),
    /// Every block whose perplexity is at most this.
    Below(Threshold),
    /// Every block whose perplexity is at least this.
    Above(Threshold),
    /// Importance resampling towards `reference`'s perplexity distribution.
    Resample,
}

/// A share of the blocks, in (0, 1]; anything else is an error where it is written.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct Share(pub f64);

impl<'de> Deserialize<'de> for Share {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let value = f64::deserialize(de)?;
        if value > 0.0 && value <= 1.0 {
            Ok(Share(value))
        } else {
            Err(serde::de::Error::custom(format!(
                "a share of the blocks must be in (0, 1], got {value}"
            )))
        }
    }
}

/// A perplexity threshold: a positive number; anything else is an error where it is
/// written.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct Threshold(pub f64);

impl<'de> Deserialize<'de> for Threshold {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let value = f64::deserialize(de)?;
        if value.is_finite() && value > 0.0 {
            Ok(Threshold(value))
        } else {
            Err(serde::de::Error::custom(format!(
                "a perplexity threshold must be a positive number, got {value}"
            )))
        }
    }
}

impl KindParams for Params {
    const KIND: &'static str = "select";
    const VERSION: u32 = 1;
    const USES_SEED: bool = true;
    const USES_PRECISION: bool = true; // scores with a model
    const RESOURCES: ResourceHint = ResourceHint::MODEL;
    input_slots!(model, data, reference);

    fn outputs(&self) -> Vec<(String, String)> {
        vec![
            ("blocks".into(), "selected.blocks".into()),
            ("selection".into(), SelectionFile::FILE_NAME.into()),
        ]
    }
}

/// Copies per block for the rank and threshold rules (`Resample` is [`resample`]).
pub(crate) fn keep_by_rule(perplexity: &[f64], keep: Keep) -> Vec<usize> {
    let n = perplexity.len();
    let mut copies = vec![0; n];
    match keep {
        Keep::Lowest(Share(f)) | Keep::Highest(Share(f)) => {
            let count = ((f * n as f64).round() as usize).min(n);
            let mut order: Vec<usize> = (0..n).collect();
            let highest = matches!(keep, Keep::Highest(_));
            // Stable sort: ties keep the earlier block first.
            order.sort_by(|&a, &b| {
                let by = perplexity[a].total_cmp(&perplexity[b]);
                if highest { by.reverse() } else { by }
            });
            order.into_iter().take(count).for_each(|i| copies[i] = 1);
        }
        Keep::Below(Threshold(t)) => (0..n)
            .filter(|&i| perplexity[i] <= t)
            .for_each(|i| copies[i] = 1),
        Keep::Above(Threshold(t)) => (0..n)
            .filter(|&i| perplexity[i] >= t)
            .for_each(|i| copies[i] = 1),
        Keep::Resample => unreachable!("resampling is `resample`"),
    }
    copies
}

/// The importance weight of every block of `data`: the ratio of the histogram density
/// of `reference` to that of `data` in the block's bin (module doc). Scores are
/// log-perplexities; `bins` ≥ 1; both sets non-empty.
pub(crate) fn importance_weights(reference: &[f64], data: &[f64], bins: usize) -> Vec<f64> {
    let all = reference.iter().chain(data);
    let lo = all.clone().copied().fold(f64::INFINITY, f64::min);
    let hi = all.copied().fold(f64::NEG_INFINITY, f64::max);
    let bin = |x: f64| {
        if hi > lo {
            (((x - lo) / (hi - lo) * bins as f64) as usize).min(bins - 1)
        } else {
            0
        }
    };
    let histogram = |values: &[f64]| {
        let mut counts = vec![0usize; bins];
        values.iter().for_each(|&x| counts[bin(x)] += 1);
        counts
    };
    let (r, d) = (histogram(reference), histogram(data));
    let (nr, nd) = (reference.len() as f64, data.len() as f64);
    data.iter()
        .map(|&x| {
            let b = bin(x);
            (r[b] as f64 / nr) / (d[b] as f64 / nd)
        })
        .collect()
}

/// Copies per block after `draws` multinomial draws with probabilities `w / Σw`
/// (Σw > 0).
pub(crate) fn resample(weights: &[f64], draws: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let cumulative: Vec<f64> = weights
        .iter()
        .scan(0.0, |sum, w| {
            *sum += w;
            Some(*sum)
        })
        .collect();
    let total = *cumulative.last().expect("at least one block");
    let mut copies = vec![0; weights.len()];
    for _ in 0..draws {
        let u = rng.random::<f64>() * total;
        // The first block whose cumulative weight passes u: never a zero-weight block.
        let i = cumulative
            .partition_point(|&c| c <= u)
            .min(weights.len() - 1);
        copies[i] += 1;
    }
    copies
}

/// Mean and quantiles of `values` (non-empty).
pub(crate) fn quantiles(values: &[f64]) -> Quantiles {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    Quantiles {
        mean: values.iter().sum::<f64>() / values.len() as f64,
        p10: percentile(&sorted, 10.0),
        p25: percentile(&sorted, 25.0),
        p50: percentile(&sorted, 50.0),
        p75: percentile(&sorted, 75.0),
        p90: percentile(&sorted, 90.0),
    }
}

pub fn run(p: &Params, ctx: &StepContext<'_>) -> Result<StepOutcome, StepError> {
    let step = ctx.step;
    let invalid = |what: String| StepError::Invalid(format!("step `{step}`: {what}"));
    let resampling = p.keep == Keep::Resample;
    if !resampling && ctx.optional_input("reference").is_some() {
        return Err(invalid(
            "`reference` only applies to keep = \"resample\"; remove it (it would make \
             the step depend on data it does not read)"
                .into(),
        ));
    }
    if !resampling && (p.blocks.is_some() || p.bins.is_some()) {
        return Err(invalid(
            "`blocks` and `bins` only apply to keep = \"resample\"; remove them".into(),
        ));
    }
    if p.bins == Some(0) || p.forward_batch == 0 {
        return Err(invalid("bins and forward_batch must be at least 1".into()));
    }
    let model = ctx.input("model")?;
    let data_loc = ctx.input("data")?;
    let data = read_blocks(&data_loc.path)?;
    if data.is_empty() {
        return Err(invalid(format!(
            "`{}` has no blocks to select from",
            data_loc.origin.label()
        )));
    }
    let reference_loc = ctx.optional_input("reference");
    if resampling && reference_loc.is_none() {
        return Err(invalid(
            "keep = \"resample\" needs `reference`, the real blocks whose perplexities \
             the selection moves towards (e.g. `reference = \"blocks.train\"`)"
                .into(),
        ));
    }
    let mut sets = vec![(data_loc.origin.label(), data_loc, data)];
    if resampling && let Some(loc) = reference_loc {
        let blocks = read_blocks(&loc.path)?;
        if blocks.is_empty() {
            return Err(invalid(format!(
                "reference `{}` has no blocks",
                loc.origin.label()
            )));
        }
        sets.push((loc.origin.label(), loc, blocks));
    }
    let scores = score_sets(ctx, &model.path, &sets, p.forward_batch, p.forward_batch)?;
    let perplexity = scores[0].per_sample_perplexity();
    let reference = scores.get(1).map(|s| s.per_sample_perplexity());
    let n = perplexity.len();

    let (copies, weights) = match &reference {
        Some(reference) => {
            let ln = |v: &[f64]| v.iter().map(|x| x.ln()).collect::<Vec<_>>();
            let bins = p.bins.unwrap_or(DEFAULT_BINS);
            let weights = importance_weights(&ln(reference), &ln(&perplexity), bins);
            if weights.iter().all(|&w| w == 0.0) {
                return Err(invalid(format!(
                    "no block of `data` has a perplexity in a bin the reference occupies \
                     ({bins} bins); the two distributions do not overlap, so there is \
                     nothing to resample towards (try fewer bins)"
                )));
            }
            let mut rng = ChaCha8Rng::from_seed(ctx.key.0);
            let copies = resample(&weights, p.blocks.unwrap_or(n), &mut rng);
            (copies, Some(weights))
        }
        None => (keep_by_rule(&perplexity, p.keep), None),
    };

    let (_, _, blocks) = &sets[0];
    let mut out = Blocks::empty(blocks.block_size())?;
    let mut after = Vec::new();
    for (i, &c) in copies.iter().enumerate() {
        for _ in 0..c {
            out.push(blocks.block(i))?;
            after.push(perplexity[i]);
        }
    }
    let before = quantiles(&perplexity);
    if out.is_empty() {
        return Err(invalid(format!(
            "keep = {} keeps no block of {n} (their perplexities: p10 {:.2}, median {:.2}, \
             p90 {:.2}); choose a threshold or share that keeps some",
            serde_json::to_string(&p.keep).expect("keep serialises"),
            before.p10,
            before.p50,
            before.p90
        )));
    }
    write_blocks(&ctx.out_path("selected.blocks"), &out)?;
    let effective_share = weights.as_ref().map(|w| {
        let (sum, squares) = w.iter().fold((0.0, 0.0), |(s, q), x| (s + x, q + x * x));
        sum * sum / squares / n as f64
    });
    let summary = SelectionSummary {
        input_blocks: n,
        output_blocks: out.len(),
        kept_share: copies.iter().filter(|&&c| c > 0).count() as f64 / n as f64,
        before,
        after: quantiles(&after),
        reference: reference.as_deref().map(quantiles),
        effective_share,
    };
    let file = SelectionFile {
        model: model.origin.label(),
        data: data_loc.origin.label(),
        keep: serde_json::to_value(p.keep).expect("keep serialises"),
        blocks: (0..n)
            .map(|i| BlockChoice {
                perplexity: perplexity[i],
                weight: weights.as_ref().map(|w| w[i]),
                copies: copies[i],
            })
            .collect(),
        reference_perplexity: reference,
        summary: summary.clone(),
    };
    file.write(&ctx.out_path(SelectionFile::FILE_NAME))?;
    Ok(StepOutcome {
        metrics: serde_json::to_value(&summary).expect("summary serialises"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_and_thresholds_keep_the_right_blocks() {
        let ppl = [5.0, 1.0, 3.0, 3.0, 9.0, 2.0];
        let kept = |keep| {
            let copies = keep_by_rule(&ppl, keep);
            (0..ppl.len())
                .filter(|&i| copies[i] == 1)
                .collect::<Vec<_>>()
        };
        // round(0.5 × 6) = 3 lowest: 1.0, 2.0 and the earlier of the two 3.0s.
        assert_eq!(kept(Keep::Lowest(Share(0.5))), vec![1, 2, 5]);
        // 3 highest: 9.0, 5.0, then the earlier 3.0.
        assert_eq!(kept(Keep::Highest(Share(0.5))), vec![0, 2, 4]);
        assert_eq!(kept(Keep::Lowest(Share(1.0))), vec![0, 1, 2, 3, 4, 5]);
        assert_eq!(kept(Keep::Below(Threshold(3.0))), vec![1, 2, 3, 5]);
        assert_eq!(kept(Keep::Above(Threshold(5.0))), vec![0, 4]);
        assert!(kept(Keep::Below(Threshold(0.5))).is_empty());
    }

    #[test]
    fn a_share_outside_zero_to_one_is_refused_where_it_is_written() {
        for bad in ["0.0", "1.5", "-0.1"] {
            let err = toml::from_str::<Keep>(&format!("lowest = {bad}")).unwrap_err();
            assert!(err.to_string().contains("must be in (0, 1]"), "{err}");
        }
        let ok: Keep = toml::from_str("highest = 0.25").unwrap();
        assert_eq!(ok, Keep::Highest(Share(0.25)));
        for bad in ["0.0", "-3.0", "nan", "inf"] {
            let err = toml::from_str::<Keep>(&format!("below = {bad}")).unwrap_err();
            assert!(
                err.to_string().contains("must be a positive number"),
                "{err}"
            );
        }
        let ok: Keep = toml::from_str("above = 40").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ok, Keep::Above(Threshold(40.0)));
    }

    #[test]
    fn weights_are_the_ratio_of_histogram_densities() {
        // Range 0..4 in 2 bins: [0, 2) and [2, 4]. Reference: 3 of 4 in the low bin;
        // data: 1 of 4. Low-bin blocks weigh (3/4)/(1/4) = 3, high-bin ones (1/4)/(3/4).
        let reference = [0.0, 0.5, 1.0, 4.0];
        let data = [1.5, 2.5, 3.0, 3.5];
        let w = importance_weights(&reference, &data, 2);
        let expected = [3.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0];
        for (a, b) in w.iter().zip(expected) {
            assert!((a - b).abs() < 1e-12, "{w:?}");
        }
        // A bin the reference leaves empty weighs 0; one range point: all weigh 1.
        let w = importance_weights(&[0.0, 0.1], &[0.0, 4.0], 2);
        assert_eq!(w, vec![2.0, 0.0]);
        assert_eq!(importance_weights(&[2.0], &[2.0, 2.0], 5), vec![1.0, 1.0]);
    }

    #[test]
    fn resampling_follows_the_weights_and_the_seed() {
        let weights = [3.0, 1.0, 0.0, 0.0];
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let copies = resample(&weights, 40_000, &mut rng);
        assert_eq!(copies.iter().sum::<usize>(), 40_000);
        assert_eq!(
            (copies[2], copies[3]),
            (0, 0),
            "zero weights are never drawn"
        );
        // Expected 30,000 : 10,000; the binomial standard deviation is ~87.
        assert!((copies[0] as i64 - 30_000).abs() < 600, "{copies:?}");
        let again = resample(&weights, 40_000, &mut ChaCha8Rng::seed_from_u64(1));
        assert_eq!(again, copies);
        let other = resample(&weights, 40_000, &mut ChaCha8Rng::seed_from_u64(2));
        assert_ne!(other, copies);
    }

    #[test]
    fn quantiles_interpolate_like_numpy() {
        let q = quantiles(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        // numpy.percentile([1..5], [10, 25, 50, 75, 90]) = 1.4, 2, 3, 4, 4.6
        assert!((q.p10 - 1.4).abs() < 1e-12 && (q.p90 - 4.6).abs() < 1e-12);
        assert_eq!((q.p25, q.p50, q.p75, q.mean), (2.0, 3.0, 4.0, 3.0));
    }
}
