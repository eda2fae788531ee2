//! Tokenizers: loading OPT's (GPT-2 byte-level BPE), training a small one with
//! the same conventions, and encoding rows the way the authors did.
//!
//! OPT ships `vocab.json` + `merges.txt` (no `tokenizer.json`), and transformers
//! builds its fast tokenizer from them with `GPT2Converter`: a BPE model, a
//! `ByteLevel` pre-tokenizer (`add_prefix_space` from `tokenizer_config.json`,
//! false for OPT), a `ByteLevel` decoder and, because OPT's config says
//! `add_bos_token: true`, a post-processor that PREPENDS the bos token
//! (`</s>`, id 2): `TemplateProcessing(single="</s>:0 $A:0",
//! pair="</s>:0 $A:0 $B:1")`. [`load_tokenizer`] rebuilds exactly that.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tokenizers::AddedToken;
/// The `tokenizers` crate's tokenizer, as [`load_tokenizer`] returns it.
pub use tokenizers::Tokenizer;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainer};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::template::TemplateProcessing;

/// A boxed error from the tokenizers crate.
pub type TokenizersError = tokenizers::Error;

/// Special tokens of a trained tokenizer, in id order, as OPT numbers them.
pub const TRAINED_SPECIAL_TOKENS: [&str; 4] = ["<s>", "<pad>", "</s>", "<unk>"];
/// The token a trained tokenizer prepends to every row (OPT's bos = eos).
pub const TRAINED_BOS: &str = "</s>";
/// 256 byte symbols + the special tokens: the smallest byte-level vocabulary.
pub const MIN_TRAINED_VOCAB: usize = 256 + TRAINED_SPECIAL_TOKENS.len();

/// Things that go wrong loading, training, encoding or saving a tokenizer.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error(
        "`{dir}` holds no tokenizer: expected `tokenizer.json`, or `vocab.json` and \
         `merges.txt` (GPT-2/OPT style); found: {found}"
    )]
    MissingFiles { dir: PathBuf, found: String },

    #[error("cannot read `{path}`: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("`{path}` is not valid JSON: {source}")]
    BadJson {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },

    #[error("`{path}`: `{key}` must be {expected}")]
    BadConfigValue {
        path: PathBuf,
        key: String,
        expected: &'static str,
    },

    #[error("cannot load the tokenizer from `{path}`: {source}")]
    Load {
        path: PathBuf,
        #[source]
        source: TokenizersError,
    },

    #[error(
        "special token `{token}` ({role}) is not in the vocabulary `{vocab}`; \
         check special_tokens_map.json / tokenizer_config.json"
    )]
    SpecialTokenNotInVocab {
        token: String,
        role: &'static str,
        vocab: PathBuf,
    },

    #[error(
        "vocab size {vocab_size} is too small for a byte-level BPE: it needs at least \
         {min} (256 byte symbols + 4 special tokens)",
        min = MIN_TRAINED_VOCAB
    )]
    VocabTooSmall { vocab_size: usize },

    #[error("training the BPE tokenizer failed: {source}")]
    Train {
        #[source]
        source: TokenizersError,
    },

    #[error("encoding row {row} failed: {source}")]
    Encode {
        row: usize,
        #[source]
        source: TokenizersError,
    },

    #[error("encoding the rows failed: {source}")]
    EncodeBatch {
        #[source]
        source: TokenizersError,
    },

    #[error("cannot write the tokenizer to `{path}`: {source}")]
    Save {
        path: PathBuf,
        #[source]
        source: TokenizersError,
    },

    #[error("cannot build the post-processor: {reason}")]
    PostProcessor { reason: String },
}

