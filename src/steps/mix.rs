//! `mix`: one blocks file from real and synthetic blocks — the data flow between
//! generations. Its pool is the real blocks drawn (all of `real`, or `real_blocks` of
//! them) followed by every block of every `synthetic` file, in the order listed; the
//! output is the whole pool, or `blocks` of it drawn without replacement.
//!
//! In a loop it says what the next generation trains on:
//!
//! - replace (no `mix`): `next = { data = "synthesize.blocks" }`;
//! - accumulate: `real = "blocks.train"`, `synthetic = ["synthesize@earlier.blocks",
//!   "synthesize.blocks"]`, `next = { data = "mix.blocks" }`;
//! - accumulate-subsample: the same with `blocks = N`;
//! - fresh real data: `real = "carry.fresh"`, `real_blocks = N`, and the loop carries
//!   `fresh` from `mix.unused` (the real blocks not drawn yet), so each generation
//!   draws real blocks no earlier generation was given.
//!
//! Draws use one ChaCha8 generator seeded by the step's key (which holds the
//! experiment seed, the parameters and every input's key): each generation draws
//! afresh, a rerun draws the same. A draw of `k` of `n` is a Fisher–Yates shuffle of
//! `0..n` whose first `k` indices are kept in their original order.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::context::{InputLocation, StepContext, StepError, StepOutcome};
use super::{InputRef, KindParams, ResourceHint};
use crate::data::{Blocks, read_blocks, write_blocks};

/// One blocks file from real and synthetic blocks, for the data flow between
/// generations (replace, accumulate, accumulate-subsample, fresh real data): the pool
/// is the drawn real blocks then every synthetic block; the output `blocks` is the pool
/// or a seeded draw of `blocks` from it; with `real`, the output `unused` holds the
/// real blocks not drawn (for a loop to carry).
#[derive(Clone, Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// Blocks file of real data (e.g. `blocks.train`, or in a loop the carried
    /// `carry.fresh` of real blocks not drawn yet); all of it enters the pool unless
    /// `real_blocks` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub real: Option<InputRef>,
    /// Blocks files of synthetic data, all of whose blocks enter the pool, in this
    /// order (e.g. `["synthesize@earlier.blocks", "synthesize.blocks"]`: this
    /// generation's text and every earlier generation's).
    #[serde(default)]
    pub synthetic: Vec<InputRef>,
    /// Real blocks drawn (seeded, without replacement) from `real` into the pool; the
    /// others are the `unused` output. Unset: all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub real_blocks: Option<usize>,
    /// Blocks drawn (seeded, without replacement) from the pool into the output
    /// (accumulate-subsample). Unset: the whole pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<usize>,
}

impl KindParams for Params {
    const KIND: &'static str = "mix";
    const VERSION: u32 = 1;
    const USES_SEED: bool = true;
    const USES_PRECISION: bool = false;
    const RESOURCES: ResourceHint = ResourceHint::DATA;
    input_slots!(real, synthetic);

    fn outputs(&self) -> Vec<(String, String)> {
        let mut outputs = vec![("blocks".into(), "mixed.blocks".into())];
        if self.real.is_some() {
            outputs.push(("unused".into(), "unused.blocks".into()));
        }
        outputs
    }
}

/// What a mix keeps: indices into `real` and positions in the pool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Drawn {
    /// The real blocks in the pool (ascending indices into `real`).
    pub real: Vec<usize>,
    /// The real blocks not drawn (ascending).
    pub unused: Vec<usize>,
    /// The pool positions in the output (ascending); the pool is the drawn real blocks
    /// then the synthetic ones, in order.
    pub kept: Vec<usize>,
    /// Blocks in the pool.
    pub pool: usize,
}

/// `k` of `0..n`, drawn without replacement, in ascending order.
fn draw(n: usize, k: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    order.truncate(k);
    order.sort_unstable();
    order
}

