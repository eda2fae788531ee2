//! Reading a dataset input as rows, whatever produced it: a Hub dataset
//! (files listed by split), a local directory of split files, a single file
//! (the `train` split), or a step's output directory.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::context::{InputLocation, StepError};
use crate::data::{RowOptions, read_rows_with};
use crate::source::{self, SourceSpec};

/// The data files of each split of a dataset input.
pub fn splits_of(input: &InputLocation) -> Result<BTreeMap<String, Vec<PathBuf>>, StepError> {
    if let Some(splits) = &input.splits {
        return Ok(splits.clone());
    }
    if input.path.is_file() {
        return Ok(BTreeMap::from([(
            "train".to_string(),
            vec![input.path.clone()],
        )]));
    }
    let spec = SourceSpec::Local(input.path.clone());
    let resolved = source::resolve(&spec, &source::ResolveOptions::from_env("."))?;
    Ok(resolved.splits)
}

/// Every row of one split, shards in order.
pub fn read_split(
    splits: &BTreeMap<String, Vec<PathBuf>>,
    split: &str,
    options: &RowOptions,
    step: &str,
) -> Result<Vec<String>, StepError> {
    let files = splits.get(split).ok_or_else(|| {
        StepError::Invalid(format!(
            "step `{step}`: the data has no `{split}` split (it has: {}); set `splits` to the ones it has",
            splits.keys().cloned().collect::<Vec<_>>().join(", ")
        ))
    })?;
    let mut rows = Vec::new();
    for file in files {
        rows.extend(read_rows_with(file, options)?);
    }
    Ok(rows)
}