/// Loads the tokenizer in `dir` (or the `tokenizer.json` file `dir` names):
/// `tokenizer.json` when present, else `vocab.json` + `merges.txt` assembled
/// as transformers' `GPT2Converter` does (see the module docs), with special
/// tokens from `special_tokens_map.json` / `tokenizer_config.json`.
pub fn load_tokenizer(dir: &Path) -> Result<Tokenizer, TokenizerError> {
    if dir.is_file() {
        return tokenizer_from_json_file(dir);
    }
    let json = dir.join("tokenizer.json");
    if json.is_file() {
        return tokenizer_from_json_file(&json);
    }
    let vocab = dir.join("vocab.json");
    let merges = dir.join("merges.txt");
    if !(vocab.is_file() && merges.is_file()) {
        return Err(TokenizerError::MissingFiles {
            dir: dir.to_path_buf(),
            found: list_dir(dir),
        });
    }
    let config = HfTokenizerConfig::read(dir)?;
    let utf8 = |p: &Path| p.to_str().map(str::to_string);
    let (Some(vocab_str), Some(merges_str)) = (utf8(&vocab), utf8(&merges)) else {
        return Err(TokenizerError::Load {
            path: vocab.clone(),
            source: "the path is not valid UTF-8".into(),
        });
    };
    let bpe = BPE::from_file(&vocab_str, &merges_str)
        .build()
        .map_err(|source| TokenizerError::Load {
            path: vocab.clone(),
            source,
        })?;
    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(ByteLevel::new(config.add_prefix_space, true, true)));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));

    // transformers registers every special token as an added token, so a
    // literal "</s>" in the text becomes id 2 rather than 4 BPE pieces.
    let special: Vec<AddedToken> = config
        .special_tokens
        .iter()
        .filter(|t| tokenizer.token_to_id(t).is_some())
        .map(|t| AddedToken::from(t.clone(), true))
        .collect();
    tokenizer.add_special_tokens(&special);

    if config.add_bos_token {
        let bos_id = tokenizer.token_to_id(&config.bos_token).ok_or(
            TokenizerError::SpecialTokenNotInVocab {
                token: config.bos_token.clone(),
                role: "bos_token",
                vocab: vocab.clone(),
            },
        )?;
        tokenizer.with_post_processor(Some(prepend_bos(&config.bos_token, bos_id)?));
    } else {
        // GPT2Converter's choice without a bos: a ByteLevel processor that
        // (with trim_offsets=false) leaves ids unchanged.
        tokenizer.with_post_processor(Some(ByteLevel::default().trim_offsets(false)));
    }
    Ok(tokenizer)
}

fn tokenizer_from_json_file(path: &Path) -> Result<Tokenizer, TokenizerError> {
    Tokenizer::from_file(path).map_err(|source| TokenizerError::Load {
        path: path.to_path_buf(),
        source,
    })
}

fn list_dir(dir: &Path) -> String {
    let names: BTreeSet<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        "nothing (or the directory does not exist)".to_string()
    } else {
        names.into_iter().collect::<Vec<_>>().join(", ")
    }
}

/// The post-processor that puts `bos` before every sequence.
fn prepend_bos(bos: &str, bos_id: u32) -> Result<TemplateProcessing, TokenizerError> {
    let err = |e: &dyn std::fmt::Display| TokenizerError::PostProcessor {
        reason: e.to_string(),
    };
    TemplateProcessing::builder()
        .try_single(format!("{bos}:0 $A:0"))
        .map_err(|e| err(&e))?
        .try_pair(format!("{bos}:0 $A:0 $B:1"))
        .map_err(|e| err(&e))?
        .special_tokens(vec![(bos.to_string(), bos_id)])
        .build()
        .map_err(|e| err(&e))
}

/// What transformers reads from `special_tokens_map.json` and
/// `tokenizer_config.json` that changes the ids. Without the files the
/// defaults are OPT's: bos `</s>`, prepended, no prefix space.
struct HfTokenizerConfig {
    bos_token: String,
    add_bos_token: bool,
    add_prefix_space: bool,
    /// Every special token named in the files (bos, eos, unk, pad, ...).
    special_tokens: BTreeSet<String>,
}

const SPECIAL_TOKEN_KEYS: [&str; 7] = [
    "bos_token",
    "eos_token",
    "unk_token",
    "pad_token",
    "sep_token",
    "cls_token",
    "mask_token",
];