/// Decides the draw for `real` real blocks and `synthetic` blocks in all; `Err`
/// says which count is too large (the caller adds the step's name).
pub(crate) fn plan_draw(
    real: usize,
    synthetic: usize,
    real_blocks: Option<usize>,
    blocks: Option<usize>,
    rng: &mut ChaCha8Rng,
) -> Result<Drawn, String> {
    let real_drawn = match real_blocks {
        None => (0..real).collect(),
        Some(k) if k <= real => draw(real, k, rng),
        Some(k) => {
            return Err(format!(
                "real_blocks = {k}, but `real` holds {real} blocks; lower real_blocks \
                 (or give more real data)"
            ));
        }
    };
    let unused = {
        let mut taken = vec![false; real];
        real_drawn.iter().for_each(|&i| taken[i] = true);
        (0..real).filter(|&i| !taken[i]).collect()
    };
    let pool = real_drawn.len() + synthetic;
    let kept = match blocks {
        None => (0..pool).collect(),
        Some(k) if k <= pool => draw(pool, k, rng),
        Some(k) => {
            return Err(format!(
                "blocks = {k}, but the pool holds {pool} blocks ({} real + {synthetic} \
                 synthetic); lower `blocks` or unset it to keep the whole pool",
                real_drawn.len()
            ));
        }
    };
    Ok(Drawn {
        real: real_drawn,
        unused,
        kept,
        pool,
    })
}

fn read_input(loc: &InputLocation) -> Result<(String, Blocks), StepError> {
    Ok((loc.origin.label(), read_blocks(&loc.path)?))
}

