//! Diversity of a block set, from its token ids alone: distinct-n and repetition rate.
//!
//! Both look inside blocks only: an n-gram or a repetition never spans two blocks,
//! since consecutive blocks of generated text are independent samples.

use std::collections::HashSet;

use crate::data::Blocks;

/// distinct-n (Li et al., 2016) over the whole set: the number of different n-grams
/// divided by the number of n-gram occurrences, counting the `block_size - n + 1`
/// n-grams of every block. `None` when there is no n-gram at all (n = 0, no blocks,
/// or blocks shorter than n).
pub fn distinct_n(blocks: &Blocks, n: usize) -> Option<f64> {
    if n == 0 || blocks.block_size() < n || blocks.is_empty() {
        return None;
    }
    let mut seen: HashSet<&[u32]> = HashSet::new();
    let mut total = 0usize;
    for block in blocks {
        for gram in block.windows(n) {
            seen.insert(gram);
            total += 1;
        }
    }
    Some(seen.len() as f64 / total as f64)
}

/// The share of tokens that repeat one of the `window` tokens before them in their
/// block (Welleck et al., 2019's rep/l with l = `window`). Every token is in the
/// denominator; a block's first token has no predecessor and never counts as a repeat.
/// `None` for an empty set; `window = 0` gives 0.
pub fn repetition_rate(blocks: &Blocks, window: usize) -> Option<f64> {
    if blocks.is_empty() || blocks.block_size() == 0 {
        return None;
    }
    let mut repeats = 0usize;
    for block in blocks {
        for (i, token) in block.iter().enumerate() {
            let start = i.saturating_sub(window);
            if block[start..i].contains(token) {
                repeats += 1;
            }
        }
    }
    Some(repeats as f64 / blocks.tokens().len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(block_size: usize, tokens: &[u32]) -> Blocks {
        Blocks::new(block_size, tokens.to_vec()).unwrap()
    }

    #[test]
    fn distinct_counts_within_blocks() {
        // Blocks [1 2 1 2] and [1 2 3 4]: bigrams 12 21 12 | 12 23 34 -> 4 distinct / 6.
        let b = set(4, &[1, 2, 1, 2, 1, 2, 3, 4]);
        assert_eq!(distinct_n(&b, 1), Some(4.0 / 8.0));
        assert_eq!(distinct_n(&b, 2), Some(4.0 / 6.0));
        // Trigrams 121 212 | 123 234: all different.
        assert_eq!(distinct_n(&b, 3), Some(1.0));
        assert_eq!(distinct_n(&b, 5), None);
        assert_eq!(distinct_n(&Blocks::empty(4).unwrap(), 1), None);
    }

    #[test]
    fn repetition_sees_only_the_window_and_the_block() {
        // [5 5 5 5]: 3 repeats; [1 2 1 2]: with window 1 none, with window 2 two.
        let b = set(4, &[5, 5, 5, 5, 1, 2, 1, 2]);
        assert_eq!(repetition_rate(&b, 1), Some(3.0 / 8.0));
        assert_eq!(repetition_rate(&b, 2), Some(5.0 / 8.0));
        assert_eq!(repetition_rate(&b, 0), Some(0.0));
        // The last token of block 1 equals the first of block 2 (7): no repeat across.
        let c = set(2, &[3, 7, 7, 4]);
        assert_eq!(repetition_rate(&c, 8), Some(0.0));
    }
}