impl HfTokenizerConfig {
    fn read(dir: &Path) -> Result<Self, TokenizerError> {
        // transformers lets special_tokens_map.json override tokenizer_config.json,
        // so read the config first and the map second.
        let config_path = dir.join("tokenizer_config.json");
        let map_path = dir.join("special_tokens_map.json");
        let mut result = Self {
            bos_token: TRAINED_BOS.to_string(),
            add_bos_token: true,
            add_prefix_space: false,
            special_tokens: BTreeSet::new(),
        };
        let mut named = std::collections::BTreeMap::new();
        for path in [&config_path, &map_path] {
            let Some(json) = read_json_if_present(path)? else {
                continue;
            };
            for key in SPECIAL_TOKEN_KEYS {
                if let Some(value) = json.get(key).filter(|v| !v.is_null()) {
                    named.insert(key, token_content(value, path, key)?);
                }
            }
            if let Some(extra) = json.get("additional_special_tokens") {
                let Value::Array(items) = extra else {
                    return Err(bad_value(path, "additional_special_tokens", "a list"));
                };
                for item in items {
                    let content = token_content(item, path, "additional_special_tokens")?;
                    result.special_tokens.insert(content);
                }
            }
            for (key, slot) in [
                ("add_bos_token", &mut result.add_bos_token),
                ("add_prefix_space", &mut result.add_prefix_space),
            ] {
                if let Some(v) = json.get(key) {
                    *slot = v
                        .as_bool()
                        .ok_or_else(|| bad_value(path, key, "true or false"))?;
                }
            }
        }
        if let Some(bos) = named.get("bos_token") {
            result.bos_token = bos.clone();
        }
        result.special_tokens.extend(named.into_values());
        Ok(result)
    }
}

fn read_json_if_present(path: &Path) -> Result<Option<Value>, TokenizerError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(TokenizerError::Io {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|source| TokenizerError::BadJson {
            path: path.to_path_buf(),
            source,
        })
}

fn bad_value(path: &Path, key: &str, expected: &'static str) -> TokenizerError {
    TokenizerError::BadConfigValue {
        path: path.to_path_buf(),
        key: key.to_string(),
        expected,
    }
}

/// A special token is written either as a string or as a serialised
/// `AddedToken` object with a `content` field.
fn token_content(value: &Value, path: &Path, key: &str) -> Result<String, TokenizerError> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Object(o) => o
            .get("content")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| bad_value(path, key, "a string or an object with a `content` string")),
        _ => Err(bad_value(
            path,
            key,
            "a string or an object with a `content` string",
        )),
    }
}

/// Trains a byte-level BPE on `rows` with OPT's conventions: special tokens
/// `<s>`=0, `<pad>`=1, `</s>`=2, `<unk>`=3, the 256 byte symbols, then merges
/// up to `vocab_size` (pairs seen fewer than `min_frequency` times are not
/// merged); `</s>` is prepended to every row. Deterministic: the same rows and
/// parameters give a byte-identical `tokenizer.json`.
pub fn train_bpe(
    rows: &[String],
    vocab_size: usize,
    min_frequency: u64,
) -> Result<Tokenizer, TokenizerError> {
    if vocab_size < MIN_TRAINED_VOCAB {
        return Err(TokenizerError::VocabTooSmall { vocab_size });
    }
    let specials: Vec<AddedToken> = TRAINED_SPECIAL_TOKENS
        .iter()
        .map(|t| AddedToken::from(*t, true))
        .collect();
    let trainer = BpeTrainer::builder()
        .show_progress(false)
        .vocab_size(vocab_size)
        .min_frequency(min_frequency)
        .special_tokens(specials)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let mut trainer = TrainerWrapper::BpeTrainer(trainer);

    let mut tokenizer = Tokenizer::new(BPE::default());
    tokenizer.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    tokenizer
        .train(&mut trainer, rows.iter())
        .map_err(|source| TokenizerError::Train { source })?;
    let bos_id = tokenizer
        .token_to_id(TRAINED_BOS)
        .ok_or_else(|| TokenizerError::Train {
            source: format!("`{TRAINED_BOS}` missing from the trained vocabulary").into(),
        })?;
    tokenizer.with_post_processor(Some(prepend_bos(TRAINED_BOS, bos_id)?));
    Ok(tokenizer)
}

