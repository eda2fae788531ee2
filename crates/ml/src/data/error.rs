//! Errors of the data layer. Every variant names the file and, where there is
//! one, the line or row, so a person can open the file and look.

use std::path::PathBuf;

/// Anything that can go wrong reading rows or reading/writing block files.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read or write `{path}`: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "`{path}`: don't know how to read rows from a `{extension}` file; \
         supported extensions: {supported}"
    )]
    UnsupportedExtension {
        path: PathBuf,
        extension: String,
        supported: String,
    },

    #[error("`{path}` line {line}: not valid UTF-8 (the file must be UTF-8 text)")]
    InvalidUtf8 { path: PathBuf, line: usize },

    #[error("`{path}` line {line}: not a JSON value: {source}")]
    JsonSyntax {
        path: PathBuf,
        line: usize,
        #[source]
        source: serde_json::Error,
    },

    #[error("`{path}` line {line}: expected a JSON object (one per line), found {found}")]
    JsonNotObject {
        path: PathBuf,
        line: usize,
        found: &'static str,
    },

    #[error(
        "`{path}` line {line}: the object has no field `{field}` \
         (fields present: {present}); set the text field name if it is another"
    )]
    JsonMissingField {
        path: PathBuf,
        line: usize,
        field: String,
        present: String,
    },

    #[error("`{path}` line {line}: field `{field}` must be a string, found {found}")]
    JsonFieldNotString {
        path: PathBuf,
        line: usize,
        field: String,
        found: &'static str,
    },

    #[error("`{path}`: parquet error: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },

    #[error(
        "`{path}`: no top-level column `{column}` (columns present: {present}); \
         set the text field name if it is another"
    )]
    ParquetMissingColumn {
        path: PathBuf,
        column: String,
        present: String,
    },

    #[error("`{path}` row {row}: column `{column}` must be a UTF-8 string, found {found}")]
    ParquetNotString {
        path: PathBuf,
        row: usize,
        column: String,
        found: String,
    },

    #[error("block size must be at least 1 (got {block_size})")]
    ZeroBlockSize { block_size: usize },

    #[error("rows per batch must be at least 1 (got {rows_per_batch})")]
    ZeroRowsPerBatch { rows_per_batch: usize },

    #[error("{len} tokens do not divide into blocks of {block_size}")]
    RaggedBlocks { len: usize, block_size: usize },

    #[error("`{path}`: not an xp block file ({reason})")]
    NotABlockFile { path: PathBuf, reason: String },

    #[error(
        "`{path}`: block file format version {found} is not supported (this xp reads \
         version {supported}); re-run the step that produced it"
    )]
    UnsupportedBlockFileVersion {
        path: PathBuf,
        found: u32,
        supported: u32,
    },

    #[error(
        "`{path}`: block file is {actual} bytes but its header promises {expected} \
         (truncated or corrupt); re-run the step that produced it"
    )]
    BlockFileLength {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}
