//! Evaluation of block sets: perplexity under a model ([`perplexity`]) and data-only
//! metrics, on a set alone ([`diversity`]) or against a reference set ([`divergence`]).

pub mod divergence;
pub mod diversity;
pub mod perplexity;

pub use divergence::{
    TailCoverage, UnigramCounts, rare_tail, tail_coverage, unigram_js, unigram_kl,
};
pub use diversity::{distinct_n, repetition_rate};
pub use perplexity::{SetPerplexity, Summary, batch_mean_perplexity, percentile, score_blocks};

/// Why a block set cannot be scored.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// The forward pass failed.
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    /// A batch size of 0 was asked for.
    #[error("batch sizes must be at least 1")]
    ZeroBatch,
    /// Blocks of one token have nothing to predict.
    #[error("blocks of {block_size} token(s) have no next token to predict; use block_size >= 2")]
    BlockTooShort { block_size: usize },
    /// Blocks longer than the model's learned positions.
    #[error(
        "blocks of {block_size} tokens are longer than the model's {max_positions} positions; \
         tokenize with a smaller block_size"
    )]
    BlockTooLong {
        block_size: usize,
        max_positions: usize,
    },
    /// A token id the model has no embedding for.
    #[error(
        "token id {id} is outside the model's vocabulary of {vocab_size}; \
         the blocks were made with another tokenizer than the model's"
    )]
    IdOutOfVocabulary { id: u32, vocab_size: usize },
    /// The model produced a NaN or infinite loss.
    #[error("block {block}: the loss is {value} (not finite); the model's weights may be broken")]
    NonFiniteLoss { block: usize, value: f64 },
}
