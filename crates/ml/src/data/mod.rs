//! The data layer: rows from files, tokenized rows grouped into fixed-size
//! blocks, the block file format, and summary statistics.

mod blocks;
mod error;
mod grouping;
mod rows;
mod stats;
// Used by the runner's tests too (another crate), so not behind `cfg(test)`.
#[doc(hidden)]
pub mod test_support;

pub use blocks::{BLOCK_FILE_MAGIC, BLOCK_FILE_VERSION, Blocks, read_blocks, write_blocks};
pub use error::DataError;
pub use grouping::{GroupMode, HF_MAP_BATCH_SIZE, group_into_blocks};
pub use rows::{
    LineMode, RowFormat, RowOptions, SUPPORTED_EXTENSIONS, read_rows, read_rows_with, split_lines,
};
pub use stats::{BlockStats, DataStats};