/// Writes `tokenizer` as a (compact) `tokenizer.json` at `path`.
pub fn save_tokenizer(tokenizer: &Tokenizer, path: &Path) -> Result<(), TokenizerError> {
    tokenizer
        .save(path, false)
        .map_err(|source| TokenizerError::Save {
            path: path.to_path_buf(),
            source,
        })
}

/// Encodes each row on its own with special tokens added, as the authors'
/// `tokenizer(examples["text"])` does: with OPT's tokenizer every row,
/// the empty row included, starts with `</s>` (id 2).
pub fn encode_rows(
    tokenizer: &Tokenizer,
    rows: &[String],
) -> Result<Vec<Vec<u32>>, TokenizerError> {
    let inputs: Vec<&str> = rows.iter().map(String::as_str).collect();
    match tokenizer.encode_batch(inputs, true) {
        Ok(encodings) => Ok(encodings.iter().map(|e| e.get_ids().to_vec()).collect()),
        // The batch error does not say which row failed: find it one by one.
        Err(batch_error) => {
            for (row, text) in rows.iter().enumerate() {
                if let Err(source) = tokenizer.encode(text.as_str(), true) {
                    return Err(TokenizerError::Encode { row, source });
                }
            }
            Err(TokenizerError::EncodeBatch {
                source: batch_error,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/data/opt-mini")
    }

    fn copy_fixture(files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for f in files {
            std::fs::copy(fixture().join(f), dir.path().join(f)).unwrap();
        }
        dir
    }

    fn strings(rows: &[&str]) -> Vec<String> {
        rows.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn opt_style_vocab_and_merges_prepend_bos() {
        let tok = load_tokenizer(&fixture()).unwrap();
        // The ids the real opt-125m tokenizer gives (PARITY.md), mirrored by the fixture.
        let ids = encode_rows(&tok, &strings(&["I like you.", "", "I"])).unwrap();
        assert_eq!(ids, vec![vec![2, 100, 101, 47, 4], vec![2], vec![2, 100]]);
        assert_eq!(
            tok.decode(&[2, 100, 101, 47, 4], true).unwrap(),
            "I like you."
        );
        // "</s>" in the text is the special token, as transformers registers it.
        let ids = encode_rows(&tok, &strings(&["I</s>"])).unwrap();
        assert_eq!(ids, vec![vec![2, 100, 2]]);
    }

    #[test]
    fn without_config_files_the_defaults_are_opts() {
        let dir = copy_fixture(&["vocab.json", "merges.txt"]);
        let tok = load_tokenizer(dir.path()).unwrap();
        assert_eq!(
            encode_rows(&tok, &strings(&["I like you."])).unwrap()[0],
            [2, 100, 101, 47, 4]
        );
    }

    #[test]
    fn config_can_turn_bos_off_or_change_it() {
        let dir = copy_fixture(&["vocab.json", "merges.txt"]);
        let config = dir.path().join("tokenizer_config.json");
        std::fs::write(&config, r#"{"add_bos_token": false}"#).unwrap();
        let tok = load_tokenizer(dir.path()).unwrap();
        assert_eq!(
            encode_rows(&tok, &strings(&["I like you."])).unwrap()[0],
            [100, 101, 47, 4]
        );

        // special_tokens_map.json overrides tokenizer_config.json, as in transformers.
        std::fs::write(&config, r#"{"add_bos_token": true, "bos_token": "<unk>"}"#).unwrap();
        let map = dir.path().join("special_tokens_map.json");
        std::fs::write(&map, r#"{"bos_token": {"content": "<s>"}}"#).unwrap();
        let tok = load_tokenizer(dir.path()).unwrap();
        assert_eq!(encode_rows(&tok, &strings(&["I"])).unwrap()[0], [0, 100]);

        std::fs::write(&map, r#"{"bos_token": "<bos>"}"#).unwrap();
        let msg = load_tokenizer(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains("`<bos>` (bos_token) is not in the vocabulary"),
            "{msg}"
        );

        std::fs::write(&map, r#"{"bos_token": 7}"#).unwrap();
        let msg = load_tokenizer(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains("special_tokens_map.json`: `bos_token` must be"),
            "{msg}"
        );

        std::fs::write(&map, "{").unwrap();
        let msg = load_tokenizer(dir.path()).unwrap_err().to_string();
        assert!(msg.contains("is not valid JSON"), "{msg}");
    }

    #[test]
    fn missing_files_are_named() {
        let dir = copy_fixture(&["vocab.json"]);
        let msg = load_tokenizer(dir.path()).unwrap_err().to_string();
        assert!(
            msg.contains("expected `tokenizer.json`, or `vocab.json` and `merges.txt`"),
            "{msg}"
        );
        assert!(msg.contains("found: vocab.json"), "{msg}");
    }

    #[test]
    fn tokenizer_json_round_trips() {
        let tok = load_tokenizer(&fixture()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        save_tokenizer(&tok, &path).unwrap();
        // Loaded from the directory (tokenizer.json wins) and from the file itself.
        for source in [dir.path(), path.as_path()] {
            let again = load_tokenizer(source).unwrap();
            assert_eq!(
                again.to_string(false).unwrap(),
                tok.to_string(false).unwrap()
            );
            let rows = strings(&["I like you.", ""]);
            assert_eq!(
                encode_rows(&again, &rows).unwrap(),
                encode_rows(&tok, &rows).unwrap()
            );
        }
        std::fs::write(&path, "{}").unwrap();
        let msg = load_tokenizer(dir.path()).unwrap_err().to_string();
        assert!(msg.contains("cannot load the tokenizer from"), "{msg}");
    }

    fn corpus() -> Vec<String> {
        let mut rows = Vec::new();
        for i in 0..200 {
            rows.push(format!(" = Section {i} = "));
            rows.push(String::new());
            rows.push(format!(
                " The model collapses after {} generations of training on its own output . ",
                i % 7
            ));
            rows.push(" Valkyria Chronicles III is a tactical role @-@ playing game . ".into());
        }
        rows
    }

    #[test]
    fn trained_bpe_follows_opt_conventions() {
        let rows = corpus();
        let tok = train_bpe(&rows, 300, 2).unwrap();
        for (i, t) in TRAINED_SPECIAL_TOKENS.iter().enumerate() {
            assert_eq!(tok.token_to_id(t), Some(i as u32), "{t}");
        }
        assert_eq!(tok.get_vocab_size(true), 300);
        let ids = encode_rows(&tok, &strings(&["", "The model", "ü never seen"])).unwrap();
        assert_eq!(ids[0], [2]);
        assert_eq!(ids[1][0], 2);
        // Merges make frequent text shorter than one token per byte (+ bos).
        assert!(ids[1].len() < 1 + "The model".len(), "{:?}", ids[1]);
        // Byte-level: unseen characters still encode and decode losslessly.
        assert_eq!(tok.decode(&ids[2], true).unwrap(), "ü never seen");
        assert!(matches!(
            train_bpe(&rows, 259, 2),
            Err(TokenizerError::VocabTooSmall { .. })
        ));
    }

    #[test]
    fn training_is_deterministic() {
        let rows = corpus();
        // The corpus gives ~375 tokens at min_frequency 2: stay below.
        let a = train_bpe(&rows, 320, 2).unwrap().to_string(false).unwrap();
        let b = train_bpe(&rows, 320, 2).unwrap().to_string(false).unwrap();
        assert_eq!(a, b);
        let c = train_bpe(&rows, 340, 2).unwrap().to_string(false).unwrap();
        assert_ne!(a, c);
        // Saved files are byte-identical too.
        let dir = tempfile::tempdir().unwrap();
        let (pa, pb) = (dir.path().join("a.json"), dir.path().join("b.json"));
        save_tokenizer(&train_bpe(&rows, 320, 2).unwrap(), &pa).unwrap();
        save_tokenizer(&train_bpe(&rows, 320, 2).unwrap(), &pb).unwrap();
        assert_eq!(std::fs::read(pa).unwrap(), std::fs::read(pb).unwrap());
    }
}