pub fn run(p: &Params, ctx: &StepContext<'_>) -> Result<StepOutcome, StepError> {
    let step = ctx.step;
    let invalid = |what: String| StepError::Invalid(format!("step `{step}`: {what}"));
    let real = ctx.optional_input("real").map(read_input).transpose()?;
    if real.is_none() && p.real_blocks.is_some() {
        return Err(invalid(
            "real_blocks is set but `real` is not: name the real blocks to draw from \
             (e.g. `real = \"blocks.train\"`)"
                .into(),
        ));
    }
    let synthetic = ctx
        .input_list("synthetic")
        .iter()
        .map(read_input)
        .collect::<Result<Vec<_>, _>>()?;
    let mut inputs = real.iter().chain(&synthetic);
    let Some((first_label, first)) = inputs.next() else {
        return Err(invalid(
            "nothing to mix: give `real`, `synthetic` or both (in generation 0 of a loop, \
             `synthetic = [\"s@earlier.blocks\"]` lists nothing)"
                .into(),
        ));
    };
    let block_size = first.block_size();
    if let Some((label, other)) = inputs.find(|(_, b)| b.block_size() != block_size) {
        return Err(invalid(format!(
            "`{first_label}` has blocks of {block_size} tokens but `{label}` has blocks of {}; \
             mixed blocks must be the same size (tokenize with block_size = synthesize's \
             new_tokens)",
            other.block_size()
        )));
    }

    let real_len = real.as_ref().map_or(0, |(_, b)| b.len());
    let synthetic_len: usize = synthetic.iter().map(|(_, b)| b.len()).sum();
    let mut rng = ChaCha8Rng::from_seed(ctx.key.0);
    let drawn =
        plan_draw(real_len, synthetic_len, p.real_blocks, p.blocks, &mut rng).map_err(invalid)?;

    let mut pool: Vec<&[u32]> = Vec::with_capacity(drawn.pool);
    if let Some((_, blocks)) = &real {
        pool.extend(drawn.real.iter().map(|&i| blocks.block(i)));
    }
    for (_, blocks) in &synthetic {
        pool.extend(blocks.iter());
    }
    let mut out = Blocks::empty(block_size)?;
    for &i in &drawn.kept {
        out.push(pool[i])?;
    }
    if out.is_empty() {
        return Err(invalid(
            "the mix has no blocks (its inputs are empty or `blocks = 0`); a step \
             training on it would have nothing to learn from"
                .into(),
        ));
    }
    write_blocks(&ctx.out_path("mixed.blocks"), &out)?;
    if let Some((_, blocks)) = &real {
        let mut unused = Blocks::empty(block_size)?;
        for &i in &drawn.unused {
            unused.push(blocks.block(i))?;
        }
        write_blocks(&ctx.out_path("unused.blocks"), &unused)?;
    }
    let per_input: serde_json::Map<String, serde_json::Value> = synthetic
        .iter()
        .map(|(label, b)| (label.clone(), b.len().into()))
        .collect();
    let kept_real = drawn.kept.iter().filter(|&&i| i < drawn.real.len()).count();
    Ok(StepOutcome {
        metrics: serde_json::json!({
            "real_available": real_len,
            "real_in_pool": drawn.real.len(),
            "real_unused": drawn.unused.len(),
            "synthetic_in_pool": synthetic_len,
            "synthetic_inputs": per_input,
            "pool": drawn.pool,
            "blocks": out.len(),
            "real_share": kept_real as f64 / out.len() as f64,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rng(seed: u64) -> ChaCha8Rng {
        ChaCha8Rng::seed_from_u64(seed)
    }

    #[test]
    fn accumulate_keeps_the_whole_pool_in_order() {
        // 4 real blocks, 3 + 3 synthetic: the pool is all 10, nothing drawn.
        let d = plan_draw(4, 6, None, None, &mut rng(0)).unwrap();
        assert_eq!(d.real, vec![0, 1, 2, 3]);
        assert!(d.unused.is_empty());
        assert_eq!(d.pool, 10);
        assert_eq!(d.kept, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn subsample_draws_a_fixed_number_without_replacement_reproducibly() {
        let a = plan_draw(4, 6, None, Some(5), &mut rng(3)).unwrap();
        assert_eq!(a.pool, 10);
        assert_eq!(a.kept.len(), 5);
        assert!(a.kept.windows(2).all(|w| w[0] < w[1]), "{:?}", a.kept);
        assert!(a.kept.iter().all(|&i| i < 10));
        // The same seed draws the same blocks; other seeds draw other sets.
        assert_eq!(plan_draw(4, 6, None, Some(5), &mut rng(3)).unwrap(), a);
        let others: Vec<Vec<usize>> = (4..12)
            .map(|s| plan_draw(4, 6, None, Some(5), &mut rng(s)).unwrap().kept)
            .collect();
        assert!(others.iter().any(|k| *k != a.kept), "{others:?}");
        // Drawing the whole pool keeps every block.
        let all = plan_draw(4, 6, None, Some(10), &mut rng(3)).unwrap();
        assert_eq!(all.kept, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn fresh_real_blocks_are_never_drawn_twice_along_a_fold() {
        // A loop carrying `unused`: 12 real blocks, 3 drawn per generation; after four
        // generations every block was drawn exactly once, then none is left.
        let mut remaining: Vec<usize> = (0..12).collect();
        let mut seen = Vec::new();
        for g in 0..4 {
            let d = plan_draw(remaining.len(), 5, Some(3), None, &mut rng(g)).unwrap();
            assert_eq!(d.real.len(), 3);
            assert_eq!(d.pool, 8);
            assert_eq!(d.real.len() + d.unused.len(), remaining.len());
            seen.extend(d.real.iter().map(|&i| remaining[i]));
            remaining = d.unused.iter().map(|&i| remaining[i]).collect();
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..12).collect::<Vec<_>>());
        assert!(remaining.is_empty());
        let err = plan_draw(0, 5, Some(3), None, &mut rng(9)).unwrap_err();
        assert!(
            err.contains("real_blocks = 3, but `real` holds 0 blocks"),
            "{err}"
        );
    }

    #[test]
    fn a_draw_larger_than_the_pool_says_how_large_the_pool_is() {
        let err = plan_draw(4, 6, None, Some(11), &mut rng(0)).unwrap_err();
        assert!(
            err.contains("blocks = 11, but the pool holds 10 blocks (4 real + 6 synthetic)"),
            "{err}"
        );
        // Replace with a share of fresh real data: 2 of 4 real, then all synthetic.
        let d = plan_draw(4, 6, Some(2), None, &mut rng(0)).unwrap();
        assert_eq!(d.pool, 8);
        assert_eq!(d.kept, (0..8).collect::<Vec<_>>());
        assert_eq!(d.unused.len(), 2);
        let mut all: Vec<usize> = d.real.iter().chain(&d.unused).copied().collect();
        all.sort_unstable();
        assert_eq!(all, vec![0, 1, 2, 3]);
    }
}
