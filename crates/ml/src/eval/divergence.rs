//! How far a block set's unigram (single-token) distribution is from a reference set's:
//! KL and Jensen–Shannon divergence, and how much of the reference's rare tail survives.
//!
//! Definitions (all logarithms natural, results in nats):
//! - The vocabulary `V` is the union of the token ids that occur in either set.
//! - KL uses additive (Lidstone) smoothing with pseudo-count `α > 0` on every id of `V`:
//!   `p(t) = (c(t) + α) / (N + α |V|)`, for both sets, so every probability is positive
//!   and KL is finite. `unigram_kl = KL(reference ‖ evaluated) = Σ_t r(t) ln(r(t) / e(t))`:
//!   the direction that grows when tokens of the real data become rare or vanish in the
//!   evaluated set (the loss of the tail that model collapse predicts).
//! - JS uses the raw relative frequencies (no smoothing: it is finite without it):
//!   `JS = ½ KL(R ‖ M) + ½ KL(E ‖ M)`, `M = ½ (R + E)`; symmetric, `0 ≤ JS ≤ ln 2`.
//! - The rare tail of the reference: its distinct ids sorted by count ascending, ties by
//!   id descending (byte-level BPE numbers later, rarer merges with higher ids), the first
//!   `ceil(fraction × |ids|)` of them. Tail coverage is the share of those ids that occur
//!   in the evaluated set; tail mass is their total relative frequency in the evaluated set.

use crate::data::Blocks;

/// Token counts of one set, dense by id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnigramCounts {
    counts: Vec<u64>,
    total: u64,
}

impl UnigramCounts {
    /// Counts every token of every block.
    pub fn of_blocks(blocks: &Blocks) -> Self {
        Self::of_tokens(blocks.tokens())
    }

    /// Counts the given tokens.
    pub fn of_tokens(tokens: &[u32]) -> Self {
        let len = tokens.iter().max().map_or(0, |&m| m as usize + 1);
        let mut counts = vec![0u64; len];
        for &t in tokens {
            counts[t as usize] += 1;
        }
        UnigramCounts {
            counts,
            total: tokens.len() as u64,
        }
    }

    /// Occurrences of `id`.
    pub fn count(&self, id: u32) -> u64 {
        self.counts.get(id as usize).copied().unwrap_or(0)
    }

    /// Number of tokens counted.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// The ids that occur, ascending.
    pub fn support(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.counts.len() as u32).filter(|&id| self.count(id) > 0)
    }
}

/// The ids occurring in `a` or `b`, ascending.
fn union_support(a: &UnigramCounts, b: &UnigramCounts) -> Vec<u32> {
    let len = a.counts.len().max(b.counts.len()) as u32;
    (0..len)
        .filter(|&id| a.count(id) > 0 || b.count(id) > 0)
        .collect()
}

/// `KL(reference ‖ evaluated)` in nats with additive smoothing `alpha` (see the module
/// doc). `None` when either set is empty or `alpha` is not a positive finite number.
pub fn unigram_kl(reference: &UnigramCounts, evaluated: &UnigramCounts, alpha: f64) -> Option<f64> {
    if reference.total == 0 || evaluated.total == 0 || !(alpha > 0.0 && alpha.is_finite()) {
        return None;
    }
    let vocab = union_support(reference, evaluated);
    let v = vocab.len() as f64;
    let r_den = reference.total as f64 + alpha * v;
    let e_den = evaluated.total as f64 + alpha * v;
    let kl = vocab
        .iter()
        .map(|&id| {
            let r = (reference.count(id) as f64 + alpha) / r_den;
            let e = (evaluated.count(id) as f64 + alpha) / e_den;
            r * (r / e).ln()
        })
        .sum::<f64>();
    // Rounding can leave a tiny negative number for identical distributions.
    Some(kl.max(0.0))
}

/// Jensen–Shannon divergence in nats of the raw unigram frequencies (symmetric, at most
/// ln 2). `None` when either set is empty.
pub fn unigram_js(a: &UnigramCounts, b: &UnigramCounts) -> Option<f64> {
    if a.total == 0 || b.total == 0 {
        return None;
    }
    let (na, nb) = (a.total as f64, b.total as f64);
    // Σ over one side of p ln(p / m), skipping p = 0 (its limit is 0).
    let term = |p: f64, m: f64| if p > 0.0 { p * (p / m).ln() } else { 0.0 };
    let js = union_support(a, b)
        .into_iter()
        .map(|id| {
            let p = a.count(id) as f64 / na;
            let q = b.count(id) as f64 / nb;
            let m = 0.5 * (p + q);
            0.5 * term(p, m) + 0.5 * term(q, m)
        })
        .sum::<f64>();
    Some(js.clamp(0.0, std::f64::consts::LN_2))
}

/// The reference's rarest ids: count ascending, ties by id descending, the first
/// `ceil(fraction × distinct ids)`. Empty for an empty reference or `fraction ≤ 0`.
pub fn rare_tail(reference: &UnigramCounts, fraction: f64) -> Vec<u32> {
    let mut ids: Vec<u32> = reference.support().collect();
    ids.sort_by(|&x, &y| reference.count(x).cmp(&reference.count(y)).then(y.cmp(&x)));
    let keep = (fraction.clamp(0.0, 1.0) * ids.len() as f64).ceil() as usize;
    ids.truncate(keep);
    ids
}

