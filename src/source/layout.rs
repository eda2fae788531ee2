//! Which files of a repository or directory are used, and which split each
//! data file belongs to.
//!
//! Hub datasets converted to parquet name their shards
//! `<config>/<split>-00000-of-00001.parquet` (the layout of the main branch of
//! `Salesforce/wikitext`) or, on the `refs/convert/parquet` branch,
//! `<config>/<split>/0000.parquet`. Local files are assigned to splits by the
//! keywords `datasets` looks for in file names (`train`, `valid`, `test`, ...).

use std::collections::BTreeMap;

use crate::data::SUPPORTED_EXTENSIONS;

/// Files chosen from a listing, and the data files of each split (in order).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Selection {
    pub files: Vec<String>,
    pub splits: BTreeMap<String, Vec<String>>,
}

/// Keywords of `datasets`' split inference (`data_files.py`), by split.
const SPLIT_KEYWORDS: [(&str, &[&str]); 3] = [
    ("train", &["train", "training"]),
    ("validation", &["validation", "valid", "dev", "val"]),
    ("test", &["test", "testing", "eval", "evaluation"]),
];

/// The split a local data file belongs to by the keywords in its relative
/// path (`wiki.valid.raw` → `validation`, `data/train-0.jsonl` → `train`),
/// words being separated by `-._ /` and digits. None if no keyword appears.
pub fn infer_split(rel_path: &str) -> Option<&'static str> {
    let words: Vec<String> = rel_path
        .split(|c: char| matches!(c, '-' | '.' | '_' | ' ' | '/' | '\\') || c.is_ascii_digit())
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect();
    SPLIT_KEYWORDS
        .iter()
        .find(|(_, keywords)| words.iter().any(|w| keywords.contains(&w.as_str())))
        .map(|(split, _)| *split)
}

/// The split of a Hub data file, given its path inside the config folder:
/// `train-00000-of-00002.parquet` → `train`, `validation/0000.parquet` →
/// `validation`; otherwise by keywords (`valid.jsonl` → `validation`), a
/// one-word name is its own split (`unsupervised.parquet`), else `train`.
pub fn split_of_shard(rel: &str) -> String {
    if let Some((dir, _)) = rel.split_once('/') {
        return dir.to_string();
    }
    let stem = rel.rsplit_once('.').map_or(rel, |(stem, _)| stem);
    if let Some(split) = strip_shard_suffix(stem) {
        return split.to_string();
    }
    match infer_split(stem) {
        Some(split) => split.to_string(),
        // A one-word file name is a split name of its own (`unsupervised`).
        None if !stem.is_empty() && !stem.contains(['-', '.', '_', ' ']) => stem.to_string(),
        None => "train".to_string(),
    }
}

/// `name-00000-of-00002` → `name`.
fn strip_shard_suffix(stem: &str) -> Option<&str> {
    let (head, total) = stem.rsplit_once("-of-")?;
    let (name, index) = head.rsplit_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    (digits(index) && digits(total) && !name.is_empty()).then_some(name)
}

pub(crate) fn is_data_file(name: &str) -> bool {
    name.rsplit_once('.')
        .is_some_and(|(_, ext)| SUPPORTED_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()))
}

/// Shard order within a split: by name, which for `-00000-of-N` and `0000`
/// numbering is numeric order.
fn group_by_split(files: &[(String, String)]) -> BTreeMap<String, Vec<String>> {
    let mut splits: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, split) in files {
        splits.entry(split.clone()).or_default().push(name.clone());
    }
    for list in splits.values_mut() {
        list.sort();
    }
    splits
}

