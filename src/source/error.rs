//! Errors of source parsing and resolution; each says what to do about it.

use std::path::PathBuf;

/// How to provide a Hub source without network, repeated in several errors.
pub(crate) const PROVIDE_HINT: &str = "to provide it: run once with network access \
(without HF_HUB_OFFLINE=1); or populate the Hugging Face cache (e.g. `huggingface-cli \
download REPO` on a machine with network, then copy its HF_HOME here and set HF_HOME); \
or point the source at a local copy with `--set sources.NAME=/path/to/copy`";

/// Anything that goes wrong parsing or resolving a source.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(
        "empty source: expected `hf:<repo>`, `hf:datasets/<owner>/<name>[/<config>]` or a path"
    )]
    EmptySpec,

    #[error(
        "`{spec}` is not a source: use `hf:<owner>/<name>` for a Hub model, \
         `hf:datasets/<owner>/<name>[/<config>]` for a Hub dataset, or a local path"
    )]
    UnsupportedScheme { spec: String },

    #[error("`{spec}`: {reason}")]
    BadHfSpec { spec: String, reason: String },

    #[error("source `{spec}`: `{path}` does not exist")]
    LocalNotFound { spec: String, path: PathBuf },

    #[error("source `{spec}`: cannot read `{path}`: {source}")]
    Io {
        spec: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("source `{spec}`: no split `{split}` (splits found: {available})")]
    NoSuchSplit {
        spec: String,
        split: String,
        available: String,
    },

    #[error("source `{spec}`: {source}")]
    Rows {
        spec: String,
        #[source]
        source: crate::data::DataError,
    },

    #[error("source `{spec}`: {what}; available in the repository: {available}")]
    MissingRepoFiles {
        spec: String,
        what: String,
        available: String,
    },

    #[error(
        "source `{spec}` is not in the Hugging Face cache `{cache_dir}`{why}: {missing}; \
         {hint}",
        hint = PROVIDE_HINT
    )]
    NotInCache {
        spec: String,
        cache_dir: PathBuf,
        /// Why only the cache was consulted (offline mode, or the network error).
        why: String,
        missing: String,
    },

    #[error("cannot set up the Hugging Face Hub client: {source}")]
    HubClient {
        #[source]
        source: hf_hub::api::sync::ApiError,
    },

    #[error("source `{spec}`: downloading `{file}` from {endpoint} failed: {source}")]
    Download {
        spec: String,
        file: String,
        endpoint: String,
        #[source]
        source: hf_hub::api::sync::ApiError,
    },

    #[error(
        "source `{spec}`: the revision moved to another commit while downloading \
         (listed {listed}, file `{file}` came from {served}); run again"
    )]
    CommitChanged {
        spec: String,
        file: String,
        listed: String,
        served: String,
    },

    /// Several sources of one experiment failed to resolve; one line each, every line
    /// naming the source as the experiment file does.
    #[error("{}", .0.join("\nerror: "))]
    Several(Vec<String>),
}
