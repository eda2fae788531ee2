//! The data-only metrics on hand-made block sets whose answers are known, and their
//! invariants on random sets.

use proptest::prelude::*;
use std::f64::consts::LN_2;
use xp::data::Blocks;
use xp::eval::{
    UnigramCounts, distinct_n, rare_tail, repetition_rate, tail_coverage, unigram_js, unigram_kl,
};

fn set(block_size: usize, tokens: Vec<u32>) -> Blocks {
    Blocks::new(block_size, tokens).unwrap()
}

#[test]
fn a_set_with_a_known_repetition_rate() {
    // Each block of 8: a b a b c d c d. With window 2 the 2nd a/b and 2nd c/d repeat
    // (4 of 8 tokens); with window 1 nothing repeats; the same pattern over 10 blocks.
    let block = [1, 2, 1, 2, 3, 4, 3, 4];
    let tokens: Vec<u32> = (0..10).flat_map(|_| block).collect();
    let b = set(8, tokens);
    assert_eq!(repetition_rate(&b, 2), Some(0.5));
    assert_eq!(repetition_rate(&b, 1), Some(0.0));
    // Ten copies of the same block: 4 distinct unigrams of 80 tokens, 5 distinct bigrams
    // (12 21 23 34 43) of 70.
    assert_eq!(distinct_n(&b, 1), Some(4.0 / 80.0));
    assert_eq!(distinct_n(&b, 2), Some(5.0 / 70.0));
}

#[test]
fn a_set_missing_exactly_the_rarest_tokens() {
    // Reference: ids 10..20, id 10 + k occurring 20 - k times (10 is the most frequent).
    // Its rarest half: ids 19, 18, 17, 16, 15.
    let reference: Vec<u32> = (0..10u32)
        .flat_map(|k| std::iter::repeat_n(10 + k, 20 - k as usize))
        .collect();
    let r = UnigramCounts::of_tokens(&reference);
    assert_eq!(rare_tail(&r, 0.5), [19, 18, 17, 16, 15]);
    let head: Vec<u32> = (10..15).cycle().take(50).collect();
    let t = tail_coverage(&r, &UnigramCounts::of_tokens(&head), 0.5).unwrap();
    assert_eq!((t.tail_ids, t.coverage, t.mass), (5, 0.0, 0.0));
    // Adding one occurrence of the rarest id: coverage 1/5, mass 1/51.
    let mut one_more = head.clone();
    one_more.push(19);
    let t = tail_coverage(&r, &UnigramCounts::of_tokens(&one_more), 0.5).unwrap();
    assert_eq!(t.coverage, 0.2);
    assert!((t.mass - 1.0 / 51.0).abs() < 1e-15);
    // Losing the tail shows in KL and JS too.
    let full = UnigramCounts::of_tokens(&reference);
    assert!(unigram_kl(&r, &UnigramCounts::of_tokens(&head), 1.0).unwrap() > 0.1);
    assert_eq!(unigram_kl(&r, &full, 1.0), Some(0.0));
    assert_eq!(unigram_js(&r, &full), Some(0.0));
}

fn token_sets() -> impl Strategy<Value = (Vec<u32>, Vec<u32>)> {
    (
        prop::collection::vec(0u32..40, 1..200),
        prop::collection::vec(0u32..40, 1..200),
    )
}

proptest! {
    #[test]
    fn divergences_are_bounded_and_js_symmetric((a, b) in token_sets(), alpha in 0.01f64..2.0) {
        let (ca, cb) = (UnigramCounts::of_tokens(&a), UnigramCounts::of_tokens(&b));
        let kl = unigram_kl(&ca, &cb, alpha).unwrap();
        prop_assert!(kl.is_finite() && kl >= 0.0);
        prop_assert_eq!(unigram_kl(&ca, &ca, alpha), Some(0.0));
        let js = unigram_js(&ca, &cb).unwrap();
        prop_assert!((js - unigram_js(&cb, &ca).unwrap()).abs() < 1e-12);
        prop_assert!((0.0..=LN_2).contains(&js));
        let t = tail_coverage(&ca, &cb, 0.5).unwrap();
        prop_assert!((0.0..=1.0).contains(&t.coverage) && (0.0..=1.0).contains(&t.mass));
        prop_assert_eq!(tail_coverage(&ca, &ca, 0.5).unwrap().coverage, 1.0);
    }

    #[test]
    fn diversity_shares_stay_in_range(tokens in prop::collection::vec(0u32..20, 4..200), window in 0usize..10) {
        let b = set(4, tokens[..tokens.len() / 4 * 4].to_vec());
        for n in 1..=3 {
            let d = distinct_n(&b, n).unwrap();
            prop_assert!(d > 0.0 && d <= 1.0);
        }
        let r = repetition_rate(&b, window).unwrap();
        prop_assert!((0.0..=1.0).contains(&r));
        // A wider window never finds fewer repeats.
        prop_assert!(repetition_rate(&b, window + 1).unwrap() >= r);
    }
}
