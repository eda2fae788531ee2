//! Grouping tokenized rows into fixed-size blocks, as the authors' `group_texts`.
//!
//! Both modes concatenate rows in order and cut the stream into blocks of
//! `block_size`, dropping a remainder shorter than a block:
//! - [`GroupMode::Global`] (the default): one stream over all rows, so at most
//!   `block_size - 1` tokens are dropped in total.
//! - [`GroupMode::Batched`]: what `dataset.map(group_texts, batched=True,
//!   batch_size=1000)` does. `datasets` hands `group_texts` 1,000 rows at a
//!   time, so the concatenation and the drop happen per batch: up to
//!   `block_size - 1` tokens are dropped per batch, and blocks never straddle a
//!   batch boundary. Use it to match the authors' block counts exactly.
//!   A batch with fewer than `block_size` tokens yields no block (the
//!   transformers example's current `group_texts`; an older variant kept such
//!   a short block, which a fixed-size block file cannot hold).

use serde::{Deserialize, Serialize};

use super::{Blocks, DataError};

/// The rows per batch that `datasets.map(batched=True)` uses by default.
pub const HF_MAP_BATCH_SIZE: usize = 1000;

/// How rows are concatenated before cutting into blocks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum GroupMode {
    /// Concatenate every row, cut, drop the final remainder.
    #[default]
    Global,
    /// Concatenate, cut and drop the remainder within each batch of rows.
    Batched { rows_per_batch: usize },
}

impl GroupMode {
    /// The batching of `datasets.map(batched=True)` with its default batch size.
    pub fn hf_batched() -> Self {
        Self::Batched {
            rows_per_batch: HF_MAP_BATCH_SIZE,
        }
    }
}

/// Concatenates rows of ids and cuts them into blocks of `block_size`
/// according to `mode` (see the module docs).
pub fn group_into_blocks(
    rows: &[Vec<u32>],
    block_size: usize,
    mode: GroupMode,
) -> Result<Blocks, DataError> {
    if block_size == 0 {
        return Err(DataError::ZeroBlockSize { block_size });
    }
    let rows_per_batch = match mode {
        GroupMode::Global => rows.len().max(1),
        GroupMode::Batched { rows_per_batch: 0 } => {
            return Err(DataError::ZeroRowsPerBatch { rows_per_batch: 0 });
        }
        GroupMode::Batched { rows_per_batch } => rows_per_batch,
    };
    let mut tokens = Vec::new();
    let mut batch = Vec::new();
    for chunk in rows.chunks(rows_per_batch) {
        batch.clear();
        for row in chunk {
            batch.extend_from_slice(row);
        }
        let kept = batch.len() - batch.len() % block_size;
        tokens.extend_from_slice(&batch[..kept]);
    }
    Blocks::new(block_size, tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(lens: &[usize]) -> Vec<Vec<u32>> {
        // Row r holds ids r*100, r*100+1, ... so every token is traceable.
        lens.iter()
            .enumerate()
            .map(|(r, &n)| (0..n as u32).map(|i| r as u32 * 100 + i).collect())
            .collect()
    }

    #[test]
    fn global_concatenates_everything_and_drops_the_tail() {
        let rows = rows(&[3, 1, 4, 1]); // 9 tokens
        let b = group_into_blocks(&rows, 4, GroupMode::Global).unwrap();
        assert_eq!(b.tokens(), &[0, 1, 2, 100, 200, 201, 202, 203]);
        assert_eq!(b.len(), 2);
        let b = group_into_blocks(&rows, 9, GroupMode::Global).unwrap();
        assert_eq!(b.len(), 1);
        let b = group_into_blocks(&rows, 10, GroupMode::Global).unwrap();
        assert!(b.is_empty());
        assert!(
            group_into_blocks(&[], 4, GroupMode::Global)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn batched_drops_the_remainder_per_batch() {
        // Batches of 2 rows: [3,1] -> 4 tokens, [4,1] -> 5 tokens, [2] -> 2 tokens.
        let rows = rows(&[3, 1, 4, 1, 2]);
        let mode = GroupMode::Batched { rows_per_batch: 2 };
        let b = group_into_blocks(&rows, 3, mode).unwrap();
        // batch 1: 0 1 2 100 -> [0 1 2], drop 100
        // batch 2: 200 201 202 203 300 -> [200 201 202], drop 203 300
        // batch 3: 400 401 -> nothing
        assert_eq!(b.tokens(), &[0, 1, 2, 200, 201, 202]);
        // The global mode keeps more from the same rows.
        let g = group_into_blocks(&rows, 3, GroupMode::Global).unwrap();
        assert_eq!(
            g.tokens(),
            &[0, 1, 2, 100, 200, 201, 202, 203, 300, 400, 401][..9]
        );
        // One batch holding every row is the global mode.
        let all = GroupMode::Batched { rows_per_batch: 5 };
        assert_eq!(group_into_blocks(&rows, 3, all).unwrap(), g);
    }

    #[test]
    fn batched_with_hf_batch_size_counts_like_datasets_map() {
        // 2,500 rows of 7 tokens with block 64: batches of 1000, 1000, 500 rows
        // give 7000, 7000, 3500 tokens -> 109 + 109 + 54 blocks; globally
        // 17500 tokens -> 273 blocks.
        let rows = vec![vec![5u32; 7]; 2500];
        let b = group_into_blocks(&rows, 64, GroupMode::hf_batched()).unwrap();
        assert_eq!(b.len(), 109 + 109 + 54);
        let g = group_into_blocks(&rows, 64, GroupMode::default()).unwrap();
        assert_eq!(g.len(), 273);
    }

    #[test]
    fn zero_sizes_are_errors() {
        assert!(group_into_blocks(&[], 0, GroupMode::Global).is_err());
        let mode = GroupMode::Batched { rows_per_batch: 0 };
        assert!(group_into_blocks(&[], 4, mode).is_err());
    }

    #[test]
    fn mode_serialises_readably() {
        let json = serde_json::to_string(&GroupMode::hf_batched()).unwrap();
        assert_eq!(json, r#"{"mode":"batched","rows_per_batch":1000}"#);
        let json = serde_json::to_string(&GroupMode::Global).unwrap();
        assert_eq!(json, r#"{"mode":"global"}"#);
    }
}
