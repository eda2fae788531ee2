//! Summary numbers of a tokenized dataset, recorded next to its blocks.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::Blocks;

/// Counts over a block file alone (also for synthesised data, which has no rows).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockStats {
    pub block_size: usize,
    pub blocks: usize,
    /// blocks × block_size.
    pub tokens: usize,
    /// How many different ids appear in the blocks.
    pub distinct_ids: usize,
}

impl BlockStats {
    pub fn of(blocks: &Blocks) -> Self {
        let distinct: HashSet<u32> = blocks.tokens().iter().copied().collect();
        Self {
            block_size: blocks.block_size(),
            blocks: blocks.len(),
            tokens: blocks.tokens().len(),
            distinct_ids: distinct.len(),
        }
    }
}

/// Counts for rows tokenized and grouped into blocks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataStats {
    pub rows: usize,
    /// Rows whose text was empty (with OPT's tokenizer they still give `[2]`).
    pub empty_rows: usize,
    /// Tokens over all rows, special tokens included, before grouping.
    pub row_tokens: usize,
    /// Tokens lost to the remainder(s) when cutting into blocks.
    pub dropped_tokens: usize,
    pub blocks: BlockStats,
}

impl DataStats {
    /// `texts` and `ids` are the same rows before and after tokenization;
    /// `blocks` is what grouping made of `ids`.
    pub fn compute(texts: &[String], ids: &[Vec<u32>], blocks: &Blocks) -> Self {
        let row_tokens: usize = ids.iter().map(Vec::len).sum();
        let blocks = BlockStats::of(blocks);
        Self {
            rows: ids.len(),
            empty_rows: texts.iter().filter(|t| t.is_empty()).count(),
            row_tokens,
            dropped_tokens: row_tokens.saturating_sub(blocks.tokens),
            blocks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{GroupMode, group_into_blocks};

    #[test]
    fn counts_rows_tokens_drops_and_distinct_ids() {
        let texts: Vec<String> = ["a b", "", "c"].iter().map(|s| s.to_string()).collect();
        let ids = vec![vec![2, 7, 8], vec![2], vec![2, 9, 9]];
        let blocks = group_into_blocks(&ids, 3, GroupMode::Global).unwrap();
        let stats = DataStats::compute(&texts, &ids, &blocks);
        assert_eq!(
            stats,
            DataStats {
                rows: 3,
                empty_rows: 1,
                row_tokens: 7,
                dropped_tokens: 1,
                blocks: BlockStats {
                    block_size: 3,
                    blocks: 2,
                    tokens: 6,
                    distinct_ids: 4, // 2, 7, 8, 9 (the last 9 is dropped but 9 occurs before)
                },
            }
        );
        let json = serde_json::to_value(&stats).unwrap();
        assert_eq!(json["blocks"]["distinct_ids"], 4);
        assert_eq!(json["dropped_tokens"], 1);
    }

    /// The whole flow on a miniature wikitext: raw file (text line mode)
    /// -> OPT-style tokenizer -> blocks -> block file -> stats.
    #[test]
    fn raw_rows_to_block_file_end_to_end() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("wiki.train.raw");
        std::fs::write(&raw, "I like you.\n \nI\n").unwrap();
        let options = crate::data::RowOptions {
            line_mode: crate::data::LineMode::Text,
            ..Default::default()
        };
        let texts = crate::data::read_rows_with(&raw, &options).unwrap();
        assert_eq!(texts, ["I like you.", " ", "I"]);
        let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/data/opt-mini");
        let tok = crate::tokenizer::load_tokenizer(&fixture).unwrap();
        let ids = crate::tokenizer::encode_rows(&tok, &texts).unwrap();
        // " " is the byte-level space token 220 after the prepended </s>.
        assert_eq!(
            ids,
            vec![vec![2, 100, 101, 47, 4], vec![2, 220], vec![2, 100]]
        );
        let blocks = group_into_blocks(&ids, 4, GroupMode::Global).unwrap();
        assert_eq!(blocks.tokens(), &[2, 100, 101, 47, 4, 2, 220, 2]);
        let path = dir.path().join("train.blocks");
        crate::data::write_blocks(&path, &blocks).unwrap();
        let back = crate::data::read_blocks(&path).unwrap();
        assert_eq!(back, blocks);
        let stats = DataStats::compute(&texts, &ids, &back);
        assert_eq!(
            (stats.rows, stats.row_tokens, stats.dropped_tokens),
            (3, 9, 1)
        );
        assert_eq!(stats.blocks.distinct_ids, 6);
    }
}