/// What survives of the reference's rare tail in the evaluated set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TailCoverage {
    /// Number of ids in the reference's tail.
    pub tail_ids: usize,
    /// Share of the tail ids that occur in the evaluated set.
    pub coverage: f64,
    /// Total relative frequency of the tail ids in the evaluated set.
    pub mass: f64,
}

/// Tail coverage and mass (see the module doc). `None` when the tail or the evaluated
/// set is empty.
pub fn tail_coverage(
    reference: &UnigramCounts,
    evaluated: &UnigramCounts,
    fraction: f64,
) -> Option<TailCoverage> {
    let tail = rare_tail(reference, fraction);
    if tail.is_empty() || evaluated.total == 0 {
        return None;
    }
    let present = tail.iter().filter(|&&id| evaluated.count(id) > 0).count();
    let mass: u64 = tail.iter().map(|&id| evaluated.count(id)).sum();
    Some(TailCoverage {
        tail_ids: tail.len(),
        coverage: present as f64 / tail.len() as f64,
        mass: mass as f64 / evaluated.total as f64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::f64::consts::LN_2;

    fn counts(tokens: &[u32]) -> UnigramCounts {
        UnigramCounts::of_tokens(tokens)
    }

    #[test]
    fn kl_of_identical_distributions_is_zero_and_positive_otherwise() {
        let a = counts(&[1, 1, 2, 3, 3, 3]);
        assert_eq!(unigram_kl(&a, &a, 1.0), Some(0.0));
        let b = counts(&[1, 1, 1, 1, 1, 2]);
        assert!(unigram_kl(&a, &b, 1.0).unwrap() > 0.01);
        // Disjoint supports stay finite thanks to smoothing.
        let c = counts(&[7, 8, 9]);
        assert!(unigram_kl(&a, &c, 0.5).unwrap().is_finite());
        assert_eq!(unigram_kl(&a, &b, 0.0), None);
        assert_eq!(unigram_kl(&a, &counts(&[]), 1.0), None);
    }

    #[test]
    fn kl_matches_a_hand_computation() {
        // V = {0, 1}; reference counts (3, 1), evaluated (1, 1), alpha 1:
        // r = (4/6, 2/6), e = (2/4, 2/4).
        let r = counts(&[0, 0, 0, 1]);
        let e = counts(&[0, 1]);
        let want =
            (4.0 / 6.0) * ((4.0 / 6.0) / 0.5f64).ln() + (2.0 / 6.0) * ((2.0 / 6.0) / 0.5f64).ln();
        assert!((unigram_kl(&r, &e, 1.0).unwrap() - want).abs() < 1e-15);
    }

    #[test]
    fn js_is_symmetric_bounded_and_ln2_for_disjoint_sets() {
        let a = counts(&[1, 1, 2, 3, 3, 3]);
        let b = counts(&[1, 2, 2, 4]);
        let ab = unigram_js(&a, &b).unwrap();
        assert!((ab - unigram_js(&b, &a).unwrap()).abs() < 1e-15);
        assert!(ab > 0.0 && ab < LN_2);
        assert_eq!(unigram_js(&a, &a), Some(0.0));
        let c = counts(&[7, 8, 9]);
        assert!((unigram_js(&a, &c).unwrap() - LN_2).abs() < 1e-15);
    }

    #[test]
    fn tail_is_the_rarest_half_ties_by_higher_id() {
        // Counts: id 1 ×4, 2 ×3, 3 ×1, 4 ×1, 5 ×2 -> ascending (3|4 tie -> 4, 3), 5, 2, 1.
        let r = counts(&[1, 1, 1, 1, 2, 2, 2, 3, 4, 5, 5]);
        assert_eq!(rare_tail(&r, 0.5), vec![4, 3, 5]); // ceil(2.5) = 3
        assert_eq!(rare_tail(&r, 0.2), vec![4]);
        assert_eq!(rare_tail(&r, 1.0).len(), 5);
        assert!(rare_tail(&r, 0.0).is_empty());
    }

    #[test]
    fn a_set_missing_exactly_the_tail_covers_none_of_it() {
        let r = counts(&[1, 1, 1, 1, 2, 2, 2, 3, 4, 5, 5]);
        let head_only = counts(&[1, 2, 1, 2]);
        let t = tail_coverage(&r, &head_only, 0.5).unwrap();
        assert_eq!((t.tail_ids, t.coverage, t.mass), (3, 0.0, 0.0));
        // The reference against itself: full coverage, mass 4/11.
        let t = tail_coverage(&r, &r, 0.5).unwrap();
        assert_eq!(t.coverage, 1.0);
        assert!((t.mass - 4.0 / 11.0).abs() < 1e-15);
        // One tail id of three present, 2 of 8 tokens.
        let some = counts(&[1, 1, 2, 2, 1, 2, 5, 5]);
        let t = tail_coverage(&r, &some, 0.5).unwrap();
        assert!((t.coverage - 1.0 / 3.0).abs() < 1e-15);
        assert_eq!(t.mass, 0.25);
    }
}