/// The data files of a Hub dataset: those under `<config>/`; without a
/// config, those under `data/`, else those at the top level.
pub(crate) fn select_dataset_files(
    config: Option<&str>,
    available: &[String],
) -> Result<Selection, String> {
    let under = |prefix: &str| -> Vec<(String, String)> {
        available
            .iter()
            .filter(|n| is_data_file(n))
            .filter_map(|n| {
                n.strip_prefix(prefix)
                    .map(|rel| (n.clone(), split_of_shard(rel)))
            })
            .collect()
    };
    let chosen = match config {
        Some(config) => under(&format!("{config}/")),
        None => {
            let data = under("data/");
            if data.is_empty() {
                under("")
                    .into_iter()
                    .filter(|(n, _)| !n.contains('/'))
                    .collect()
            } else {
                data
            }
        }
    };
    if chosen.is_empty() {
        let configs: std::collections::BTreeSet<&str> = available
            .iter()
            .filter(|n| is_data_file(n))
            .filter_map(|n| n.split_once('/').map(|(dir, _)| dir))
            .collect();
        let what = match config {
            Some(c) => format!("no data files under `{c}/`"),
            None => "no data files in `data/` or at the top level".to_string(),
        };
        let configs = if configs.is_empty() {
            "none".to_string()
        } else {
            configs.into_iter().collect::<Vec<_>>().join(", ")
        };
        return Err(format!(
            "{what} (folders with data files, i.e. configs: {configs}); a dataset \
             that has a loading script instead of data files has its parquet \
             conversion on the `refs/convert/parquet` revision: append \
             `@refs/convert/parquet` to the source"
        ));
    }
    let mut files: Vec<String> = chosen.iter().map(|(n, _)| n.clone()).collect();
    files.sort();
    Ok(Selection {
        files,
        splits: group_by_split(&chosen),
    })
}

/// Tokenizer files a model may come with; each is used when present.
const TOKENIZER_FILES: [&str; 5] = [
    "tokenizer.json",
    "vocab.json",
    "merges.txt",
    "special_tokens_map.json",
    "tokenizer_config.json",
];

/// The files of a model repository: `config.json`; the weights
/// (`model.safetensors`, else a sharded safetensors checkpoint with its
/// index, else `pytorch_model.bin`); and the tokenizer files present.
pub(crate) fn select_model_files(available: &[String]) -> Result<Selection, String> {
    let has = |name: &str| available.iter().any(|n| n == name);
    if !has("config.json") {
        return Err("no `config.json`".to_string());
    }
    let mut files = vec!["config.json".to_string()];
    if has("model.safetensors") {
        files.push("model.safetensors".to_string());
    } else if has("model.safetensors.index.json") {
        files.push("model.safetensors.index.json".to_string());
        files.extend(
            available
                .iter()
                .filter(|n| {
                    n.starts_with("model-") && n.ends_with(".safetensors") && !n.contains('/')
                })
                .cloned(),
        );
    } else if has("pytorch_model.bin") {
        files.push("pytorch_model.bin".to_string());
    } else {
        return Err(
            "no weights: expected `model.safetensors`, a sharded `model.safetensors.index.json`, \
             or `pytorch_model.bin`"
                .to_string(),
        );
    }
    files.extend(
        TOKENIZER_FILES
            .iter()
            .filter(|f| has(f))
            .map(|f| f.to_string()),
    );
    files.sort();
    files.dedup();
    Ok(Selection {
        files,
        splits: BTreeMap::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn split_names_from_shards_and_keywords() {
        let cases = [
            ("train-00000-of-00001.parquet", "train"),
            ("validation-00001-of-00002.parquet", "validation"),
            ("my-split-00000-of-00003.parquet", "my-split"),
            ("test/0000.parquet", "test"),
            ("partial-train/0003.parquet", "partial-train"),
            ("unsupervised.parquet", "unsupervised"),
            ("wiki.valid.raw", "validation"),
            ("wiki.test.raw", "test"),
            ("data-dev-1.jsonl", "validation"),
            ("whatever-else.txt", "train"),
        ];
        for (rel, split) in cases {
            assert_eq!(split_of_shard(rel), split, "{rel}");
        }
        assert_eq!(infer_split("wikitext-2-raw/wiki.train.raw"), Some("train"));
        assert_eq!(infer_split("sub/Training_01.txt"), Some("train"));
        assert_eq!(infer_split("eval2.jsonl"), Some("test"));
        assert_eq!(infer_split("contest.txt"), None);
        assert_eq!(infer_split("notes.txt"), None);
    }

    #[test]
    fn selects_a_dataset_config_by_split() {
        let listing = names(&[
            ".gitattributes",
            "README.md",
            "wikitext-103-raw-v1/train-00000-of-00002.parquet",
            "wikitext-103-raw-v1/train-00001-of-00002.parquet",
            "wikitext-2-raw-v1/test-00000-of-00001.parquet",
            "wikitext-2-raw-v1/train-00000-of-00001.parquet",
            "wikitext-2-raw-v1/validation-00000-of-00001.parquet",
        ]);
        let s = select_dataset_files(Some("wikitext-2-raw-v1"), &listing).unwrap();
        assert_eq!(s.files.len(), 3);
        assert_eq!(
            s.splits.keys().collect::<Vec<_>>(),
            ["test", "train", "validation"]
        );
        let s = select_dataset_files(Some("wikitext-103-raw-v1"), &listing).unwrap();
        assert_eq!(
            s.splits["train"],
            names(&[
                "wikitext-103-raw-v1/train-00000-of-00002.parquet",
                "wikitext-103-raw-v1/train-00001-of-00002.parquet"
            ])
        );
        let err = select_dataset_files(Some("nope"), &listing).unwrap_err();
        assert!(err.contains("no data files under `nope/`"), "{err}");
        assert!(
            err.contains("configs: wikitext-103-raw-v1, wikitext-2-raw-v1"),
            "{err}"
        );
        let err = select_dataset_files(None, &listing).unwrap_err();
        assert!(err.contains("no data files in `data/`"), "{err}");

        let listing = names(&[
            "data/train-00000-of-00001.parquet",
            "data/test-00000-of-00001.parquet",
        ]);
        let s = select_dataset_files(None, &listing).unwrap();
        assert_eq!(s.splits.keys().collect::<Vec<_>>(), ["test", "train"]);
        let listing = names(&["train.jsonl", "valid.jsonl", "x/other.parquet"]);
        let s = select_dataset_files(None, &listing).unwrap();
        assert_eq!(s.files, names(&["train.jsonl", "valid.jsonl"]));
        assert_eq!(s.splits.keys().collect::<Vec<_>>(), ["train", "validation"]);
    }

    #[test]
    fn selects_model_files() {
        let listing = names(&[
            "README.md",
            "config.json",
            "flax_model.msgpack",
            "generation_config.json",
            "merges.txt",
            "pytorch_model.bin",
            "special_tokens_map.json",
            "tf_model.h5",
            "tokenizer_config.json",
            "vocab.json",
        ]);
        let s = select_model_files(&listing).unwrap();
        assert_eq!(
            s.files,
            names(&[
                "config.json",
                "merges.txt",
                "pytorch_model.bin",
                "special_tokens_map.json",
                "tokenizer_config.json",
                "vocab.json"
            ])
        );
        let mut with_st = listing.clone();
        with_st.push("model.safetensors".to_string());
        let s = select_model_files(&with_st).unwrap();
        assert!(s.files.contains(&"model.safetensors".to_string()));
        assert!(!s.files.contains(&"pytorch_model.bin".to_string()));

        let sharded = names(&[
            "config.json",
            "model.safetensors.index.json",
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
        ]);
        assert_eq!(select_model_files(&sharded).unwrap().files.len(), 4);
        assert!(
            select_model_files(&names(&["config.json"]))
                .unwrap_err()
                .contains("no weights")
        );
        assert!(
            select_model_files(&names(&["model.safetensors"]))
                .unwrap_err()
                .contains("config.json")
        );
    }
}
